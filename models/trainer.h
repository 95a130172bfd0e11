// trainer.h: Trainer, the training loop of any Module (a zoo model or one a program defines):
// fit() runs epochs of  seeded shuffle -> batches -> forward -> loss -> backward -> data-parallel
// gradient average -> optimizer step (lr from the schedule, per step), then per epoch: the
// statistics sync of DataParallel, test-set evaluation, metrics to every sink and callback,
// OUT/last.ckpt (and OUT/best.ckpt when the test accuracy did not drop below the best; float
// warm-up epochs, before the quantizers switch on, never count) written
// atomically on rank 0. Inside an epoch, OUT/last.ckpt is also written every checkpoint_every
// steps, after checkpoint_minutes, and when a stop is requested (request_stop(), or
// TrainerOptions::stop_requested, e.g. a signal): every rank learns of a request from any rank
// with the step's gradient allreduce (no extra message), so all finish the same step, write one
// mid-epoch checkpoint and return from fit() with FitResult::stopped. resume() restores a run from
// its last checkpoint, at an epoch end or inside an epoch, so that the final weights and
// checkpoint are bit-identical to an uninterrupted run (same seed, threads and ranks; another rank
// count with the same global batch continues within float rounding: docs/distributed.md).
//
// The Trainer always steps through a DataParallel (layers/data_parallel.h): with one rank it is a
// pass-through, under mpirun it averages gradients and only rank 0 writes files. The loader's
// batch is the GLOBAL batch (LoaderOptions.rank/world_size select this rank's slice).
// evaluate(): rank r evaluates a contiguous shard of the test set, sums are reduced over ranks.
#pragma once
#include <atomic>
#include <chrono>
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
  // Mid-epoch checkpoints of OUT/last.ckpt (needs out), besides the one at each epoch end:
  int64_t checkpoint_every = 0;   // after every N-th optimizer step of the run; 0: off
  double checkpoint_minutes = 0;  // after the first step that ends M minutes after the last checkpoint; 0: off
  int keep = 1;                   // checkpoint files kept: last.ckpt, last.ckpt.1, ... (models/checkpoint_files.h)
  // Polled once per step on every rank (e.g. a signal flag, core/stop_signal.h); true on any rank
  // stops every rank after that step, as request_stop() does. Empty: never.
  std::function<bool()> stop_requested;
};

struct EvalResult {
  double accuracy = 0, loss = 0, images_per_s = 0;
  int64_t images = 0;
};

struct FitResult {
  double test_acc = 0, test_loss = 0, train_images_per_s = 0, seconds = 0;
  int64_t epochs = 0;      // epochs completed (including those of a resumed checkpoint)
  std::string checkpoint;  // OUT/last.ckpt ("" without out)
  bool stopped = false;    // a stop request ended fit() early; OUT/last.ckpt resumes the run
  int64_t epoch_step = 0;  // stopped inside an epoch: its steps done (0: stopped at an epoch end)
};

// What resume() restored, from which file.
struct ResumeInfo {
  std::string path;                  // the checkpoint file used (rank 0; "" on other ranks)
  std::vector<std::string> skipped;  // newer files that did not load, with the reason (rank 0)
  int64_t epoch = 0, epoch_step = 0;  // the run continues at this epoch (0-based) and step
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
  // name; also what resume() validates against; a program's model needs none: every checkpoint
  // records the model's architecture, models/model_spec.h, so eval/export/calibrate/bench rebuild
  // any model of library layers, and a quantized one its policy for the record), serving info
  // (default: the training set's input size, normalization and class names), the dataset spec,
  // free-form notes.
  void set_model_spec(const ModelSpec& spec) { spec_ = spec; }
  void set_serving(const ServingInfo& serving, const std::string& data_spec);
  void set_note(const std::string& key, const std::string& value) { notes_[key] = value; }

  // Sinks and callbacks see every step and epoch (callbacks run on every rank, after the sinks).
  void add_sink(std::unique_ptr<MetricsSink> sink) { sinks_.push_back(std::move(sink)); }
  void on_step(std::function<void(const StepMetrics&)> fn) { step_callbacks_.push_back(std::move(fn)); }
  void on_epoch(std::function<void(const EpochMetrics&)> fn) { epoch_callbacks_.push_back(std::move(fn)); }

  // Collective: rank 0 reads the checkpoint (the newest of path, path.1, ... that loads:
  // models/checkpoint_files.h), every rank restores model, optimizer state, epoch, step, best
  // accuracy and the model's random streams from it; from a mid-epoch checkpoint also its own buffers, RNG and metric sums
  // (with another rank count than the checkpoint's: rank 0's buffers and RNG on every rank). Throws
  // one AgreedError when no file loads, when it is model-only or from another model / quantization
  // policy (Checkpoint::check_resumes), or when its global batch or steps per epoch differ.
  ResumeInfo resume(const std::string& path);
  int64_t start_epoch() const { return start_epoch_; }

  // Collective: trains epochs [start_epoch, min(stop_after, epochs)), or until a stop request.
  FitResult fit();
  // Asks fit() to stop (with a checkpoint when out is set) after the step whose gradient allreduce
  // comes next: the current one when called from another thread during its forward/backward, the
  // next one when called from a step callback. Every rank stops there when any rank asks; a later
  // fit() continues the run. Safe from any thread.
  void request_stop() { stop_requested_.store(true, std::memory_order_relaxed); }
  // Collective: evaluate() on the test set with the options' batch and limit.
  EvalResult evaluate();
  // The run's checkpoint now (model state, optimizer, epochs completed, random streams, spec with
  // architecture, serving, notes).
  Checkpoint checkpoint(double test_acc) const;

 private:
  struct EpochTotals {
    double loss_sum = 0, seconds = 0;
    int64_t correct = 0, seen = 0;
    int64_t steps_done = 0;  // steps of the epoch done when train_epoch returned
    int64_t images = 0;      // images this rank trained in this call (not those of a resumed checkpoint)
    bool stop = false;       // a stop request ended the call
  };
  // Steps [first_step, steps) of `epoch`, on top of the sums `e` of the steps before.
  EpochTotals train_epoch(int64_t epoch, int64_t steps, int64_t first_step, EpochTotals e);
  void finish_epoch(int64_t epoch, const EpochTotals& totals, FitResult& result);
  // Collective: OUT/last.ckpt inside `epoch` after `step` of `steps` steps, with every rank's own state.
  void save_mid_epoch(int64_t epoch, int64_t step, int64_t steps, const EpochTotals& e);
  // Collective: rank 0 writes OUT/last.ckpt (and best.ckpt) from make(); every rank throws the
  // same AgreedError when the write fails (the previous files stay as they were).
  void write_checkpoint(const std::function<Checkpoint()>& make, bool best);
  int64_t steps_per_epoch() const;
  void open_outputs();
  // spec_ with the model's architecture (model_architecture).
  ModelSpec run_spec() const;

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
  int64_t start_epoch_ = 0, start_step_ = 0, epochs_done_ = 0, global_step_ = 0;
  EpochTotals start_totals_;  // this rank's sums of the steps before start_step_
  double best_acc_ = -1, last_test_acc_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::chrono::steady_clock::time_point last_checkpoint_time_;
  bool resumed_ = false, outputs_open_ = false;
};

}  // namespace lowbit
