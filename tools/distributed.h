// distributed.h: data-parallel training over the communicator of core/comm.h, as the CLI uses it.
// Owns: thread defaults per rank, errors that every rank agrees on (so one message is printed and
// no rank hangs), broadcast of model state and of checkpoints from rank 0, gradient averaging in
// size-capped buckets, the sync-BN hooks, and the per-epoch reduction of metrics.
//
// The data-parallel step (N ranks, rank r holds n_r samples of the global batch, N_tot = sum n_r):
//   forward + backward on the local batch (loss = mean over the n_r local samples), then
//   grad := sum_r (n_r / N_tot) * grad_r          (allreduce-sum of n_r * grad_r, / N_tot)
// which is the gradient of the global-batch mean loss; then every rank runs the same optimizer
// step on the same numbers, so parameters stay identical. Buckets: parameters in reverse
// registration order (the order backward produces them), cut at bucket_bytes, so the sequence of
// allreduce calls is the same on every rank and in every step.
// Sync BN (--sync-bn): every BatchNorm2d allreduces its per-channel [sum x, sum x^2] and count in
// forward and [sum g, sum g*xhat] in backward, so with equal local batches N ranks compute the
// statistics and input gradients of one process with the global batch.
// Per-rank BN (default): running statistics are averaged over the ranks at the end of each epoch.
// Quantizer statistics: SAWB's alpha_w follows the (identical) weights; the first layer's input
// quantizer gets the running max of |x| over the global batch (an observer on it); data-driven
// inits (PACT mse/p99, LSQ, QIL) see the local batch and rank 0's result is broadcast.
// With one rank (no MPI launcher) every function here is a no-op or a plain pass-through.
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/state_dict.h"
#include "layers/module.h"

namespace lowbit {
class BatchNorm2d;
class SignedInputQuantizer;
}  // namespace lowbit

namespace lowbit::cli {

bool is_root();   // rank 0: the only rank that prints, writes metrics and checkpoints
int world_size();
int world_rank();

// Threads per rank when --threads is 0: this process's usable cores (CPU affinity mask, or
// SLURM_CPUS_PER_TASK) shared evenly by the ranks on this node, at least 1.
int default_threads_per_rank();
// `requested` when positive, else default_threads_per_rank().
int threads_for(int requested);

// An error every rank raised at the same point with the same message: rank 0 reports it, every
// rank exits normally with status 1 (no MPI_Abort needed).
class AgreedError : public Error {
 public:
  explicit AgreedError(const std::string& what) : Error(what) {}
};

// Collective. Every rank passes its error message ("" = no error). When any rank failed, every rank
// throws AgreedError with the message of the lowest failing rank (prefixed "rank R: " when there
// are several ranks and prefix_rank is set).
void agree(const std::string& local_error, bool prefix_rank = true);

// Collective: runs fn() on every rank and returns its value; if fn throws on any rank, every rank
// throws the same AgreedError (see agree). For set-up work: loading data, checking options.
template <class F>
auto agreed(F&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  std::string error;
  if constexpr (std::is_void_v<R>) {
    try {
      fn();
    } catch (const std::exception& e) {
      error = e.what()[0] ? e.what() : "unknown error";
    }
    agree(error);
  } else {
    std::optional<R> value;
    try {
      value.emplace(fn());
    } catch (const std::exception& e) {
      error = e.what()[0] ? e.what() : "unknown error";
    }
    agree(error);
    return std::move(*value);
  }
}

// Collective: rank 0 runs load() (e.g. reads a checkpoint, so other nodes need no shared file
// system); its result, or its error as an AgreedError, reaches every rank.
StateDict load_on_root(const std::function<StateDict()>& load);
// Collective: replaces `state` on every rank by rank 0's (tensors, scalars, strings).
void broadcast_state_dict(StateDict& state);
// Collective: copies rank 0's parameters and buffers into every rank's model, after checking that
// every rank built the same model (names and shapes; AgreedError otherwise).
void broadcast_module_state(Module& model);

// Collective: sums evaluation / epoch counters over the ranks (identity with one rank).
void reduce_totals(double& loss_sum, int64_t& correct, int64_t& seen);

struct DataParallelOptions {
  bool sync_bn = false;                  // --sync-bn: global batch statistics in every BatchNorm2d
  int64_t bucket_bytes = 8 << 20;        // cap of one gradient allreduce
};

struct StepTotals {
  double loss = 0;      // mean loss over the global batch (sum_r n_r * loss_r / N_tot)
  int64_t samples = 0;  // N_tot
  bool stop = false;    // any rank asked to stop
};

// One per training run. Collective constructor: broadcasts rank 0's parameters and buffers and
// installs the sync-BN hooks (removed again by the destructor). Build it after the model is
// final (quantizers converted, checkpoint loaded).
class DataParallel {
 public:
  explicit DataParallel(Module& model, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  bool active() const { return world_ > 1; }
  // Collective, after backward and before the optimizer step: averages the gradients of every
  // parameter (weights, BN gamma/beta, quantizer parameters) over the ranks as above and returns
  // the global loss (identical on every rank, so a NaN check on it stops every rank at the same
  // step). `stop` is OR-ed over the ranks (benchmarks end together). With one rank: returns
  // {local_loss, local_samples, stop} and touches nothing.
  StepTotals reduce_gradients(int64_t local_samples, double local_loss, bool stop = false);
  // Collective, once per epoch: sums loss_sum/correct/seen over the ranks and checks that every
  // rank still holds bit-identical parameters and buffers (AgreedError otherwise).
  void end_epoch(double& loss_sum, int64_t& correct, int64_t& seen);
  // Bytes one reduce_gradients sends into allreduce (all buckets).
  int64_t gradient_bytes() const;
  // Collective: seconds of one step's gradient allreduce alone (same buckets, each repetition after
  // a barrier, median of `reps`), for the scaling model in docs/distributed.md. 0 with one rank.
  double measure_allreduce_seconds(int reps);

 private:
  // Quantizers with a data-driven init (PACT mse/p99, LSQ, QIL) initialise from the first enabled
  // batch, which is each rank's own slice: when an "initialized" buffer flips, rank 0's values are
  // broadcast so the replicas stay identical (they then match one process only approximately).
  void sync_after_data_init();

  Module& model_;
  DataParallelOptions options_;
  int world_ = 1;
  std::vector<Tensor> params_;  // reverse registration order
  std::vector<float> bucket_;
  std::vector<BatchNorm2d*> batch_norms_;                 // running stats averaged per epoch (local BN)
  std::vector<SignedInputQuantizer*> input_quantizers_;  // observed: global running max of |x|
  double initialized_flags_ = 0;  // sum of quantizers' "initialized" buffers at the last step
};

// For main(): reports an exception that ended a command and returns the exit status (1). An
// AgreedError (or any error with one rank) is printed by rank 0 only. Any other error with several
// ranks may have happened on this rank alone while the others wait in a collective: print it with
// the rank and MPI_Abort the job, so nothing hangs.
int report_fatal_error(const std::exception& e);

}  // namespace lowbit::cli
