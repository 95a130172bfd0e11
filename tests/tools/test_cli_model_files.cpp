// test_cli_model_files.cpp: the lowbit program on hostile model paths and files (issue 12):
// `lowbit inspect DIR`, `lowbit infer --model DIR` and `lowbit bench infer` on a file whose
// provenance asks for an absurd float model answer exit code 1 and one exact `error:` line
// (no std::bad_alloc, no attempted allocation); a valid export still inspects and benches, also
// from its recorded architecture alone, and an absurd architecture is refused before allocating.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/autograd.h"
#include "core/random.h"
#include "models/registry.h"
#include "quant/export/convert.h"
#include "quant/layer_types.h"
#include "quant/runtime/model_file.h"
#include "quant/policy.h"
#include "tools/cli_helpers.h"

using namespace lowbit;
namespace fs = std::filesystem;
using nlohmann::json;
using lowbit::testing::CliResult;
using lowbit::testing::run_lowbit;

namespace {

// A small W2A2 convnet export (8x8 inputs), with the provenance `lowbit export` writes.
intq::IntGraph small_export() {
  Generator gen(0);
  auto model = make_model("convnet", {1, 8, 8, 10}, gen);
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  convert_model(*model, policy);
  {
    NoGradGuard g;
    model->forward(Tensor::randn({4, 1, 8, 8}, gen));  // quantizer inits
  }
  intq::ExportInfo info;
  info.channels = 1;
  info.height = info.width = 8;
  info.mean = {0.5f};
  info.std = {0.25f};
  info.method = "pact-sawb";
  info.provenance = {{"model", "convnet"},
                     {"model_config", {{"in_channels", 1}, {"height", 8}, {"width", 8}, {"num_classes", 10}}},
                     {"architecture", module_config(*model, library_layer_types())}};
  return intq::convert_to_int(*model, info);
}

// Writes `graph`'s file with its provenance changed by `edit`: a hostile file the library's writer
// refuses to produce, so its header is edited here.
void save_with_provenance(const std::string& path, const intq::IntGraph& graph,
                          const std::function<void(nlohmann::json&)>& edit) {
  const std::string bytes = intq::serialize_int_model(graph);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
  nlohmann::json h = nlohmann::json::parse(bytes.substr(8, n));
  nlohmann::json p = nlohmann::json::parse(h["__metadata__"]["provenance"].get<std::string>());
  edit(p);
  h["__metadata__"]["provenance"] = p.dump();
  const std::string header = h.dump();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  std::ofstream(path, std::ios::binary) << out << header << bytes.substr(8 + n);
}

// ... with its provenance's model_config.in_channels replaced by `in_channels`.
void save_with_in_channels(const std::string& path, const intq::IntGraph& graph, int64_t in_channels) {
  save_with_provenance(path, graph, [&](nlohmann::json& p) { p["model_config"]["in_channels"] = in_channels; });
}

}  // namespace

TEST_CASE("lowbit inspect / infer / bench infer on directories and hostile provenance") {
  const fs::path dir = fs::temp_directory_path() / ("lowbit_test_cli_files_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "models");
  const std::string d = (dir / "models").string();

  CliResult r = run_lowbit(dir, "inspect " + d);
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + d + " is a directory, expected a model file\n");
  r = run_lowbit(dir, "infer --model " + d + " --data fashion-mnist");
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + d + " is a directory, expected a model file\n");
  r = run_lowbit(dir, "bench infer --model " + d);
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + d + " is a directory, expected a model file\n");

  intq::IntGraph m = small_export();
  const std::string good = (dir / "good.safetensors").string();
  intq::save_int_model(good, m);
  CHECK(run_lowbit(dir, "inspect " + good).status == 0);
  r = run_lowbit(dir, "infer --model " + good + " " + d);  // a directory as the image
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + d + " is a directory, expected an image file\n");
  r = run_lowbit(dir, "bench infer --model " + good + " --batch 4 --seconds 0.05 --rounds 1 --threads 1");
  CHECK(r.status == 0);

  // in_channels = 2^40 used to load in inspect and make bench infer attempt the allocation.
  const std::string huge = (dir / "huge.safetensors").string();
  save_with_in_channels(huge, m, int64_t{1} << 40);
  const std::string huge_error =
      "error: " + huge + ": provenance.model_config.in_channels = 1099511627776 is outside [1, 65536]\n";
  r = run_lowbit(dir, "bench infer --model " + huge);
  CHECK(r.status == 1);
  CHECK(r.err == huge_error);
  r = run_lowbit(dir, "inspect " + huge);
  CHECK(r.status == 1);
  CHECK(r.err == huge_error);

  const std::string negative = (dir / "negative.safetensors").string();
  save_with_in_channels(negative, m, -4);
  r = run_lowbit(dir, "bench infer --model " + negative);
  CHECK(r.status == 1);
  CHECK(r.err == "error: " + negative + ": provenance.model_config.in_channels = -4 is outside [1, 65536]\n");

  // Without a zoo name, bench infer rebuilds the float model from the recorded architecture...
  const std::string program = (dir / "program.safetensors").string();
  save_with_provenance(program, m, [](nlohmann::json& p) { p.erase("model"); });
  r = run_lowbit(dir, "bench infer --model " + program + " --batch 4 --seconds 0.05 --rounds 1 --threads 1");
  CHECK(r.status == 0);
  // ... bounded by what the file holds before anything is allocated.
  const std::string absurd = (dir / "absurd.safetensors").string();
  save_with_provenance(absurd, m, [](nlohmann::json& p) {
    p.erase("model");
    p["architecture"] = {{"type", "Linear"},
                         {"config", {{"in_features", int64_t{1} << 20}, {"out_features", int64_t{1} << 20}, {"bias", true}}}};
  });
  r = run_lowbit(dir, "bench infer --model " + absurd);
  CHECK(r.status == 1);
  CHECK(r.err.rfind("error: model file " + absurd + ": provenance.architecture describes 1.09951e+12 float parameters, "
                    "more than its integer graph can hold", 0) == 0);
  fs::remove_all(dir);
}
