// test_custom_quantizer.cpp: a quantizer that only this test defines and registers (issue 26).
// Adding a method is its file, one registration and its test: here all three are this file. The
// method, "fixedclip", is a clipped-linear activation quantizer with a fixed clip of 2:
//   y = round(clip(x, 0, 2) * n / 2) * 2 / n,  n = 2^b - 1, round half-even; dy/dx = 1 on [0, 2)
// Its integer meaning is the runtime's existing "pact" rule with alpha = 2 (quant/runtime/act_code.h:
// c = round(min(max(x, 0), alpha) * (n / alpha))): code_spec() names the rule it exports as, and
// the registration's act_rule points at that rule. It pairs with SAWB weights as policy method
// "fixedclip". Through lowbit::cli::run with the extended registry it appears in --method, trains,
// evaluates and exports; the exported file's logits agree with the fake-quant model's.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/data/dataset.h"
#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/error.h"
#include "models/checkpoint.h"
#include "quant/export/compare.h"
#include "quant/policy.h"
#include "quant/registry.h"
#include "quant/runtime/model_file.h"
#include "quant/training.h"
#include "tools/cli.h"
#include "tools/cli_helpers.h"

using namespace lowbit;
using namespace lowbit::testing;

namespace {

constexpr float kClip = 2.f;

class FixedClipQuantizer : public Quantizer {
 public:
  explicit FixedClipQuantizer(int bits) : Quantizer(bits, QuantTarget::activation, /*data_init=*/false) {
    check_bits("fixedclip", bits);
  }
  std::string type_name() const override { return "FixedClipQuantizer"; }
  std::string method() const override { return "fixedclip"; }
  ActCodeSpec code_spec() const override { return {"pact", bits(), kClip, 0.f}; }  // exports as PACT, alpha 2

  QuantizedCodes codes(const Tensor& x) const override {
    QuantizedCodes q;
    q.shape = x.shape();
    q.bits = bits();
    q.scale = kClip / static_cast<float>(levels());
    q.codes.resize(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) q.codes[static_cast<size_t>(i)] = code(x.data()[i]);
    return q;
  }

 protected:
  Tensor quantize(const Tensor& x) override {
    const float scale = kClip / static_cast<float>(levels());
    Tensor y = Tensor::empty(x.shape());
    for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = static_cast<float>(code(x.data()[i])) * scale;
    return record(y, "fixedclip", {x}, [x](const Tensor& g) -> std::vector<Tensor> {
      if (!x.requires_grad()) return {Tensor()};
      Tensor dx = Tensor::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i)
        dx.data()[i] = (x.data()[i] >= 0.f && x.data()[i] < kClip) ? g.data()[i] : 0.f;
      return {dx};
    });
  }

 private:
  uint8_t code(float v) const {
    const float inv = static_cast<float>(levels()) / kClip;
    return static_cast<uint8_t>(std::nearbyint(std::min(std::max(v, 0.f), kClip) * inv));
  }
};

QuantizerMethod fixedclip_method() {
  return {"fixedclip",
          nullptr,
          [](int bits, const nlohmann::json&) { return std::make_shared<FixedClipQuantizer>(bits); },
          &act_code_rule("pact"),
          {{"fixedclip", "sawb", "fixedclip", "fixed clip-2 linear activations + SAWB weights (a test's method)",
            [](QatRecipe& r, const RecipeContext&) { r.lr = 0.03; }}},
          {}};
}

const QuantizerRegistry& registry() {
  static const QuantizerRegistry r = [] {
    QuantizerRegistry copy = QuantizerRegistry::builtin();
    copy.add(fixedclip_method());
    return copy;
  }();
  return r;
}

// lowbit ARGS through the library entry point; std::cout (help, usage) captured.
struct Ran {
  int status;
  std::string out;
};
Ran lowbit_run(const std::vector<std::string>& args, const QuantizerRegistry& reg = registry()) {
  std::vector<std::string> all = {"lowbit"};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  const int status = cli::run(static_cast<int>(all.size()), argv.data(), reg);
  std::cout.rdbuf(old);
  return {status, captured.str()};
}

}  // namespace

