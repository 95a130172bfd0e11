// distributed.cpp: data-parallel helpers of the CLI (see distributed.h): thread defaults, agreed
// errors, state broadcast, bucketed gradient averaging, sync-BN hooks, replica checks.
#include "tools/distributed.h"

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/comm.h"
#include "core/threading.h"
#include "layers/batchnorm.h"
#include "quant/input_quantizer.h"
#include "quant/quantizer.h"

namespace lowbit::cli {

bool is_root() { return comm().rank() == 0; }
int world_size() { return comm().size(); }
int world_rank() { return comm().rank(); }

int default_threads_per_rank() {
  // Slurm already gives each task its own cores (srun -c K): use them all.
  if (const char* s = std::getenv("SLURM_CPUS_PER_TASK"); s && std::atoi(s) > 0) return std::atoi(s);
  int usable = hardware_threads();
  cpu_set_t mask;
  CPU_ZERO(&mask);
  // A launcher that binds ranks (mpirun --bind-to core) leaves this process fewer cores.
  if (sched_getaffinity(0, sizeof mask, &mask) == 0) usable = std::min(usable, CPU_COUNT(&mask));
  const int share = hardware_threads() / std::max(1, comm().local_size());
  return std::max(1, std::min(usable, share));
}

int threads_for(int requested) { return requested > 0 ? requested : default_threads_per_rank(); }

void agree(const std::string& local_error, bool prefix_rank) {
  Comm& c = comm();
  if (c.size() == 1) {
    if (!local_error.empty()) throw AgreedError(local_error);
    return;
  }
  // Every rank learns which ranks failed (one slot each), then the lowest one tells its message.
  std::vector<double> failed(static_cast<size_t>(c.size()), 0.0);
  if (!local_error.empty()) failed[static_cast<size_t>(c.rank())] = 1.0;
  c.allreduce_sum(failed.data(), c.size());
  int first = -1;
  for (int r = 0; r < c.size() && first < 0; ++r)
    if (failed[static_cast<size_t>(r)] > 0) first = r;
  if (first < 0) return;
  std::string message = c.rank() == first ? local_error : std::string();
  int64_t length = static_cast<int64_t>(message.size());
  c.broadcast(&length, sizeof length, first);
  message.resize(static_cast<size_t>(length));
  c.broadcast(message.data(), length, first);
  throw AgreedError(prefix_rank ? detail::concat("rank ", first, ": ", message) : message);
}

void broadcast_state_dict(StateDict& state) {
  Comm& c = comm();
  if (c.size() == 1) return;
  // Header (names, shapes, strings) as JSON; scalars and tensor data as raw numbers, so doubles
  // (including NaN/inf) travel bit-exactly.
  std::string header;
  std::vector<double> scalars;
  if (c.rank() == 0) {
    nlohmann::json h;
    h["tensors"] = nlohmann::json::array();
    for (const auto& [name, t] : state.tensors) h["tensors"].push_back({name, t.shape()});
    h["scalars"] = nlohmann::json::array();
    for (const auto& [name, v] : state.scalars) {
      h["scalars"].push_back(name);
      scalars.push_back(v);
    }
    h["strings"] = state.strings;
    header = h.dump();
  }
  int64_t length = static_cast<int64_t>(header.size());
  c.broadcast(&length, sizeof length, 0);
  header.resize(static_cast<size_t>(length));
  c.broadcast(header.data(), length, 0);
  const nlohmann::json h = nlohmann::json::parse(header);
  scalars.resize(h["scalars"].size());
  c.broadcast(scalars.data(), static_cast<int64_t>(scalars.size() * sizeof(double)), 0);
  if (c.rank() != 0) {
    state = StateDict{};
    for (size_t i = 0; i < scalars.size(); ++i) state.scalars[h["scalars"][i].get<std::string>()] = scalars[i];
    state.strings = h["strings"].get<std::map<std::string, std::string>>();
    for (const auto& entry : h["tensors"])
      state.tensors[entry[0].get<std::string>()] = Tensor::empty(entry[1].get<Shape>());
  }
  for (auto& [name, t] : state.tensors)
    c.broadcast(t.data(), t.numel() * static_cast<int64_t>(sizeof(float)), 0);
}

StateDict load_on_root(const std::function<StateDict()>& load) {
  StateDict state;
  std::string error;
  if (is_root()) {
    try {
      state = load();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree(error, /*prefix_rank=*/false);
  broadcast_state_dict(state);
  return state;
}

namespace {

// Parameters then buffers, in registration order (the same on every rank for the same model).
std::vector<std::pair<std::string, Tensor>> model_state(const Module& model) {
  auto all = model.named_parameters();
  for (auto& b : model.named_buffers()) all.push_back(std::move(b));
  return all;
}

// FNV-1a over 32-bit words: a cheap fingerprint to compare replicas bit for bit.
uint64_t fingerprint(uint64_t h, const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i + 4 <= bytes; i += 4) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    h = (h ^ w) * 1099511628211ull;
  }
  for (size_t i = bytes & ~size_t{3}; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

// Collective: AgreedError on every rank when some rank's fingerprint differs from rank 0's.
void check_same_as_root(uint64_t local, const std::string& what) {
  uint64_t root = local;
  comm().broadcast(&root, sizeof root, 0);
  agree(root == local ? "" : what);
}

}  // namespace

void broadcast_module_state(Module& model) {
  Comm& c = comm();
  if (c.size() == 1) return;
  const auto state = model_state(model);
  uint64_t layout = 1469598103934665603ull;
  int64_t total = 0;
  for (const auto& [name, t] : state) {
    const std::string key = name + to_string(t.shape()) + ";";
    layout = fingerprint(layout, key.data(), key.size());
    total += t.numel();
  }
  check_same_as_root(layout, "the model (parameter names and shapes) differs from rank 0's: every rank must "
                             "get the same --model, --data and quantization options");
  std::vector<float> flat(static_cast<size_t>(total));
  int64_t off = 0;
  for (const auto& [name, t] : state) {
    std::copy_n(t.data(), t.numel(), flat.data() + off);
    off += t.numel();
  }
  c.broadcast(flat.data(), total * static_cast<int64_t>(sizeof(float)), 0);
  off = 0;
  for (const auto& [name, t] : state) {
    Tensor dst = t;
    std::copy_n(flat.data() + off, t.numel(), dst.data());
    off += t.numel();
  }
}

void reduce_totals(double& loss_sum, int64_t& correct, int64_t& seen) {
  Comm& c = comm();
  if (c.size() == 1) return;
  double v[3] = {loss_sum, static_cast<double>(correct), static_cast<double>(seen)};
  c.allreduce_sum(v, 3);
  loss_sum = v[0];
  correct = std::llround(v[1]);
  seen = std::llround(v[2]);
}

namespace {

// Collective: the largest of every rank's value (one slot per rank, summed).
float allreduce_max(float local) {
  Comm& c = comm();
  std::vector<double> slots(static_cast<size_t>(c.size()), 0.0);
  slots[static_cast<size_t>(c.rank())] = local;
  c.allreduce_sum(slots.data(), c.size());
  return static_cast<float>(*std::max_element(slots.begin(), slots.end()));
}

}  // namespace

DataParallel::DataParallel(Module& model, DataParallelOptions options)
    : model_(model), options_(options), world_(comm().size()) {
  if (world_ == 1) return;
  LOWBIT_CHECK(options_.bucket_bytes >= 1024, "gradient bucket must hold at least 1 KiB, got ",
               options_.bucket_bytes, " bytes");
  broadcast_module_state(model_);
  params_ = model_.parameters();
  std::reverse(params_.begin(), params_.end());
  for (const auto& [name, t] : model_.named_buffers())
    if (name == "initialized" || name.ends_with(".initialized")) initialized_flags_ += t.item();
  bucket_.resize(static_cast<size_t>(options_.bucket_bytes / sizeof(float)));
  for (auto& [name, m] : model_.named_modules()) {
    if (auto bn = std::dynamic_pointer_cast<BatchNorm2d>(m)) batch_norms_.push_back(bn.get());
    // The first layer's input quantizer keeps a running max of |x| over training batches: give it
    // the max over the GLOBAL batch before it looks at the local one (its own update then finds
    // nothing larger), so its scale is the one a single process would use.
    if (auto q = std::dynamic_pointer_cast<SignedInputQuantizer>(m)) {
      SignedInputQuantizer* raw = q.get();
      raw->set_observer([raw](const Tensor& x) {
        if (!quantization_enabled() || !raw->is_training()) return;
        float local = 0.f;
        const float* p = x.data();
        for (int64_t i = 0; i < x.numel(); ++i) local = std::max(local, std::fabs(p[i]));
        const float global = std::max(allreduce_max(local), 1e-6f);
        if (!raw->initialized() || global > raw->max_abs->data()[0]) raw->set_clip(global);
      });
      input_quantizers_.push_back(raw);
    }
  }
  if (options_.sync_bn) {
    Comm* c = &comm();
    BatchNorm2d::set_sync(
        [c](std::vector<double>& sums, double& count) {
          sums.push_back(count);  // one allreduce for [sum x (C), sum x^2 (C), count]
          c->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size()));
          count = sums.back();
          sums.pop_back();
        },
        [c](std::vector<double>& sums) { c->allreduce_sum(sums.data(), static_cast<int64_t>(sums.size())); });
  }
}

DataParallel::~DataParallel() {
  if (world_ > 1 && options_.sync_bn) BatchNorm2d::set_sync({}, {});
  for (SignedInputQuantizer* q : input_quantizers_) q->set_observer(nullptr);
}

int64_t DataParallel::gradient_bytes() const {
  int64_t n = 0;
  for (const Tensor& p : params_) n += p.numel();
  return n * static_cast<int64_t>(sizeof(float));
}

void DataParallel::sync_after_data_init() {
  double flags = 0;
  for (const auto& [name, t] : model_.named_buffers())
    if (name == "initialized" || name.ends_with(".initialized")) flags += t.item();
  if (flags == initialized_flags_) return;
  initialized_flags_ = flags;  // flips at the same step on every rank (same model, same switch)
  broadcast_module_state(model_);
}

StepTotals DataParallel::reduce_gradients(int64_t local_samples, double local_loss, bool stop) {
  StepTotals totals{local_loss, local_samples, stop};
  if (world_ == 1) return totals;
  sync_after_data_init();
  Comm& c = comm();
  const int64_t cap = static_cast<int64_t>(bucket_.size());
  const float weight = static_cast<float>(local_samples);
  // The first bucket starts with [n_r, n_r * loss_r, stop_r]: N_tot and the global loss come
  // with the gradients, no extra message per step.
  constexpr int64_t kExtras = 3;
  struct Span {
    Tensor param;
    int64_t offset, count, at;
  };
  std::vector<Span> spans;
  size_t next = 0;
  int64_t next_offset = 0;
  float total = 0;
  for (bool first = true; first || next < params_.size(); first = false) {
    int64_t filled = 0;
    spans.clear();
    if (first) {
      bucket_[0] = weight;
      bucket_[1] = static_cast<float>(local_loss * local_samples);
      bucket_[2] = stop ? 1.f : 0.f;
      filled = kExtras;
    }
    while (next < params_.size() && filled < cap) {
      const Tensor& p = params_[next];
      const int64_t take = std::min(p.numel() - next_offset, cap - filled);
      const Tensor g = p.grad();
      float* dst = bucket_.data() + filled;
      if (g.defined()) {
        const float* src = g.data() + next_offset;
        for (int64_t k = 0; k < take; ++k) dst[k] = src[k] * weight;
      } else {
        std::fill_n(dst, take, 0.f);  // no gradient here (e.g. quantizer off): contribute zeros
      }
      spans.push_back({p, next_offset, take, filled});
      filled += take;
      next_offset += take;
      if (next_offset == p.numel()) {
        ++next;
        next_offset = 0;
      }
    }
    c.allreduce_sum(bucket_.data(), filled);
    if (first) {
      total = bucket_[0];
      totals.samples = std::llround(static_cast<double>(total));
      totals.loss = static_cast<double>(bucket_[1]) / static_cast<double>(total);
      totals.stop = bucket_[2] > 0.f;
      LOWBIT_CHECK(total > 0, "data-parallel step with no samples on any rank");
    }
    for (const Span& s : spans) {
      Tensor g = s.param.grad();
      if (!g.defined()) continue;  // undefined on every rank alike: the optimizer skips it
      float* dst = g.data() + s.offset;
      const float* src = bucket_.data() + s.at;
      for (int64_t k = 0; k < s.count; ++k) dst[k] = src[k] / total;
    }
  }
  return totals;
}

double DataParallel::measure_allreduce_seconds(int reps) {
  if (world_ == 1 || reps < 1) return 0.0;
  Comm& c = comm();
  const int64_t cap = static_cast<int64_t>(bucket_.size());
  const int64_t total = gradient_bytes() / static_cast<int64_t>(sizeof(float)) + 3;  // + the step's extras
  std::fill(bucket_.begin(), bucket_.end(), 0.f);
  // Each repetition starts together (barrier) and is timed alone; the median over repetitions of
  // the ranks' mean keeps a busy machine's scheduling hiccups out of the number.
  std::vector<double> seconds(static_cast<size_t>(reps));
  for (int r = 0; r < reps; ++r) {
    c.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t off = 0; off < total; off += cap) c.allreduce_sum(bucket_.data(), std::min(cap, total - off));
    seconds[static_cast<size_t>(r)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  c.allreduce_sum(seconds.data(), reps);  // every rank reports the same number
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2] / c.size();
}

void DataParallel::end_epoch(double& loss_sum, int64_t& correct, int64_t& seen) {
  reduce_totals(loss_sum, correct, seen);
  if (world_ == 1) return;
  if (!options_.sync_bn) {
    // Per-rank BN saw only local batches: evaluate and checkpoint the mean of the ranks' running
    // statistics (with --sync-bn they are identical already).
    std::vector<float> stats;
    for (BatchNorm2d* bn : batch_norms_)
      for (const Tensor* t : {&bn->running_mean.tensor(), &bn->running_var.tensor()})
        stats.insert(stats.end(), t->data(), t->data() + t->numel());
    comm().allreduce_sum(stats.data(), static_cast<int64_t>(stats.size()));
    size_t at = 0;
    for (BatchNorm2d* bn : batch_norms_)
      for (Parameter* p : {&bn->running_mean, &bn->running_var})
        for (int64_t i = 0; i < (*p)->numel(); ++i) (*p)->data()[i] = stats[at++] / static_cast<float>(world_);
  }
  uint64_t h = 1469598103934665603ull;
  for (const auto& [name, t] : model_state(model_))
    h = fingerprint(h, t.data(), static_cast<size_t>(t.numel()) * sizeof(float));
  check_same_as_root(h, "parameters or buffers differ from rank 0's at the end of the epoch (replicas "
                        "diverged; this is a bug in lowbit's data-parallel step, please report it)");
}

int report_fatal_error(const std::exception& e) {
  Comm& c = comm();
  const bool agreed = dynamic_cast<const AgreedError*>(&e) != nullptr;
  if (c.size() == 1 || agreed) {
    if (c.rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  // An error on this rank only, as far as we know: the others may wait in a collective forever,
  // so end the whole job. When several ranks fail at once (same bad flag everywhere), rank 0
  // aborts first and the others are killed before they print: the message appears once.
  if (c.rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(1));
  std::fprintf(stderr, "error: rank %d of %d: %s\n", c.rank(), c.size(), e.what());
  std::fflush(stderr);
  c.abort(1);
  return 1;  // not reached
}

}  // namespace lowbit::cli
