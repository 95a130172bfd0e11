// trainer.cpp: Trainer (fit, per-epoch evaluation and checkpoints, resume) and evaluate().
#include "models/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/autograd.h"
#include "core/collectives.h"
#include "core/error.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/serialize.h"
#include "models/checkpoint_files.h"
#include "models/progress.h"
#include "quant/quantizer.h"
#include "quant/training.h"

namespace lowbit {

using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The first `keep` images and labels of a batch (the last batch of a limited evaluation).
void truncate_batch(Batch& b, size_t keep) {
  Shape head_shape = b.images.shape();
  head_shape[0] = static_cast<int64_t>(keep);
  Tensor head = Tensor::empty(head_shape);
  std::copy_n(b.images.data(), head.numel(), head.data());
  b.images = head;
  b.labels.resize(keep);
}

int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels) {
  const auto pred = argmax_rows(logits);
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == labels[i];
  return correct;
}

}  // namespace

EvalResult evaluate(Module& model, const Dataset& data, int64_t batch, int64_t limit, bool progress, Comm& comm) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // Rank r evaluates its contiguous shard; sums are reduced after the loop (shards may differ by
  // one batch). The global batch is rounded up to a multiple of the rank count (batch size does
  // not change eval results).
  const int64_t world = comm.size();
  DataLoader loader(data, LoaderOptions::evaluation((batch + world - 1) / world * world, comm.rank(),
                                                   static_cast<int>(world)));
  const int64_t n = limit > 0 ? std::min<int64_t>(limit, data.size()) : data.size();
  int64_t correct = 0, seen = 0;
  double loss_sum = 0;
  Progress bar("eval", n, progress && comm.rank() == 0);
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < loader.steps() && loader.step_indices(s).front() < n; ++s) {
    Batch b = loader.batch(s);
    // Only the first n test images count (a shard's indices ascend; the last batch may cross n).
    const size_t keep = static_cast<size_t>(
        std::count_if(b.indices.begin(), b.indices.end(), [n](int64_t i) { return i < n; }));
    if (keep < b.labels.size()) truncate_batch(b, keep);
    Tensor logits = model.forward(b.images);
    loss_sum += cross_entropy(logits, b.labels).item() * static_cast<double>(b.labels.size());
    correct += count_correct(logits, b.labels);
    seen += static_cast<int64_t>(b.labels.size());
    bar.update(seen, "");
  }
  reduce_totals(comm, loss_sum, correct, seen);
  const double secs = seconds_since(t0);
  model.train(was_training);
  EvalResult r;
  r.images = seen;
  r.accuracy = seen ? 100.0 * static_cast<double>(correct) / static_cast<double>(seen) : 0;
  r.loss = seen ? loss_sum / static_cast<double>(seen) : 0;
  r.images_per_s = secs > 0 ? static_cast<double>(seen) / secs : 0;
  return r;
}

Trainer::Trainer(DataParallel& dp, Optimizer& optimizer, LrSchedule schedule, DataLoader& train, const Dataset* test,
                 TrainerOptions options)
    : dp_(dp),
      model_(dp.module()),
      optimizer_(optimizer),
      schedule_(std::move(schedule)),
      train_(train),
      test_(test),
      options_(std::move(options)),
      serving_(ServingInfo::from_dataset(train.dataset())) {
  LOWBIT_CHECK(options_.epochs >= 1, "Trainer: epochs must be at least 1, got ", options_.epochs);
  LOWBIT_CHECK(options_.checkpoint_every >= 0 && options_.checkpoint_minutes >= 0 && options_.keep >= 1,
               "Trainer: TrainerOptions::checkpoint_every and checkpoint_minutes must be >= 0 and keep >= 1, got ",
               options_.checkpoint_every, ", ", options_.checkpoint_minutes, " and ", options_.keep);
  LOWBIT_CHECK(train.options().world_size == dp.size() && train.options().rank == dp.rank(), "Trainer: the loader "
               "shards for rank ", train.options().rank, " of ", train.options().world_size, ", but this is rank ",
               dp.rank(), " of ", dp.size());
  if (!options_.loss) options_.loss = [](const Tensor& logits, const std::vector<int32_t>& labels) {
    return cross_entropy(logits, labels);
  };
}

ModelSpec Trainer::run_spec() const {
  ModelSpec spec = spec_;
  spec.architecture = model_architecture(model_, spec.policy.methods());
  return spec;
}

void Trainer::set_serving(const ServingInfo& serving, const std::string& data_spec) {
  serving_ = serving;
  data_spec_ = data_spec;
}

