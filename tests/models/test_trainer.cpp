// test_trainer.cpp: the Trainer on a program-defined model (not from the zoo) and tiny synthetic
// data: fit writes metrics and checkpoints and calls back per step and epoch; stop after epoch N +
// resume gives bit-identical weights and optimizer state to an uninterrupted run; the warm-up
// switch and DataParallel's hooks belong to one model (two models in one process do not interfere).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "common/temp_dir.h"
#include "core/data/synthetic.h"
#include "core/random.h"
#include "core/serialize.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/data_parallel.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/param_groups.h"
#include "models/registry.h"
#include "models/trainer.h"
#include "optim/sgd.h"
#include "quant/policy.h"

using namespace lowbit;
using lowbit::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

const Dataset& data(Split split) {
  static const auto make = [](Split s) {
    SyntheticOptions o;
    o.train_size = 512;
    o.test_size = 128;
    o.height = o.width = 12;
    return make_synthetic_dataset(o, s);
  };
  static const Dataset train = make(Split::Train), test = make(Split::Test);
  return split == Split::Train ? train : test;
}

// Initialised from seed 11.
std::shared_ptr<Module> small_cnn(bool dropout = false) {
  Generator init(11);
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 1, .out_channels = 8, .kernel = 3, .padding = 1}, init));
  m->add(std::make_shared<BatchNorm2d>(8));
  m->add(std::make_shared<ReLU>());
  m->add(std::make_shared<MaxPool2d>(2));
  m->add(std::make_shared<Flatten>());
  if (dropout) m->add(std::make_shared<Dropout>(0.2f, init));  // draws from its own stream every step
  m->add(std::make_shared<Linear>(8 * 6 * 6, 10, init));
  return m;
}

// The small CNN (seed 11), its SGD and a loader over the synthetic train set, for one process.
struct Setup {
  std::shared_ptr<Module> model;
  SGD opt;
  DataLoader loader;
  DataParallel dp;
  Setup()
      : model(small_cnn()),
        opt({{"weights", model->parameters(), 0.05, 5e-4}}, {.momentum = 0.9}),
        loader(data(Split::Train), {.batch_size = 32, .seed = 3}),
        dp(*model) {}
};

struct Run {
  StateDict model, optimizer;
  int steps = 0, epochs = 0;
  FitResult result;
};

// One run of 3 epochs x 4 steps; stop_after / resume as asked; request_stop() in the callback of
// step `stop_at` (counted over this run, 0: never); `refit`: then fit() again in the same process.
Run run(const fs::path& out, int64_t stop_after, bool resume, int stop_at = 0, bool dropout = false,
        bool refit = false) {
  auto model = small_cnn(dropout);
  SGD opt({{"weights", model->parameters(), 0.05, 5e-4}}, {.momentum = 0.9});
  DataLoader loader(data(Split::Train), {.batch_size = 32, .seed = 3, .random_crop = true, .crop_padding = 2});
  DataParallel dp(*model);
  TrainerOptions to;
  to.epochs = 3;
  to.stop_after = stop_after;
  to.max_steps = 4;
  to.out = out.string();
  Trainer trainer(dp, opt, LrSchedule::cosine(3, 0.0, 0.5), loader, &data(Split::Test), to);
  Run r;
  trainer.on_step([&](const StepMetrics& m) {
    if (++r.steps == stop_at) trainer.request_stop();
    CHECK(std::isfinite(m.loss));
  });
  trainer.on_epoch([&](const EpochMetrics&) { ++r.epochs; });
  if (resume) trainer.resume((out / "last.ckpt").string());
  r.result = trainer.fit();
  if (refit) r.result = trainer.fit();
  r.model = model->state_dict();
  r.optimizer = opt.state_dict();
  return r;
}

void check_identical(const StateDict& a, const StateDict& b) {
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    INFO(name);
    REQUIRE(b.tensors.count(name));
    CHECK(t.to_vector() == b.tensors.at(name).to_vector());
  }
}

int lines(const fs::path& p) {
  std::ifstream f(p);
  std::string line;
  int n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

}  // namespace

