// collectives.h: what data-parallel code builds on top of Comm (core/comm.h): errors every rank
// agrees on (so one message is printed and no rank hangs), broadcast of a StateDict or of a list
// of tensors from rank 0, replica fingerprints, the max and the sums of per-rank counters, and
// the fixed-order bucketed allreduce of gradients.
//
// Bucketed gradient averaging (N ranks, rank r holds n_r samples of the global batch,
// N_tot = sum n_r):   grad := sum_r (n_r / N_tot) * grad_r   (allreduce-sum of n_r * grad_r, / N_tot)
// which is the gradient of the global-batch mean loss. Buckets: the tensors in the order given
// (DataParallel passes parameters in reverse registration order, the order backward produces
// them), cut at bucket_bytes, so the sequence of allreduce calls is the same on every rank and
// in every step. The first bucket starts with [n_r, n_r * loss_r, stop_r, checkpoint_r], so the
// global loss and sample count, and whether any rank asks to stop or to checkpoint after this step,
// arrive with the gradients, no extra message per step.
// With one rank every function here is a no-op or a plain pass-through.
#pragma once
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/comm.h"
#include "core/error.h"
#include "core/state_dict.h"
#include "core/tensor.h"

namespace lowbit {

// An error every rank raised at the same point with the same message: rank 0 reports it, every
// rank exits normally with status 1 (no MPI_Abort needed).
class AgreedError : public Error {
 public:
  explicit AgreedError(const std::string& what) : Error(what) {}
};

// Collective. Every rank passes its error message ("" = no error). When any rank failed, every rank
// throws AgreedError with the message of the lowest failing rank (prefixed "rank R: " when there
// are several ranks and prefix_rank is set).
void agree(Comm& comm, const std::string& local_error, bool prefix_rank = true);

// Collective: runs fn() on every rank and returns its value; if fn throws on any rank, every rank
// throws the same AgreedError (see agree). For set-up work: loading data, checking options.
template <class F>
auto agreed(Comm& comm, F&& fn) -> decltype(fn()) {
  using R = decltype(fn());
  std::string error;
  if constexpr (std::is_void_v<R>) {
    try {
      fn();
    } catch (const std::exception& e) {
      error = e.what()[0] ? e.what() : "unknown error";
    }
    agree(comm, error);
  } else {
    std::optional<R> value;
    try {
      value.emplace(fn());
    } catch (const std::exception& e) {
      error = e.what()[0] ? e.what() : "unknown error";
    }
    agree(comm, error);
    return std::move(*value);
  }
}

// Collective: replaces `state` on every rank by rank `root`'s (tensors, scalars, strings), bit for bit.
void broadcast_state_dict(Comm& comm, StateDict& state, int root = 0);
// Collective: rank 0 receives every rank's `local` (index = rank), bit for bit; the other ranks
// receive an empty vector. For small per-rank state (a mid-epoch checkpoint's buffers and counters).
std::vector<StateDict> gather_state_dicts(Comm& comm, const StateDict& local);
// Collective: rank 0 runs load() (e.g. reads a checkpoint, so other nodes need no shared file
// system); its result, or its error as an AgreedError (unprefixed), reaches every rank.
StateDict load_on_root(Comm& comm, const std::function<StateDict()>& load);
// Collective: copies rank 0's values into every rank's tensors (in place), after checking that
// every rank passes the same names and shapes (AgreedError naming `what` otherwise).
void broadcast_tensors(Comm& comm, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::string& what);
// Collective: AgreedError(`message`) on every rank unless every rank's tensors are bit-identical
// to rank 0's (an FNV-1a fingerprint of the data is compared).
void check_same_as_root(Comm& comm, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::string& message);

// Collective: sums evaluation / epoch counters over the ranks (identity with one rank).
void reduce_totals(Comm& comm, double& loss_sum, int64_t& correct, int64_t& seen);
// Collective: the largest of every rank's value.
float allreduce_max(Comm& comm, float local);
// Collective: every rank's rows (dim 0 of `local`, e.g. its slice of the global batch)
// concatenated in rank order, on every rank, bit for bit: under DataParallel's contiguous sharding
// (core/data/loader.h) that is the global batch one process sees. Ranks may hold different row
// counts; the shape of a row (all dims but the first) must agree (AgreedError otherwise). One
// rank: `local` itself.
Tensor allgather_rows(Comm& comm, const Tensor& local);

struct StepTotals {
  double loss = 0;      // mean loss over the global batch (sum_r n_r * loss_r / N_tot)
  int64_t samples = 0;  // N_tot
  bool stop = false;        // any rank asked to stop
  bool checkpoint = false;  // any rank asked for a checkpoint after this step
};

// Collective: t := sum_r (n_r / N_tot) * t_r for every tensor in `tensors` (in place, in order, in
// buckets of at most bucket_bytes), with n_r = local_samples and N_tot = total_samples (the
// StepTotals::samples of this step): GradientBuckets' arithmetic exactly (the same code: t * n_r in
// float, float allreduce-sum, / N_tot in float), so a tensor averaged here gets the bits the
// gradient average gives a parameter gradient. For per-rank quantities a module averages after the
// parameter gradients (Module::finish_gradients). Every rank passes the same shapes in the same
// order. One rank: nothing.
void average_tensors(Comm& comm, const std::vector<Tensor>& tensors, int64_t local_samples, int64_t total_samples,
                     int64_t bucket_bytes);

// The fixed-order bucketed gradient average (see top) over a fixed list of tensors.
class GradientBuckets {
 public:
  // tensors: in the order they are reduced; bucket_bytes >= 1 KiB.
  GradientBuckets(std::vector<Tensor> tensors, int64_t bucket_bytes);
  // Collective: averages the .grad of every tensor (an undefined grad contributes zeros and stays
  // undefined) and returns the global totals. One rank: {local_loss, local_samples, stop, checkpoint}.
  StepTotals reduce(Comm& comm, int64_t local_samples, double local_loss, bool stop, bool checkpoint = false);
  // Bytes one reduce() sends into allreduce (all buckets, without the 3 totals).
  int64_t gradient_bytes() const;
  // Collective: seconds of one reduce()'s allreduce calls alone (same buckets, each repetition
  // after a barrier, median over `reps` of the ranks' mean). 0 with one rank.
  double measure_seconds(Comm& comm, int reps);

 private:
  std::vector<Tensor> tensors_;
  std::vector<float> bucket_;
};

}  // namespace lowbit
