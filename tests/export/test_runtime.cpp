// test_runtime.cpp: liblowbit-runtime's faces (IntModel, the C API lowbit_runtime.h) against the
// integer graph they wrap: the same logits bit for bit through every entry (float, uint8 HWC/CHW,
// C and C++), per-model kernel level and threads, concurrent runs equal to serial ones, one clear
// error for non-finite input and bad arguments, model/layer info, and export_model: every
// ExportInfo field's default either exports a file the runtime loads or fails before writing.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <stb/stb_image_write.h>  // libstb holds the implementation

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>
#include <unistd.h>

#include "core/autograd.h"
#include "core/error.h"
#include "core/file_io.h"
#include "core/random.h"
#include "models/export_model.h"
#include "models/registry.h"
#include "quant/export/compare.h"
#include "quant/export/convert.h"
#include "quant/policy.h"
#include "quant/runtime/int_model.h"
#include "quant/runtime/int_model_internal.h"
#include "quant/runtime/lowbit_runtime.h"
#include "quant/runtime/model_file.h"

using namespace lowbit;

namespace {

constexpr int64_t kC = 3, kH = 10, kW = 10, kClasses = 10;

// resnet20 W2A2 (PACT/SAWB) on 10x10 RGB, quantizers initialised on one random batch.
std::shared_ptr<Module> small_qat_model() {
  Generator gen(3);
  auto model = make_model("resnet20", {kC, kH, kW, kClasses}, gen);
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  convert_model(*model, policy);
  NoGradGuard g;
  model->forward(Tensor::randn({8, kC, kH, kW}, gen));
  model->eval();
  return model;
}

ServingInfo serving() {
  ServingInfo s;
  s.channels = kC;
  s.height = kH;
  s.width = kW;
  s.mean = {0.5f, 0.4f, 0.3f};
  s.std = {0.25f, 0.2f, 0.3f};
  for (int64_t k = 0; k < kClasses; ++k) s.class_names.push_back("class" + std::to_string(k));
  return s;
}

struct Fixture {
  std::string bytes;  // a valid model file
  std::vector<uint8_t> pixels;  // 5 images, HWC
  std::vector<float> normalized;  // the same, NCHW normalized
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    auto model = small_qat_model();
    const std::string path = (std::filesystem::temp_directory_path() / ("lowbit_rt_" + std::to_string(getpid()) + ".lbm")).string();
    export_model(*model, serving(), path);
    f.bytes = read_whole_file(path, "model file");
    std::filesystem::remove(path);
    Generator gen(5);
    const Tensor u = Tensor::uniform({5 * kH * kW * kC}, gen, 0.f, 1.f);
    for (int64_t i = 0; i < u.numel(); ++i) f.pixels.push_back(static_cast<uint8_t>(std::min(255.f, u.data()[i] * 256.f)));
    const ServingInfo s = serving();
    f.normalized.resize(f.pixels.size());
    for (int64_t img = 0; img < 5; ++img)
      for (int64_t c = 0; c < kC; ++c)
        for (int64_t p = 0; p < kH * kW; ++p)
          f.normalized[static_cast<size_t>((img * kC + c) * kH * kW + p)] =
              (static_cast<float>(f.pixels[static_cast<size_t>((img * kH * kW + p) * kC + c)]) / 255.0f - s.mean[c]) / s.std[c];
    return f;
  }();
  return f;
}

IntModel load(const RuntimeOptions& o = {}) { return IntModel::from_bytes(fixture().bytes.data(), fixture().bytes.size(), o); }

}  // namespace