ResumeInfo Trainer::resume(const std::string& path) {
  Comm& comm = dp_.comm();
  ResumeInfo info;
  const StateDict sd = load_on_root(comm, [&] {
    LoadedCheckpointFile file = load_newest_checkpoint_file(path);
    info.path = file.path;
    info.skipped = file.skipped;
    return std::move(file.state);
  });
  const std::string source = info.path.empty() ? path : info.path;
  // Every rank holds the same bytes, so every rank reaches the same verdict: agree on it.
  std::string error;
  try {
    const Checkpoint ck = Checkpoint::from_state_dict(sd, source, spec_.policy.methods());
    ck.check_resumes(run_spec(), source);
    const TrainingState& t = *ck.training;
    LOWBIT_CHECK(t.epoch <= options_.epochs, "cannot resume from ", source, ": it already has ", t.epoch,
                 " epochs, more than TrainerOptions::epochs ", options_.epochs);
    const int64_t batch = train_.options().batch_size;
    LOWBIT_CHECK(t.global_batch == 0 || t.global_batch == batch, "cannot resume from ", source,
                 ": it was trained with a global batch of ", t.global_batch, ", this run's is ", batch,
                 " (the global batch must stay the same; the number of ranks may change)");
    LOWBIT_CHECK(t.epoch_step == 0 || t.epoch_steps == steps_per_epoch(), "cannot resume from ", source,
                 ": it stopped inside an epoch of ", t.epoch_steps, " steps, this run's epochs have ", steps_per_epoch(),
                 " (the same data, global batch and steps per epoch are needed)");
    model_.load_state_dict(ck.model);
    optimizer_.load_state_dict(t.optimizer);
    // Gradient scales that depend on loaded quantizer buffers (QIL) are refreshed as after a step.
    for (auto& g : optimizer_.groups())
      if (g.post_step) g.post_step(g);
    start_epoch_ = epochs_done_ = t.epoch;
    start_step_ = t.epoch_step;
    global_step_ = t.global_step;
    best_acc_ = t.best_acc;
    last_test_acc_ = t.test_acc;
    set_rng_states(model_, t.rng, source);
    start_totals_ = {};
    if (t.ranks.size() == static_cast<size_t>(dp_.size())) {
      // The same rank count: each rank continues from exactly what it held.
      const RankState& mine = t.ranks[static_cast<size_t>(dp_.rank())];
      model_.load_state_dict(mine.buffers, /*strict=*/false);
      set_rng_states(model_, mine.rng, source);
      start_totals_.loss_sum = mine.loss_sum;
      start_totals_.correct = mine.correct;
      start_totals_.seen = mine.seen;
    } else if (dp_.is_root()) {
      // Another rank count: every rank keeps rank 0's buffers and RNG; rank 0 carries the epoch's sums.
      for (const RankState& r : t.ranks) {
        start_totals_.loss_sum += r.loss_sum;
        start_totals_.correct += r.correct;
        start_totals_.seen += r.seen;
      }
    }
    resumed_ = true;
    info.epoch = t.epoch;
    info.epoch_step = t.epoch_step;
  } catch (const std::exception& e) {
    error = e.what();
  }
  agree(comm, error, /*prefix_rank=*/false);
  return info;
}

Checkpoint Trainer::checkpoint(double test_acc) const {
  Checkpoint ck;
  ck.spec = run_spec();
  ck.model = model_.state_dict();
  ck.serving = serving_;
  ck.data = data_spec_;
  ck.notes = notes_;
  TrainingState t;
  t.epoch = epochs_done_;
  t.global_step = global_step_;
  t.best_acc = best_acc_;
  t.test_acc = test_acc;
  t.global_batch = train_.options().batch_size;
  t.rng = rng_states(model_);
  t.optimizer = optimizer_.state_dict();
  t.schedule = schedule_.describe();
  ck.training = std::move(t);
  return ck;
}

void Trainer::open_outputs() {
  if (outputs_open_) return;
  outputs_open_ = true;
  if (options_.progress && dp_.is_root()) sinks_.insert(sinks_.begin(), std::make_unique<ProgressSink>());
  if (options_.out.empty() || !dp_.is_root()) return;  // rank 0 writes every file
  std::error_code ec;
  std::filesystem::create_directories(options_.out, ec);
  LOWBIT_CHECK(!ec, "cannot create the output folder ", options_.out, ": ", ec.message());
  sinks_.push_back(std::make_unique<JsonlSink>(options_.out + "/metrics.jsonl", !resumed_));
  sinks_.push_back(std::make_unique<CsvSink>(options_.out + "/metrics.csv", !resumed_));
}

