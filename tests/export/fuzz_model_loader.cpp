// fuzz_model_loader.cpp: libFuzzer target of the integer model loader (quant/export/model_file.h).
// Any byte string must either parse into a valid model or throw lowbit::Error: no crash, no
// out-of-bounds read (ASan), no undefined behaviour (UBSan), no huge allocation (-rss_limit_mb).
// Built only with clang (tests/export/meson.build); see docs/model-format.md for the setup.
// A parsed model is also run on one zero image, so graph validation covers the runtime too.
#include <cstddef>
#include <cstdint>
#include <string>

#include <cstdlib>
#include <filesystem>

#include "core/autograd.h"
#include "core/error.h"
#include "core/random.h"
#include "core/serialize.h"
#include "models/registry.h"
#include "quant/export/convert.h"
#include "quant/export/model_file.h"
#include "quant/policy.h"

// Seeds: small valid exports (convnet and resnet20 on 8x8 inputs, W2A2), written into the corpus
// folder named by LOWBIT_FUZZ_CORPUS before libFuzzer reads it, so mutations start from files
// that pass most checks.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("LOWBIT_FUZZ_CORPUS");
  if (!dir) return 0;
  std::filesystem::create_directories(dir);
  for (const char* name : {"convnet", "resnet20"}) {
    lowbit::manual_seed(0);
    const int64_t c = name[0] == 'c' ? 1 : 3;
    auto model = lowbit::make_model(name, {c, 8, 8, 10});
    lowbit::QuantPolicy policy;
    policy.method = "pact-sawb";
    policy.wbits = policy.abits = 2;
    lowbit::convert_model(*model, policy);
    {
      lowbit::NoGradGuard g;
      model->forward(lowbit::Tensor::randn({4, c, 8, 8}, lowbit::global_generator()));  // quantizer inits
    }
    lowbit::intq::ExportInfo info;
    info.channels = c;
    info.height = info.width = 8;
    info.mean.assign(static_cast<size_t>(c), 0.5f);
    info.std.assign(static_cast<size_t>(c), 0.25f);
    info.method = "pact-sawb";
    lowbit::intq::save_int_model(std::string(dir) + "/seed_" + name + ".safetensors",
                                 lowbit::intq::convert_to_int(*model, info));
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lowbit::intq::IntModel m =
        lowbit::intq::parse_int_model(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    const auto& in = m.input_info();
    if (in.numel() <= 4096) m.run(lowbit::Tensor::zeros({1, in.c, in.h, in.w}));
  } catch (const lowbit::Error&) {
  }
  return 0;
}
