// cmd_bench_train.cpp: `lowbit bench train`: training steps on synthetic data of the model's
// input shape, timed for a few seconds after a warm-up; reports images/s and peak RSS.
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

namespace lowbit::cli {

void register_bench_train(CLI::App& bench) {
  struct Opts {
    std::string model = "convnet";
    int64_t batch = 128, channels = 1, height = 28, width = 28, classes = 10;
    int threads = 0;
    double seconds = 5, warmup = 3;
    bool json = false;
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
  cmd->callback([o] {
    set_num_threads(o->threads);
    o->width = o->height;
    manual_seed(0);
    auto model = make_model(o->model, {o->channels, o->height, o->width, o->classes});
    model->train();
    auto opt = make_optimizer("sgd", {{"weights", model->parameters(), 0.01, 5e-4}});
    Generator gen(1);
    const Tensor x = Tensor::randn({o->batch, o->channels, o->height, o->width}, gen);
    std::vector<int32_t> y(o->batch);
    for (auto& v : y) v = static_cast<int32_t>(gen.below(o->classes));
    auto step = [&] {
      opt->zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y);
      loss.backward();
      opt->step();
    };
    for (int i = 0; i < o->warmup; ++i) step();
    int64_t steps = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    while (el < o->seconds || steps < 3) {
      step();
      ++steps;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double ips = steps * o->batch / el;
    std::fprintf(stderr, "bench train: %s batch %lld, %d threads: %.1f images/s (%lld steps in %.2f s), peak RSS %.0f MiB\n",
                 o->model.c_str(), static_cast<long long>(o->batch), num_threads(), ips,
                 static_cast<long long>(steps), el, peak_rss_mb());
    if (o->json)
      print_json_line(nlohmann::json{{"model", o->model}, {"batch", o->batch}, {"threads", num_threads()},
                                     {"images_per_s", ips}, {"peak_rss_mb", peak_rss_mb()}}.dump());
  });
}

}  // namespace lowbit::cli