TEST_CASE("Trainer: stop after epoch 1, resume, and the weights equal an uninterrupted run's bit for bit") {
  const fs::path dir = temp_dir("resume");
  const Run full = run(dir / "full", 0, false);
  CHECK(full.steps == 12);
  CHECK(full.epochs == 3);
  CHECK(full.result.epochs == 3);
  CHECK(full.result.test_acc > 30.0);  // it learns (10 classes: chance is 10%)
  CHECK(lines(dir / "full" / "metrics.jsonl") == 3);
  CHECK(lines(dir / "full" / "metrics.csv") == 4);  // header + 3 epochs
  CHECK(fs::exists(dir / "full" / "best.ckpt"));

  const Run first = run(dir / "split", 1, false);
  CHECK(first.epochs == 1);
  const Run rest = run(dir / "split", 0, true);
  CHECK(rest.steps == 8);  // epochs 2 and 3 only
  CHECK(rest.result.epochs == 3);
  check_identical(full.model, rest.model);
  check_identical(full.optimizer, rest.optimizer);
  CHECK(full.optimizer.scalars == rest.optimizer.scalars);
  CHECK(lines(dir / "split" / "metrics.jsonl") == 3);  // resume appends
  // The checkpoint of a program-defined model carries its serving info and training state.
  const Checkpoint ck = Checkpoint::load((dir / "split" / "last.ckpt").string());
  CHECK(ck.spec.name.empty());
  REQUIRE(ck.training.has_value());
  CHECK(ck.training->epoch == 3);
  CHECK(ck.training->global_step == 12);
  CHECK(ck.serving.mean == data(Split::Train).mean);
  CHECK(ck.serving.height == 12);
  // ... and its architecture: the model is rebuilt from it without the program, weights included.
  REQUIRE(ck.spec.architecture.is_object());
  CHECK(ck.spec.architecture["type"] == "Sequential");
  check_identical(ck.build_model("x.ckpt")->state_dict(), rest.model);
  // Without either, only the program can rebuild it (a checkpoint written before architectures).
  Checkpoint old = ck;
  old.spec.architecture = nullptr;
  CHECK_THROWS_WITH_AS(old.build_model("x.ckpt"), doctest::Contains("lacks 'model.name' and 'model.architecture'"),
                       Error);
  fs::remove_all(dir);
}

TEST_CASE("Trainer: request_stop() inside an epoch, resume, and the checkpoint equals an uninterrupted run's") {
  const fs::path dir = temp_dir("mid_epoch");
  const Run full = run(dir / "full", 0, false, 0, /*dropout=*/true);
  // Asked in step 6's callback: every rank learns of it with step 7's allreduce and stops after it.
  const Run first = run(dir / "split", 0, false, /*stop_at=*/6, true);
  CHECK(first.result.stopped);
  CHECK(first.result.epochs == 1);
  CHECK(first.result.epoch_step == 3);
  CHECK(first.steps == 7);
  const Checkpoint mid = Checkpoint::load((dir / "split" / "last.ckpt").string());
  REQUIRE(mid.training.has_value());
  CHECK(mid.training->epoch == 1);
  CHECK(mid.training->epoch_step == 3);
  CHECK(mid.training->epoch_steps == 4);
  CHECK(mid.training->global_step == 7);
  CHECK(mid.training->ranks.size() == 1);
  const Run rest = run(dir / "split", 0, true, 0, true);
  CHECK(rest.steps == 5);  // the rest of epoch 2, then epoch 3
  CHECK(!rest.result.stopped);
  CHECK(rest.result.epochs == 3);
  check_identical(full.model, rest.model);
  check_identical(full.optimizer, rest.optimizer);
  // Byte for byte, and metrics.jsonl has each epoch once (the stopped epoch is written by the resumed run).
  const auto bytes = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  CHECK(bytes(dir / "full" / "last.ckpt") == bytes(dir / "split" / "last.ckpt"));
  CHECK(lines(dir / "split" / "metrics.jsonl") == 3);
  // fit() again in the same process continues where the stop left off.
  const Run again = run(dir / "again", 0, false, 6, true, /*refit=*/true);
  CHECK(again.result.epochs == 3);
  CHECK(again.steps == 12);
  CHECK(lines(dir / "again" / "metrics.jsonl") == 3);
  CHECK(bytes(dir / "full" / "last.ckpt") == bytes(dir / "again" / "last.ckpt"));
  fs::remove_all(dir);
}

TEST_CASE("Trainer: checkpoint_every writes inside epochs, keep rotates, resume falls back past a corrupt file") {
  const fs::path dir = temp_dir("every");
  Setup setup;
  TrainerOptions to;
  to.epochs = 2;
  to.max_steps = 4;
  to.out = (dir / "run").string();
  to.checkpoint_every = 3;
  to.keep = 3;
  int polls = 0;
  to.stop_requested = [&] { return ++polls == 7; };  // polled before step 7's allreduce: stop after it
  Trainer trainer(setup.dp, setup.opt, LrSchedule::cosine(2, 0.0, 0.5), setup.loader, nullptr, to);
  const FitResult r = trainer.fit();
  CHECK(r.stopped);
  CHECK(r.epochs == 1);
  CHECK(r.epoch_step == 3);
  // Writes: step 3 (mid-epoch), step 4 (epoch end), step 6 (mid), step 7 (the stop): keep 3.
  const std::string last = (dir / "run" / "last.ckpt").string();
  CHECK(Checkpoint::load(last).training->global_step == 7);
  CHECK(Checkpoint::load(last + ".1").training->global_step == 6);
  CHECK(Checkpoint::load(last + ".2").training->global_step == 4);
  CHECK(!fs::exists(last + ".3"));
  fs::resize_file(last, 100);  // cut short
  Trainer resumed(setup.dp, setup.opt, LrSchedule::cosine(2, 0.0, 0.5), setup.loader, nullptr, to);
  const ResumeInfo info = resumed.resume(last);
  CHECK(info.path == last + ".1");
  REQUIRE(info.skipped.size() == 1);
  CHECK(info.skipped[0].find(last) != std::string::npos);
  CHECK(info.epoch == 1);
  CHECK(info.epoch_step == 2);
  fs::remove_all(dir);
}

