// training_run.cpp: a zoo model's training run from TrainOptions, and the progressive schedule.
#include "models/training_run.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/collectives.h"
#include "core/error.h"
#include "core/random.h"
#include "core/serialize.h"
#include "core/threading.h"
#include "models/model_spec.h"
#include "models/param_groups.h"
#include "optim/make_optimizer.h"
#include "quant/training.h"

namespace lowbit {

namespace {

nlohmann::json options_json(const TrainOptions& o) {
  return {{"model", o.model}, {"data", o.data}, {"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr},
          {"momentum", o.momentum}, {"optimizer", o.optimizer}, {"schedule", o.schedule},
          {"warmup_epochs", o.warmup_epochs}, {"weight_decay", o.weight_decay},
          {"quant_lr_mult", o.quant_groups.lr_mult},
          {"quant_weight_decay", o.quant_groups.weight_decay},
          {"seed", o.seed},
          {"augment", o.augment}, {"max_steps", o.max_steps}, {"policy", o.policy.to_json()},
          {"float_epochs", o.float_epochs}, {"init_from", o.init_from}};
}

void check_options(const TrainOptions& o, const Comm& comm) {
  LOWBIT_CHECK(o.epochs >= 1, "TrainOptions::epochs must be at least 1, got ", o.epochs);
  LOWBIT_CHECK(o.batch >= 1, "TrainOptions::batch must be at least 1, got ", o.batch);
  LOWBIT_CHECK(o.lr > 0 && std::isfinite(o.lr), "TrainOptions::lr must be positive, got ", o.lr);
  LOWBIT_CHECK(o.checkpoint_every >= 0, "TrainOptions::checkpoint_every must be 0 (off) or a number of steps, got ", o.checkpoint_every);
  LOWBIT_CHECK(o.checkpoint_minutes >= 0 && std::isfinite(o.checkpoint_minutes),
               "TrainOptions::checkpoint_minutes must be 0 (off) or positive, got ", o.checkpoint_minutes);
  LOWBIT_CHECK(o.keep >= 1, "TrainOptions::keep must be at least 1, got ", o.keep);
  LOWBIT_CHECK(o.quant_groups.lr_mult > 0 && std::isfinite(o.quant_groups.lr_mult),
               "TrainOptions::quant_groups.lr_mult must be positive, got ", o.quant_groups.lr_mult);
  LOWBIT_CHECK(std::isfinite(o.quant_groups.weight_decay), "TrainOptions::quant_groups.weight_decay must be finite, got ",
               o.quant_groups.weight_decay);
  LOWBIT_CHECK(o.batch % comm.size() == 0, "TrainOptions::batch ", o.batch, " (the global batch) must be a multiple of the ",
               comm.size(), " ranks");
  o.policy.validate();
}

LrSchedule schedule_for(const TrainOptions& o) {
  LrScheduleOptions so;
  so.total_epochs = o.epochs;
  so.warmup_epochs = o.warmup_epochs;
  so.milestones = {o.epochs / 2, o.epochs * 3 / 4};
  so.step_size = std::max<int64_t>(1, o.epochs / 3);
  return LrSchedule::from_name(o.schedule, so);
}

LoaderOptions loader_options(const TrainOptions& o, const Dataset& train_set, const Comm& comm) {
  LoaderOptions lo;
  lo.batch_size = o.batch;  // global batch: rank r trains on its slice of every step's batch
  lo.rank = comm.rank();
  lo.world_size = comm.size();
  lo.seed = o.seed;
  lo.random_crop = o.augment;
  lo.horizontal_flip = o.augment;
  lo.crop_padding = train_set.height <= 28 ? 2 : 4;
  return lo;
}

void log_setup(const TrainOptions& o, const Dataset& train_set, const Dataset& test_set, const Module& model,
               const DataParallel& dp, const DataLoader& loader) {
  if (!o.log || !dp.is_root()) return;
  o.log(detail::concat("lowbit train: ", o.model, " on ", o.data, " (", train_set.size(), " train / ", test_set.size(),
                       " test images, ", train_set.channels, "x", train_set.height, "x", train_set.width, ", ",
                       train_set.num_classes(), " classes), ", model.parameter_count(), " parameters, ", o.optimizer,
                       " lr ", o.lr, ", ", o.schedule, " schedule, batch ", o.batch, ", ", num_threads(), " threads"));
  if (dp.active()) {
    char mb[32];
    std::snprintf(mb, sizeof mb, "%.2f", static_cast<double>(dp.gradient_bytes()) / 1e6);
    o.log(detail::concat("data-parallel: ", dp.size(), " ranks x ", num_threads(), " threads, local batch ",
                         loader.local_batch_size(), ", ", o.sync_bn ? "synchronised" : "per-rank",
                         " BN statistics, ", mb, " MB allreduced per step"));
  }
}

}  // namespace

FitResult train(const TrainOptions& o) {
  Comm& comm = lowbit::comm();
  check_options(o, comm);
  // agreed(): a bad file on any rank stops every rank with that rank's message.
  const DatasetOptions data_options{o.skip_bad_images};
  const Dataset train_set = agreed(comm, [&] { return load_dataset(o.data, Split::Train, data_options); });
  const Dataset test_set = agreed(comm, [&] { return load_dataset(o.data, Split::Test, data_options); });
  const size_t skipped = train_set.skipped.size() + test_set.skipped.size();
  if (o.log && comm.rank() == 0)
    for (const Dataset* d : {&train_set, &test_set})
      for (const std::string& line : d->skipped) o.log("warning: skipped " + line);
  ModelSpec spec = model_spec_for(o.model, train_set);
  spec.policy = o.policy;

  Generator init(o.seed);  // the initialisation's stream: the same seed gives the same model
  std::shared_ptr<Module> model = build_model(spec, init);
  // Rank 0 reads it (other nodes need not see the file); DataParallel below broadcasts the weights.
  if (!o.init_from.empty())
    agreed(comm, [&] { if (comm.rank() == 0) load_weights(*model, Checkpoint::load(o.init_from, o.policy.methods()), o.init_from); });
  if (spec.policy.quantized() && o.log && comm.rank() == 0) o.log(bits_table(*model));
  // Quantizer parameters (PACT alpha, QIL c/d/gamma, LSQ s) get their own groups, clamps and
  // gradient scales; a float model has one group.
  OptimizerConfig oc;
  oc.sgd.momentum = o.momentum;
  auto optimizer =
      make_optimizer(o.optimizer, parameter_groups(*model, spec.policy, o.lr, o.weight_decay, o.quant_groups), oc);
  DataLoader loader(train_set, loader_options(o, train_set, comm));

  TrainerOptions to;
  to.epochs = o.epochs;
  to.stop_after = o.stop_after;
  to.max_steps = o.max_steps;
  to.float_epochs = spec.policy.quantized() ? o.float_epochs : 0;
  to.eval_limit = o.eval_limit;
  to.out = o.out;
  to.progress = o.progress;
  to.checkpoint_every = o.checkpoint_every;
  to.checkpoint_minutes = o.checkpoint_minutes;
  to.keep = o.keep;
  to.stop_requested = o.stop_requested;
  // Collective: rank 0's parameters and buffers to every rank, sync-BN with --sync-bn.
  DataParallel dp(*model, {o.sync_bn}, comm);
  Trainer trainer(dp, *optimizer, schedule_for(o), loader, &test_set, to);
  trainer.set_model_spec(spec);
  trainer.set_serving(ServingInfo::from_dataset(train_set), o.data);
  trainer.set_note("options", options_json(o).dump());
  if (o.resume) {
    const ResumeInfo info = trainer.resume(o.out + "/last.ckpt");
    if (o.log && dp.is_root()) {
      for (const std::string& why : info.skipped) o.log("warning: " + why + "; falling back to an older checkpoint");
      o.log(info.epoch_step > 0 ? detail::concat("resuming from ", info.path, " inside epoch ", info.epoch + 1,
                                                 " after step ", info.epoch_step)
                                : detail::concat("resuming from ", info.path, " after epoch ", info.epoch));
    }
  }
  log_setup(o, train_set, test_set, *model, dp, loader);
  const FitResult result = trainer.fit();
  if (skipped > 0 && o.log && dp.is_root())
    o.log(detail::concat("skipped ", skipped, " bad images of ", o.data, " (warnings above)"));
  if (spec.policy.quantized() && o.log && dp.is_root()) {
    std::string lines = "quantizer parameters at the end of training:";
    const nlohmann::json state = quantizer_state(*model);  // named: items() must not outlive its json
    for (auto& [name, value] : state.items()) {
      char row[256];
      std::snprintf(row, sizeof row, "\n  %-40s %s", name.c_str(), value.dump().c_str());
      lines += row;
    }
    o.log(lines);
  }
  return result;
}

FitResult train_progressive(const TrainOptions& o, const std::vector<int>& bits) {
  LOWBIT_CHECK(o.policy.quantized(), "train_progressive needs a quantized TrainOptions::policy, got method ", o.policy.method);
  LOWBIT_CHECK(!bits.empty(), "train_progressive: give the bit widths, e.g. {8, 4, 3, 2}");
  for (size_t i = 0; i < bits.size(); ++i)
    LOWBIT_CHECK(bits[i] >= 2 && bits[i] <= 8 && (i == 0 || bits[i] < bits[i - 1]),
                 "train_progressive: bit widths must be in 2..8 and strictly decreasing, got ", bits[i], " at position ",
                 i + 1);
  FitResult result;
  std::string previous;
  for (size_t i = 0; i < bits.size(); ++i) {
    TrainOptions stage = o;
    stage.policy.wbits = stage.policy.abits = bits[i];
    const bool final_stage = i + 1 == bits.size();
    stage.out = final_stage ? o.out : detail::concat(o.out, "/stage-w", bits[i], "a", bits[i]);
    if (i > 0) {
      stage.init_from = previous;
      stage.float_epochs = 0;
    }
    stage.resume = o.resume && std::filesystem::exists(stage.out + "/last.ckpt");
    if (o.log && comm().rank() == 0)
      o.log(detail::concat("progressive stage ", i + 1, "/", bits.size(), ": W", bits[i], "A", bits[i], " -> ",
                           stage.out));
    result = train(stage);
    if (result.stopped) break;  // the stage resumes with options.resume, the later ones start after it
    previous = result.checkpoint;
  }
  return result;
}

}  // namespace lowbit
