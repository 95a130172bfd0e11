// training.cpp: train / evaluate / checkpoint for the command-line tools.
#include "tools/training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/data/loader.h"
#include "core/error.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/serialize.h"
#include "core/threading.h"
#include "optim/lr_schedule.h"
#include "optim/make_optimizer.h"
#include "quant/quantizer.h"
#include "quant/training.h"
#include "tools/distributed.h"
#include "tools/progress.h"

namespace lowbit::cli {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::shared_ptr<Module> build_model(const ModelSpec& spec) {
  std::shared_ptr<Module> model = make_model(spec.name, spec.config);
  if (spec.policy.quantized()) convert_model(*model, spec.policy);
  return model;
}

std::vector<ParamGroup> parameter_groups(Module& model, const QuantPolicy& policy, double lr, double weight_decay) {
  if (policy.quantized()) return make_param_groups(model, lr, weight_decay);
  ParamGroup all;
  all.name = "weights";
  all.params = model.parameters();
  all.lr = lr;
  all.weight_decay = weight_decay;
  return {all};
}

ModelSpec model_spec_for(const std::string& name, const Dataset& data) {
  return {name, {data.channels, data.height, data.width, data.num_classes()}, QuantPolicy{}};
}

EvalResult evaluate(Module& model, const Dataset& data, int64_t batch, int64_t limit, bool progress) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // Data-parallel: rank r evaluates its contiguous shard of the test set; sums are reduced after
  // the loop (shards may differ by one batch). The global batch is rounded up to a multiple of
  // the rank count (batch size does not change eval results).
  const int64_t world = world_size();
  DataLoader loader(data, LoaderOptions::evaluation((batch + world - 1) / world * world, world_rank(),
                                                   static_cast<int>(world)));
  const int64_t n = limit > 0 ? std::min<int64_t>(limit, data.size()) : data.size();
  int64_t correct = 0, seen = 0;
  double loss_sum = 0;
  Progress bar("eval", n, progress && is_root());
  const auto t0 = Clock::now();
  for (int64_t s = 0; s < loader.steps() && loader.step_indices(s).front() < n; ++s) {
    Batch b = loader.batch(s);
    // Only the first n test images count (a shard's indices ascend; the last batch may cross n).
    const size_t keep = static_cast<size_t>(
        std::count_if(b.indices.begin(), b.indices.end(), [n](int64_t i) { return i < n; }));
    if (keep < b.labels.size()) {
      Shape head_shape = b.images.shape();
      head_shape[0] = static_cast<int64_t>(keep);
      Tensor head = Tensor::empty(head_shape);
      std::copy_n(b.images.data(), head.numel(), head.data());
      b.images = head;
      b.labels.resize(keep);
    }
    Tensor logits = model.forward(b.images);
    loss_sum += cross_entropy(logits, b.labels).item() * static_cast<double>(b.labels.size());
    const auto pred = argmax_rows(logits);
    for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == b.labels[i];
    seen += static_cast<int64_t>(b.labels.size());
    bar.update(seen, "");
  }
  reduce_totals(loss_sum, correct, seen);
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  model.train(was_training);
  EvalResult r;
  r.images = seen;
  r.accuracy = seen ? 100.0 * correct / seen : 0;
  r.loss = seen ? loss_sum / seen : 0;
  r.images_per_s = secs > 0 ? seen / secs : 0;
  return r;
}

