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

// parallel_for over [begin, end) in pieces of at most `grain`; runs serially (one piece: the
// whole range) when the range is one grain or only one thread is allowed. So the pieces DO depend
// on the thread count: a body must give the same result however the range is cut. Sums over the
// batch use core/deterministic_sum.h, whose leaves are fixed by the batch size alone.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace lowbit