int64_t Trainer::steps_per_epoch() const {
  return options_.max_steps > 0 ? std::min(options_.max_steps, train_.steps()) : train_.steps();
}

Trainer::EpochTotals Trainer::train_epoch(int64_t epoch, int64_t steps, int64_t first_step, EpochTotals e) {
  model_.train();
  set_quantization_enabled(model_, epoch >= options_.float_epochs);  // float warm-up first
  train_.set_epoch(epoch);
  for (auto& sink : sinks_) sink->begin_epoch(epoch, options_.epochs, steps);
  const auto t0 = Clock::now();
  e.steps_done = first_step;
  while (e.steps_done < steps && !e.stop) {
    const int64_t s = e.steps_done;
    Batch b = train_.batch(s);
    optimizer_.set_lr_multiplier(schedule_.multiplier(epoch, s, steps));
    optimizer_.zero_grad();
    Tensor logits = model_.forward(b.images);
    Tensor loss = options_.loss(logits, b.labels);
    const float lv = loss.item();
    loss.backward();
    // Averages gradients over ranks; the global loss is the same on every rank, so a NaN stops
    // all of them at this step with one message. Stop and checkpoint requests of any rank travel
    // with it, so every rank acts on them after this same step.
    const bool stop = stop_requested_.load(std::memory_order_relaxed) ||
                      (options_.stop_requested && options_.stop_requested());
    const bool minutes_up = options_.checkpoint_minutes > 0 &&
                            seconds_since(last_checkpoint_time_) >= 60.0 * options_.checkpoint_minutes;
    const StepTotals totals = dp_.reduce_gradients(static_cast<int64_t>(b.labels.size()), lv, stop, minutes_up);
    const double global_loss = totals.loss;
    if (!std::isfinite(global_loss))
      throw AgreedError(detail::concat("loss became ", global_loss, " at epoch ", epoch + 1, " step ", s + 1, " (lr ",
                                       optimizer_.lr(0), "): lower the learning rate (TrainOptions::lr) or check the data"));
    optimizer_.step();
    ++global_step_;
    ++e.steps_done;
    e.stop = totals.stop;
    e.loss_sum += lv * static_cast<double>(b.labels.size());
    e.correct += count_correct(logits, b.labels);
    e.seen += static_cast<int64_t>(b.labels.size());
    e.images += static_cast<int64_t>(b.labels.size());
    if (!sinks_.empty() || !step_callbacks_.empty()) {
      const double el = seconds_since(t0);
      StepMetrics m{epoch, s, steps, options_.epochs, global_loss, e.loss_sum / static_cast<double>(e.seen),
                    100.0 * static_cast<double>(e.correct) / static_cast<double>(e.seen),
                    el > 0 ? static_cast<double>(e.images * dp_.size()) / el : 0.0};  // rank 0's share x ranks
      for (auto& sink : sinks_) sink->step(m);
      for (auto& fn : step_callbacks_) fn(m);
    }
    // The epoch's end writes its own checkpoint; inside the epoch, write one when asked to.
    const bool every = options_.checkpoint_every > 0 && global_step_ % options_.checkpoint_every == 0;
    if (e.steps_done < steps && (totals.stop || totals.checkpoint || every)) save_mid_epoch(epoch, e.steps_done, steps, e);
  }
  e.seconds = seconds_since(t0);
  if (e.steps_done == steps) dp_.end_epoch(e.loss_sum, e.correct, e.seen);  // metrics over all ranks; replicas still identical
  return e;
}

