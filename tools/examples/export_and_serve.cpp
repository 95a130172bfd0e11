// export_and_serve.cpp: the whole promise in one program: a W2A2 CNN the program defines, trained
// with the library's Trainer (quantization-aware, PACT activations + SAWB weights), exported with
// one call (export_model), then served from the file with liblowbit-runtime's IntModel.
// Usage: export_and_serve [DATA_SPEC] [OUT_DIR] [MAX_STEPS]
//   writes OUT_DIR/model.lbm and OUT_DIR/images/<class>/<n>.png (the first 3 test images), and
//   prints each served image's path, best class and its probability.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/data/loader.h"
#include "core/data/synthetic.h"
#include "core/random.h"
#include "core/threading.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/data_parallel.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/export_model.h"
#include "models/trainer.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"
#include "quant/policy.h"
#include "quant/runtime/image.h"
#include "quant/runtime/int_model.h"

using namespace lowbit;

int main(int argc, char** argv) try {
  const std::string spec = argc > 1 ? argv[1] : "fashion-mnist";
  const std::string out = argc > 2 ? argv[2] : "runs/export_and_serve";
  const int64_t max_steps = argc > 3 ? std::stoll(argv[3]) : 0;
  set_num_threads(0);
  Generator init(0);  // the layers' initialisation stream
  Dataset train = load_dataset(spec, Split::Train), test = load_dataset(spec, Split::Test);

  // A smaller CNN than train_fashion.cpp's: conv(C->8)+BN+ReLU, pool, conv(8->16)+BN+ReLU, pool,
  // linear; then W2A2 fake quantization (every conv/linear quantized on both sides).
  const int64_t c1 = 8, c2 = 16, pooled = (train.height / 4) * (train.width / 4);
  auto model = std::make_shared<Sequential>();
  for (auto [in, out] : {std::pair<int64_t, int64_t>{train.channels, c1}, {c1, c2}}) {
    model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = in, .out_channels = out, .kernel = 3, .padding = 1}, init));
    model->add(std::make_shared<BatchNorm2d>(out));
    model->add(std::make_shared<ReLU>());
    model->add(std::make_shared<MaxPool2d>(2));
  }
  model->add(std::make_shared<Flatten>());
  model->add(std::make_shared<Linear>(c2 * pooled, train.num_classes(), init));
  QuantPolicy policy;
  policy.method = "pact-sawb";
  policy.wbits = policy.abits = 2;
  convert_model(*model, policy);

  SGD optimizer({{"weights", model->parameters(), /*lr=*/0.05, /*weight_decay=*/5e-4}}, {.momentum = 0.9});
  DataLoader loader(train, {.batch_size = 128, .seed = 0});
  DataParallel dp(*model);
  TrainerOptions options;
  options.epochs = 1;
  options.max_steps = max_steps;
  options.eval_limit = 1000;
  Trainer trainer(dp, optimizer, LrSchedule::cosine(1), loader, &test, options);
  const FitResult r = trainer.fit();
  std::printf("trained: test accuracy %.2f%% (first 1000 images)\n", r.test_acc);

  // One call: validated, then written atomically with the data's normalization and class names.
  std::filesystem::create_directories(out);
  const std::string path = out + "/model.lbm";
  const ExportSummary sum = export_model(*model, ServingInfo::from_dataset(train), path);
  std::printf("exported %s: %lld bytes\n", path.c_str(), static_cast<long long>(sum.bytes));

  // Serve: a few test images as PNG files, classified through the runtime.
  Dataset few = test;
  few.labels.resize(3);
  few.images.resize(static_cast<size_t>(3 * test.image_bytes()));
  write_image_folder(out + "/images", few, "png");
  const IntModel served = IntModel::load(path, {.threads = 1, .isa = ""});
  std::vector<std::string> pngs;
  for (const auto& e : std::filesystem::recursive_directory_iterator(out + "/images"))
    if (e.path().extension() == ".png") pngs.push_back(e.path().string());
  std::sort(pngs.begin(), pngs.end());
  for (const std::string& png : pngs) {
    const std::vector<uint8_t> px = load_image_file(png, served.channels(), served.height(), served.width());
    std::vector<float> logits(static_cast<size_t>(served.num_classes()));
    served.run_u8(px.data(), 1, PixelLayout::hwc, logits.data());
    const ClassScore best = served.top_k(logits.data(), 1).at(0);
    std::printf("%s: %s %.3f\n", png.c_str(), best.name.c_str(), best.probability);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
