// threading.cpp: TBB arena cap and OpenBLAS thread pinning (threading.h).
#include "core/threading.h"

#include <cblas.h>
#include <tbb/global_control.h>

#include <memory>

namespace lowbit {

namespace {
std::unique_ptr<tbb::global_control> g_control;
int g_threads = 0;
}  // namespace

void set_num_threads(int n) {
  if (n <= 0) n = hardware_threads();
  g_control.reset();
  g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(n));
  openblas_set_num_threads(1);
  g_threads = n;
}

int num_threads() {
  if (g_threads == 0) set_num_threads(0);
  return g_threads;
}

}  // namespace lowbit
