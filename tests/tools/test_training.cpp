// test_training.cpp: modules, checkpoints and the training loop end to end (on small
// synthetic IDX data the test writes), resume equivalence, and the CLI's exit codes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/data/synthetic.h"
#include "core/error.h"
#include "core/serialize.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "models/registry.h"
#include "models/checkpoint.h"
#include "models/trainer.h"
#include "models/training_run.h"
#include "tools/cli_helpers.h"

using namespace lowbit;
namespace fs = std::filesystem;
using lowbit::testing::read_file;
using lowbit::testing::run;
using lowbit::testing::temp_dir;

namespace {
std::string synthetic_spec() {
  static std::string spec = [] {
    SyntheticOptions o;
    o.train_size = 1024;
    o.test_size = 256;
    return write_synthetic_idx(temp_dir("data").string(), o, true);
  }();
  return spec;
}
TrainOptions quick_options(const std::string& out) {
  TrainOptions o;
  o.data = synthetic_spec();
  o.epochs = 2;
  o.batch = 64;
  o.out = out;
  o.progress = false;
  return o;
}
// Every tensor of checkpoint `a` exists in `b` with identical bits.
void check_same_tensors(const fs::path& a_path, const fs::path& b_path) {
  const StateDict a = load_state_dict_file(a_path.string());
  const StateDict b = load_state_dict_file(b_path.string());
  for (auto& [name, t] : a.tensors) {
    INFO(name);
    REQUIRE(b.tensors.count(name));
    CHECK(t.to_vector() == b.tensors.at(name).to_vector());
  }
}
}  // namespace

TEST_CASE("named parameters of the model zoo use dotted paths") {
  Generator init(0);
  auto net = make_model("resnet20", {3, 32, 32, 10}, init);
  auto params = net->named_parameters();
  bool found = false;
  for (auto& [name, t] : params) found = found || name == "3.0.conv1.weight";
  CHECK(found);
  CHECK(net->parameter_count() > 260000);
  CHECK(net->parameter_count() < 290000);
  for (auto name : model_names()) {
    auto m = make_model(name, {1, 28, 28, 10}, init);
    CHECK(m->parameter_count() > 0);
  }
  CHECK_THROWS_WITH_AS(make_model("vgg", {}, init), doctest::Contains("unknown model 'vgg'"), Error);
}

TEST_CASE("assigning to a Parameter keeps the registered tensor") {
  Generator init(0);
  Linear fc(3, 2, init);
  const Tensor before = fc.named_parameters()[0].second;
  fc.weight = Tensor::ones({2, 3});
  CHECK(fc.named_parameters()[0].second.same_storage(before));
  CHECK(before.data()[0] == 1.f);
  fc.weight = Tensor::ones({4, 3});  // other shape: same TensorImpl re-pointed
  CHECK(before.shape() == Shape{4, 3});
  CHECK(before.requires_grad());
}

TEST_CASE("state dicts round-trip through files and reject bad ones") {
  Generator init(0);
  auto a = make_model("convnet", {1, 28, 28, 10}, init);
  auto b = make_model("convnet", {1, 28, 28, 10}, init);
  fs::path dir = temp_dir("sd");
  save_state_dict((dir / "a.ckpt").string(), a->state_dict());
  b->load_state_dict(load_state_dict_file((dir / "a.ckpt").string()));
  CHECK(a->parameters()[0].to_vector() == b->parameters()[0].to_vector());
  auto other = make_model("mlp", {1, 28, 28, 10}, init);
  CHECK_THROWS_WITH_AS(other->load_state_dict(a->state_dict()), doctest::Contains("state dict"), Error);

  const std::string good = read_file(dir / "a.ckpt");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return (dir / name).string();
  };
  CHECK_THROWS_WITH_AS(load_state_dict_file(write("short", "abc")), doctest::Contains("too short"), Error);
  CHECK_THROWS_WITH_AS(load_state_dict_file(write("trunc", good.substr(0, good.size() / 2))),
                       doctest::Contains("bad checkpoint"), Error);
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x40;
  CHECK_THROWS_WITH_AS(load_state_dict_file(write("flip", flipped)), doctest::Contains("checksum"), Error);
  std::string badjson = good;
  badjson[9] = '!';
  CHECK_THROWS_WITH_AS(load_state_dict_file(write("json", badjson)), doctest::Contains("JSON"), Error);
  CHECK_THROWS_WITH_AS(load_state_dict_file((dir / "missing").string()), doctest::Contains("cannot open"), Error);
  // No temporary files are left behind by atomic writes.
  for (auto& e : fs::directory_iterator(dir)) CHECK(e.path().string().find(".tmp") == std::string::npos);
}

