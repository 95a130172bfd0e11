// threading.cpp: TBB arena cap and OpenBLAS thread pinning.
#include "core/threading.h"

#include <cblas.h>
#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <memory>
#include <thread>

namespace lowbit {

namespace {
std::unique_ptr<tbb::global_control> g_control;
int g_threads = 0;
}  // namespace

int hardware_threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

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

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (num_threads() == 1 || end - begin <= grain) {
    body(begin, end);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(begin, end, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); },
                    tbb::simple_partitioner());
}

}  // namespace lowbit
