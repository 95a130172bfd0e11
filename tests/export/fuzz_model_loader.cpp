// fuzz_model_loader.cpp: libFuzzer target of the integer model loader (quant/runtime/model_file.h).
// Any byte string must either parse into a valid model or throw lowbit::Error: no crash, no
// out-of-bounds read (ASan), no undefined behaviour (UBSan), no huge allocation (-rss_limit_mb).
// Built only with clang (tests/export/meson.build); see docs/model-format.md for the setup.
// A parsed model is also run on one zero image, so graph validation covers the runtime too. Odd
// inputs go through the C API (lowbit_runtime.h), even ones through IntModel: both must answer
// every byte string with a status / lowbit::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <cstdlib>
#include <filesystem>

#include "core/autograd.h"
#include "core/error.h"
#include "core/random.h"
#include "core/serialize.h"
#include "models/registry.h"
#include "quant/export/convert.h"
#include "quant/runtime/int_model.h"
#include "quant/runtime/lowbit_runtime.h"
#include "quant/runtime/model_file.h"
#include "quant/policy.h"

// Seeds: small valid exports (convnet and resnet20 on 8x8 inputs, W2A2), written into the corpus
// folder named by LOWBIT_FUZZ_CORPUS before libFuzzer reads it, so mutations start from files
// that pass most checks.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("LOWBIT_FUZZ_CORPUS");
  if (!dir) return 0;
  std::filesystem::create_directories(dir);
  for (const char* name : {"convnet", "resnet20"}) {
    lowbit::Generator gen(0);
    const int64_t c = name[0] == 'c' ? 1 : 3;
    auto model = lowbit::make_model(name, {c, 8, 8, 10}, gen);
    lowbit::QuantPolicy policy;
    policy.method = "pact-sawb";
    policy.wbits = policy.abits = 2;
    lowbit::convert_model(*model, policy);
    {
      lowbit::NoGradGuard g;
      model->forward(lowbit::Tensor::randn({4, c, 8, 8}, gen));  // quantizer inits
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
  if (size % 2 == 1) {
    lowbit_model* m = nullptr;
    const lowbit_options one_thread = {1, nullptr};
    if (lowbit_model_load_bytes(data, size, &one_thread, &m) != LOWBIT_OK) {
      if (m != nullptr || *lowbit_last_error() == '\0') std::abort();  // a failure must say why, and set no model
      return 0;
    }
    lowbit_model_info info;
    if (lowbit_model_get_info(m, &info) != LOWBIT_OK) std::abort();
    const int64_t numel = info.channels * info.height * info.width;
    if (numel <= 4096) {
      std::string zeros(static_cast<size_t>(numel), '\0');
      std::string logits(static_cast<size_t>(info.num_classes) * sizeof(float), '\0');
      // May fail only with a message (an extreme mean/std can normalize 0 to infinity).
      if (lowbit_run_u8(m, reinterpret_cast<const uint8_t*>(zeros.data()), 1, LOWBIT_CHW,
                        reinterpret_cast<float*>(logits.data())) != LOWBIT_OK &&
          *lowbit_last_error() == '\0')
        std::abort();
    }
    lowbit_model_free(m);
    return 0;
  }
  try {
    const lowbit::IntModel m = lowbit::IntModel::from_bytes(data, size, {1, ""}, "fuzz");
    if (m.input_size() <= 4096) {
      const std::vector<float> zeros(static_cast<size_t>(m.input_size()), 0.f);
      m.run(zeros);
    }
  } catch (const lowbit::Error&) {
  }
  return 0;
}
