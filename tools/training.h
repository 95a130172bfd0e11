// training.h: the training loop behind `lowbit train`, `lowbit eval` and `lowbit bench train`.
// One epoch = seeded shuffle -> batches -> forward -> cross-entropy -> backward -> optimizer
// step (lr from the schedule, per step). After each epoch: test-set evaluation, one line in
// OUT/metrics.jsonl and OUT/metrics.csv, OUT/last.ckpt (and OUT/best.ckpt when the test
// accuracy improved) written atomically. A checkpoint holds everything needed to resume
// bit-for-bit: model parameters and buffers, optimizer state, epoch, RNG state, options.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "core/data/dataset.h"
#include "core/state_dict.h"
#include "layers/module.h"
#include "models/registry.h"
#include "optim/optimizer.h"
#include "quant/policy.h"

namespace lowbit::cli {

struct TrainOptions {
  std::string model = "convnet";
  std::string data = "fashion-mnist";
  int64_t epochs = 15;
  int64_t batch = 128;
  double lr = 0.05;
  double momentum = 0.9;
  std::string optimizer = "sgd";
  std::string schedule = "cosine";
  double warmup_epochs = 0.0;
  double weight_decay = 5e-4;
  uint64_t seed = 0;
  int threads = 0;
  std::string out = "runs/train";
  // Quantization-aware training (quant/): method fp32 trains a float model.
  QuantPolicy policy;            // method, wbits/abits, first_last_bits, per-layer overrides
  int64_t float_epochs = 0;      // float warm-up epochs before the quantizers switch on
  std::string init_from;         // fine-tune from this (float) checkpoint's weights
  bool resume = false;
  bool augment = false;          // random crop (pad 4 / 2 for 28x28) + horizontal flip
  int64_t stop_after = 0;        // stop after this epoch (schedule still spans `epochs`); 0 = run all
  int64_t max_steps = 0;         // per epoch; 0 = all (quick tests)
  int64_t eval_limit = 0;        // test images; 0 = all
  bool progress = true;
  bool sync_bn = false;          // data-parallel runs: BatchNorm statistics over the global batch
};

struct TrainResult {
  double test_acc = 0, test_loss = 0, train_images_per_s = 0, seconds = 0;
  int64_t epochs = 0;
  std::string checkpoint;
};

struct EvalResult {
  double accuracy = 0, loss = 0, images_per_s = 0;
  int64_t images = 0;
};

// What is needed to rebuild a model: registry name and input/class configuration.
struct ModelSpec {
  std::string name;
  ModelConfig config;
  QuantPolicy policy;  // fp32: a float model; otherwise converted with convert_model
};
std::shared_ptr<Module> build_model(const ModelSpec& spec);
ModelSpec model_spec_for(const std::string& name, const Dataset& data);
// Optimizer groups: one group for a float model; for a quantized one, quantizer parameters get
// their own groups with clamps and gradient scales (quant/training.h).
std::vector<ParamGroup> parameter_groups(Module& model, const QuantPolicy& policy, double lr, double weight_decay);

TrainResult train(const TrainOptions& options);
// QIL's progressive schedule (e.g. bits {8, 4, 3, 2}): one training run per bit width, each
// initialised from the previous stage's last checkpoint (weights AND quantizer parameters, so the
// learned intervals carry down). Stages before the last write to OUT/stage-w<b>a<b>/, the last to
// OUT itself. Only the first stage uses options.init_from and options.float_epochs; with
// options.resume, every stage whose folder holds a checkpoint resumes (finished ones are skipped).
TrainResult train_progressive(const TrainOptions& options, const std::vector<int>& bits);
EvalResult evaluate(Module& model, const Dataset& data, int64_t batch, int64_t limit = 0, bool progress = false);

// A checkpoint's model, rebuilt and loaded.
struct LoadedCheckpoint {
  std::shared_ptr<Module> model;
  ModelSpec spec;
  StateDict state;
};
LoadedCheckpoint load_checkpoint(const std::string& path);
// Copy a checkpoint's model weights into `model` (which may be quantized: its quantizer
// parameters are left as they are). Every checkpoint entry must exist in the model.
void load_float_weights(Module& model, const std::string& path);
// Write a model-only checkpoint (weights, buffers, spec incl. quantization policy) that
// `lowbit eval` / `lowbit export` accept.
void save_model_checkpoint(const std::string& path, const Module& model, const ModelSpec& spec,
                           const std::map<std::string, std::string>& strings = {});

}  // namespace lowbit::cli
