// threading.h: the training library's thread count (the runtime's is per model:
// quant/runtime/int_model.h). set_num_threads(n) caps oneTBB's arena at n and pins OpenBLAS to
// ONE thread: lowbit parallelises with TBB over batch items / row blocks and calls single-threaded
// sgemm inside each task, so a multi-threaded BLAS never runs inside a TBB task (oversubscription).
#pragma once
#include <cstdint>
#include <functional>

#include "core/parallel.h"  // parallel_for, hardware_threads

namespace lowbit {

void set_num_threads(int n);  // n <= 0: all cores
int num_threads();

}  // namespace lowbit
