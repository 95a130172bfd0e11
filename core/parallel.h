// parallel.h: lowbit's parallel loop over TBB (no BLAS: the runtime library uses it too).
// How many threads run it is the caller's context: the TBB arena it is called in (a runtime
// model's own arena, quant/runtime/int_model.h) capped by any tbb::global_control (the training
// library's set_num_threads, core/threading.h). Nothing here is process-wide state.
#pragma once
#include <cstdint>
#include <functional>

namespace lowbit {

int hardware_threads();
// Threads a parallel_for called here may use: min(this arena's concurrency, the global cap).
int available_threads();

// parallel_for over [begin, end) in pieces of at most `grain`; runs serially (one piece: the
// whole range) when the range is one grain or only one thread is available. So the pieces DO
// depend on the thread count: a body must give the same result however the range is cut. Sums
// over the batch use core/deterministic_sum.h, whose leaves are fixed by the batch size alone.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

}  // namespace lowbit
