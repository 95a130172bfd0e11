// data_parallel.h: DataParallel, data-parallel training of any Module over a Comm (core/comm.h).
// Every rank holds a full replica and trains on its slice of each global batch:
//   * construction (collective): checks that every rank built the same model (names, shapes) and
//     copies rank 0's parameters and buffers to every rank; then hands each module of the tree the
//     replica group through Module::attach_replicas (BatchNorm2d: sync-BN; quantizers: data-driven
//     inits on the global batch, i.e. the ranks' slices gathered in rank order, the input
//     quantizer's global running max). The destructor detaches them.
//   * reduce_gradients (collective, after backward, before the optimizer step):
//       grad := sum_r (n_r / N_tot) * grad_r
//     for every parameter, in fixed-order buckets (core/collectives.h), then calls
//     Module::finish_gradients on every module (a weight quantizer with learned parameters
//     averages the weight gradient it kept the same way and adds its parameters' gradient), so
//     every rank then runs the same optimizer step on the same numbers and the replicas stay
//     identical.
//   * end_epoch (collective): sums the epoch's counters, calls Module::sync_statistics on every
//     module (per-rank BN running statistics are averaged) and checks that every rank still holds
//     bit-identical parameters and buffers (AgreedError otherwise).
//   * rank-0 I/O: is_root() says which rank prints and writes files.
// With one rank (no MPI launcher) every call is a no-op or a plain pass-through, and forward() is
// the model's. Nothing here is process-wide: two DataParallel objects over two models in one
// process do not interfere. What N ranks reproduce bit for bit: docs/distributed.md.
#pragma once
#include <cstdint>
#include <vector>

#include "core/collectives.h"
#include "core/comm.h"
#include "layers/module.h"

namespace lowbit {

struct DataParallelOptions {
  bool sync_bn = false;            // BatchNorm statistics over the global batch (sync-BN)
  int64_t bucket_bytes = 8 << 20;  // cap of one gradient allreduce
};

class DataParallel {
 public:
  // Build it after the model is final (quantizers converted, checkpoint loaded): collective.
  explicit DataParallel(Module& model, DataParallelOptions options = {}, Comm& comm = lowbit::comm());
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  Tensor forward(const Tensor& x) { return model_.forward(x); }
  Module& module() { return model_; }
  Comm& comm() { return comm_; }
  bool active() const { return size_ > 1; }
  bool is_root() const { return rank_ == 0; }  // the rank that prints and writes files
  int rank() const { return rank_; }
  int size() const { return size_; }
  const DataParallelOptions& options() const { return options_; }

  // Collective: averages every parameter's gradient over the ranks, runs every module's
  // finish_gradients hook, and returns the global loss
  // (identical on every rank, so a NaN check on it stops every rank at the same step). `stop` and
  // `checkpoint` are OR-ed over the ranks (a signal that reached one rank stops all at this step).
  // One rank: {local_loss, local_samples, stop, checkpoint}.
  StepTotals reduce_gradients(int64_t local_samples, double local_loss, bool stop = false, bool checkpoint = false);
  // Collective, once per epoch: sums loss_sum/correct/seen over the ranks, syncs every module's
  // own statistics and checks that the replicas are still bit-identical.
  void end_epoch(double& loss_sum, int64_t& correct, int64_t& seen);
  // Bytes one reduce_gradients sends into allreduce (all buckets).
  int64_t gradient_bytes() const { return buckets_.gradient_bytes(); }
  // Collective: seconds of one step's gradient allreduce alone (median of `reps`). 0 with one rank.
  double measure_allreduce_seconds(int reps) { return buckets_.measure_seconds(comm_, reps); }

 private:
  Module& model_;
  DataParallelOptions options_;
  Comm& comm_;
  int rank_, size_;  // cached: the destructor must not touch comm_ (MPI may be finalized by then)
  Replicas replicas_;
  GradientBuckets buckets_;  // parameters in reverse registration order
};

// Collective: copies rank 0's parameters and buffers into every rank's model, after checking that
// every rank built the same model (names and shapes; AgreedError otherwise).
void broadcast_module_state(Comm& comm, Module& model);

}  // namespace lowbit
