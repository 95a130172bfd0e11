// test_checkpoint.cpp: Checkpoint's round trip and its validation on resume: a run resumed with
// other quantization bits, a model-only checkpoint given to resume and a checkpoint that lacks a
// field are each one lowbit::Error naming both sides or the field; --init-from still starts a new
// run from a checkpoint's weights; serving info (normalization) travels with the checkpoint.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "common/temp_dir.h"
#include "core/data/synthetic.h"
#include "core/error.h"
#include "core/serialize.h"
#include "models/checkpoint.h"
#include "models/training_run.h"

using namespace lowbit;
using lowbit::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

std::string synthetic_spec() {
  static std::string spec = [] {
    SyntheticOptions o;
    o.train_size = 256;
    o.test_size = 64;
    return write_synthetic_idx(temp_dir("data").string(), o, false);
  }();
  return spec;
}

TrainOptions w2a2(const fs::path& out) {
  TrainOptions o;
  o.data = synthetic_spec();
  o.epochs = 2;
  o.batch = 64;
  o.max_steps = 2;
  o.out = out.string();
  o.progress = false;
  o.policy.method = "pact-sawb";
  o.policy.wbits = o.policy.abits = 2;
  o.policy.options["pact_init"] = "fixed";
  return o;
}

// A fresh folder holding a finished one-epoch W2A2 run (last.ckpt, best.ckpt).
fs::path one_epoch_run(const std::string& name) {
  const fs::path dir = temp_dir(name);
  TrainOptions o = w2a2(dir);
  o.epochs = 1;
  train(o);
  return dir;
}