namespace {

json options_json(const TrainOptions& o) {
  return {{"model", o.model}, {"data", o.data}, {"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr},
          {"momentum", o.momentum}, {"optimizer", o.optimizer}, {"schedule", o.schedule},
          {"warmup_epochs", o.warmup_epochs}, {"weight_decay", o.weight_decay}, {"seed", o.seed},
          {"augment", o.augment}, {"max_steps", o.max_steps}, {"policy", o.policy.to_json()},
          {"float_epochs", o.float_epochs}, {"init_from", o.init_from}};
}

void put_spec(StateDict& sd, const ModelSpec& spec) {
  sd.strings["model.name"] = spec.name;
  sd.scalars["model.in_channels"] = static_cast<double>(spec.config.in_channels);
  sd.scalars["model.height"] = static_cast<double>(spec.config.height);
  sd.scalars["model.width"] = static_cast<double>(spec.config.width);
  sd.scalars["model.num_classes"] = static_cast<double>(spec.config.num_classes);
  sd.strings["quant.policy"] = spec.policy.to_json_string();
}

ModelSpec get_spec(const StateDict& sd, const std::string& path) {
  auto scalar = [&](const std::string& k) {
    auto it = sd.scalars.find(k);
    LOWBIT_CHECK(it != sd.scalars.end(), "checkpoint ", path, " lacks '", k, "'");
    return static_cast<int64_t>(it->second);
  };
  auto it = sd.strings.find("model.name");
  LOWBIT_CHECK(it != sd.strings.end(), "checkpoint ", path, " lacks the model name");
  ModelSpec spec{it->second,
                 {scalar("model.in_channels"), scalar("model.height"), scalar("model.width"),
                  scalar("model.num_classes")},
                 {}};
  if (auto p = sd.strings.find("quant.policy"); p != sd.strings.end()) spec.policy = QuantPolicy::from_json_string(p->second);
  return spec;
}

std::string rng_to_string(const Generator& g) {
  std::string s;
  for (uint64_t w : g.state()) s += std::to_string(w) + " ";
  return s;
}

void rng_from_string(Generator& g, const std::string& s) {
  std::array<uint64_t, 4> st{};
  std::istringstream in(s);
  for (auto& w : st) LOWBIT_CHECK(static_cast<bool>(in >> w), "checkpoint has a malformed RNG state");
  g.set_state(st);
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  LOWBIT_CHECK(f.good(), "cannot write ", path);
  f << line << "\n";
}

}  // namespace

void load_float_weights(Module& model, const std::string& path) {
  const StateDict sd = load_state_dict_file(path).sub("model");
  LOWBIT_CHECK(!sd.tensors.empty(), "--init-from ", path, ": no model weights in the checkpoint");
  const StateDict current = model.state_dict();
  for (const auto& [name, t] : sd.tensors)
    LOWBIT_CHECK(current.tensors.count(name) && current.tensors.at(name).shape() == t.shape(), "--init-from ", path,
                 ": entry '", name, "' does not match the model (different architecture?)");
  // Non-strict: the quantizers' own parameters are not in a float checkpoint and keep their init.
  model.load_state_dict(sd, /*strict=*/false);
}

void save_model_checkpoint(const std::string& path, const Module& model, const ModelSpec& spec,
                           const std::map<std::string, std::string>& strings) {
  StateDict sd;
  sd.merge(model.state_dict(), "model");
  put_spec(sd, spec);
  for (const auto& [k, v] : strings) sd.strings[k] = v;
  save_state_dict(path, sd);
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  LoadedCheckpoint lc;
  lc.state = load_state_dict_file(path);
  lc.spec = get_spec(lc.state, path);
  lc.model = build_model(lc.spec);
  lc.model->load_state_dict(lc.state.sub("model"));
  return lc;
}

TrainResult train(const TrainOptions& o) {
  LOWBIT_CHECK(o.epochs >= 1, "--epochs must be at least 1, got ", o.epochs);
  LOWBIT_CHECK(o.batch >= 1, "--batch must be at least 1, got ", o.batch);
  LOWBIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive, got ", o.lr);
  set_num_threads(threads_for(o.threads));  // 0: this rank's share of the node's cores
  // agreed(): a bad file on any rank stops every rank with that rank's message.
  const Dataset train_set = agreed([&] { return load_dataset(o.data, Split::Train); });
  const Dataset test_set = agreed([&] { return load_dataset(o.data, Split::Test); });
  ModelSpec spec = model_spec_for(o.model, train_set);
  spec.policy = o.policy;
  spec.policy.validate();
  const bool quantized = spec.policy.quantized();

  manual_seed(o.seed);
  std::shared_ptr<Module> model = build_model(spec);
  // Rank 0 reads it (other nodes need not see the file); DataParallel below broadcasts the weights.
  if (!o.init_from.empty()) agreed([&] { if (is_root()) load_float_weights(*model, o.init_from); });
  if (quantized && is_root()) std::fprintf(stderr, "%s", bits_table(*model).c_str());
  // Quantizer parameters (PACT alpha, QIL c/d/gamma, LSQ s) get their own groups, clamps and
  // gradient scales (quant/training.h); a float model has one group.
  std::vector<ParamGroup> groups = parameter_groups(*model, spec.policy, o.lr, o.weight_decay);
  OptimizerConfig oc;
  oc.sgd.momentum = o.momentum;
  auto optimizer = make_optimizer(o.optimizer, groups, oc);
  LrScheduleOptions so;
  so.total_epochs = o.epochs;
  so.warmup_epochs = o.warmup_epochs;
  so.milestones = {o.epochs / 2, o.epochs * 3 / 4};
  so.step_size = std::max<int64_t>(1, o.epochs / 3);
  const LrSchedule schedule = LrSchedule::from_name(o.schedule, so);

  LoaderOptions lo;
  lo.batch_size = o.batch;  // global batch: rank r trains on its slice of every step's batch
  lo.rank = world_rank();
  lo.world_size = world_size();
  LOWBIT_CHECK(o.batch % lo.world_size == 0, "--batch ", o.batch, " (the global batch) must be a multiple of the ",
               lo.world_size, " ranks");
  lo.seed = o.seed;
  lo.random_crop = o.augment;
  lo.horizontal_flip = o.augment;
  lo.crop_padding = train_set.height <= 28 ? 2 : 4;
  DataLoader loader(train_set, lo);
  const int64_t steps = o.max_steps > 0 ? std::min(o.max_steps, loader.steps()) : loader.steps();

  if (is_root()) std::filesystem::create_directories(o.out);  // rank 0 writes every file
  const std::string last = o.out + "/last.ckpt", best = o.out + "/best.ckpt";
  const std::string jsonl = o.out + "/metrics.jsonl", csv = o.out + "/metrics.csv";
  int64_t start_epoch = 0;
  double best_acc = -1;
  if (o.resume) {
    // Rank 0 reads the checkpoint and broadcasts it: other nodes need not see --out.
    StateDict sd = load_on_root([&] {
      LOWBIT_CHECK(std::filesystem::exists(last), "--resume: no checkpoint at ", last);
      return load_state_dict_file(last);
    });
    const ModelSpec saved = get_spec(sd, last);
    LOWBIT_CHECK(saved.name == spec.name, "--resume: checkpoint ", last, " is for model '", saved.name,
                 "', not '", spec.name, "'");
    model->load_state_dict(sd.sub("model"));
    optimizer->load_state_dict(sd.sub("optim"));
    // Gradient scales that depend on loaded quantizer buffers (QIL) are refreshed as after a step.
    for (auto& g : optimizer->groups())
      if (g.post_step) g.post_step(g);
    start_epoch = static_cast<int64_t>(sd.scalars.at("epoch"));
    best_acc = sd.scalars.at("best_acc");
    rng_from_string(global_generator(), sd.strings.at("rng"));
    LOWBIT_CHECK(start_epoch <= o.epochs, "--resume: checkpoint already has ", start_epoch, " epochs, more than --epochs ",
                 o.epochs);
    if (is_root())
      std::fprintf(stderr, "resuming from %s after epoch %lld\n", last.c_str(), static_cast<long long>(start_epoch));
  } else if (is_root()) {
    std::filesystem::remove(jsonl);
    std::filesystem::remove(csv);
    append_line(csv, "epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_s,seconds");
  }
  // Collective: rank 0's parameters and buffers to every rank, sync-BN hooks with --sync-bn.
  DataParallel dp(*model, {o.sync_bn});
  if (is_root()) std::fprintf(stderr, "lowbit train: %s on %s (%lld train / %lld test images, %lldx%lldx%lld, %lld classes), "
               "%lld parameters, %s lr %g, %s schedule, batch %lld, %d threads\n",
               o.model.c_str(), o.data.c_str(), static_cast<long long>(train_set.size()),
               static_cast<long long>(test_set.size()), static_cast<long long>(train_set.channels),
               static_cast<long long>(train_set.height), static_cast<long long>(train_set.width),
               static_cast<long long>(train_set.num_classes()), static_cast<long long>(model->parameter_count()),
               o.optimizer.c_str(), o.lr, o.schedule.c_str(), static_cast<long long>(o.batch), num_threads());
  if (is_root() && dp.active())
    std::fprintf(stderr, "data-parallel: %d ranks x %d threads, local batch %lld, %s BN statistics, %.2f MB "
                 "allreduced per step\n", world_size(), num_threads(), static_cast<long long>(loader.local_batch_size()),
                 o.sync_bn ? "synchronised" : "per-rank", static_cast<double>(dp.gradient_bytes()) / 1e6);

  TrainResult result;
  result.checkpoint = last;
  double train_seconds = 0;
  int64_t train_images = 0;
  const auto run_start = Clock::now();
  const int64_t end_epoch = o.stop_after > 0 ? std::min(o.stop_after, o.epochs) : o.epochs;
  for (int64_t epoch = start_epoch; epoch < end_epoch; ++epoch) {
    model->train();
    set_quantization_enabled(!quantized || epoch >= o.float_epochs);  // float warm-up first
    loader.set_epoch(epoch);
    Progress bar(detail::concat("epoch ", epoch + 1, "/", o.epochs), steps, o.progress && is_root());
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    const auto t0 = Clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      Batch b = loader.batch(s);
      optimizer->set_lr_multiplier(schedule.multiplier(epoch, s, steps));
      optimizer->zero_grad();
      Tensor logits = model->forward(b.images);
      Tensor loss = cross_entropy(logits, b.labels);
      const float lv = loss.item();
      loss.backward();
      // Averages gradients over ranks; the global loss is the same on every rank, so a NaN stops
      // all of them at this step with one message.
      const double global_loss = dp.reduce_gradients(static_cast<int64_t>(b.labels.size()), lv).loss;
      if (!std::isfinite(global_loss))
        throw AgreedError(detail::concat("loss became ", global_loss, " at epoch ", epoch + 1, " step ", s + 1,
                                         " (lr ", optimizer->lr(0), "): lower --lr or check the data"));
      optimizer->step();
      loss_sum += lv * static_cast<double>(b.labels.size());
      const auto pred = argmax_rows(logits);
      for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == b.labels[i];
      seen += static_cast<int64_t>(b.labels.size());
      const double el = std::chrono::duration<double>(Clock::now() - t0).count();
      char status[128];
      std::snprintf(status, sizeof status, "loss %.4f acc %.2f%% %.0f img/s", loss_sum / seen, 100.0 * correct / seen,
                    el > 0 ? seen * world_size() / el : 0.0);  // rank 0's share x ranks
      bar.update(s + 1, status);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    dp.end_epoch(loss_sum, correct, seen);  // metrics over all ranks; replicas still identical
    train_seconds += secs;
    train_images += seen;
    const EvalResult ev = evaluate(*model, test_set, 256, o.eval_limit);
    const double ips = secs > 0 ? seen / secs : 0;
    char status[160];
    std::snprintf(status, sizeof status, "train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.0f img/s",
                  loss_sum / seen, 100.0 * correct / seen, ev.loss, ev.accuracy, ips);
    bar.finish(status);

    json line = {{"epoch", epoch + 1}, {"train_loss", loss_sum / seen}, {"train_acc", 100.0 * correct / seen},
                 {"test_loss", ev.loss}, {"test_acc", ev.accuracy}, {"lr", optimizer->lr(0)},
                 {"images_per_s", ips}, {"seconds", secs}};
    if (quantized) line["quantizers"] = quantizer_state(*model);  // every alpha, c, d, gamma, s, alpha_w
    if (is_root()) append_line(jsonl, line.dump());
    if (is_root()) append_line(csv, detail::concat(epoch + 1, ",", loss_sum / seen, ",", 100.0 * correct / seen, ",", ev.loss, ",",
                                    ev.accuracy, ",", optimizer->lr(0), ",", ips, ",", secs));

    StateDict sd;
    sd.merge(model->state_dict(), "model");
    sd.merge(optimizer->state_dict(), "optim");
    put_spec(sd, spec);
    sd.scalars["epoch"] = static_cast<double>(epoch + 1);
    sd.scalars["test_acc"] = ev.accuracy;
    best_acc = std::max(best_acc, ev.accuracy);
    sd.scalars["best_acc"] = best_acc;
    sd.strings["rng"] = rng_to_string(global_generator());
    sd.strings["options"] = options_json(o).dump();
    sd.strings["data"] = o.data;
    if (is_root()) save_state_dict(last, sd);
    if (is_root() && ev.accuracy >= best_acc) save_state_dict(best, sd);
    result.test_acc = ev.accuracy;
    result.test_loss = ev.loss;
  }
  if (quantized && is_root()) {
    std::fprintf(stderr, "quantizer parameters at the end of training:\n");
    const json state = quantizer_state(*model);  // named: items() must not outlive its json
    for (auto& [name, value] : state.items())
      std::fprintf(stderr, "  %-40s %s\n", name.c_str(), value.dump().c_str());
  }
  result.epochs = std::max(start_epoch, end_epoch);
  result.seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  result.train_images_per_s = train_seconds > 0 ? train_images / train_seconds : 0;
  if (start_epoch >= end_epoch) {  // nothing left to train: report the checkpoint's accuracy
    const EvalResult ev = evaluate(*model, test_set, 256, o.eval_limit);
    result.test_acc = ev.accuracy;
    result.test_loss = ev.loss;
  }
  return result;
}

TrainResult train_progressive(const TrainOptions& o, const std::vector<int>& bits) {
  LOWBIT_CHECK(o.policy.quantized(), "--progressive needs a quantization --method, got ", o.policy.method);
  LOWBIT_CHECK(!bits.empty(), "--progressive: give the bit widths, e.g. 8,4,3,2");
  for (size_t i = 0; i < bits.size(); ++i)
    LOWBIT_CHECK(bits[i] >= 2 && bits[i] <= 8 && (i == 0 || bits[i] < bits[i - 1]),
                 "--progressive: bit widths must be in 2..8 and strictly decreasing, got ", bits[i], " at position ",
                 i + 1);
  TrainResult result;
  std::string previous;
  for (size_t i = 0; i < bits.size(); ++i) {
    TrainOptions stage = o;
    stage.policy.wbits = stage.policy.abits = bits[i];
    const bool final_stage = i + 1 == bits.size();
    stage.out = final_stage ? o.out : detail::concat(o.out, "/stage-w", bits[i], "a", bits[i]);
    if (i > 0) {
      stage.init_from = previous;
      stage.float_epochs = 0;
    }
    stage.resume = o.resume && std::filesystem::exists(stage.out + "/last.ckpt");
    if (is_root()) std::fprintf(stderr, "progressive stage %zu/%zu: W%dA%d -> %s\n", i + 1, bits.size(), bits[i],
                                bits[i], stage.out.c_str());
    result = train(stage);
    previous = result.checkpoint;
  }
  return result;
}

}  // namespace lowbit::cli
