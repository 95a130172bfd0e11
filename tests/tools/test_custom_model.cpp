// test_custom_model.cpp: a model a program defines (tools/examples/train_custom_w2a2.cpp: a W2A2
// Sequential CNN of library layers, trained a few steps with Trainer) is served by every `lowbit`
// command from its checkpoint alone, through the architecture the checkpoint records: `lowbit eval`
// gives the program's own accuracy and loss, `lowbit export` a file whose integer logits equal
// those of the program's own export_model() file, `lowbit bench infer` rebuilds the float model
// from the export's provenance, `inspect --compare` reports the program's fake-quant accuracy; a
// float program model calibrates and exports; a model with a layer type of the program's own gives
// one error naming the layer and its type.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/ops_elementwise.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/checkpoint.h"
#include "quant/runtime/int_model.h"
#include "tools/cli_helpers.h"

using namespace lowbit;
using lowbit::testing::CliResult;
using lowbit::testing::last_json_line;
using lowbit::testing::run_lowbit;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  fs::path dir;
  std::string data;
  json program;  // the example's JSON line
  std::string ckpt;
};

Fixture& fixture() {
  static Fixture f = [] {
    Fixture x;
    x.dir = lowbit::testing::temp_dir("custom_model");
    SyntheticOptions o;
    o.train_size = 128;
    o.test_size = 48;
    o.height = o.width = 12;
    x.data = write_synthetic_idx((x.dir / "idx").string(), o, false);
    const char* exe = std::getenv("TRAIN_CUSTOM_EXE");
    REQUIRE(exe != nullptr);
    const fs::path out = x.dir / "run", log = x.dir / "program.txt";
    const int status = std::system((std::string(exe) + " " + x.data + " " + out.string() + " 4 >" + log.string()).c_str());
    REQUIRE(status == 0);
    x.program = last_json_line(lowbit::testing::read_file(log));
    REQUIRE(x.program.is_object());
    x.ckpt = x.program["checkpoint"].get<std::string>();
    return x;
  }();
  return f;
}

// The first `n` test images as `lowbit` feeds them: the checkpoint's normalization.
Tensor first_test_images(const Fixture& f, int64_t n) {
  Dataset test = load_dataset(f.data, Split::Test);
  Checkpoint::load(f.ckpt).serving.apply_to(test, f.data);
  DataLoader loader(test, LoaderOptions::evaluation(n));
  return loader.batch(0).images;
}

}  // namespace

TEST_CASE("lowbit eval of a program-defined W2A2 model equals the program's own evaluation") {
  Fixture& f = fixture();
  const Checkpoint ck = Checkpoint::load(f.ckpt);
  CHECK(ck.spec.name.empty());
  REQUIRE(ck.spec.architecture.is_object());
  CHECK(ck.spec.architecture["type"] == "Sequential");
  const CliResult r = run_lowbit(f.dir, "eval --checkpoint " + f.ckpt + " --data " + f.data + " --batch 64 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json j = last_json_line(r.out);
  CHECK(j["images"] == f.program["images"]);
  CHECK(j["test_acc"].get<double>() == f.program["test_acc"].get<double>());
  CHECK(j["loss"].get<double>() == f.program["loss"].get<double>());
}

TEST_CASE("lowbit export of its checkpoint gives the program's integer logits; bench infer and inspect --compare run") {
  Fixture& f = fixture();
  const std::string model = (f.dir / "cli.lbm").string();
  CliResult r = run_lowbit(f.dir, "export --checkpoint " + f.ckpt + " --out " + model + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json e = last_json_line(r.out);
  CHECK(e["method"] == "pact-sawb");  // from the architecture's quantizers
  CHECK(e["fp32_param_bytes"].get<int64_t>() > 0);
  // The same images through the CLI's export and through the program's own export.
  const Tensor x = first_test_images(f, 4);
  const IntModel cli = IntModel::load(model, {.threads = 1, .isa = ""});
  std::vector<float> logits(static_cast<size_t>(4 * cli.num_classes()));
  cli.run(x.data(), 4, logits.data());
  CHECK(logits == f.program["logits"].get<std::vector<float>>());

  r = run_lowbit(f.dir, "bench infer --model " + model + " --batch 4 --seconds 0.05 --rounds 1 --threads 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(last_json_line(r.out)["images_per_s"].get<double>() > 0);

  r = run_lowbit(f.dir, "inspect " + model + " --compare " + f.ckpt + " --data " + f.data + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json c = last_json_line(r.out);
  CHECK(c["images"] == f.program["images"]);
  CHECK(c["fake_quant_acc"].get<double>() == doctest::Approx(f.program["test_acc"].get<double>()).epsilon(1e-12));
  CHECK(c["prediction_agreement"].get<double>() > 0.5);
}

TEST_CASE("a float program-defined model calibrates to W2A2 and exports") {
  Fixture& f = fixture();
  const Dataset train = load_dataset(f.data, Split::Train);
  Generator init(5);
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 1, .out_channels = 6, .kernel = 3, .padding = 1}, init));
  model->add(std::make_shared<BatchNorm2d>(6, 1e-5f, 0.1f, /*fused_relu=*/true));
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Flatten>());
  model->add(std::make_shared<Linear>(6 * 6 * 6, 10, init));
  Checkpoint ck;  // model-only, as a program saves its own
  ck.spec.architecture = model_architecture(*model);
  ck.model = model->state_dict();
  ck.serving = ServingInfo::from_dataset(train);
  const std::string fp = (f.dir / "float.ckpt").string(), q = (f.dir / "ptq.ckpt").string();
  ck.save(fp);
  CliResult r = run_lowbit(f.dir, "calibrate --checkpoint " + fp + " --data " + f.data + " --batches 1 --out " + q + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const Checkpoint back = Checkpoint::load(q);
  CHECK(back.spec.name.empty());
  CHECK(back.spec.architecture.dump().find("QuantConv2d") != std::string::npos);
  r = run_lowbit(f.dir, "export --checkpoint " + q + " --out " + (f.dir / "ptq.lbm").string() + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  r = run_lowbit(f.dir, "eval --checkpoint " + q + " --data " + f.data + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
}

namespace {
// A layer type only this program knows.
class MyBlock : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
  std::string type_name() const override { return "MyBlock"; }
};
}  // namespace

TEST_CASE("a model with a layer type of the program's own: one error naming the layer, its type and the library calls") {
  Fixture& f = fixture();
  const Dataset train = load_dataset(f.data, Split::Train);
  Generator init(5);
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Flatten>());
  model->add(std::make_shared<MyBlock>());
  model->add(std::make_shared<Linear>(144, 10, init));
  Checkpoint ck;
  ck.spec.architecture = model_architecture(*model);
  ck.model = model->state_dict();
  ck.serving = ServingInfo::from_dataset(train);
  const std::string path = (f.dir / "mine.ckpt").string();
  ck.save(path);
  const CliResult r = run_lowbit(f.dir, "eval --checkpoint " + path + " --data " + f.data);
  CHECK(r.status == 1);
  CHECK(r.err.rfind("error: checkpoint " + path + ": model layer '1' has type 'MyBlock', which has no registered config", 0) == 0);
  CHECK(r.err.find("export_model(module, serving, path)") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}