TEST_CASE("IntModel, the C API and the graph give the same logits; uint8 entry == float entry, bit for bit") {
  const Fixture& f = fixture();
  const IntModel m = load();
  const std::vector<float> want = run_int_graph(intq::graph_of(m), Tensor::from_vector({5, kC, kH, kW}, f.normalized)).to_vector();
  CHECK(m.run(f.normalized) == want);
  std::vector<float> u8(want.size());
  m.run_u8(f.pixels.data(), 5, PixelLayout::hwc, u8.data());
  CHECK(u8 == want);
  // CHW bytes: the same pixels transposed.
  std::vector<uint8_t> chw(f.pixels.size());
  for (int64_t img = 0; img < 5; ++img)
    for (int64_t c = 0; c < kC; ++c)
      for (int64_t p = 0; p < kH * kW; ++p)
        chw[static_cast<size_t>((img * kC + c) * kH * kW + p)] = f.pixels[static_cast<size_t>((img * kH * kW + p) * kC + c)];
  lowbit_model* cm = nullptr;
  REQUIRE(lowbit_model_load_bytes(f.bytes.data(), f.bytes.size(), nullptr, &cm) == LOWBIT_OK);
  std::vector<float> c_float(want.size()), c_u8(want.size());
  CHECK(lowbit_run(cm, f.normalized.data(), 5, c_float.data()) == LOWBIT_OK);
  CHECK(lowbit_run_u8(cm, chw.data(), 5, LOWBIT_CHW, c_u8.data()) == LOWBIT_OK);
  CHECK(c_float == want);
  CHECK(c_u8 == want);
  // Scores: C and C++ agree; probabilities sum to 1, best first.
  lowbit_class_score top[3];
  int64_t count = 0;
  CHECK(lowbit_top_k(cm, want.data(), 3, top, &count) == LOWBIT_OK);
  const std::vector<ClassScore> cpp_top = m.top_k(want.data(), 3);
  REQUIRE(count == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(top[i].index == cpp_top[static_cast<size_t>(i)].index);
    CHECK(top[i].probability == cpp_top[static_cast<size_t>(i)].probability);
    CHECK(std::string(top[i].name) == "class" + std::to_string(top[i].index));
  }
  CHECK(top[0].logit >= top[1].logit);
  lowbit_model_free(cm);
}

TEST_CASE("model info: input shape, classes, layers with their bits") {
  lowbit_model* cm = nullptr;
  REQUIRE(lowbit_model_load_bytes(fixture().bytes.data(), fixture().bytes.size(), nullptr, &cm) == LOWBIT_OK);
  lowbit_model_info info;
  REQUIRE(lowbit_model_get_info(cm, &info) == LOWBIT_OK);
  CHECK(info.channels == kC);
  CHECK(info.height == kH);
  CHECK(info.width == kW);
  CHECK(info.num_classes == kClasses);
  CHECK(info.num_layers > 10);
  lowbit_layer_info layer;
  REQUIRE(lowbit_layer_get_info(cm, 1, &layer) == LOWBIT_OK);
  CHECK(layer.weight_bits == 2);
  CHECK(layer.act_bits == 2);
  CHECK(lowbit_layer_get_info(cm, info.num_layers, &layer) == LOWBIT_INVALID_ARGUMENT);
  CHECK(std::string(lowbit_last_error()).find("outside [0, ") != std::string::npos);
  const char* name = nullptr;
  CHECK(lowbit_class_name(cm, 3, &name) == LOWBIT_OK);
  CHECK(std::string(name) == "class3");
  float mean[3], std_dev[3];
  CHECK(lowbit_model_normalization(cm, mean, std_dev) == LOWBIT_OK);
  CHECK(mean[1] == 0.4f);
  CHECK(std_dev[2] == 0.3f);
  lowbit_model_free(cm);
}

TEST_CASE("non-finite input is one clear error, through both faces") {
  const IntModel m = load();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x = fixture().normalized;
    x[static_cast<size_t>(2 * kC * kH * kW + kH * kW + 3)] = bad;  // image 2, channel 1, pixel (0, 3)
    CHECK_THROWS_WITH_AS(m.run(x), doctest::Contains("input image 2 has a non-finite value"), Error);
    lowbit_model* cm = nullptr;
    REQUIRE(lowbit_model_load_bytes(fixture().bytes.data(), fixture().bytes.size(), nullptr, &cm) == LOWBIT_OK);
    std::vector<float> logits(5 * kClasses);
    CHECK(lowbit_run(cm, x.data(), 5, logits.data()) == LOWBIT_INVALID_ARGUMENT);
    CHECK(std::string(lowbit_last_error()).find("channel 1, pixel (0, 3)") != std::string::npos);
    lowbit_model_free(cm);
  }
}

