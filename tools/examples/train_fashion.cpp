// train_fashion.cpp: the README's C++ API example. Defines a small CNN, trains it on
// Fashion-MNIST for one epoch with SGD + cosine schedule, reports test accuracy and saves
// the weights. Usage: train_fashion [DATA_SPEC] [MAX_STEPS] [OUT_FILE]
#include <cstdio>
#include <string>

#include "core/autograd.h"
#include "core/data/loader.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/serialize.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"

using namespace lowbit;

int main(int argc, char** argv) try {
  const std::string spec = argc > 1 ? argv[1] : "fashion-mnist";
  const int64_t max_steps = argc > 2 ? std::stoll(argv[2]) : 0;
  const std::string out = argc > 3 ? argv[3] : "fashion_cnn.ckpt";

  manual_seed(0);
  Dataset train = load_dataset(spec, Split::Train), test = load_dataset(spec, Split::Test);

  // conv(1->16)+BN+ReLU, pool, conv(16->32)+BN+ReLU, pool, linear.
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = train.channels, .out_channels = 16, .kernel = 3, .padding = 1}));
  model->add(std::make_shared<BatchNorm2d>(16));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 16, .out_channels = 32, .kernel = 3, .padding = 1}));
  model->add(std::make_shared<BatchNorm2d>(32));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Flatten>());
  model->add(std::make_shared<Linear>(32 * (train.height / 4) * (train.width / 4), train.num_classes()));

  SGD optimizer({{"weights", model->parameters(), /*lr=*/0.05, /*weight_decay=*/5e-4}}, {.momentum = 0.9});
  DataLoader loader(train, {.batch_size = 128, .seed = 0});
  const int64_t steps = max_steps > 0 ? std::min(max_steps, loader.steps()) : loader.steps();
  const LrSchedule schedule = LrSchedule::cosine(/*total_epochs=*/1);

  model->train();
  for (int64_t s = 0; s < steps; ++s) {
    Batch batch = loader.batch(s);
    optimizer.set_lr_multiplier(schedule.multiplier(0, s, steps));
    optimizer.zero_grad();
    Tensor loss = cross_entropy(model->forward(batch.images), batch.labels);
    loss.backward();
    optimizer.step();
    if (s % 100 == 0) std::printf("step %lld loss %.4f\n", static_cast<long long>(s), loss.item());
  }

  NoGradGuard no_grad;
  model->eval();
  DataLoader test_loader(test, LoaderOptions::evaluation(256));
  int64_t correct = 0;
  for (int64_t s = 0; s < test_loader.steps(); ++s) {
    Batch batch = test_loader.batch(s);
    const auto pred = argmax_rows(model->forward(batch.images));
    for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == batch.labels[i];
  }
  std::printf("test accuracy %.2f%%\n", 100.0 * correct / test.size());
  save_state_dict(out, model->state_dict());
  std::printf("saved %s\n", out.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
