// train_custom_w2a2.cpp: a W2A2 CNN the program defines itself (not a zoo model), trained briefly
// with the library's Trainer, whose checkpoint every `lowbit` command then serves without this
// program: the checkpoint records the model's architecture (layer-type configs, docs/models.md),
// so `lowbit eval`, `lowbit export`, `lowbit bench infer` and `lowbit inspect --compare` rebuild it.
// Usage: train_custom_w2a2 DATA_SPEC OUT_DIR [MAX_STEPS]
//   writes OUT_DIR/last.ckpt (the Trainer's) and OUT_DIR/program.lbm (this program's own export),
//   and prints one JSON line: the final model's test accuracy and loss (evaluate(), all test
//   images) and the integer logits of the first 4 test images from its own export, which the CLI's
//   eval and export of last.ckpt must reproduce exactly (tests/tools/test_custom_model.cpp).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/data/loader.h"
#include "core/random.h"
#include "core/threading.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/data_parallel.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/export_model.h"
#include "models/param_groups.h"
#include "models/trainer.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "quant/policy.h"
#include "quant/runtime/int_model.h"

using namespace lowbit;

int main(int argc, char** argv) try {
  if (argc < 3) {
    std::fprintf(stderr, "usage: train_custom_w2a2 DATA_SPEC OUT_DIR [MAX_STEPS]\n");
    return 2;
  }
  const std::string spec = argv[1], out = argv[2];
  const int64_t max_steps = argc > 3 ? std::stoll(argv[3]) : 0;
  set_num_threads(0);
  Dataset train = load_dataset(spec, Split::Train), test = load_dataset(spec, Split::Test);
  ServingInfo::from_dataset(train).apply_to(test, spec);  // the training normalization, as `lowbit eval` uses

  // conv(C->12, 3x3)+BN+ReLU, pool 2, conv(12->20, 3x3, stride 2)+BN+ReLU, global average pool,
  // dropout, linear: odd widths (not multiples of 16) and a stride-2 conv, all library layers.
  Generator init(0);  // every layer's initialisation, in order
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = train.channels, .out_channels = 12, .kernel = 3, .padding = 1}, init));
  model->add(std::make_shared<BatchNorm2d>(12));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 12, .out_channels = 20, .kernel = 3, .stride = 2, .padding = 1}, init));
  model->add(std::make_shared<BatchNorm2d>(20));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<GlobalAvgPool2d>());
  model->add(std::make_shared<Dropout>(0.1f, init));
  model->add(std::make_shared<Linear>(20, train.num_classes(), init));
  // W2A2 fake quantization: PACT activations, SAWB weights (first and last layer at 8 bits).
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  convert_model(*model, policy);

  SGD optimizer(parameter_groups(*model, policy, /*lr=*/0.05, /*weight_decay=*/5e-4), {.momentum = 0.9});
  DataLoader loader(train, {.batch_size = 32, .seed = 0});
  DataParallel dp(*model);
  TrainerOptions options;
  options.epochs = 1;
  options.max_steps = max_steps;
  options.out = out;  // last.ckpt: weights, optimizer, random streams and the model's architecture
  Trainer trainer(dp, optimizer, LrSchedule::cosine(1), loader, &test, options);
  trainer.fit();

  // The program's own numbers: accuracy and loss of the trained model, and its own export's logits.
  const EvalResult r = evaluate(*model, test, 64);
  const std::string path = out + "/program.lbm";
  export_model(*model, ServingInfo::from_dataset(train), path);
  const IntModel served = IntModel::load(path, {.threads = 1, .isa = ""});
  DataLoader first(test, LoaderOptions::evaluation(4));
  const Batch b = first.batch(0);
  std::vector<float> logits(static_cast<size_t>(b.images.size(0) * served.num_classes()));
  served.run(b.images.data(), b.images.size(0), logits.data());
  std::printf("%s\n", nlohmann::json{{"test_acc", r.accuracy}, {"loss", r.loss}, {"images", r.images},
                                     {"checkpoint", out + "/last.ckpt"}, {"export", path}, {"logits", logits}}
                          .dump()
                          .c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
