// train_fashion.cpp: the README's C++ API example. Defines its own small CNN (not from the zoo),
// trains it on Fashion-MNIST with the library's Trainer (SGD + cosine schedule, a checkpoint per
// epoch), wrapped in DataParallel so that `mpirun -np 2 train_fashion ...` trains on 2 ranks, and
// resumes an interrupted run bit for bit.
// Usage: train_fashion [DATA_SPEC] [OUT_DIR] [EPOCHS] [MAX_STEPS] [--stop-after N] [--resume]
//   MAX_STEPS limits the steps per epoch (0: all); --stop-after N ends after epoch N of EPOCHS,
//   --resume continues from OUT_DIR/last.ckpt (the final weights equal an uninterrupted run's).
#include <cstdio>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/data/loader.h"
#include "core/random.h"
#include "core/threading.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/data_parallel.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "models/trainer.h"
#include "optim/lr_schedule.h"
#include "optim/sgd.h"

using namespace lowbit;

void train_fashion(Comm& comm, int argc, char** argv) {
  std::vector<std::string> args;  // positional arguments
  int64_t stop_after = 0;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--resume") resume = true;
    else if (a == "--stop-after" && i + 1 < argc) stop_after = std::stoll(argv[++i]);
    else args.push_back(a);
  }
  const std::string spec = args.size() > 0 ? args[0] : "fashion-mnist";
  const std::string out = args.size() > 1 ? args[1] : "runs/fashion_cnn";
  const int64_t epochs = args.size() > 2 ? std::stoll(args[2]) : 2;
  const int64_t max_steps = args.size() > 3 ? std::stoll(args[3]) : 0;

  set_num_threads(threads_for(comm, 0));  // this rank's share of the node's cores
  Generator init(0);  // the layers' initialisation stream
  Dataset train = load_dataset(spec, Split::Train), test = load_dataset(spec, Split::Test);

  // conv(1->16)+BN+ReLU, pool, conv(16->32)+BN+ReLU, pool, linear.
  auto model = std::make_shared<Sequential>();
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = train.channels, .out_channels = 16, .kernel = 3, .padding = 1}, init));
  model->add(std::make_shared<BatchNorm2d>(16));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Conv2d>(Conv2dConfig{.in_channels = 16, .out_channels = 32, .kernel = 3, .padding = 1}, init));
  model->add(std::make_shared<BatchNorm2d>(32));
  model->add(std::make_shared<ReLU>());
  model->add(std::make_shared<MaxPool2d>(2));
  model->add(std::make_shared<Flatten>());
  model->add(std::make_shared<Linear>(32 * (train.height / 4) * (train.width / 4), train.num_classes(), init));

  SGD optimizer({{"weights", model->parameters(), /*lr=*/0.05, /*weight_decay=*/5e-4}}, {.momentum = 0.9});
  // The global batch of 128; this rank trains on its slice of every step's batch.
  DataLoader loader(train, {.batch_size = 128, .seed = 0, .rank = comm.rank(), .world_size = comm.size()});
  DataParallel dp(*model, {.sync_bn = true});  // rank 0's weights everywhere, gradients averaged
  TrainerOptions options;
  options.epochs = epochs;          // the cosine schedule spans them all
  options.stop_after = stop_after;  // 0: run them all
  options.max_steps = max_steps;
  options.out = out;                // rank 0 writes last.ckpt, best.ckpt, metrics.jsonl, metrics.csv
  Trainer trainer(dp, optimizer, LrSchedule::cosine(epochs), loader, &test, options);
  trainer.on_epoch([&](const EpochMetrics& m) {
    if (dp.is_root())
      std::printf("epoch %lld/%lld: train loss %.4f, test accuracy %.2f%%\n", static_cast<long long>(m.epoch),
                  static_cast<long long>(m.epochs), m.train_loss, m.test_acc);
  });
  if (resume) trainer.resume(out + "/last.ckpt");  // model, optimizer, epoch and RNG state
  const FitResult r = trainer.fit();
  if (dp.is_root()) std::printf("test accuracy %.2f%% after %lld epochs; checkpoint %s\n", r.test_acc,
                                static_cast<long long>(r.epochs), r.checkpoint.c_str());
}

int main(int argc, char** argv) {
  int status = 0;
  try {
    Comm& comm = init_comm(&argc, &argv);  // MPI when started by mpirun/srun, else one process
    train_fashion(comm, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  finalize_comm();  // after every DataParallel is gone
  return status;
}