TEST_CASE("training converges, writes metrics and checkpoints, and resume is bit-identical") {
  fs::path dir = temp_dir("train");
  TrainOptions full = quick_options((dir / "full").string());
  const FitResult r = train(full);
  CHECK(r.test_acc > 80.0);
  CHECK(fs::exists(dir / "full" / "last.ckpt"));
  CHECK(fs::exists(dir / "full" / "best.ckpt"));
  const std::string csv = read_file(dir / "full" / "metrics.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);  // header + 2 epochs
  CHECK(read_file(dir / "full" / "metrics.jsonl").find("\"test_acc\"") != std::string::npos);

  TrainOptions first = quick_options((dir / "split").string());
  first.stop_after = 1;  // interrupted after epoch 1 of 2
  train(first);
  TrainOptions rest = quick_options((dir / "split").string());
  rest.resume = true;
  train(rest);
  check_same_tensors(dir / "full" / "last.ckpt", dir / "split" / "last.ckpt");
  const auto loaded = Checkpoint::load((dir / "full" / "last.ckpt").string());
  const Dataset test = load_dataset(synthetic_spec(), Split::Test);
  CHECK(evaluate(*loaded.build_model("last.ckpt"), test, 100).accuracy == doctest::Approx(r.test_acc));
}

TEST_CASE("quantization-aware training: policy in the checkpoint, logged quantizers, bit-identical resume") {
  fs::path dir = temp_dir("qat");
  TrainOptions full = quick_options((dir / "full").string());
  full.policy.method = "pact-sawb";
  full.policy.wbits = full.policy.abits = 2;
  full.float_epochs = 1;
  full.epochs = 3;
  const FitResult r = train(full);
  CHECK(r.test_acc > 70.0);
  const std::string jsonl = read_file(dir / "full" / "metrics.jsonl");
  CHECK(jsonl.find("\"3.act_quantizer.alpha\"") != std::string::npos);
  CHECK(jsonl.find("weight_quantizer.alpha_w") != std::string::npos);

  TrainOptions first = full;
  first.out = (dir / "split").string();
  first.stop_after = 2;  // interrupted after the first quantized epoch
  train(first);
  TrainOptions rest = full;
  rest.out = first.out;
  rest.resume = true;
  train(rest);
  check_same_tensors(dir / "full" / "last.ckpt", dir / "split" / "last.ckpt");
  const auto loaded = Checkpoint::load((dir / "full" / "last.ckpt").string());
  CHECK(loaded.spec.policy.method == "pact-sawb");
  CHECK(loaded.spec.policy.wbits == 2);
  const Dataset test = load_dataset(synthetic_spec(), Split::Test);
  CHECK(evaluate(*loaded.build_model("last.ckpt"), test, 100).accuracy == doctest::Approx(r.test_acc));

  // --init-from: QAT fine-tuning from a float checkpoint; a mismatched checkpoint is refused.
  TrainOptions fp = quick_options((dir / "fp").string());
  fp.epochs = 1;
  train(fp);
  TrainOptions ft = full;
  ft.out = (dir / "ft").string();
  ft.epochs = 1;
  ft.float_epochs = 0;
  ft.init_from = (dir / "fp" / "last.ckpt").string();
  CHECK(train(ft).test_acc > 70.0);
  TrainOptions wrong = ft;
  wrong.model = "mlp";
  CHECK_THROWS_WITH_AS(train(wrong), doctest::Contains("does not match the model"), Error);
}

TEST_CASE("QIL progressive schedule: each stage starts from the previous stage's checkpoint") {
  fs::path dir = temp_dir("progressive");
  TrainOptions o = quick_options((dir / "run").string());
  o.policy.method = "qil";
  o.epochs = 1;
  o.float_epochs = 0;
  o.max_steps = 6;
  const FitResult r = train_progressive(o, {4, 3, 2});
  CHECK(r.checkpoint == (dir / "run" / "last.ckpt").string());
  const auto final_ckpt = Checkpoint::load(r.checkpoint);
  CHECK(final_ckpt.spec.policy.wbits == 2);
  CHECK(final_ckpt.spec.policy.abits == 2);
  // Stage 3-bit was initialised from the 4-bit stage, the final one from the 3-bit stage.
  const auto options_of = [](const fs::path& p) {
    return nlohmann::json::parse(Checkpoint::load(p.string()).notes.at("options"));
  };
  CHECK(options_of(dir / "run" / "stage-w3a3" / "last.ckpt")["init_from"] ==
        (dir / "run" / "stage-w4a4" / "last.ckpt").string());
  CHECK(options_of(dir / "run" / "last.ckpt")["init_from"] == (dir / "run" / "stage-w3a3" / "last.ckpt").string());
  CHECK(Checkpoint::load((dir / "run" / "stage-w4a4" / "last.ckpt").string()).spec.policy.wbits == 4);
  // Resuming a finished schedule trains nothing and reports the same accuracy.
  TrainOptions again = o;
  again.resume = true;
  CHECK(train_progressive(again, {4, 3, 2}).test_acc == doctest::Approx(r.test_acc));
  CHECK_THROWS_WITH_AS(train_progressive(o, {4, 4}), doctest::Contains("strictly decreasing"), Error);
  TrainOptions fp = o;
  fp.policy.method = "fp32";
  CHECK_THROWS_WITH_AS(train_progressive(fp, {4, 2}), doctest::Contains("needs a quantized TrainOptions::policy"), Error);
}

TEST_CASE("training errors: NaN loss, bad options, resume without checkpoint") {
  fs::path dir = temp_dir("errors");
  TrainOptions o = quick_options((dir / "nan").string());
  o.lr = 1e30;
  o.epochs = 1;
  CHECK_THROWS_WITH_AS(train(o), doctest::Contains("loss became"), Error);
  CHECK_FALSE(fs::exists(dir / "nan" / "last.ckpt"));
  TrainOptions r = quick_options((dir / "none").string());
  r.resume = true;
  CHECK_THROWS_WITH_AS(train(r), doctest::Contains("no checkpoint"), Error);
  TrainOptions bad = quick_options((dir / "bad").string());
  bad.data = "nosuch:thing";
  CHECK_THROWS_AS(train(bad), Error);
}

TEST_CASE("library errors name the library's options, never CLI flags; the CLI names its flags") {
  // A program calling train() has no flags: its errors name TrainOptions fields and functions.
  fs::path dir = temp_dir("option_errors");
  auto message = [](const TrainOptions& o) {
    try {
      train(o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  TrainOptions lr = quick_options((dir / "lr").string());
  lr.lr = -1;
  CHECK(message(lr) == "TrainOptions::lr must be positive, got -1");
  TrainOptions keep = quick_options((dir / "keep").string());
  keep.keep = 0;
  CHECK(message(keep) == "TrainOptions::keep must be at least 1, got 0");
  TrainOptions nan = quick_options((dir / "nan").string());
  nan.lr = 1e30;
  nan.epochs = 1;
  const std::string diverged = message(nan);
  CHECK(diverged.find("lower the learning rate (TrainOptions::lr)") != std::string::npos);
  for (const std::string& m : {message(lr), message(keep), diverged}) CHECK(m.find("--") == std::string::npos);
  // The CLI words the same errors with its flags.
  const char* exe = std::getenv("LOWBIT_EXE");
  REQUIRE(exe != nullptr);
  const fs::path err = dir / "err.txt";
  const std::string cmd = std::string(exe) + " train --data " + synthetic_spec() +
                          " --epochs 1 --batch 64 --threads 1 --lr 1e30 --out " + (dir / "cli").string() + " 2>" +
                          err.string() + " >/dev/null";
  CHECK(WEXITSTATUS(std::system(cmd.c_str())) == 1);
  CHECK(read_file(err).find("lower --lr or check the data") != std::string::npos);
}

TEST_CASE("the lowbit program's exit codes: 0 ok, 1 failure, 2 usage") {
  const char* exe = std::getenv("LOWBIT_EXE");
  REQUIRE(exe != nullptr);
  const std::string lowbit = exe;
  fs::path dir = temp_dir("cli");
  CHECK(run(lowbit + " --help") == 0);
  CHECK(run(lowbit + " --version") == 0);
  CHECK(run(lowbit + " train --epochs 0") == 2);
  CHECK(run(lowbit + " train --no-such-flag") == 2);
  CHECK(run(lowbit) == 2);
  CHECK(run(lowbit + " train --data idx:/nonexistent --out " + (dir / "x").string()) == 1);
  CHECK(run(lowbit + " eval --checkpoint /nonexistent.ckpt") == 1);
  const std::string json_out = (dir / "out.json").string();
  CHECK(std::system((lowbit + " train --data " + synthetic_spec() + " --epochs 1 --max-steps 3 --eval-limit 64 --out " +
                     (dir / "run").string() + " --json > " + json_out + " 2>/dev/null").c_str()) == 0);
  const std::string out = read_file(json_out);
  CHECK(out.find("\"test_acc\"") != std::string::npos);
  CHECK(out.find("\"train_images_per_s\"") != std::string::npos);
  CHECK(run(lowbit + " eval --checkpoint " + (dir / "run" / "last.ckpt").string() + " --data " + synthetic_spec()) == 0);
  CHECK(run(lowbit + " bench train --model mlp --batch 8 --seconds 0.1 --warmup 1 --json") == 0);
  CHECK(run(lowbit + " calibrate --checkpoint " + (dir / "run" / "last.ckpt").string() + " --data " + synthetic_spec() +
            " --calibration kl --batches 2 --out " + (dir / "ptq.ckpt").string()) == 0);
  CHECK(run(lowbit + " eval --checkpoint " + (dir / "ptq.ckpt").string() + " --data " + synthetic_spec()) == 0);
  CHECK(run(lowbit + " calibrate --checkpoint " + (dir / "ptq.ckpt").string() + " --out " + (dir / "x.ckpt").string()) == 1);
  CHECK(run(lowbit + " calibrate --checkpoint x --calibration nosuch --out y") == 2);
  CHECK(run(lowbit + " calibrate --checkpoint x --method kl --out y") == 2);
  CHECK(run(lowbit + " train --method nosuch") == 2);
  CHECK(run(lowbit + " train --method pact-sawb --wbits 9 --out " + (dir / "w9").string()) == 1);
  CHECK(run(lowbit + " train --data " + synthetic_spec() + " --method pact-sawb --wbits 2 --abits 2 --epochs 1 "
            "--max-steps 2 --eval-limit 32 --out " + (dir / "q").string()) == 0);
  CHECK(run(lowbit + " eval --checkpoint " + (dir / "q" / "last.ckpt").string() + " --data " + synthetic_spec()) == 0);
}