TEST_CASE("a method registered by the program: --method lists it, train, eval, export, runtime parity") {
  const fs::path dir = temp_dir("custom_quantizer");
  SyntheticOptions so;
  so.train_size = 256;
  so.test_size = 64;
  so.height = so.width = 12;
  const std::string data = write_synthetic_idx((dir / "idx").string(), so, false);

  // --method offers it (with its help) only through the registry that has it.
  Ran help = lowbit_run({"train", "--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("fixedclip (fixed clip-2 linear activations + SAWB weights (a test's method))") !=
        std::string::npos);
  CHECK(help.out.find("--pact-init") != std::string::npos);  // a builtin method's option, still a flag
  CHECK(lowbit_run({"train", "--help"}, QuantizerRegistry::builtin()).out.find("fixedclip") == std::string::npos);
  CHECK(lowbit_run({"train", "--method", "fixedclip", "--data", data}, QuantizerRegistry::builtin()).status == 2);
  // Its recipe adjustment is the registration's (nothing in quant/ names it).
  CHECK(default_recipe("fixedclip", 2, 2, false, registry()).lr == doctest::Approx(0.03));
  CHECK(default_recipe("fixedclip", 2, 2, false, registry()).float_epochs == 1);

  // Trains: a few W2A2 steps, quantization on from the first one.
  const std::string out = (dir / "q").string();
  std::vector<std::string> train_args = {"train", "--data", data, "--model", "convnet", "--epochs", "1", "--max-steps",
                                        "4", "--batch", "32", "--threads", "1", "--method", "fixedclip", "--wbits", "2",
                                        "--abits", "2", "--float-epochs", "0", "--out", out};
  REQUIRE(lowbit_run(train_args).status == 0);
  // --resume reads the checkpoint with the same registry (the run is complete: nothing to train).
  train_args.push_back("--resume");
  CHECK(lowbit_run(train_args).status == 0);
  const std::string ckpt = out + "/last.ckpt";
  const Checkpoint ck = Checkpoint::load(ckpt, registry());
  CHECK(ck.spec.policy.method == "fixedclip");
  CHECK(ck.spec.policy.registry == &registry());
  // The builtin registry does not know the method: an error naming it.
  CHECK_THROWS_WITH_AS(Checkpoint::load(ckpt), doctest::Contains("unknown method 'fixedclip'"), Error);

  auto model = ck.build_model(ckpt);
  int fixedclip_layers = 0;
  for (const LayerBits& row : layer_bits(*model)) fixedclip_layers += row.activation.find("fixedclip") != std::string::npos;
  CHECK(fixedclip_layers >= 2);  // every layer but the first (whose input is the image)

  CHECK(lowbit_run({"eval", "--checkpoint", ckpt, "--data", data, "--threads", "1"}).status == 0);

  // Exports and runs: the file's quantize ops use the runtime's pact rule at alpha 2, and the
  // runtime's predictions agree with the fake-quant model's.
  const std::string file = (dir / "q.safetensors").string();
  REQUIRE(lowbit_run({"export", "--checkpoint", ckpt, "--out", file}).status == 0);
  const intq::IntGraph graph = intq::load_int_graph(file);
  int pact_ops = 0, fused = 0;
  for (const auto& op : graph.ops) {
    if (op.kind == intq::OpKind::quantize && op.method == "pact") {
      ++pact_ops;
      CHECK(op.p0 == kClip);
    }
    fused += op.out_codes;  // a GEMM epilogue that quantizes with the next layer's rule (affine form)
  }
  CHECK(pact_ops + fused >= 2);
  Dataset test = load_dataset(data, Split::Test);
  ck.serving.apply_to(test, data);
  intq::CompareStats st;
  DataLoader loader(test, LoaderOptions::evaluation(64));
  for (int64_t s = 0; s < loader.steps(); ++s) {
    Batch b = loader.batch(s);
    intq::compare_batch(*model, graph, b.images, b.labels, st);
  }
  CHECK(st.images == so.test_size);
  CHECK(st.prediction_agreement_isolated() == 1.0);
  CHECK(st.prediction_agreement() >= 0.98);
  CHECK(st.max_isolated_mismatch() <= 1e-3);
  // Fused ops may fold the quantize into the previous GEMM; either way the rule is pact's.
  for (const auto& op : graph.ops)
    if (!op.method.empty() && op.kind == intq::OpKind::quantize) CHECK((op.method == "pact" || op.method == "input"));
  MESSAGE("fixedclip: " << pact_ops << " pact quantize ops, " << fused << " fused, agreement "
                        << st.prediction_agreement());
}