void Trainer::write_checkpoint(const std::function<Checkpoint()>& make, bool best) {
  std::string error;
  if (dp_.is_root()) {
    try {
      const StateDict sd = make().to_state_dict();
      save_checkpoint_file(options_.out + "/last.ckpt", sd, options_.keep);
      if (best) save_state_dict(options_.out + "/best.ckpt", sd);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree(dp_.comm(), error, /*prefix_rank=*/false);
  last_checkpoint_time_ = Clock::now();
}

void Trainer::save_mid_epoch(int64_t epoch, int64_t step, int64_t steps, const EpochTotals& e) {
  if (options_.out.empty()) return;
  RankState mine;
  for (auto& [name, t] : model_.named_buffers()) mine.buffers.tensors[name] = t;
  mine.loss_sum = e.loss_sum;
  mine.correct = e.correct;
  mine.seen = e.seen;
  mine.rng = rng_states(model_);
  const std::vector<StateDict> ranks = gather_state_dicts(dp_.comm(), mine.to_state_dict());
  write_checkpoint(
      [&] {
        Checkpoint ck = checkpoint(last_test_acc_);
        TrainingState& t = *ck.training;
        t.epoch = epoch;
        t.epoch_step = step;
        t.epoch_steps = steps;
        for (const StateDict& r : ranks) t.ranks.push_back(RankState::from_state_dict(r, "a rank's state"));
        return ck;
      },
      /*best=*/false);
}

void Trainer::finish_epoch(int64_t epoch, const EpochTotals& e, FitResult& result) {
  const EvalResult ev = test_ ? evaluate() : EvalResult{};
  EpochMetrics m;
  m.epoch = epoch + 1;
  m.epochs = options_.epochs;
  m.train_loss = e.loss_sum / static_cast<double>(e.seen);
  m.train_acc = 100.0 * static_cast<double>(e.correct) / static_cast<double>(e.seen);
  m.test_loss = ev.loss;
  m.test_acc = ev.accuracy;
  m.lr = optimizer_.lr(0);
  m.images_per_s = e.seconds > 0 ? static_cast<double>(e.images * dp_.size()) / e.seconds : 0;  // rank 0's share x ranks
  m.seconds = e.seconds;
  m.images = e.seen;
  const nlohmann::json q = quantizer_state(model_);
  if (!q.empty()) m.quantizers = q;
  for (auto& sink : sinks_) sink->end_epoch(m);
  for (auto& fn : epoch_callbacks_) fn(m);
  // A float warm-up epoch is not the quantized model the run trains: it never becomes best.ckpt
  // (at 2 bits its accuracy often beats every quantized epoch).
  const bool candidate = epoch >= options_.float_epochs;
  if (candidate) best_acc_ = std::max(best_acc_, ev.accuracy);
  epochs_done_ = epoch + 1;
  last_test_acc_ = ev.accuracy;
  if (!options_.out.empty())
    write_checkpoint([&] { return checkpoint(ev.accuracy); }, candidate && ev.accuracy >= best_acc_);
  result.test_acc = ev.accuracy;
  result.test_loss = ev.loss;
}

FitResult Trainer::fit() {
  open_outputs();
  const int64_t steps = steps_per_epoch();
  const int64_t end_epoch = options_.stop_after > 0 ? std::min(options_.stop_after, options_.epochs) : options_.epochs;
  FitResult result;
  result.checkpoint = options_.out.empty() ? "" : options_.out + "/last.ckpt";
  double train_seconds = 0;
  int64_t train_images = 0;
  const auto run_start = Clock::now();
  last_checkpoint_time_ = run_start;
  const int64_t first_epoch = start_epoch_;
  for (int64_t epoch = first_epoch; epoch < end_epoch && !result.stopped; ++epoch) {
    const int64_t first_step = epoch == first_epoch ? start_step_ : 0;
    const EpochTotals e = train_epoch(epoch, steps, first_step, first_step > 0 ? start_totals_ : EpochTotals{});
    train_seconds += e.seconds;
    train_images += e.images * dp_.size();
    result.stopped = e.stop;
    if (e.steps_done < steps) {  // stopped inside the epoch (save_mid_epoch wrote the checkpoint)
      result.epoch_step = start_step_ = e.steps_done;
      start_totals_ = e;
      start_totals_.stop = false;
      start_totals_.images = 0;
      break;
    }
    start_step_ = 0;
    finish_epoch(epoch, e, result);
  }
  result.epochs = epochs_done_;
  if (epochs_done_ >= end_epoch) result.stopped = false;  // a stop at the last step changed nothing: the run is done
  result.seconds = seconds_since(run_start);
  result.train_images_per_s = train_seconds > 0 ? static_cast<double>(train_images) / train_seconds : 0;
  if (first_epoch >= end_epoch && test_) {  // nothing left to train: report the checkpoint's accuracy
    const EvalResult ev = evaluate();
    result.test_acc = ev.accuracy;
    result.test_loss = ev.loss;
  }
  start_epoch_ = epochs_done_;
  stop_requested_.store(false, std::memory_order_relaxed);  // a later fit() continues the run
  return result;
}

EvalResult Trainer::evaluate() {
  LOWBIT_CHECK(test_ != nullptr, "Trainer::evaluate: no test set was given");
  return lowbit::evaluate(model_, *test_, options_.eval_batch, options_.eval_limit, false, dp_.comm());
}

}  // namespace lowbit
