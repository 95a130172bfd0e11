// collectives.cpp: agreed errors, state broadcast, replica fingerprints, counter reductions and
// the bucketed gradient allreduce over a Comm (see collectives.h).
#include "core/collectives.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

namespace lowbit {

void agree(Comm& c, const std::string& local_error, bool prefix_rank) {
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

void broadcast_state_dict(Comm& c, StateDict& state, int root) {
  if (c.size() == 1) return;
  // Header (names, shapes, strings) as JSON; scalars and tensor data as raw numbers, so doubles
  // (including NaN/inf) travel bit-exactly.
  std::string header;
  std::vector<double> scalars;
  if (c.rank() == root) {
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
  c.broadcast(&length, sizeof length, root);
  header.resize(static_cast<size_t>(length));
  c.broadcast(header.data(), length, root);
  const nlohmann::json h = nlohmann::json::parse(header);
  scalars.resize(h["scalars"].size());
  c.broadcast(scalars.data(), static_cast<int64_t>(scalars.size() * sizeof(double)), root);
  if (c.rank() != root) {
    state = StateDict{};
    for (size_t i = 0; i < scalars.size(); ++i) state.scalars[h["scalars"][i].get<std::string>()] = scalars[i];
    state.strings = h["strings"].get<std::map<std::string, std::string>>();
    for (const auto& entry : h["tensors"])
      state.tensors[entry[0].get<std::string>()] = Tensor::empty(entry[1].get<Shape>());
  }
  for (auto& [name, t] : state.tensors)
    c.broadcast(t.data(), t.numel() * static_cast<int64_t>(sizeof(float)), root);
}

std::vector<StateDict> gather_state_dicts(Comm& c, const StateDict& local) {
  std::vector<StateDict> all;
  if (c.rank() == 0) all.push_back(local);
  // One broadcast per rank: the states are small and this runs once per checkpoint, not per step.
  for (int r = 1; r < c.size(); ++r) {
    StateDict state = c.rank() == r ? local : StateDict{};
    broadcast_state_dict(c, state, r);
    if (c.rank() == 0) all.push_back(std::move(state));
  }
  return all;
}

StateDict load_on_root(Comm& c, const std::function<StateDict()>& load) {
  StateDict state;
  std::string error;
  if (c.rank() == 0) {
    try {
      state = load();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree(c, error, /*prefix_rank=*/false);
  broadcast_state_dict(c, state);
  return state;
}

namespace {

// [n_r, n_r * loss_r, stop_r, checkpoint_r] lead the first bucket of every step.
constexpr int64_t kStepExtras = 4;

constexpr uint64_t kFnvOffset = 1469598103934665603ull;

// The two halves of the weighted average around the allreduce-sum, shared by GradientBuckets and
// average_tensors so that both give the same bits: x n_r before, / N_tot after (float).
void weigh_into(float* dst, const float* src, int64_t count, float weight) {
  for (int64_t k = 0; k < count; ++k) dst[k] = src[k] * weight;
}
void unweigh_into(float* dst, const float* src, int64_t count, float total) {
  for (int64_t k = 0; k < count; ++k) dst[k] = src[k] / total;
}

// The walk over a list of tensors in buckets, shared by GradientBuckets and average_tensors: each
// call fills bucket[filled, cap) with the next pieces of the tensors' values, times `weight`
// (values(t) nullptr: zeros), and records where each piece went (`spans`).
struct BucketSpan {
  Tensor t;
  int64_t offset, count, at;  // elements [offset, offset + count) of t sit at bucket[at...]
};
class BucketWalk {
 public:
  explicit BucketWalk(const std::vector<Tensor>& tensors) : tensors_(tensors) {}
  bool done() const { return next_ >= tensors_.size(); }
  template <class Values>
  int64_t fill(float* bucket, int64_t filled, int64_t cap, float weight, Values values, std::vector<BucketSpan>& spans) {
    spans.clear();
    while (!done() && filled < cap) {
      const Tensor& t = tensors_[next_];
      const int64_t take = std::min(t.numel() - offset_, cap - filled);
      if (const float* src = values(t)) weigh_into(bucket + filled, src + offset_, take, weight);
      else std::fill_n(bucket + filled, take, 0.f);
      spans.push_back({t, offset_, take, filled});
      filled += take;
      offset_ += take;
      if (offset_ == t.numel()) {
        ++next_;
        offset_ = 0;
      }
    }
    return filled;
  }

 private:
  const std::vector<Tensor>& tensors_;
  size_t next_ = 0;
  int64_t offset_ = 0;
};

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
void check_fingerprint(Comm& c, uint64_t local, const std::string& what) {
  uint64_t root = local;
  c.broadcast(&root, sizeof root, 0);
  agree(c, root == local ? "" : what);
}

}  // namespace

void broadcast_tensors(Comm& c, const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& what) {
  if (c.size() == 1) return;
  uint64_t layout = kFnvOffset;
  int64_t total = 0;
  for (const auto& [name, t] : tensors) {
    const std::string key = name + to_string(t.shape()) + ";";
    layout = fingerprint(layout, key.data(), key.size());
    total += t.numel();
  }
  check_fingerprint(c, layout, what);
  std::vector<float> flat(static_cast<size_t>(total));
  int64_t off = 0;
  for (const auto& [name, t] : tensors) {
    std::copy_n(t.data(), t.numel(), flat.data() + off);
    off += t.numel();
  }
  c.broadcast(flat.data(), total * static_cast<int64_t>(sizeof(float)), 0);
  off = 0;
  for (const auto& [name, t] : tensors) {
    Tensor dst = t;
    std::copy_n(flat.data() + off, t.numel(), dst.data());
    off += t.numel();
  }
}

void check_same_as_root(Comm& c, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const std::string& message) {
  if (c.size() == 1) return;
  uint64_t h = kFnvOffset;
  for (const auto& [name, t] : tensors) h = fingerprint(h, t.data(), static_cast<size_t>(t.numel()) * sizeof(float));
  check_fingerprint(c, h, message);
}

void reduce_totals(Comm& c, double& loss_sum, int64_t& correct, int64_t& seen) {
  if (c.size() == 1) return;
  double v[3] = {loss_sum, static_cast<double>(correct), static_cast<double>(seen)};
  c.allreduce_sum(v, 3);
  loss_sum = v[0];
  correct = std::llround(v[1]);
  seen = std::llround(v[2]);
}

float allreduce_max(Comm& c, float local) {
  if (c.size() == 1) return local;
  // One slot per rank, summed: exact, and no max operation needed in Comm.
  std::vector<double> slots(static_cast<size_t>(c.size()), 0.0);
  slots[static_cast<size_t>(c.rank())] = local;
  c.allreduce_sum(slots.data(), c.size());
  return static_cast<float>(*std::max_element(slots.begin(), slots.end()));
}

Tensor allgather_rows(Comm& c, const Tensor& local) {
  if (c.size() == 1) return local;
  LOWBIT_CHECK(local.dim() >= 1, "allgather_rows: the tensor needs a first (row) dimension, got shape ",
               to_string(local.shape()));
  const int n = c.size(), me = c.rank();
  const int64_t rows = local.size(0);
  Shape row_shape(local.shape().begin() + 1, local.shape().end());
  int64_t row_size = 1;
  for (int64_t d : row_shape) row_size *= d;
  // Row counts and row sizes, one slot per rank, summed: exact (integers well below 2^53).
  std::vector<double> slots(static_cast<size_t>(2 * n), 0.0);
  slots[static_cast<size_t>(me)] = static_cast<double>(rows);
  slots[static_cast<size_t>(n + me)] = static_cast<double>(row_size);
  c.allreduce_sum(slots.data(), 2 * n);
  int64_t total = 0;
  std::string error;
  for (int r = 0; r < n; ++r) {
    total += static_cast<int64_t>(slots[static_cast<size_t>(r)]);
    if (static_cast<int64_t>(slots[static_cast<size_t>(n + r)]) != row_size)
      error = detail::concat("allgather_rows: rank ", r, " holds rows of ", slots[static_cast<size_t>(n + r)],
                             " elements, this rank rows of ", row_size, " (shape ", to_string(local.shape()), ")");
  }
  agree(c, error);
  Shape out_shape = local.shape();
  out_shape[0] = total;
  Tensor out = Tensor::empty(out_shape);
  int64_t offset = 0;  // rows before rank r
  for (int r = 0; r < n; ++r) {
    const int64_t count = static_cast<int64_t>(slots[static_cast<size_t>(r)]);
    float* dst = out.data() + offset * row_size;
    if (r == me && count) std::memcpy(dst, local.data(), static_cast<size_t>(count * row_size) * sizeof(float));
    if (count) c.broadcast(dst, count * row_size * static_cast<int64_t>(sizeof(float)), r);
    offset += count;
  }
  return out;
}

void average_tensors(Comm& c, const std::vector<Tensor>& tensors, int64_t local_samples, int64_t total_samples,
                     int64_t bucket_bytes) {
  if (c.size() == 1 || tensors.empty()) return;
  LOWBIT_CHECK(bucket_bytes >= 1024, "average_tensors: a bucket must hold at least 1 KiB, got ", bucket_bytes, " bytes");
  LOWBIT_CHECK(total_samples > 0, "average_tensors: no samples on any rank");
  // Sample counts are integers far below 2^24: as floats they are the exact values GradientBuckets
  // sums in its first bucket.
  const float weight = static_cast<float>(local_samples), total = static_cast<float>(total_samples);
  int64_t numel = 0;
  for (const Tensor& t : tensors) numel += t.numel();
  if (numel == 0) return;
  std::vector<float> bucket(static_cast<size_t>(std::min(numel, bucket_bytes / static_cast<int64_t>(sizeof(float)))));
  const int64_t cap = static_cast<int64_t>(bucket.size());
  BucketWalk walk(tensors);
  std::vector<BucketSpan> spans;
  while (!walk.done()) {
    const int64_t filled = walk.fill(bucket.data(), 0, cap, weight, [](const Tensor& t) { return t.data(); }, spans);
    if (filled) c.allreduce_sum(bucket.data(), filled);
    for (const BucketSpan& sp : spans) {
      Tensor dst = sp.t;
      unweigh_into(dst.data() + sp.offset, bucket.data() + sp.at, sp.count, total);
    }
  }
}

GradientBuckets::GradientBuckets(std::vector<Tensor> tensors, int64_t bucket_bytes) : tensors_(std::move(tensors)) {
  LOWBIT_CHECK(bucket_bytes >= 1024, "gradient bucket must hold at least 1 KiB, got ", bucket_bytes, " bytes");
  bucket_.resize(static_cast<size_t>(bucket_bytes / static_cast<int64_t>(sizeof(float))));
}

int64_t GradientBuckets::gradient_bytes() const {
  int64_t n = 0;
  for (const Tensor& p : tensors_) n += p.numel();
  return n * static_cast<int64_t>(sizeof(float));
}

StepTotals GradientBuckets::reduce(Comm& c, int64_t local_samples, double local_loss, bool stop, bool checkpoint) {
  StepTotals totals{local_loss, local_samples, stop, checkpoint};
  if (c.size() == 1) return totals;
  const int64_t cap = static_cast<int64_t>(bucket_.size());
  const float weight = static_cast<float>(local_samples);
  BucketWalk walk(tensors_);
  std::vector<BucketSpan> spans;
  float total = 0;
  for (bool first = true; first || !walk.done(); first = false) {
    if (first) {
      bucket_[0] = weight;
      bucket_[1] = static_cast<float>(local_loss * local_samples);
      bucket_[2] = stop ? 1.f : 0.f;
      bucket_[3] = checkpoint ? 1.f : 0.f;
    }
    // A parameter without a gradient (e.g. a quantizer switched off) contributes zeros.
    const int64_t filled = walk.fill(bucket_.data(), first ? kStepExtras : 0, cap, weight, [](const Tensor& p) {
      const Tensor g = p.grad();
      return g.defined() ? static_cast<const float*>(g.data()) : nullptr;
    }, spans);
    c.allreduce_sum(bucket_.data(), filled);
    if (first) {
      total = bucket_[0];
      totals.samples = std::llround(static_cast<double>(total));
      totals.loss = static_cast<double>(bucket_[1]) / static_cast<double>(total);
      totals.stop = bucket_[2] > 0.f;
      totals.checkpoint = bucket_[3] > 0.f;
      LOWBIT_CHECK(total > 0, "data-parallel step with no samples on any rank");
    }
    for (const BucketSpan& sp : spans) {
      Tensor g = sp.t.grad();
      if (!g.defined()) continue;  // undefined on every rank alike: the optimizer skips it
      unweigh_into(g.data() + sp.offset, bucket_.data() + sp.at, sp.count, total);
    }
  }
  return totals;
}

double GradientBuckets::measure_seconds(Comm& c, int reps) {
  if (c.size() == 1 || reps < 1) return 0.0;
  const int64_t cap = static_cast<int64_t>(bucket_.size());
  const int64_t total = gradient_bytes() / static_cast<int64_t>(sizeof(float)) + kStepExtras;
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

}  // namespace lowbit
