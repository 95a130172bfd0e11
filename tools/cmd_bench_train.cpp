// cmd_bench_train.cpp: `lowbit bench train`: training steps on synthetic data of the model's
// input shape, timed for a few seconds after a warm-up; reports images/s and peak RSS.
// Under mpirun/srun: data-parallel steps (--batch is the global batch, gradients allreduced every
// step, rank 0's clock decides when all ranks stop); rank 0 reports images/s of all ranks together
// and the time of one step's gradient allreduce measured alone.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/threading.h"
#include "models/registry.h"
#include "optim/make_optimizer.h"
#include "tools/commands.h"
#include "tools/quant_options.h"
#include "tools/training.h"
#include "tools/distributed.h"

namespace lowbit::cli {

void register_bench_train(CLI::App& bench) {
  struct Opts {
    std::string model = "convnet";
    int64_t batch = 128, channels = 1, height = 28, width = 28, classes = 10;
    int threads = 0;
    double seconds = 5, warmup = 3;
    bool json = false;
    bool sync_bn = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = bench.add_subcommand("train", "Training throughput on synthetic data (images/s, peak RSS)");
  cmd->add_option("--model", o->model, "Model name")->capture_default_str();
  cmd->add_option("--batch", o->batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--input", o->height, "Input height = width (28: Fashion-MNIST, 32: CIFAR)")->capture_default_str();
  cmd->add_option("--channels", o->channels, "Input channels")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seconds", o->seconds, "Measured time")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Warm-up steps")->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON summary as the last stdout line");
  cmd->add_flag("--sync-bn", o->sync_bn, "Under mpirun/srun: BatchNorm statistics over the global batch");
  auto qflags = std::make_shared<QuantFlags>();
  add_quant_flags(cmd, *qflags);
  cmd->callback([o, qflags] {
    set_num_threads(threads_for(o->threads));
    LOWBIT_CHECK(o->batch % world_size() == 0, "--batch ", o->batch, " (the global batch) must be a multiple of the ",
                 world_size(), " ranks");
    const int64_t local_batch = o->batch / world_size();
    o->width = o->height;
    manual_seed(0);
    // The same model and optimizer groups as `lowbit train` with these flags (QAT included).
    const QuantPolicy policy = make_policy(*qflags);
    auto model = build_model({o->model, {o->channels, o->height, o->width, o->classes}, policy});
    model->train();
    auto opt = make_optimizer("sgd", parameter_groups(*model, policy, 0.01, 5e-4));
    DataParallel dp(*model, {o->sync_bn});
    Generator gen(1 + static_cast<uint64_t>(world_rank()));
    const Tensor x = Tensor::randn({local_batch, o->channels, o->height, o->width}, gen);
    std::vector<int32_t> y(local_batch);
    for (auto& v : y) v = static_cast<int32_t>(gen.below(o->classes));
    auto step = [&](bool stop) {  // returns true when any rank asked to stop
      opt->zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y);
      loss.backward();
      const bool all_stop = dp.reduce_gradients(local_batch, loss.item(), stop).stop;
      opt->step();
      return all_stop;
    };
    for (int i = 0; i < o->warmup; ++i) step(false);
    int64_t steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    for (bool stop = false, enough = false; !stop;) {
      stop = step(enough);
      ++steps;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      enough = is_root() && el >= o->seconds && steps >= 3;  // rank 0's clock decides for every rank
    }
    const double ips = steps * o->batch / el;
    const double allreduce_ms = dp.active() ? 1e3 * dp.measure_allreduce_seconds(20) : 0.0;
    if (!is_root()) return;
    std::fprintf(stderr, "bench train: %s batch %lld, %d ranks x %d threads: %.1f images/s (%lld steps in %.2f s), "
                 "peak RSS %.0f MiB", o->model.c_str(), static_cast<long long>(o->batch), world_size(), num_threads(),
                 ips, static_cast<long long>(steps), el, peak_rss_mb());
    if (dp.active())
      std::fprintf(stderr, ", gradient allreduce %.2f MB in %.3f ms", static_cast<double>(dp.gradient_bytes()) / 1e6,
                   allreduce_ms);
    std::fprintf(stderr, "\n");
    if (o->json)
      print_json_line(nlohmann::json{{"model", o->model}, {"method", policy.method}, {"wbits", policy.wbits},
                                     {"abits", policy.abits}, {"batch", o->batch}, {"threads", num_threads()},
                                     {"ranks", world_size()}, {"images_per_s", ips}, {"peak_rss_mb", peak_rss_mb()},
                                     {"step_ms", 1e3 * el / steps}, {"allreduce_bytes", dp.active() ? dp.gradient_bytes() : 0},
                                     {"allreduce_ms", allreduce_ms}}.dump());
  });
}

}  // namespace lowbit::cli
