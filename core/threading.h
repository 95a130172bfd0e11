// threading.h: the one place that decides how many threads lowbit uses.
// set_num_threads(n) caps oneTBB's arena at n and pins OpenBLAS to ONE thread: lowbit
// parallelises with TBB over batch items / row blocks and calls single-threaded sgemm inside
// each task, so a multi-threaded BLAS never runs inside a TBB task (oversubscription).
#pragma once
#include <cstdint>
#include <functional>

namespace lowbit {

void set_num_threads(int n);  // n <= 0: all cores
int num_threads();
int hardware_threads();

// parallel_for over [begin, end) in chunks of at least `grain`; runs serially when the range
// is one chunk or only one thread is allowed. Chunks are fixed by (range, grain) alone, so a
// per-chunk reduction is deterministic for a given thread count.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace lowbit
