// test_cli_commands.cpp: every command of the lowbit program on a tiny model (issue 10): train
// (float and W2A2 QAT, a few steps on a small synthetic IDX set), eval, calibrate, export, infer
// (data set and image), inspect, inspect --compare, bench infer and bench train each exit 0 with
// a sane --json summary line; each also answers one bad input with its exit code and its exact
// single `error:` line (or usage exit 2). Evaluating on the IDX test split written as PNG folders
// (folder:DIR with train/ + test/, and with test/ only) gives exactly the IDX accuracy.
// --version names the kernel level that LOWBIT_ISA selects (every level; a bad value: one error).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/conv_direct.h"
#include "core/cpu_features.h"
#include "core/data/dataset.h"
#include "core/data/synthetic.h"
#include "tools/cli_helpers.h"

using namespace lowbit;
using namespace lowbit::testing;
using nlohmann::json;

namespace {

constexpr int64_t kTestImages = 60;

// Tiny synthetic IDX data (12x12, 10 classes) and the checkpoints/model every case uses, made once.
struct Fixture {
  fs::path dir = temp_dir("cli_commands");
  std::string data, fp_ckpt, q_ckpt, model;
  json train_fp, train_q;

  Fixture() {
    SyntheticOptions o;
    o.train_size = 240;
    o.test_size = kTestImages;
    o.height = o.width = 12;
    data = write_synthetic_idx((dir / "idx").string(), o, false);
    const std::string common = " --data " + data + " --model convnet --epochs 1 --max-steps 3 --batch 32 --threads 1 --json";
    CliResult r = run_lowbit(dir, "train" + common + " --out " + (dir / "fp").string());
    REQUIRE_MESSAGE(r.status == 0, r.err);
    train_fp = last_json_line(r.out);
    r = run_lowbit(dir, "train" + common + " --method pact-sawb --wbits 2 --abits 2 --float-epochs 0 --out " +
                            (dir / "q").string());
    REQUIRE_MESSAGE(r.status == 0, r.err);
    train_q = last_json_line(r.out);
    fp_ckpt = (dir / "fp" / "last.ckpt").string();
    q_ckpt = (dir / "q" / "last.ckpt").string();
    model = (dir / "q.safetensors").string();
    r = run_lowbit(dir, "export --checkpoint " + q_ckpt + " --out " + model);
    REQUIRE_MESSAGE(r.status == 0, r.err);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

bool is_percent(const json& v) { return v.is_number() && v.get<double>() >= 0 && v.get<double>() <= 100; }
bool is_positive(const json& v) { return v.is_number() && v.get<double>() > 0 && std::isfinite(v.get<double>()); }

// A bad input: exit 1 and exactly one line, `expected`.
void check_error(const fs::path& dir, const std::string& args, const std::string& expected) {
  CAPTURE(args);
  const CliResult r = run_lowbit(dir, args);
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + expected + "\n");
}

// A usage error: exit 2, and CLI11's message names the option.
void check_usage(const fs::path& dir, const std::string& args, const std::string& mentions) {
  CAPTURE(args);
  const CliResult r = run_lowbit(dir, args);
  CHECK(r.status == 2);
  CHECK(r.err.find(mentions) != std::string::npos);
}

}  // namespace

TEST_CASE("train: --json summary; a data spec that does not exist") {
  Fixture& f = fixture();
  for (const json* j : {&f.train_fp, &f.train_q}) {
    CHECK(is_percent((*j)["test_acc"]));
    CHECK(is_positive((*j)["train_images_per_s"]));
    CHECK((*j)["epochs"] == 1);
    CHECK(is_positive((*j)["seconds"]));
  }
  CHECK(f.train_fp["checkpoint"] == f.fp_ckpt);
  CHECK(f.train_q["checkpoint"] == f.q_ckpt);
  const std::string nosuch = (f.dir / "nosuch").string();
  check_error(f.dir, "train --data idx:" + nosuch + " --out " + (f.dir / "x").string(),
              "error reading " + nosuch + "/train-images-idx3-ubyte[.gz]: missing file: expected " + nosuch +
                  "/train-images-idx3-ubyte or " + nosuch + "/train-images-idx3-ubyte.gz");
  check_usage(f.dir, "train --epochs 0", "--epochs");
}

TEST_CASE("eval: --json summary; a missing checkpoint; data of another size") {
  Fixture& f = fixture();
  const CliResult r = run_lowbit(f.dir, "eval --checkpoint " + f.q_ckpt + " --data " + f.data + " --threads 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json j = last_json_line(r.out);
  CHECK(is_percent(j["test_acc"]));
  CHECK(j["test_acc"] == f.train_q["test_acc"]);  // the same model on the same test split
  CHECK(is_positive(j["loss"]));
  CHECK(j["images"] == kTestImages);
  CHECK(is_positive(j["images_per_s"]));
  const std::string missing = (f.dir / "missing.ckpt").string();
  check_error(f.dir, "eval --checkpoint " + missing + " --data " + f.data, "cannot open checkpoint " + missing + ": no such file");
  check_error(f.dir, "eval --checkpoint " + f.q_ckpt + " --data nosuch:" + f.dir.string(),
              "unknown dataset spec \"nosuch:" + f.dir.string() +
                  "\": expected one of fashion-mnist, fashion-mnist:DIR, mnist:DIR, idx:DIR, cifar10:DIR, folder:DIR");
}

TEST_CASE("calibrate: --json summary; a wrong --calibration value; the old --method; a quantized checkpoint") {
  Fixture& f = fixture();
  const std::string out = (f.dir / "ptq.ckpt").string();
  CliResult r = run_lowbit(f.dir, "calibrate --checkpoint " + f.fp_ckpt + " --data " + f.data +
                                      " --calibration percentile --batches 1 --threads 1 --out " + out + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json j = last_json_line(r.out);
  CHECK(j["checkpoint"] == out);
  CHECK(j["calibration"] == "percentile");
  REQUIRE(j["clips"].is_object());
  CHECK(j["clips"].size() >= 3);  // one per quantized activation of the convnet
  for (const auto& [name, clip] : j["clips"].items()) {
    CAPTURE(name);
    CHECK(is_positive(clip));
  }
  r = run_lowbit(f.dir, "eval --checkpoint " + out + " --data " + f.data + " --threads 1 --json");
  CHECK(r.status == 0);
  CHECK(is_percent(last_json_line(r.out)["test_acc"]));
  check_usage(f.dir, "calibrate --checkpoint " + f.fp_ckpt + " --calibration nosuch --out " + out, "--calibration");
  // The calibration algorithm was --method (the quantization method everywhere else): a usage
  // error that names the new flag.
  check_usage(f.dir, "calibrate --checkpoint " + f.fp_ckpt + " --method kl --out " + out,
              "calibrate's algorithm is now --calibration");
  check_error(f.dir, "calibrate --checkpoint " + f.q_ckpt + " --data " + f.data + " --out " + out,
              "calibrate: " + f.q_ckpt + " is already quantized (method pact-sawb); calibrate a float checkpoint");
}

TEST_CASE("export: --json summary; a float checkpoint") {
  Fixture& f = fixture();
  const std::string out = (f.dir / "again.safetensors").string();
  const CliResult r = run_lowbit(f.dir, "export --checkpoint " + f.q_ckpt + " --out " + out + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  const json j = last_json_line(r.out);
  CHECK(j["file"] == out);
  CHECK(is_positive(j["bytes"]));
  CHECK(j["bytes"] == fs::file_size(out));
  CHECK(is_positive(j["fp32_param_bytes"]));
  CHECK(j["ratio"].get<double>() > 1.0);  // W2A2 middle layers: smaller than float32
  CHECK(j["method"] == "pact-sawb");
  REQUIRE(j["layers"].size() == 4);  // 3 convs + the classifier
  for (const auto& l : j["layers"]) CHECK(is_positive(l["bytes"]));
  check_error(f.dir, "export --checkpoint " + f.fp_ckpt + " --out " + out,
              "checkpoint " + f.fp_ckpt + " holds a float model; export needs a QAT checkpoint (lowbit train --method ...)");
}

TEST_CASE("infer: --json on the test split and on an image; both or neither of --data and images") {
  Fixture& f = fixture();
  CliResult r = run_lowbit(f.dir, "infer --model " + f.model + " --data " + f.data + " --threads 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  json j = last_json_line(r.out);
  CHECK(is_percent(j["test_acc"]));
  CHECK(j["images"] == kTestImages);
  CHECK(is_positive(j["images_per_s"]));
  // One test image as a PNG file: top-k classes with probabilities.
  Dataset test = load_dataset(f.data, Split::Test);
  test.labels.resize(1);
  test.images.resize(static_cast<size_t>(test.image_bytes()));
  write_image_folder((f.dir / "one").string(), test, "png");
  const std::string png = (f.dir / "one" / "0" / "00000.png").string();
  r = run_lowbit(f.dir, "infer --model " + f.model + " --top-k 3 --threads 1 --json " + png);
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = last_json_line(r.out);
  REQUIRE(j["images"].size() == 1);
  CHECK(j["images"][0]["image"] == png);
  REQUIRE(j["images"][0]["top"].size() == 3);
  double p_sum = 0;
  for (const auto& t : j["images"][0]["top"]) {
    CHECK(t["p"].get<double>() >= 0);
    p_sum += t["p"].get<double>();
  }
  CHECK(p_sum <= 1.0 + 1e-9);
  CHECK(j["images"][0]["top"][0]["p"] >= j["images"][0]["top"][1]["p"]);
  check_error(f.dir, "infer --model " + f.model + " --data " + f.data + " " + png,
              "infer needs exactly one of --data SPEC or image files");
  const std::string missing = (f.dir / "missing.safetensors").string();
  check_error(f.dir, "infer --model " + missing + " --data " + f.data, "cannot open model file " + missing + ": no such file");
}

TEST_CASE("inspect and inspect --compare: --json summaries; --compare without --data") {
  Fixture& f = fixture();
  CliResult r = run_lowbit(f.dir, "inspect " + f.model + " --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  json j = last_json_line(r.out);
  CHECK(is_positive(j["parameter_bytes"]));
  REQUIRE(j["layers"].is_array());
  int64_t weighted = 0;
  for (const auto& l : j["layers"])
    if (l.contains("bytes")) {
      ++weighted;
      CHECK(is_positive(l["bytes"]));
      CHECK((l["weight_bits"] == 2 || l["weight_bits"] == 8));
      // The kernel it runs with at this CPU's level: a row of the level's conv table or its GEMM.
      REQUIRE(l.contains("kernel"));
      const std::string kernel = l["kernel"].get<std::string>();
      CHECK(kernel.find('.') != std::string::npos);
    }
  CHECK(weighted == 4);
  r = run_lowbit(f.dir, "inspect " + f.model + " --compare " + f.q_ckpt + " --data " + f.data + " --threads 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = last_json_line(r.out);
  const double agreement = j["prediction_agreement"].get<double>();
  CHECK(agreement >= 0.0);
  CHECK(agreement <= 1.0);
  const double isolated = j["prediction_agreement_isolated"].get<double>();
  CHECK(isolated >= 0.0);
  CHECK(isolated <= 1.0);
  CHECK(j["images"] == kTestImages);
  CHECK(is_percent(j["fake_quant_acc"]));
  CHECK(is_percent(j["int_acc"]));
  CHECK(j["max_code_mismatch"].get<double>() >= 0.0);
  CHECK(j["max_code_mismatch"].get<double>() <= 1.0);
  CHECK(j["layers"].size() >= 1);
  check_error(f.dir, "inspect " + f.model + " --compare " + f.q_ckpt, "inspect --compare needs --data SPEC");
}

TEST_CASE("bench infer and bench train: short --json runs; a wrong flag value") {
  Fixture& f = fixture();
  CliResult r = run_lowbit(f.dir, "bench infer --model " + f.model + " --batch 8 --seconds 0.05 --rounds 1 --threads 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  json j = last_json_line(r.out);
  for (const char* k : {"images_per_s", "float_images_per_s", "ratio", "batch1_ms", "images_per_cpu_s", "cpu_ratio"}) {
    CAPTURE(k);
    CHECK(is_positive(j[k]));
  }
  CHECK(j["batch"] == 8);
  CHECK(j["rounds"] == 1);
  CHECK(j["threads"] == 1);
  CHECK(j["kernels"].size() == 4);  // one per conv / linear op
  CHECK(j["isa"].is_string());
  check_usage(f.dir, "bench infer --model " + f.model + " --rounds 0", "--rounds");

  // bench conv: every kernel of every level on the 16-channel layers, each with a positive rate.
  r = run_lowbit(f.dir, "bench conv --quick --repeats 1 --images 1 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = last_json_line(r.out);
  REQUIRE(j["results"].is_array());
  CHECK(j["results"].size() >= 1);
  for (const auto& e : j["results"]) {
    CHECK(is_positive(e["gmacs"]));
    CHECK(e["kernel_name"].get<std::string>().rfind(e["level"].get<std::string>() + ".", 0) == 0);
  }
  check_usage(f.dir, "bench conv --images 0", "--images");

  // bench fconv: the float direct kernels of the active level on one layer (none at scalar: an error).
  r = run_lowbit(f.dir, "bench fconv --images 1 --repeats 1 --filter stage3");
  if (direct_conv::kernels_for(kernels::active_isa_level()).forward != nullptr) {
    REQUIRE_MESSAGE(r.status == 0, r.err);
    CHECK(r.out.find("resnet20 stage3 64->64") != std::string::npos);
  } else {
    CHECK(r.status != 0);
  }
  check_usage(f.dir, "bench fconv --repeats 0", "--repeats");

  r = run_lowbit(f.dir, "bench train --model convnet --input 12 --batch 8 --seconds 0.05 --warmup 1 --threads 1 "
                        "--method pact-sawb --wbits 2 --abits 2 --json");
  REQUIRE_MESSAGE(r.status == 0, r.err);
  j = last_json_line(r.out);
  CHECK(j["model"] == "convnet");
  CHECK(j["method"] == "pact-sawb");
  CHECK(j["wbits"] == 2);
  CHECK(j["batch"] == 8);
  CHECK(j["ranks"] == 1);
  CHECK(is_positive(j["images_per_s"]));
  CHECK(is_positive(j["step_ms"]));
  CHECK(is_positive(j["peak_rss_mb"]));
  check_error(f.dir, "bench train --model vgg --batch 8 --seconds 0.05",
              "unknown model 'vgg' (known: mlp, convnet, resnet20, resnet32, resnet56, resnet18)");
}

TEST_CASE("--version names the kernel level; LOWBIT_ISA selects it or is one error line") {
  const fs::path dir = temp_dir("cli_isa");
  struct RestoreEnv {  // the child inherits LOWBIT_ISA; put back whatever the test run had
    const char* v = std::getenv("LOWBIT_ISA");
    std::string saved = v ? v : "";
    bool had = v != nullptr;
    ~RestoreEnv() { had ? setenv("LOWBIT_ISA", saved.c_str(), 1) : unsetenv("LOWBIT_ISA"); }
  } restore;
  for (kernels::Isa isa : kernels::kIsaPreference) {
    const std::string name = kernels::isa_name(isa);
    CAPTURE(name);
    setenv("LOWBIT_ISA", name.c_str(), 1);
    if (kernels::isa_supported(isa)) {
      const CliResult r = run_lowbit(dir, "--version");
      CHECK(r.status == 0);
      CHECK(r.out.find("(integer kernels: " + name + ")") != std::string::npos);
    } else {
      check_error(dir, "--version", "LOWBIT_ISA=" + name + " asks for an ISA this CPU does not support (available: " +
                                        kernels::supported_isa_names() + ")");
    }
  }
  setenv("LOWBIT_ISA", "avx9", 1);
  check_error(dir, "--version", "LOWBIT_ISA: unknown ISA 'avx9', expected one of amx, avx512, avx_vnni, avx2, scalar");
}

TEST_CASE("eval on image folders gives exactly the accuracy of the IDX files") {
  Fixture& f = fixture();
  const auto eval_json = [&](const std::string& spec) {
    const CliResult r = run_lowbit(f.dir, "eval --checkpoint " + f.fp_ckpt + " --data " + spec + " --threads 1 --json");
    REQUIRE_MESSAGE(r.status == 0, r.err);
    return last_json_line(r.out);
  };
  const json idx = eval_json(f.data);
  // DIR/test/<class>/ holds the IDX test split as PNGs, DIR/train/<class>/ a few training images
  // (its statistics differ from the IDX train split's: the checkpoint's normalization is used).
  const fs::path folder = f.dir / "folder";
  write_image_folder((folder / "test").string(), load_dataset(f.data, Split::Test), "png");
  Dataset train = load_dataset(f.data, Split::Train);
  train.labels.resize(20);
  train.images.resize(static_cast<size_t>(20 * train.image_bytes()));
  write_image_folder((folder / "train").string(), train, "png");
  const json with_train = eval_json("folder:" + folder.string());
  CHECK(with_train["images"] == kTestImages);
  CHECK(with_train["test_acc"] == idx["test_acc"]);
  // Only test/: an evaluation set of its own, same accuracy; training on it is a clear error.
  fs::remove_all(folder / "train");
  const json test_only = eval_json("folder:" + folder.string());
  CHECK(test_only["images"] == kTestImages);
  CHECK(test_only["test_acc"] == idx["test_acc"]);
  check_error(f.dir, "train --data folder:" + folder.string() + " --out " + (f.dir / "t").string(),
              "error reading " + folder.string() + ": has test/ but no train/ (expected " +
                  (folder / "train").string() +
                  "/<class>/ images to train on; a folder with only test/ or val/ is an evaluation set)");
}
