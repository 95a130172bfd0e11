// checkpoint.h: Checkpoint, everything that resumes a training run bit for bit and everything
// that serves the model it holds, as one validated file (a StateDict in core/serialize.h's
// safetensors container, written atomically: temporary file + fsync + rename).
//
// Holds (file keys in brackets):
//   * the model: parameters and buffers ["model.<dotted name>"], its architecture (the layer-type
//     configs that rebuild any model made of library layers, models/model_spec.h) as JSON
//     ["model.architecture"; absent in older files] and, for a zoo model, its spec: registry name,
//     input/class configuration ["model.name", "model.in_channels", ...]; the quantization policy,
//     method included ["quant.policy"];
//   * how to serve it: input size, normalization mean/std, class names ["serving"] and the dataset
//     spec it was trained on ["data"]. eval/infer/export take the normalization from here, never
//     from the data at hand;
//   * for a training checkpoint only, TrainingState: optimizer state and groups ["optim.*"], lr
//     schedule ["schedule"], epoch and global step ["epoch", "global_step"], best/last accuracy
//     ["best_acc", "test_acc"], the model's random streams (Module::named_generators, e.g. a
//     Dropout's) ["rng.<dotted name>"], the global batch ["global_batch"]. (Files written while
//     lowbit had a process-wide generator hold it as "rng"; it is read and ignored: no model of the
//     zoo drew from it during training.)
//     A mid-epoch checkpoint (written inside an epoch: TrainerOptions::checkpoint_every, a stop
//     request) also holds the steps done in the unfinished epoch and its length ["epoch_step",
//     "epoch_steps"] and what each of its R ranks holds alone ["ranks" = R, "rank.<r>.*"]: buffers
//     (per-rank BatchNorm statistics), the epoch's metric sums and its random streams. The data
//     loader needs no state of its own: its order and augmentation follow from (seed, epoch, step).
//     A model-only checkpoint (calibrate, or a program's own save) has no training state:
//     eval/export/--init-from accept it, resume refuses it.
//   * notes: free-form strings (the run's options as JSON, calibration provenance, ...).
// load() validates: a missing field is one lowbit::Error naming the file and the field, and the
// numbers anything is sized from (the spec's in_channels/height/width/num_classes, the serving
// input size) are bounded like a model file's (quant/runtime/model_file.h ModelFileLimits) first;
// check_resumes() refuses a run whose model or quantization policy differs from the checkpoint's,
// naming both (e.g. a W2A2 checkpoint resumed with --wbits 4).
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/state_dict.h"
#include "layers/module.h"
#include "models/model_spec.h"

namespace lowbit {

// Input size, normalization x = (pixel / 255 - mean[c]) / std[c] and class names of a model.
struct ServingInfo {
  int64_t channels = 0, height = 0, width = 0;
  std::vector<float> mean, std;
  std::vector<std::string> class_names;

  static ServingInfo from_dataset(const Dataset& data);
  // Throws unless `data` has this input size and at most this many classes, naming `spec`; then
  // gives it this normalization (so a DataLoader over it feeds the model what it was trained on).
  void apply_to(Dataset& data, const std::string& spec) const;
};

// What one rank of a data-parallel run holds alone in the middle of an epoch (the replicas agree
// on everything else): its buffers (per-rank BatchNorm statistics), its share of the epoch's
// metric sums and its random streams.
// A model's random streams (Module::named_generators) by dotted name.
using RngStates = std::map<std::string, std::array<uint64_t, 4>>;
RngStates rng_states(Module& model);
// Restores every stream of `model` from `states`; throws naming `source` and the stream when one is missing.
void set_rng_states(Module& model, const RngStates& states, const std::string& source);

struct RankState {
  StateDict buffers;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  RngStates rng;

  StateDict to_state_dict() const;
  // `source` names the file in errors.
  static RankState from_state_dict(const StateDict& state, const std::string& source);
};

struct TrainingState {
  int64_t epoch = 0;        // epochs completed
  int64_t global_step = 0;  // optimizer steps completed
  double best_acc = -1, test_acc = 0;
  RngStates rng;                  // the model's random streams
  StateDict optimizer;            // Optimizer::state_dict()
  std::string schedule;           // LrSchedule::describe() of the run
  int64_t global_batch = 0;       // samples per step over all ranks; 0: unknown (older checkpoints)
  // Mid-epoch only (epoch_step > 0): steps done of epoch `epoch` (0-based) out of epoch_steps, and
  // each rank's own state (index = rank).
  int64_t epoch_step = 0, epoch_steps = 0;
  std::vector<RankState> ranks;
};

struct Checkpoint {
  ModelSpec spec;  // spec.name empty: a model the program defines itself (rebuilt from spec.architecture)
  StateDict model;
  ServingInfo serving;
  std::string data;  // dataset spec the model was trained on ("" when unknown)
  std::optional<TrainingState> training;
  std::map<std::string, std::string> notes;

  StateDict to_state_dict() const;
  // `source` names the file in errors. `registry`: the quantizer methods its policy may name
  // (quant/registry.h; it becomes spec.policy.registry and must outlive the checkpoint's spec).
  static Checkpoint from_state_dict(const StateDict& state, const std::string& source,
                                    const QuantizerRegistry& registry = QuantizerRegistry::builtin());
  void save(const std::string& path) const;  // atomic
  static Checkpoint load(const std::string& path, const QuantizerRegistry& registry = QuantizerRegistry::builtin());

  // The model of `spec` (zoo name or architecture), with the checkpoint's weights (strict: every
  // entry must match). Throws naming `source` (and the layer whose type has no registered config).
  std::shared_ptr<Module> build_model(const std::string& source) const;
  // The model's input and class count: the zoo spec's; for a program-defined model the serving
  // info's input size and class names.
  ModelConfig model_config() const;
  // Throws one lowbit::Error when this checkpoint cannot resume a run of `run` (a model-only
  // checkpoint; another model, input, class count or quantization policy), naming both sides.
  void check_resumes(const ModelSpec& run, const std::string& source) const;
};

// --init-from: copies a checkpoint's model weights into `model`, which may be quantized (its
// quantizer parameters, absent from a float checkpoint, keep their init). Every checkpoint entry
// must exist in the model with the same shape.
void load_weights(Module& model, const Checkpoint& checkpoint, const std::string& source);

}  // namespace lowbit