TEST_CASE("C API arguments: NULLs, bad options, a missing file: a status and one message, never a crash") {
  lowbit_model* cm = nullptr;
  CHECK(lowbit_model_load(nullptr, nullptr, &cm) == LOWBIT_INVALID_ARGUMENT);
  CHECK(lowbit_model_load("/nonexistent/m.lbm", nullptr, &cm) == LOWBIT_IO_ERROR);
  CHECK(std::string(lowbit_last_error()) == "cannot open model file /nonexistent/m.lbm: no such file");
  CHECK(cm == nullptr);
  // Bad options: one message naming the C field, before the file is read (a missing file with bad
  // options is still an argument error); the C++ face names its own struct.
  const lowbit_options bad_threads = {-1, nullptr};
  CHECK(lowbit_model_load_bytes(fixture().bytes.data(), fixture().bytes.size(), &bad_threads, &cm) ==
        LOWBIT_INVALID_ARGUMENT);
  CHECK(std::string(lowbit_last_error()) == "lowbit_options.threads must be 0 (all cores) to 4096, got -1");
  CHECK(lowbit_model_load("/nonexistent/m.lbm", &bad_threads, &cm) == LOWBIT_INVALID_ARGUMENT);
  const lowbit_options bad_isa = {0, "sse9"};
  CHECK(lowbit_model_load_bytes(fixture().bytes.data(), fixture().bytes.size(), &bad_isa, &cm) == LOWBIT_INVALID_ARGUMENT);
  CHECK(std::string(lowbit_last_error()).rfind("lowbit_options.isa 'sse9' is not a kernel level this CPU supports (supported: ", 0) == 0);
  CHECK_THROWS_WITH_AS(load({5000, ""}), "RuntimeOptions.threads must be 0 (all cores) to 4096, got 5000", lowbit::Error);
  CHECK_THROWS_WITH_AS(load({0, "sse9"}), doctest::Contains("RuntimeOptions.isa 'sse9' is not a kernel level"), lowbit::Error);
  CHECK(lowbit_run(nullptr, nullptr, 1, nullptr) == LOWBIT_INVALID_ARGUMENT);
  CHECK(std::string(lowbit_status_name(LOWBIT_INVALID_MODEL)) == "invalid model");
  lowbit_model_free(nullptr);
}

TEST_CASE("per-model settings: every kernel level and thread count gives the same logits, in one process") {
  const std::vector<float> want = load({1, "scalar"}).run(fixture().normalized);
  for (kernels::Isa isa : kernels::kIsaPreference) {
    if (!kernels::isa_supported(isa)) continue;
    for (int threads : {1, 2}) {
      CAPTURE(kernels::isa_name(isa));
      const IntModel m = load({threads, kernels::isa_name(isa)});
      CHECK(m.isa() == kernels::isa_name(isa));
      CHECK(m.threads() == threads);
      CHECK(m.run(fixture().normalized) == want);
    }
  }
}

TEST_CASE("concurrent runs on one model are bit-identical to serial runs") {
  for (int threads : {1, 2}) {
    const IntModel m = load({threads, ""});
    const Fixture& f = fixture();
    // Per image (batch 1) and the whole batch, serially first.
    const int64_t per = m.input_size();
    std::vector<std::vector<float>> want;
    for (int64_t i = 0; i < 5; ++i)
      want.push_back(m.run(std::vector<float>(f.normalized.begin() + i * per, f.normalized.begin() + (i + 1) * per)));
    const std::vector<float> want_all = m.run(f.normalized);
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t)
      workers.emplace_back([&, t] {
        for (int call = 0; call < 50; ++call) {
          const int64_t i = (t + call) % 6;
          if (i == 5) {
            mismatches[static_cast<size_t>(t)] += m.run(f.normalized) != want_all;
          } else {
            const std::vector<float> x(f.normalized.begin() + i * per, f.normalized.begin() + (i + 1) * per);
            mismatches[static_cast<size_t>(t)] += m.run(x) != want[static_cast<size_t>(i)];
          }
        }
      });
    for (auto& w : workers) w.join();
    for (int t = 0; t < 4; ++t) CHECK(mismatches[static_cast<size_t>(t)] == 0);
  }
}