std::string error_of(const TrainOptions& o) {
  try {
    train(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("resuming a W2A2 run with --wbits 4 is one error naming both policies") {
  const fs::path dir = temp_dir("bits");
  TrainOptions first = w2a2(dir);
  first.stop_after = 1;
  train(first);
  TrainOptions four = w2a2(dir);
  four.resume = true;
  four.policy.wbits = 4;
  const std::string path = (dir / "last.ckpt").string();
  CHECK(error_of(four) ==
        "cannot resume from " + path + ": it holds model 'convnet' (1x28x28, 10 classes) with quantization "
        "{\"abits\":2,\"first_last_bits\":8,\"method\":\"pact-sawb\",\"options\":{\"pact_init\":\"fixed\"},"
        "\"overrides\":[],\"quantize_input\":true,\"wbits\":2}, but this run is model 'convnet' (1x28x28, 10 classes) "
        "with quantization {\"abits\":2,\"first_last_bits\":8,\"method\":\"pact-sawb\",\"options\":{\"pact_init\":"
        "\"fixed\"},\"overrides\":[],\"quantize_input\":true,\"wbits\":4}; resume with the checkpoint's options or start a new run "
        "from its weights (TrainOptions::init_from, load_weights)");
  TrainOptions other_model = w2a2(dir);
  other_model.resume = true;
  other_model.model = "mlp";
  CHECK(error_of(other_model).find("it holds model 'convnet'") != std::string::npos);
  CHECK(error_of(other_model).find("this run is model 'mlp'") != std::string::npos);
  // The same options resume and finish the run.
  TrainOptions same = w2a2(dir);
  same.resume = true;
  CHECK(train(same).epochs == 2);
  fs::remove_all(dir);
}

TEST_CASE("a model-only checkpoint given to resume is a clear error; --init-from accepts it") {
  const fs::path dir = temp_dir("model_only");
  TrainOptions fp = w2a2(dir / "fp");
  fp.policy = QuantPolicy{};
  fp.epochs = 1;
  train(fp);
  Checkpoint ck = Checkpoint::load((dir / "fp" / "last.ckpt").string());
  REQUIRE(ck.training.has_value());
  ck.training.reset();  // what calibrate writes: weights, spec, serving info, no training state
  fs::create_directories(dir / "resume");
  const std::string path = (dir / "resume" / "last.ckpt").string();
  ck.save(path);
  TrainOptions r = fp;
  r.out = (dir / "resume").string();
  r.resume = true;
  CHECK(error_of(r) == "cannot resume from " + path + ": it is a model-only checkpoint (it lacks 'epoch', the "
                       "optimizer state and the RNG state); resume from a training checkpoint (last.ckpt) or start "
                       "a new run from its weights (TrainOptions::init_from, load_weights)");
  TrainOptions init = w2a2(dir / "init");
  init.epochs = 1;
  init.init_from = path;
  CHECK(train(init).epochs == 1);
  fs::remove_all(dir);
}

TEST_CASE("a checkpoint that lacks a field names it") {
  const fs::path dir = one_epoch_run("fields");
  const std::string path = (dir / "last.ckpt").string();
  StateDict sd = load_state_dict_file(path);
  for (const char* field : {"schedule", "serving", "global_step"}) {
    StateDict broken = sd;
    broken.strings.erase(field);
    broken.scalars.erase(field);
    const std::string bad = (dir / (std::string(field) + ".ckpt")).string();
    save_state_dict(bad, broken);
    CHECK_THROWS_WITH_AS(Checkpoint::load(bad), ("checkpoint " + bad + " lacks '" + field + "'").c_str(), Error);
  }
  StateDict no_optim = sd;
  for (auto it = no_optim.strings.begin(); it != no_optim.strings.end();)
    it = it->first.starts_with("optim.") ? no_optim.strings.erase(it) : std::next(it);
  save_state_dict((dir / "optim.ckpt").string(), no_optim);
  CHECK_THROWS_WITH_AS(Checkpoint::load((dir / "optim.ckpt").string()), doctest::Contains("lacks 'optim.type'"), Error);
  fs::remove_all(dir);
}

TEST_CASE("serving info: the checkpoint's normalization replaces the data's") {
  const fs::path dir = one_epoch_run("serving");
  Checkpoint ck = Checkpoint::load((dir / "last.ckpt").string());
  Dataset test = load_dataset(synthetic_spec(), Split::Test);
  CHECK(ck.serving.mean == test.mean);  // trained on this data
  CHECK(ck.serving.class_names.size() == 10);
  ck.serving.mean = {0.5f};
  ck.serving.std = {0.25f};
  ck.serving.apply_to(test, "synthetic");
  CHECK(test.mean == std::vector<float>{0.5f});
  CHECK(test.std == std::vector<float>{0.25f});
  // Round trip keeps every field, random streams (a Dropout's, by module name) and architecture too.
  ck.training->rng["5.rng"] = {1, 2, 3, 18446744073709551615ULL};
  ck.save((dir / "copy.ckpt").string());
  const Checkpoint back = Checkpoint::load((dir / "copy.ckpt").string());
  CHECK(back.serving.mean == ck.serving.mean);
  CHECK(back.data == synthetic_spec());
  CHECK(back.training->rng == ck.training->rng);
  CHECK(back.training->rng.at("5.rng")[3] == 18446744073709551615ULL);
  REQUIRE(ck.spec.architecture.is_object());  // a zoo model's checkpoint records it too
  CHECK(back.spec.architecture == ck.spec.architecture);
  CHECK(back.notes.count("options") == 1);
  Dataset wrong = make_synthetic_dataset({.train_size = 16, .test_size = 16, .height = 12, .width = 12}, Split::Test);
  CHECK_THROWS_WITH_AS(ck.serving.apply_to(wrong, "small"), doctest::Contains("does not match the checkpoint"), Error);
  fs::remove_all(dir);
}

TEST_CASE("numbers a checkpoint's model spec sizes things from are bounded before use") {
  const fs::path dir = one_epoch_run("bounds");
  const StateDict sd = load_state_dict_file((dir / "last.ckpt").string());
  auto with = [&](const std::string& key, double value) {
    StateDict broken = sd;
    broken.scalars[key] = value;
    const std::string bad = (dir / (key + ".ckpt")).string();
    save_state_dict(bad, broken);
    return bad;
  };
  // 2^40 input channels used to reach make_model, which tried to allocate the first conv.
  std::string bad = with("model.in_channels", 1099511627776.0);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad),
                       ("checkpoint " + bad + ": model.in_channels = 1099511627776 is outside [1, 65536]").c_str(), Error);
  bad = with("model.height", 0);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad), ("checkpoint " + bad + ": model.height = 0 is outside [1, 16384]").c_str(),
                       Error);
  bad = with("model.num_classes", 2.5);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad),
                       ("checkpoint " + bad + ": model.num_classes = 2.5 is outside [1, 65536]").c_str(), Error);
  bad = with("model.width", 1e300);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad), ("checkpoint " + bad + ": model.width = 1.0000000000000001e+300 is outside [1, 16384]").c_str(),
                       Error);
  bad = with("epoch", -3);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad), doctest::Contains(": epoch = -3 is outside [0, "), Error);
  // The serving input size is bounded too.
  StateDict serving = sd;
  auto j = nlohmann::json::parse(serving.strings.at("serving"));
  j["channels"] = int64_t{1} << 40;
  serving.strings["serving"] = j.dump();
  bad = (dir / "serving.ckpt").string();
  save_state_dict(bad, serving);
  CHECK_THROWS_WITH_AS(Checkpoint::load(bad), doctest::Contains("channels = 1099511627776 is outside [1, 65536]"), Error);
  // A valid checkpoint still loads and builds its model.
  CHECK(Checkpoint::load((dir / "last.ckpt").string()).build_model("last.ckpt")->parameter_count() > 0);
  fs::remove_all(dir);
}