TEST_CASE("Trainer: checkpoint_minutes writes inside an epoch once the time is up, and not before") {
  const fs::path dir = temp_dir("minutes");
  auto fit = [&](double minutes) {
    Setup setup;
    TrainerOptions to;
    to.epochs = 1;
    to.max_steps = 4;
    to.out = (dir / "run").string();
    to.checkpoint_minutes = minutes;
    to.keep = 8;
    Trainer trainer(setup.dp, setup.opt, LrSchedule::cosine(1, 0.0, 0.5), setup.loader, nullptr, to);
    CHECK(!trainer.fit().stopped);
  };
  const std::string last = (dir / "run" / "last.ckpt").string();
  // 6 microseconds: every step ends after the time is up, so steps 1-3 write mid-epoch checkpoints
  // and step 4 the epoch's own.
  fit(1e-7);
  for (int64_t i = 0; i < 4; ++i) {
    const std::string file = i == 0 ? last : last + "." + std::to_string(i);
    INFO(file);
    REQUIRE(fs::exists(file));
    CHECK(Checkpoint::load(file).training->global_step == 4 - i);
  }
  CHECK(!fs::exists(last + ".4"));
  fs::remove_all(dir);
  // An hour: only the epoch's end writes.
  fit(60);
  CHECK(Checkpoint::load(last).training->global_step == 4);
  CHECK(!fs::exists(last + ".1"));
  fs::remove_all(dir);
}

TEST_CASE("Trainer: float warm-up epochs never become best.ckpt") {
  const fs::path dir = temp_dir("warmup");
  Setup setup;
  TrainerOptions to;
  to.epochs = 3;
  to.float_epochs = 2;
  to.max_steps = 4;
  to.out = dir.string();
  // A learning rate that wrecks the last epoch: its accuracy falls below the warm-up epochs'.
  Trainer trainer(setup.dp, setup.opt, LrSchedule::multistep({2}, 1e3), setup.loader, &data(Split::Test), to);
  std::vector<double> acc;
  trainer.on_epoch([&](const EpochMetrics& m) { acc.push_back(m.test_acc); });
  trainer.fit();
  REQUIRE(acc.size() == 3);
  CHECK(acc[2] < std::max(acc[0], acc[1]));
  // Only epoch 3 is a candidate, so best.ckpt is that epoch's checkpoint, whatever the accuracies.
  const Checkpoint best = Checkpoint::load((dir / "best.ckpt").string());
  const Checkpoint last = Checkpoint::load((dir / "last.ckpt").string());
  REQUIRE(best.training.has_value());
  CHECK(best.training->epoch == 3);
  CHECK(best.training->best_acc == acc[2]);
  check_identical(best.model, last.model);
}

TEST_CASE("Trainer: a resumed run that is already complete trains nothing") {
  const fs::path dir = temp_dir("complete");
  run(dir, 0, false);
  const Run again = run(dir, 0, true);
  CHECK(again.steps == 0);
  CHECK(again.result.epochs == 3);
  CHECK(again.result.test_acc > 0);
  fs::remove_all(dir);
}

TEST_CASE("the quantization switch and the replica hooks belong to one model") {
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  Generator init(0);
  auto a = make_model("convnet", {1, 12, 12, 10}, init);
  auto b = make_model("convnet", {1, 12, 12, 10}, init);
  convert_model(*a, policy);
  convert_model(*b, policy);
  set_quantization_enabled(*a, false);
  CHECK_FALSE(quantization_enabled(*a));
  CHECK(quantization_enabled(*b));
  // Parameter groups come from the quantizers' specs (models/param_groups.h).
  const auto groups = parameter_groups(*b, policy, 0.1, 1e-4);
  size_t params = 0;
  for (const auto& g : groups) params += g.params.size();
  CHECK(params == b->parameters().size());
  CHECK(groups.size() > 1);
  // With one rank DataParallel changes nothing and two wrappers coexist.
  DataParallel da(*a), db(*b, {.sync_bn = true});
  CHECK_FALSE(da.active());
  Tensor x = Tensor::randn({4, 1, 12, 12}, init);
  Tensor ya = a->forward(x), yb = b->forward(x);
  CHECK(ya.shape() == yb.shape());
}
