// cmd_bench_train.cpp: `lowbit bench train`: training steps on synthetic data of the model's
// input shape, timed for a few seconds after a warm-up; reports images/s and peak RSS.
// Under mpirun/srun: data-parallel steps (--batch is the global batch, gradients allreduced every
// step, rank 0's clock decides when all ranks stop); rank 0 reports images/s of all ranks together
// and the time of one step's gradient allreduce measured alone.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/error.h"
#include "core/ops_loss.h"
#include "core/random.h"
#include "core/threading.h"
#include "layers/data_parallel.h"
#include "models/model_spec.h"
#include "models/param_groups.h"
#include "optim/make_optimizer.h"
#include "tools/commands.h"
#include "tools/quant_options.h"

namespace lowbit::cli {

namespace {

struct BenchTrainOptions {
  std::string model = "convnet";
  int64_t batch = 128, channels = 1, height = 28, width = 28, classes = 10;
  int threads = 0;
  double seconds = 5, warmup = 3;
  bool json = false;
  bool sync_bn = false;
  bool vs_fp32 = false;
  int rounds = 5;
};

// One model + optimizer + data-parallel wrapper on a fixed synthetic batch, stepped for a time.
struct TrainBench {
  Generator init{0};  // the model's initialisation stream (declared first: built before the model)
  std::shared_ptr<Module> model;
  std::unique_ptr<Optimizer> opt;
  DataParallel dp;
  Tensor x;
  std::vector<int32_t> y;
  int64_t local_batch, global_batch;
  int64_t steps = 0;     // of the last images_per_s() call
  double seconds = 0;

  TrainBench(const BenchTrainOptions& o, const QuantPolicy& policy)
      // The same model and optimizer groups as `lowbit train` with these flags (QAT included),
      // initialised from seed 0 whichever model is built first.
      : model(build_model({o.model, {o.channels, o.height, o.width, o.classes}, policy, nullptr}, init)),
        opt(make_optimizer("sgd", parameter_groups(*model, policy, 0.01, 5e-4))),
        dp(*model, {o.sync_bn}),
        local_batch(o.batch / comm().size()),
        global_batch(o.batch) {
    model->train();
    Generator gen(1 + static_cast<uint64_t>(comm().rank()));
    x = Tensor::randn({local_batch, o.channels, o.height, o.width}, gen);
    y.resize(static_cast<size_t>(local_batch));
    for (auto& v : y) v = static_cast<int32_t>(gen.below(o.classes));
    for (int i = 0; i < o.warmup; ++i) step(false);
  }
  bool step(bool stop) {  // returns true when any rank asked to stop
    opt->zero_grad();
    Tensor loss = cross_entropy(model->forward(x), y);
    loss.backward();
    const bool all_stop = dp.reduce_gradients(local_batch, loss.item(), stop).stop;
    opt->step();
    return all_stop;
  }
  double images_per_s(double window) {
    steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (bool stop = false, enough = false; !stop;) {
      stop = step(enough);
      ++steps;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      enough = is_root() && seconds >= window && steps >= 3;  // rank 0's clock decides for every rank
    }
    return static_cast<double>(steps * global_batch) / seconds;
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

void register_bench_train(CLI::App& bench, const QuantizerRegistry& registry) {
  auto o = std::make_shared<BenchTrainOptions>();
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
  add_quant_flags(cmd, *qflags, registry);
  cmd->add_flag("--vs-fp32", o->vs_fp32,
                "Also time the float32 model of the same architecture in alternating windows of the same run "
                "and report the ratio (QAT cost; medians of --rounds windows each)");
  cmd->add_option("--rounds", o->rounds, "Alternating windows per model with --vs-fp32")->capture_default_str()
      ->check(CLI::PositiveNumber);
  const QuantizerRegistry* methods = &registry;
  cmd->callback([o, qflags, methods] {
    set_num_threads(threads_for(comm(), o->threads));
    LOWBIT_CHECK(o->batch % comm().size() == 0, "--batch ", o->batch, " (the global batch) must be a multiple of the ",
                 comm().size(), " ranks");
    o->width = o->height;
    const QuantPolicy policy = make_policy(*qflags, *methods);
    LOWBIT_CHECK(!o->vs_fp32 || policy.quantized(), "--vs-fp32 compares a quantized --method with float32; give one");
    TrainBench main(*o, policy);
    double ips = 0, fp32_ips = 0;
    if (!o->vs_fp32) {
      ips = main.images_per_s(o->seconds);
    } else {
      TrainBench fp32(*o, QuantPolicy{});
      std::vector<double> q, f;
      for (int r = 0; r < o->rounds; ++r) {  // alternate, so both see the same machine load
        q.push_back(main.images_per_s(o->seconds / o->rounds));
        f.push_back(fp32.images_per_s(o->seconds / o->rounds));
      }
      ips = median(q);
      fp32_ips = median(f);
    }
    const double allreduce_ms = main.dp.active() ? 1e3 * main.dp.measure_allreduce_seconds(20) : 0.0;
    if (!is_root()) return;
    std::fprintf(stderr, "bench train: %s batch %lld, %d ranks x %d threads: %.1f images/s (%lld steps in %.2f s), "
                 "peak RSS %.0f MiB", o->model.c_str(), static_cast<long long>(o->batch), comm().size(), num_threads(),
                 ips, static_cast<long long>(main.steps), main.seconds, peak_rss_mb());
    if (main.dp.active())
      std::fprintf(stderr, ", gradient allreduce %.2f MB in %.3f ms", static_cast<double>(main.dp.gradient_bytes()) / 1e6,
                   allreduce_ms);
    if (o->vs_fp32) std::fprintf(stderr, "; float32 %.1f images/s, ratio %.3f", fp32_ips, ips / fp32_ips);
    std::fprintf(stderr, "\n");
    if (o->json) {
      nlohmann::json j{{"model", o->model}, {"method", policy.method}, {"wbits", policy.wbits},
                       {"abits", policy.abits}, {"batch", o->batch}, {"threads", num_threads()},
                       {"ranks", comm().size()}, {"images_per_s", ips}, {"peak_rss_mb", peak_rss_mb()},
                       {"step_ms", 1e3 * main.seconds / static_cast<double>(main.steps)},
                       {"allreduce_bytes", main.dp.active() ? main.dp.gradient_bytes() : 0},
                       {"allreduce_ms", allreduce_ms}};
      if (o->vs_fp32) {
        j["fp32_images_per_s"] = fp32_ips;
        j["ratio_vs_fp32"] = ips / fp32_ips;
      }
      print_json_line(j.dump());
    }
  });
}

}  // namespace lowbit::cli