TEST_CASE("export_model: every ExportInfo field's default exports a loadable file or fails before writing") {
  auto model = small_qat_model();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("lowbit_export_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string out = (dir / "m.lbm").string();
  intq::ExportInfo full;
  full.channels = kC;
  full.height = kH;
  full.width = kW;
  full.mean = serving().mean;
  full.std = serving().std;
  full.class_names = serving().class_names;
  full.method = "pact-sawb";
  full.provenance = {{"exporter", "test"}};
  const intq::ExportInfo defaults;
  // One field at a time back to its default.
  const std::vector<std::pair<std::string, std::function<void(intq::ExportInfo&)>>> fields = {
      {"channels", [&](intq::ExportInfo& i) { i.channels = defaults.channels; }},
      {"height", [&](intq::ExportInfo& i) { i.height = defaults.height; }},
      {"width", [&](intq::ExportInfo& i) { i.width = defaults.width; }},
      {"mean", [&](intq::ExportInfo& i) { i.mean = defaults.mean; }},
      {"std", [&](intq::ExportInfo& i) { i.std = defaults.std; }},
      {"class_names", [&](intq::ExportInfo& i) { i.class_names = defaults.class_names; }},
      {"method", [&](intq::ExportInfo& i) { i.method = defaults.method; }},
      {"provenance", [&](intq::ExportInfo& i) { i.provenance = defaults.provenance; }},
      {"all", [&](intq::ExportInfo& i) { i = defaults; }},
  };
  for (const auto& field : fields) {
    const std::string& name = field.first;  // not a structured binding: clang 14 cannot capture one
    const auto& reset = field.second;
    CAPTURE(name);
    intq::ExportInfo info = full;
    reset(info);
    std::filesystem::remove(out);
    try {
      intq::save_int_model(out, intq::convert_to_int(*model, info));
    } catch (const Error& e) {
      CAPTURE(e.what());
      CHECK(!std::filesystem::exists(out));  // failed before writing
      CHECK(std::string(e.what()).find("ExportInfo") != std::string::npos);
      continue;
    }
    // Written: the runtime loads it.
    CHECK_NOTHROW(IntModel::load(out));
  }
  // The default ExportInfo of the issue: a clear error, no file.
  CHECK_THROWS_WITH_AS(intq::convert_to_int(*model, defaults),
                       doctest::Contains("ExportInfo.mean must have one entry per input channel (1), has 0"), Error);
  // export_model from a module: validated, loadable, the serving info inside.
  ServingInfo bad = serving();
  bad.std[1] = 0.f;
  std::filesystem::remove(out);
  CHECK_THROWS_WITH_AS(export_model(*model, bad, out), doctest::Contains("ExportInfo.std"), Error);
  CHECK(!std::filesystem::exists(out));
  const ExportSummary sum = export_model(*model, serving(), out);
  CHECK(sum.bytes == static_cast<int64_t>(std::filesystem::file_size(out)));
  const IntModel m = IntModel::load(out);
  CHECK(m.class_name(9) == "class9");
  CHECK(m.std_dev() == serving().std);
  std::filesystem::remove_all(dir);
}

TEST_CASE("image helper: decode bytes at the model's size as is, resize other sizes, refuse garbage") {
  lowbit_model* cm = nullptr;
  REQUIRE(lowbit_model_load_bytes(fixture().bytes.data(), fixture().bytes.size(), nullptr, &cm) == LOWBIT_OK);
  auto png_of = [](const uint8_t* px, int w, int h) {
    std::string out;
    stbi_write_png_to_func([](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), static_cast<size_t>(size)); },
                           &out, w, h, 3, px, w * 3);
    return out;
  };
  const std::vector<uint8_t>& px = fixture().pixels;  // image 0: kH x kW, HWC
  const std::string same = png_of(px.data(), kW, kH);
  std::vector<uint8_t> decoded(static_cast<size_t>(kC * kH * kW));
  CHECK(lowbit_decode_image(cm, same.data(), same.size(), decoded.data(), decoded.size()) == LOWBIT_OK);
  CHECK(std::equal(decoded.begin(), decoded.end(), px.begin()));
  const std::string bigger = png_of(px.data(), kW * 2, kH / 2);  // 20x5 of the same bytes
  CHECK(lowbit_decode_image(cm, bigger.data(), bigger.size(), decoded.data(), decoded.size()) == LOWBIT_OK);
  CHECK(lowbit_decode_image(cm, "not an image", 12, decoded.data(), decoded.size()) == LOWBIT_IO_ERROR);
  CHECK(std::string(lowbit_last_error()).find("cannot decode image bytes") != std::string::npos);
  CHECK(lowbit_decode_image(cm, same.data(), same.size(), decoded.data(), 3) == LOWBIT_INVALID_ARGUMENT);
  lowbit_model_free(cm);
}
