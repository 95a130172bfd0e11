// training_run.h: one training run of a zoo model from plain options, as `lowbit train` asks for
// it: load the dataset (every rank; a bad file on one rank stops all with its message), build the
// model (converted to the quantization policy), optionally take --init-from weights, build the
// optimizer groups (models/param_groups.h), schedule and sharded loader, wrap the model in a
// DataParallel over comm(), and fit a Trainer writing OUT/{last,best}.ckpt and OUT/metrics.*.
// train_progressive chains runs at decreasing bit widths (QIL's schedule).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/param_groups.h"
#include "models/trainer.h"
#include "quant/policy.h"

namespace lowbit {

struct TrainOptions {
  std::string model = "convnet";
  std::string data = "fashion-mnist";
  int64_t epochs = 15;
  int64_t batch = 128;  // global batch
  double lr = 0.05;
  double momentum = 0.9;
  std::string optimizer = "sgd";
  std::string schedule = "cosine";
  double warmup_epochs = 0.0;
  double weight_decay = 5e-4;
  QuantGroupOptions quant_groups;  // the quantizer parameters' lr multiplier and decay (--quant-lr-mult, ...)
  uint64_t seed = 0;
  std::string out = "runs/train";
  // Quantization-aware training (quant/): method fp32 trains a float model.
  QuantPolicy policy;        // method, wbits/abits, first_last_bits, per-layer overrides
  int64_t float_epochs = 0;  // float warm-up epochs before the quantizers switch on
  std::string init_from;     // start a new run from this checkpoint's weights
  bool resume = false;       // continue from OUT/last.ckpt
  bool augment = false;      // random crop (pad 4 / 2 for 28x28) + horizontal flip
  int64_t stop_after = 0;    // stop after this epoch (schedule still spans `epochs`); 0 = run all
  int64_t max_steps = 0;     // per epoch; 0 = all (quick tests)
  int64_t eval_limit = 0;    // test images; 0 = all
  bool progress = true;
  bool sync_bn = false;      // data-parallel runs: BatchNorm statistics over the global batch
  // Mid-epoch checkpoints, checkpoint files kept and the stop poll: TrainerOptions' fields of these names.
  int64_t checkpoint_every = 0;
  double checkpoint_minutes = 0;
  int keep = 1;
  std::function<bool()> stop_requested;
  bool skip_bad_images = false;  // folder:DIR data: leave out (and log) images that do not decode
  // Called on rank 0 with each line worth showing (set-up summary, resume, bit table); may be empty.
  std::function<void(const std::string&)> log;
};

// Collective (every rank of comm() calls it with the same options).
FitResult train(const TrainOptions& options);
// QIL's progressive schedule (e.g. bits {8, 4, 3, 2}): one training run per bit width, each
// initialised from the previous stage's last checkpoint (weights AND quantizer parameters, so the
// learned intervals carry down). Stages before the last write to OUT/stage-w<b>a<b>/, the last to
// OUT itself. Only the first stage uses options.init_from and options.float_epochs; with
// options.resume, every stage whose folder holds a checkpoint resumes (finished ones are skipped).
FitResult train_progressive(const TrainOptions& options, const std::vector<int>& bits);

}  // namespace lowbit
