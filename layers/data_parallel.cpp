// data_parallel.cpp: DataParallel (see data_parallel.h): start-up broadcast, per-module replica
// hooks, bucketed gradient averaging (then each module's finish_gradients) and the per-epoch
// statistics sync and replica check.
#include "layers/data_parallel.h"

#include <algorithm>

namespace lowbit {

namespace {

// Parameters then buffers, in registration order (the same on every rank for the same model).
std::vector<std::pair<std::string, Tensor>> model_state(const Module& model) {
  auto all = model.named_parameters();
  for (auto& b : model.named_buffers()) all.push_back(std::move(b));
  return all;
}

std::vector<Tensor> reversed_parameters(const Module& model) {
  std::vector<Tensor> params = model.parameters();
  std::reverse(params.begin(), params.end());  // the order backward produces the gradients
  return params;
}

}  // namespace

void broadcast_module_state(Comm& comm, Module& model) {
  broadcast_tensors(comm, model_state(model),
                    "the model (parameter names and shapes) differs from rank 0's: every rank must build the same "
                    "model (the same model, data and quantization policy)");
}

DataParallel::DataParallel(Module& model, DataParallelOptions options, Comm& comm)
    : model_(model),
      options_(options),
      comm_(comm),
      rank_(comm.rank()),
      size_(comm.size()),
      replicas_{comm, options.sync_bn},
      buckets_(reversed_parameters(model), options.bucket_bytes) {
  if (!active()) return;
  broadcast_module_state(comm_, model_);
  for (auto& [name, m] : model_.named_modules()) m->attach_replicas(&replicas_);
}

DataParallel::~DataParallel() {
  if (!active()) return;
  for (auto& [name, m] : model_.named_modules()) m->attach_replicas(nullptr);
}

StepTotals DataParallel::reduce_gradients(int64_t local_samples, double local_loss, bool stop, bool checkpoint) {
  const StepTotals totals = buckets_.reduce(comm_, local_samples, local_loss, stop, checkpoint);
  if (active()) {
    const ReplicaStep step{comm_, local_samples, totals.samples, options_.bucket_bytes};
    for (auto& [name, m] : model_.named_modules()) m->finish_gradients(step);
  }
  return totals;
}

void DataParallel::end_epoch(double& loss_sum, int64_t& correct, int64_t& seen) {
  reduce_totals(comm_, loss_sum, correct, seen);
  if (!active()) return;
  for (auto& [name, m] : model_.named_modules()) m->sync_statistics(comm_);
  check_same_as_root(comm_, model_state(model_),
                     "parameters or buffers differ from rank 0's at the end of the epoch (replicas diverged; "
                     "this is a bug in lowbit's data-parallel step, please report it)");
}

}  // namespace lowbit
