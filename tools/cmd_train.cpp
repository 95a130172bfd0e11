// cmd_train.cpp: `lowbit train` and `lowbit eval`.
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <utility>
#include <nlohmann/json.hpp>

#include "core/collectives.h"
#include "core/comm.h"
#include "core/data/dataset.h"
#include "core/error.h"
#include "core/stop_signal.h"
#include "core/threading.h"
#include "models/checkpoint.h"
#include "models/trainer.h"
#include "models/training_run.h"
#include "quant/training.h"
#include "tools/commands.h"
#include "tools/quant_options.h"

namespace lowbit::cli {

void print_json_line(const std::string& json) {
  std::fflush(stderr);
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

bool is_root() { return comm().rank() == 0; }

void log_line(const std::string& text) {
  std::fprintf(stderr, "%s%s", text.c_str(), text.empty() || text.back() != '\n' ? "\n" : "");
}

namespace {

// The method's tested recipe fills whatever the user left unset.
void apply_recipe(CLI::App* cmd, TrainOptions& o) {
  if (!o.policy.quantized()) return;
  const QatRecipe r =
      default_recipe(o.policy.method, o.policy.wbits, o.policy.abits, !o.init_from.empty(), o.policy.methods());
  if (!cmd->count("--epochs")) o.epochs = r.epochs;
  if (!cmd->count("--lr")) o.lr = r.lr;
  if (!cmd->count("--weight-decay")) o.weight_decay = r.weight_decay;
  if (!cmd->count("--quant-lr-mult")) o.quant_groups.lr_mult = r.quant_lr_mult;
  if (!cmd->count("--quant-weight-decay")) o.quant_groups.weight_decay = r.quant_weight_decay;
  if (!cmd->count("--float-epochs")) o.float_epochs = r.float_epochs;
  if (!cmd->count("--optimizer")) o.optimizer = r.optimizer;
  if (!cmd->count("--schedule")) o.schedule = r.schedule;
  if (!cmd->count("--momentum")) o.momentum = r.momentum;
}

// The library's errors name its options (TrainOptions::lr, load_weights, ...), never flags; a CLI
// user set them with flags, so the CLI names those. Longer names first.
std::string with_flags(std::string what) {
  static const std::pair<const char*, const char*> kFlags[] = {
      {"TrainOptions::init_from, load_weights", "--init-from"},
      {"load_weights: checkpoint", "--init-from"},
      {"TrainOptions::checkpoint_every", "--checkpoint-every"},
      {"TrainOptions::checkpoint_minutes", "--checkpoint-minutes"},
      {"TrainOptions::quant_groups.lr_mult", "--quant-lr-mult"},
      {"TrainOptions::quant_groups.weight_decay", "--quant-weight-decay"},
      {"train_progressive needs a quantized TrainOptions::policy", "--progressive needs a quantization --method"},
      {"train_progressive", "--progressive"},
      {"TrainerOptions::epochs", "--epochs"},
      {"TrainOptions::epochs", "--epochs"},
      {"TrainOptions::batch", "--batch"},
      {"the learning rate (TrainOptions::lr)", "--lr"},
      {"TrainOptions::lr", "--lr"},
      {"TrainOptions::keep", "--keep"},
  };
  for (const auto& [name, flag] : kFlags)
    for (size_t at = what.find(name); at != std::string::npos; at = what.find(name, at + std::strlen(flag)))
      what.replace(at, std::strlen(name), flag);
  return what;
}

// Runs a training command, its library errors worded with the flags (the same error type, so an
// AgreedError stays one message for the whole job).
template <class F>
FitResult train_with_flag_errors(F&& run) {
  try {
    return run();
  } catch (const AgreedError& e) {
    throw AgreedError(with_flags(e.what()));
  } catch (const Error& e) {
    throw Error(with_flags(e.what()));
  }
}

}  // namespace

void register_train(CLI::App& app, const QuantizerRegistry& registry) {
  auto opts = std::make_shared<TrainOptions>();
  auto threads = std::make_shared<int>(0);
  auto as_json = std::make_shared<bool>(false);
  auto qflags = std::make_shared<QuantFlags>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (float32 or quantization-aware) and write checkpoints and metrics");
  cmd->footer(
      "Examples:\n"
      "  lowbit train                                   # convnet on Fashion-MNIST, good defaults\n"
      "  lowbit train --model resnet20 --data cifar10:/data/cifar-10-batches-bin --augment\n"
      "  lowbit train --epochs 30 --out runs/long && lowbit train --epochs 30 --out runs/long --resume\n"
      "  lowbit train --method pact-sawb --wbits 2 --abits 2 --out runs/w2a2   # 2-bit QAT, 8-bit first/last\n"
      "  lowbit train --method lsq --wbits 4 --abits 4 --init-from runs/convnet/best.ckpt\n"
      "  lowbit train --method qil --progressive 8,4,3,2 --epochs 5 --init-from runs/convnet/best.ckpt\n"
      "With --method, unset --epochs/--lr/--weight-decay/--quant-lr-mult/--quant-weight-decay/--float-epochs come from the method's tested recipe.\n"
      "Data specs: fashion-mnist | mnist:DIR | idx:DIR | cifar10:DIR | folder:DIR\n"
      "Outputs in --out: metrics.jsonl, metrics.csv (one line per epoch), last.ckpt, best.ckpt.\n"
      "Clusters: on SIGTERM, SIGINT or SIGUSR1 (e.g. sbatch --signal=USR1@120) the run finishes its step, writes\n"
      "OUT/last.ckpt and exits with status 75 (EX_TEMPFAIL); the same command with --resume continues it, bit for\n"
      "bit. A second Ctrl-C stops at once. --checkpoint-every/--checkpoint-minutes bound what a SIGKILL loses.");
  cmd->add_option("--model", opts->model, "Model: mlp, convnet, resnet20, resnet32, resnet56, resnet18")
      ->capture_default_str();
  cmd->add_option("--data", opts->data, "Dataset spec")->capture_default_str();
  cmd->add_option("--epochs", opts->epochs, "Epochs to train")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", opts->batch, "Batch size (global)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", opts->lr, "Peak learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--momentum", opts->momentum, "SGD momentum")->capture_default_str();
  cmd->add_option("--optimizer", opts->optimizer, "sgd | adam | adamw")
      ->capture_default_str()->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  cmd->add_option("--schedule", opts->schedule, "Learning-rate schedule: cosine | step | multistep | none")
      ->capture_default_str()->check(CLI::IsMember({"cosine", "step", "multistep", "none"}));
  cmd->add_option("--warmup-epochs", opts->warmup_epochs, "Linear lr warm-up length in epochs")->capture_default_str();
  cmd->add_option("--weight-decay", opts->weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_option("--quant-lr-mult", opts->quant_groups.lr_mult,
                  "lr multiplier of the quantizer parameters (PACT alpha, QIL c/d/gamma, LSQ s)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--quant-weight-decay", opts->quant_groups.weight_decay,
                  "L2 on PACT's alpha (negative: the weights' --weight-decay)")
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Seed for initialisation, shuffling, augmentation")->capture_default_str();
  cmd->add_option("--threads", *threads, "Threads per rank (0 = this node's cores / its ranks)")->capture_default_str();
  cmd->add_option("--out", opts->out, "Output folder")->capture_default_str();
  cmd->add_flag("--resume", opts->resume,
                "Continue from OUT/last.ckpt, also one written inside an epoch (same final weights as an uninterrupted "
                "run); a corrupt or truncated last.ckpt falls back to last.ckpt.1, ... (see --keep)");
  cmd->add_option("--checkpoint-every", opts->checkpoint_every,
                  "Also write OUT/last.ckpt after every N-th step of the run (0 = only at epoch ends, which always write)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--checkpoint-minutes", opts->checkpoint_minutes,
                  "Also write OUT/last.ckpt inside an epoch when M minutes passed since the last one (0 = off)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--keep", opts->keep,
                  "Checkpoints to keep: last.ckpt plus the previous ones as last.ckpt.1, ... (--resume falls back to them)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--stop-after", opts->stop_after,
                  "Stop after this epoch; the schedule still spans --epochs (continue with --resume)");
  cmd->add_flag("--augment", opts->augment, "Random crop with padding + horizontal flip");
  cmd->add_flag("--skip-bad-images", opts->skip_bad_images,
                "folder: data: leave out images that do not decode (a warning each, a count at the end) instead of "
                "stopping with an error");
  cmd->add_option("--max-steps", opts->max_steps, "Limit steps per epoch (0 = all; for quick checks)");
  cmd->add_option("--eval-limit", opts->eval_limit, "Evaluate on the first N test images (0 = all)");
  cmd->add_flag("--sync-bn", opts->sync_bn,
                "Under mpirun/srun: BatchNorm statistics over the global batch (N ranks = 1 process)");
  add_quant_flags(cmd, *qflags, registry);
  cmd->add_option("--float-epochs", opts->float_epochs, "Float warm-up epochs before the quantizers switch on");
  cmd->add_option("--init-from", opts->init_from, "Start from this checkpoint's (float) weights, e.g. to fine-tune QAT");
  auto progressive = std::make_shared<std::vector<int>>();
  cmd->add_option("--progressive", *progressive,
                  "QIL's progressive schedule, e.g. 8,4,3,2: one run of --epochs per width, each starting from the "
                  "previous one's weights and quantizer intervals (earlier stages in OUT/stage-w<b>a<b>/)")
      ->delimiter(',');
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([opts, threads, as_json, qflags, cmd, progressive, methods] {
    opts->policy = make_policy(*qflags, *methods);
    apply_recipe(cmd, *opts);
    opts->log = log_line;
    set_num_threads(threads_for(comm(), *threads));  // 0: this rank's share of the node's cores
    install_stop_signal_handlers();
    opts->stop_requested = [] { return stop_signal() != 0; };
    const FitResult r = train_with_flag_errors(
        [&] { return progressive->empty() ? train(*opts) : train_progressive(*opts, *progressive); });
    if (r.stopped) {
      if (is_root())
        std::fprintf(stderr, "stopped by %s %s; %s; resume with the same command and --resume\n",
                     stop_signal_name(stop_signal()),
                     (r.epoch_step > 0 ? detail::concat("in epoch ", r.epochs + 1, " after step ", r.epoch_step)
                                       : detail::concat("after epoch ", r.epochs)).c_str(),
                     r.checkpoint.empty() ? "no --out, no checkpoint" : ("checkpoint " + r.checkpoint).c_str());
      throw ExitWith{kExitStoppedResumable};
    }
    if (!is_root()) return;  // rank 0 reports for the whole job
    std::fprintf(stderr, "done: test accuracy %.2f%% after %lld epochs, %.0f train images/s, %.1f s; checkpoint %s\n",
                 r.test_acc, static_cast<long long>(r.epochs), r.train_images_per_s, r.seconds, r.checkpoint.c_str());
    if (*as_json)
      print_json_line(nlohmann::json{{"test_acc", r.test_acc},
                                     {"train_images_per_s", r.train_images_per_s},
                                     {"epochs", r.epochs},
                                     {"seconds", r.seconds},
                                     {"checkpoint", r.checkpoint}}
                          .dump());
  });
}

void register_eval(CLI::App& app, const QuantizerRegistry& registry) {
  auto checkpoint = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>("fashion-mnist");
  auto batch = std::make_shared<int64_t>(256);
  auto threads = std::make_shared<int>(0);
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a checkpoint on a dataset's test split");
  cmd->add_option("--checkpoint", *checkpoint, "Checkpoint file (last.ckpt / best.ckpt)")->required();
  cmd->add_option("--data", *data, "Dataset spec")->capture_default_str();
  cmd->add_option("--batch", *batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", *threads, "Threads per rank (0 = this node's cores / its ranks)")->capture_default_str();
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([=] {
    set_num_threads(threads_for(comm(), *threads));
    const Checkpoint ck = Checkpoint::load(*checkpoint, *methods);
    const auto model = ck.build_model(*checkpoint);
    Dataset test = load_dataset(*data, Split::Test);
    ck.serving.apply_to(test, *data);  // the checkpoint's normalization, not the data's
    const EvalResult r = evaluate(*model, test, *batch, 0, true);
    if (!is_root()) return;
    std::fprintf(stderr, "test accuracy %.2f%%, loss %.4f on %lld images (%.0f images/s)\n", r.accuracy, r.loss,
                 static_cast<long long>(r.images), r.images_per_s);
    if (*as_json)
      print_json_line(nlohmann::json{{"test_acc", r.accuracy}, {"loss", r.loss}, {"images", r.images},
                                     {"images_per_s", r.images_per_s}}.dump());
  });
}

}  // namespace lowbit::cli
