// test_export.cpp: export of QAT models to the integer graph and its file: the parity contract
// (fake-quant eval vs integer runtime: predictions, per-layer codes) for every method on convnet
// and resnet20 trained a few steps on synthetic data, the file round trip, and a malformed-file
// corpus (truncated, bad offsets, overlap, absurd shapes, wrong bits, broken JSON) that must
// produce one clear lowbit::Error each.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <string>

#include "core/autograd.h"
#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/error.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "models/registry.h"
#include "optim/make_optimizer.h"
#include "quant/export/compare.h"
#include "quant/export/convert.h"
#include "quant/export/model_file.h"
#include "quant/policy.h"
#include "quant/quant_layers.h"
#include "quant/training.h"

using namespace lowbit;
using namespace lowbit::intq;
using nlohmann::json;

namespace {

struct Trained {
  std::shared_ptr<Module> model;
  Dataset test;
  IntModel im;
};

// Train `model_name` with `method` W{wbits}A{abits} for a few steps on synthetic data.
Trained train_small(const std::string& model_name, const std::string& method, int wbits, int abits,
                    int64_t channels = 1, int64_t size = 28, int steps = 40) {
  SyntheticOptions so;
  so.train_size = 640;
  so.test_size = 256;
  so.channels = channels;
  so.height = so.width = size;
  const Dataset train = make_synthetic_dataset(so, Split::Train);
  Trained t{nullptr, make_synthetic_dataset(so, Split::Test), {}};
  manual_seed(1);
  t.model = make_model(model_name, {channels, size, size, 10});
  QuantPolicy policy;
  policy.method = method;
  policy.wbits = wbits;
  policy.abits = abits;
  convert_model(*t.model, policy);
  auto opt = make_optimizer("sgd", make_param_groups(*t.model, 0.05, 1e-4));
  LoaderOptions lo;
  lo.batch_size = 64;
  DataLoader loader(train, lo);
  t.model->train();
  for (int s = 0; s < steps; ++s) {
    set_quantization_enabled(s >= 5);  // short float warm-up, then QAT
    loader.set_epoch(s / loader.steps());
    Batch b = loader.batch(s % loader.steps());
    opt->zero_grad();
    Tensor loss = cross_entropy(t.model->forward(b.images), b.labels);
    loss.backward();
    opt->step();
  }
  set_quantization_enabled(true);
  t.model->eval();
  ExportInfo info;
  info.channels = channels;
  info.height = info.width = size;
  info.mean = t.test.mean;
  info.std = t.test.std;
  info.class_names = t.test.class_names;
  info.method = method;
  info.provenance = {{"model", model_name}, {"policy", policy.to_json()}};
  t.im = convert_to_int(*t.model, info);
  return t;
}

CompareStats compare_on_test(Trained& t, const IntModel& im) {
  CompareStats st;
  DataLoader loader(t.test, LoaderOptions::evaluation(128));
  for (int64_t s = 0; s < loader.steps(); ++s) {
    Batch b = loader.batch(s);
    compare_batch(*t.model, im, b.images, b.labels, st);
  }
  return st;
}

void check_parity(const std::string& model, const std::string& method, int wbits, int abits, int64_t channels = 1,
                  int64_t size = 28) {
  CAPTURE(model);
  CAPTURE(method);
  CAPTURE(wbits);
  Trained t = train_small(model, method, wbits, abits, channels, size);
  // Through the file: what is served is what was written.
  const IntModel loaded = parse_int_model(serialize_int_model(t.im), "memory");
  const CompareStats st = compare_on_test(t, loaded);
  MESSAGE(model << " " << method << " W" << wbits << "A" << abits << ": agreement " << st.prediction_agreement()
                << ", fake acc " << st.fake_correct << "/" << st.images << ", int acc " << st.int_correct
                << ", max code mismatch " << st.max_code_mismatch());
  for (const auto& l : st.layers) MESSAGE("  layer " << l.name << ": " << l.mismatched << "/" << l.total);
  // The weight codes the file holds are the weights the fake-quant forward uses.
  for (auto& [name, m] : t.model->named_modules()) {
    std::shared_ptr<Quantizer> wq;
    Tensor w, qw;
    if (auto qc = std::dynamic_pointer_cast<QuantConv2d>(m)) {
      NoGradGuard g;
      w = qc->weight;
      qw = qc->quantized_weight();
      wq = qc->weight_quantizer;
    } else if (auto ql = std::dynamic_pointer_cast<QuantLinear>(m)) {
      NoGradGuard g;
      w = ql->weight;
      qw = ql->quantized_weight();
      wq = ql->weight_quantizer;
    } else {
      continue;
    }
    const Tensor dq = wq->codes(w).dequantize();
    int64_t differ = 0;
    for (int64_t i = 0; i < w.numel(); ++i)
      differ += std::abs(dq.data()[i] - qw.data()[i]) > 1e-5f * (1.f + std::abs(qw.data()[i]));
    const std::string layer = name;  // clang 14: structured bindings cannot be captured
    CAPTURE(layer);
    CHECK(differ == 0);
  }
  CHECK(st.images == t.test.size());
  CHECK(st.prediction_agreement() >= 0.999);
  CHECK(std::abs(st.fake_correct - st.int_correct) <= 1);  // 256 images: within one prediction
  // Mismatches come from the fake-quant side's float conv accumulation near rounding ties; the
  // low-bit pre-activations sit on a lattice, so one near-tie value recurs over many pixels.
  // 8-bit inputs (the last layer) have 64x finer steps than 2-bit ones, hence the looser bound.
  for (const auto& l : st.layers) {
    CAPTURE(l.name);
    CHECK(l.total > 0);
    int act_bits = 8;
    for (const auto& op : loaded.ops)
      if (op.name == l.name) act_bits = op.act_bits;
    CHECK(l.rate() <= (act_bits >= 8 ? 2e-3 : 2e-4));
  }
  // Weight bytes: packed codes are bits/32 of float.
  CHECK(loaded.parameter_bytes() == t.im.parameter_bytes());
}

std::string header_of(const std::string& bytes) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return bytes.substr(8, n);
}

