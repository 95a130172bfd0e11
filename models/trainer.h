// trainer.h: Trainer, the training loop of any Module (a zoo model or one a program defines):
// fit() runs epochs of  seeded shuffle -> batches -> forward -> loss -> backward -> data-parallel
// gradient average -> optimizer step (lr from the schedule, per step), then per epoch: the
// statistics sync of DataParallel, test-set evaluation, metrics to every sink and callback,
// OUT/last.ckpt (and OUT/best.ckpt when the test accuracy did not drop below the best; float
// warm-up epochs, before the quantizers switch on, never count) written
// atomically on rank 0. resume() restores a run from its last checkpoint so that the final
// weights are bit-identical to an uninterrupted run (same seed, threads and ranks).
//
// The Trainer always steps through a DataParallel (layers/data_parallel.h): with one rank it is a
// pass-through, under mpirun it averages gradients and only rank 0 writes files. The loader's
// batch is the GLOBAL batch (LoaderOptions.rank/world_size select this rank's slice).
// evaluate(): rank r evaluates a contiguous shard of the test set, sums are reduced over ranks.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/data/dataset.h"
#include "core/data/loader.h"
#include "layers/data_parallel.h"
#include "models/checkpoint.h"
#include "models/metrics.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"

namespace lowbit {

// loss(logits, labels) -> scalar mean loss over the batch (default: cross_entropy).
using LossFn = std::function<Tensor(const Tensor& logits, const std::vector<int32_t>& labels)>;

struct TrainerOptions {
  int64_t epochs = 1;        // length of the schedule
  int64_t stop_after = 0;    // stop after this epoch (the schedule still spans `epochs`); 0: run all
  int64_t max_steps = 0;     // steps per epoch; 0: all the loader has
  int64_t float_epochs = 0;  // epochs with the model's quantizers off (float warm-up)
  int64_t eval_batch = 256;
  int64_t eval_limit = 0;    // first N test images; 0: all
  std::string out;           // folder of last.ckpt, best.ckpt, metrics.jsonl, metrics.csv; "": none
  bool progress = false;     // live progress bar on rank 0 (stderr)
  LossFn loss;               // empty: cross_entropy
};

struct EvalResult {
  double accuracy = 0, loss = 0, images_per_s = 0;
  int64_t images = 0;
};

struct FitResult {
  double test_acc = 0, test_loss = 0, train_images_per_s = 0, seconds = 0;
  int64_t epochs = 0;      // epochs completed (including those of a resumed checkpoint)
  std::string checkpoint;  // OUT/last.ckpt ("" without out)
};

// Collective over `comm` (each rank evaluates its shard). Classification accuracy (%) and mean loss
// (cross-entropy) of the first `limit` images (0: all), in eval mode; the mode is restored after.
EvalResult evaluate(Module& model, const Dataset& data, int64_t batch, int64_t limit = 0, bool progress = false,
                    Comm& comm = lowbit::comm());

class Trainer {
 public:
  // Everything is held by reference and must outlive the Trainer. test may be null (no evaluation;
  // best.ckpt then follows last.ckpt).
  Trainer(DataParallel& dp, Optimizer& optimizer, LrSchedule schedule, DataLoader& train, const Dataset* test,
          TrainerOptions options);

  // What checkpoints carry besides the run's state: a zoo model's spec (eval/export rebuild it by
  // name; also what resume() validates against), serving info (default: the training set's input
  // size, normalization and class names), the dataset spec, free-form notes.
  void set_model_spec(const ModelSpec& spec) { spec_ = spec; }
  void set_serving(const ServingInfo& serving, const std::string& data_spec);
  void set_note(const std::string& key, const std::string& value) { notes_[key] = value; }

  // Sinks and callbacks see every step and epoch (callbacks run on every rank, after the sinks).
  void add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }
  void on_step(std::function<void(const StepMetrics&)> fn) { step_callbacks_.push_back(std::move(fn)); }
  void on_epoch(std::function<void(const EpochMetrics&)> fn) { epoch_callbacks_.push_back(std::move(fn)); }

  // Collective: rank 0 reads the checkpoint, every rank restores model, optimizer state, epoch,
  // step, best accuracy and RNG from it. Throws one AgreedError when it is missing, model-only or
  // from another model / quantization policy (Checkpoint::check_resumes).
  void resume(const std::string& path);
  int64_t start_epoch() const { return start_epoch_; }

  // Collective: trains epochs [start_epoch, min(stop_after, epochs)).
  FitResult fit();
  // Collective: evaluate() on the test set with the options' batch and limit.
  EvalResult evaluate();
  // The run's checkpoint now (model state, optimizer, epochs completed, RNG, spec, serving, notes).
  Checkpoint checkpoint(double test_acc) const;

 private:
  struct EpochTotals {
    double loss_sum = 0, seconds = 0;
    int64_t correct = 0, seen = 0;
  };
  EpochTotals train_epoch(int64_t epoch, int64_t steps);
  void finish_epoch(int64_t epoch, const EpochTotals& totals, FitResult& result);
  void open_outputs();

  DataParallel& dp_;
  Module& model_;
  Optimizer& optimizer_;
  LrSchedule schedule_;
  DataLoader& train_;
  const Dataset* test_;
  TrainerOptions options_;
  ModelSpec spec_;
  ServingInfo serving_;
  std::string data_spec_;
  std::map<std::string, std::string> notes_;
  std::vector<std::unique_ptr<MetricsSink>> sinks_;
  std::vector<std::function<void(const StepMetrics&)>> step_callbacks_;
  std::vector<std::function<void(const EpochMetrics&)>> epoch_callbacks_;
  int64_t start_epoch_ = 0, epochs_done_ = 0, global_step_ = 0;
  double best_acc_ = -1;
  bool resumed_ = false, outputs_open_ = false;
};

}  // namespace lowbit