std::string with_header(const std::string& bytes, const std::string& header) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  std::string out(8, '\0');
  const uint64_t m = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((m >> (8 * i)) & 0xff);
  return out + header + bytes.substr(8 + n);
}

// The header and the graph of a file, edited by `edit`, written back.
std::string edit_json(const std::string& bytes, const std::function<void(json& header, json& graph)>& edit) {
  json h = json::parse(header_of(bytes));
  json g = json::parse(h["__metadata__"]["graph"].get<std::string>());
  edit(h, g);
  h["__metadata__"]["graph"] = g.dump();
  return with_header(bytes, h.dump());
}

void expect_error(const std::string& bytes, const std::string& fragment) {
  CAPTURE(fragment);
  try {
    parse_int_model(bytes, "bad.safetensors");
    FAIL("no error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.find("bad.safetensors") != std::string::npos);
    CHECK(msg.find(fragment) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("pact-sawb convnet W2A2: fake-quant and integer runtime agree") { check_parity("convnet", "pact-sawb", 2, 2); }
TEST_CASE("pact-sawb convnet W4A4") { check_parity("convnet", "pact-sawb", 4, 4); }
TEST_CASE("pact-sawb resnet20 W2A2") { check_parity("resnet20", "pact-sawb", 2, 2, 3, 16); }
TEST_CASE("other methods: dorefa, pact, qil, lsq") {
  for (const char* m : {"dorefa", "pact", "qil", "lsq"}) check_parity("convnet", m, 2, 2);
  check_parity("resnet20", "lsq", 4, 4, 3, 16);
}
TEST_CASE("mlp W8A8 (flatten of the float input, linear-only graph)") { check_parity("mlp", "pact-sawb", 8, 8); }

TEST_CASE("quantize ops use the training expression, ties to even") {
  IntOp op;
  op.kind = OpKind::quantize;
  op.method = "pact";
  op.bits = 2;
  op.p0 = 3.f;  // n/alpha = 1: code = round(x)
  CHECK(quantize_value(op, 0.5f) == 0);
  CHECK(quantize_value(op, 1.5f) == 2);
  CHECK(quantize_value(op, 2.5f) == 2);
  CHECK(quantize_value(op, 9.f) == 3);
  CHECK(quantize_value(op, -1.f) == 0);
  op.method = "input";
  op.bits = 8;
  op.p0 = 1.f;
  CHECK(quantize_value(op, 0.f) == 127);
  CHECK(quantize_value(op, -300.f) == 0);
  CHECK(quantize_value(op, 2.5f) == 129);
}

TEST_CASE("file round trip and malformed-file corpus") {
  Trained t = train_small("convnet", "pact-sawb", 2, 2, 1, 28, 8);
  const std::string good = serialize_int_model(t.im);
  const IntModel back = parse_int_model(good, "good");
  REQUIRE(back.ops.size() == t.im.ops.size());
  Tensor x = Tensor::randn({3, 1, 28, 28}, global_generator());
  CHECK(back.run(x).to_vector() == t.im.run(x).to_vector());
  // Size: the W2A2 convnet's weights.
  int64_t fp32 = 0;
  for (auto& [n, p] : t.model->named_parameters())
    if (n.find("quantizer") == std::string::npos) fp32 += 4 * p.numel();
  MESSAGE("file " << good.size() << " bytes, fp32 params " << fp32);

  SUBCASE("truncated") {
    expect_error(good.substr(0, 5), "at least the 8-byte");
    expect_error(good.substr(0, 100), "header length");
    expect_error(good.substr(0, good.size() - 7), "");
  }
  SUBCASE("broken JSON") {
    std::string b = good;
    b[9] = '#';
    expect_error(b, "not valid JSON");
    json h = json::parse(header_of(good));
    h["__metadata__"]["graph"] = "{\"ops\": [";
    expect_error(with_header(good, h.dump()), "graph is not valid JSON");
    expect_error(with_header(good, "[1,2,3]"), "JSON object");
  }
  SUBCASE("bad offsets, overlap, holes") {
    expect_error(edit_json(good, [](json& h, json&) { h["0.weight"]["data_offsets"][1] = 1ull << 40; }), "outside");
    expect_error(edit_json(good, [](json& h, json&) { h["0.scale"]["data_offsets"] = {0, 128}; }), "overlaps");
    expect_error(edit_json(good, [](json& h, json&) { h["0.weight"]["data_offsets"] = {-1, 3}; }), "data_offsets");
    expect_error(edit_json(good, [](json& h, json&) {
                   auto o = h["0.bias"]["data_offsets"];
                   h["0.bias"]["data_offsets"] = {o[0].get<uint64_t>() + 4, o[1].get<uint64_t>() + 4};
                 }),
                 "");
  }
  SUBCASE("absurd shapes and dtypes") {
    expect_error(edit_json(good, [](json& h, json&) { h["0.weight"]["shape"] = {1ull << 39, 1ull << 39, 64}; }),
                 "absurdly large");
    expect_error(edit_json(good, [](json& h, json&) { h["0.weight"]["dtype"] = "F64"; }), "dtype");
    expect_error(edit_json(good, [](json&, json& g) { g["values"][1]["shape"] = {1 << 20, 1 << 14, 1 << 14}; }),
                 "limit");
    expect_error(edit_json(good, [](json& h, json&) { h["0.weight"]["shape"] = {2, 1, 64}; }), "bytes but shape");
  }
  SUBCASE("wrong bits and graph references") {
    expect_error(edit_json(good, [](json&, json& g) {
                   for (auto& op : g["ops"])
                     if (op["op"] == "conv") {
                       op["act_bits"] = 9;
                       break;
                     }
                 }),
                 "act_bits");
    expect_error(edit_json(good, [](json&, json& g) {
                   for (auto& op : g["ops"])
                     if (op["op"] == "conv" && op["name"] == "3") op["act_bits"] = 4;
                 }),
                 "disagree");
    expect_error(edit_json(good, [](json&, json& g) { g["ops"][1]["inputs"] = {"nope"}; }), "unknown value");
    expect_error(edit_json(good, [](json&, json& g) { g["ops"][0]["op"] = "softmax"; }), "unknown op kind");
    expect_error(edit_json(good, [](json&, json& g) { g["ops"].erase(g["ops"].begin()); }), "before it is defined");
    expect_error(edit_json(good, [](json&, json& g) { g["values"][2]["shape"][0] = 31; }), "shape");
    expect_error(edit_json(good, [](json& h, json&) { h["__metadata__"]["format_version"] = "99"; }), "format_version");
    expect_error(edit_json(good, [](json& h, json&) { h.erase("__metadata__"); }), "__metadata__");
  }
  SUBCASE("tensor content") {
    // A non-zero code in the padding channels of the first conv (32 channels: no padding) ->
    // use the linear layer (10 channels, padded to 16).
    json h = json::parse(header_of(good));
    const auto o = h["10.weight"]["data_offsets"];
    std::string b = good;
    const size_t data0 = 8 + header_of(good).size();
    b[data0 + o[0].get<size_t>() + 4 * 15] = 1;  // channel 15 of block 0
    expect_error(b, "padding");
  }
}
