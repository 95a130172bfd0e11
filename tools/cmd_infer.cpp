// cmd_infer.cpp: serving an exported integer model: `lowbit infer` (dataset accuracy or top-k of
// single images), `lowbit inspect` (per-layer table; --compare: parity with the fake-quant
// checkpoint) and `lowbit bench infer` (integer runtime vs the float32 model it came from).
// All three load through liblowbit-runtime's IntModel (quant/runtime/int_model.h), which
// validates the file; infer decodes images and scores them with the runtime's helpers, so it
// prints what the C API gives (tools/examples/classify.c).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "core/cpu_features.h"
#include "core/data/dataset.h"
#include "core/data/loader.h"
#include "core/error.h"
#include "core/random.h"
#include "core/serialize.h"
#include "core/threading.h"
#include "layers/layer_config.h"
#include "models/registry.h"
#include "quant/layer_types.h"
#include "quant/quantizer.h"
#include "quant/export/compare.h"
#include "quant/runtime/image.h"
#include "quant/runtime/int_model.h"
#include "quant/runtime/int_model_internal.h"
#include "quant/runtime/lowbit_runtime.h"
#include "tools/commands.h"
#include "models/checkpoint.h"

namespace lowbit::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Checks that the dataset fits the model, then gives it the model file's normalization (what the
// model was trained on; never recomputed from the data at hand).
void check_dataset_fits(const IntModel& m, Dataset& d, const std::string& spec) {
  LOWBIT_CHECK(d.channels == m.channels() && d.height == m.height() && d.width == m.width() &&
                   d.num_classes() <= m.num_classes(),
               "dataset ", spec, " (", d.channels, "x", d.height, "x", d.width, ", ", d.num_classes(),
               " classes) does not match the model input ", m.channels(), "x", m.height(), "x", m.width(), ", ",
               m.num_classes(), " classes");
  d.mean = m.mean();
  d.std = m.std_dev();
}

// logits [N, classes] of a batch through the model.
Tensor run_batch(const IntModel& m, const Tensor& images) {
  Tensor logits = Tensor::empty({images.size(0), m.num_classes()});
  m.run(images.data(), images.size(0), logits.data());
  return logits;
}

// Throughput of f (images per call) over at least `seconds` after one warm-up call, by wall clock
// and by process CPU time (steadier on a shared machine; with several threads it also counts
// time the workers spend spinning).
struct Rate {
  double wall = 0, cpu = 0;  // images per second
};
double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
Rate measure(const std::function<void()>& f, int64_t images, double seconds) {
  f();
  int64_t iters = 0;
  const double c0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  do {
    f();
    ++iters;
  } while (seconds_since(t0) < seconds);
  const double n = static_cast<double>(iters * images);
  return {n / seconds_since(t0), n / std::max(process_cpu_seconds() - c0, 1e-9)};
}
template <class T>
double median(std::vector<T> v, double T::*field) {
  std::vector<double> x;
  for (const auto& e : v) x.push_back(e.*field);
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}
double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

}  // namespace

void register_infer(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  auto images = std::make_shared<std::vector<std::string>>();
  auto batch = std::make_shared<int64_t>(256);
  auto threads = std::make_shared<int>(0);
  auto topk = std::make_shared<int>(5);
  auto limit = std::make_shared<int64_t>(0);
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("infer", "Run an exported integer model on a dataset's test split or on images");
  cmd->footer(
      "Examples:\n  lowbit infer --model w2a2.safetensors --data fashion-mnist --json\n"
      "  lowbit infer --model w2a2.safetensors shirt.png   # top-k classes");
  cmd->add_option("--model", *model, "Model file from lowbit export")->required();
  cmd->add_option("--data", *data, "Dataset spec: accuracy on its test split");
  cmd->add_option("images", *images, "PNG/JPEG images (resized to the model's input size when they differ)");
  cmd->add_option("--batch", *batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", *threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--top-k", *topk, "Classes listed per image")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--limit", *limit, "Only the first N test images (0 = all)");
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  cmd->callback([=] {
    LOWBIT_CHECK(data->empty() != images->empty(), "infer needs exactly one of --data SPEC or image files");
    set_num_threads(*threads);
    const IntModel m = IntModel::load(*model, {*threads, ""});
    if (!images->empty()) {
      json out = json::array();
      for (const auto& path : *images) {
        // Decoded and resized to the model's input, normalized with the file's mean/std, softmax.
        const std::vector<uint8_t> px = load_image_file(path, m.channels(), m.height(), m.width());
        std::vector<float> logits(static_cast<size_t>(m.num_classes()));
        m.run_u8(px.data(), 1, PixelLayout::hwc, logits.data());
        json top = json::array();
        std::printf("%s:", path.c_str());
        for (const ClassScore& c : m.top_k(logits.data(), *topk)) {
          std::printf("  %s %.3f", c.name.c_str(), c.probability);
          top.push_back({{"class", c.index}, {"name", c.name}, {"p", c.probability}});
        }
        std::printf("\n");
        out.push_back({{"image", path}, {"top", top}});
      }
      if (*as_json) print_json_line(json{{"images", out}}.dump());
      return;
    }
    Dataset test = load_dataset(*data, Split::Test);
    check_dataset_fits(m, test, *data);
    DataLoader loader(test, LoaderOptions::evaluation(*batch));
    const int64_t n = *limit > 0 ? std::min<int64_t>(*limit, test.size()) : test.size();
    int64_t correct = 0, seen = 0;
    double run_s = 0;
    for (int64_t s = 0; s < loader.steps() && seen < n; ++s) {
      Batch b = loader.batch(s);
      const auto t0 = Clock::now();
      const Tensor logits = run_batch(m, b.images);
      run_s += seconds_since(t0);
      const auto pred = intq::argmax_rows(logits);
      for (size_t i = 0; i < pred.size() && seen < n; ++i, ++seen) correct += pred[i] == b.labels[i];
    }
    const double acc = 100.0 * static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(1, seen));
    const double ips = static_cast<double>(seen) / std::max(run_s, 1e-9);
    std::fprintf(stderr, "test accuracy %.2f%% on %lld images (%.0f images/s, %d threads)\n", acc,
                 static_cast<long long>(seen), ips, num_threads());
    if (*as_json) print_json_line(json{{"test_acc", acc}, {"images", seen}, {"images_per_s", ips}}.dump());
  });
}

void register_inspect(CLI::App& app, const QuantizerRegistry& registry) {
  auto model = std::make_shared<std::string>();
  auto compare = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  auto batch = std::make_shared<int64_t>(256);
  auto limit = std::make_shared<int64_t>(0);
  auto threads = std::make_shared<int>(0);
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("inspect", "Per-layer table of an exported model; --compare: parity with its checkpoint");
  cmd->footer(
      "Examples:\n  lowbit inspect w2a2.safetensors\n"
      "  lowbit inspect w2a2.safetensors --compare runs/w2a2/best.ckpt --data fashion-mnist --json");
  cmd->add_option("model", *model, "Model file from lowbit export")->required();
  cmd->add_option("--compare", *compare, "QAT checkpoint the model was exported from");
  cmd->add_option("--data", *data, "Dataset spec for --compare (test split)");
  cmd->add_option("--batch", *batch, "Batch size for --compare")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--limit", *limit, "Only the first N test images (0 = all)");
  cmd->add_option("--threads", *threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([=] {
    set_num_threads(*threads);
    const IntModel im = IntModel::load(*model, {*threads, ""});
    const intq::IntGraph& m = intq::graph_of(im);
    if (compare->empty()) {
      std::printf("%-16s %-8s %-22s %-8s %-8s %10s  %-20s %s\n", "name", "op", "shape", "bits W/A", "out", "bytes",
                  "kernel", "scale range / params");
      json rows = json::array();
      for (const auto& op : m.ops) {
        const auto& in = m.values[static_cast<size_t>(op.inputs[0])];
        const auto& out = m.values[static_cast<size_t>(op.output)];
        char shape[64];
        std::snprintf(shape, sizeof shape, "%lldx%lldx%lld->%lldx%lldx%lld", (long long)in.c, (long long)in.h,
                      (long long)in.w, (long long)out.c, (long long)out.h, (long long)out.w);
        std::string bits = "-", extra;
        int64_t bytes = 0;
        json row = {{"name", op.name}, {"op", intq::op_kind_name(op.kind)}, {"in", {in.c, in.h, in.w}},
                    {"out", {out.c, out.h, out.w}}, {"out_type", intq::value_type_name(out.type)}};
        if (intq::op_kind_info(op.kind).weights) {
          bits = std::to_string(op.weight_bits) + "/" + std::to_string(op.act_bits);
          bytes = intq::stored_bytes(op);
          const auto [smin, smax] = std::minmax_element(op.scale.begin(), op.scale.end());
          const auto [bmin, bmax] = std::minmax_element(op.bias.begin(), op.bias.end());
          char buf[160];
          std::snprintf(buf, sizeof buf, "scale [%.3g, %.3g] bias [%.3g, %.3g] w %s %s", *smin, *smax, *bmin, *bmax,
                        op.weight_method.c_str(), op.weight_grid.c_str());
          extra = buf;
          row["weight_bits"] = op.weight_bits;
          row["act_bits"] = op.act_bits;
          row["bytes"] = bytes;
          row["scale_range"] = {*smin, *smax};
          row["bias_range"] = {*bmin, *bmax};
        } else if (op.kind == intq::OpKind::quantize) {
          bits = "-/" + std::to_string(op.bits);
          char buf[96];
          std::snprintf(buf, sizeof buf, "%s p=(%.4g, %.4g)", op.method.c_str(), op.p0, op.p1);
          extra = buf;
          row["method"] = op.method;
          row["bits"] = op.bits;
        }
        const std::string kernel = intq::op_kernel(op, intq::isa_of(im));
        if (!kernel.empty()) row["kernel"] = kernel;
        std::printf("%-16s %-8s %-22s %-8s %-8s %10lld  %-20s %s\n", op.name.c_str(), intq::op_kind_name(op.kind), shape,
                    bits.c_str(), intq::value_type_name(out.type), static_cast<long long>(bytes),
                    kernel.empty() ? "-" : kernel.c_str(), extra.c_str());
        rows.push_back(row);
      }
      std::printf("parameters: %lld bytes; method %s; %lld classes\n", static_cast<long long>(m.parameter_bytes()),
                  m.method.c_str(), static_cast<long long>(m.num_classes()));
      if (*as_json) print_json_line(json{{"layers", rows}, {"parameter_bytes", m.parameter_bytes()}}.dump());
      return;
    }
    LOWBIT_CHECK(!data->empty(), "inspect --compare needs --data SPEC");
    const Checkpoint ck = Checkpoint::load(*compare, *methods);
    const auto fq_model = ck.build_model(*compare);
    Dataset test = load_dataset(*data, Split::Test);
    check_dataset_fits(im, test, *data);
    DataLoader loader(test, LoaderOptions::evaluation(*batch));
    const int64_t n = *limit > 0 ? std::min<int64_t>(*limit, test.size()) : test.size();
    intq::CompareStats st;
    for (int64_t s = 0; s < loader.steps() && st.images < n; ++s) {
      Batch b = loader.batch(s);
      intq::compare_batch(*fq_model, m, b.images, b.labels, st);
    }
    // isolated: each layer fed the fake-quant codes (locates a divergence); end to end: the
    // runtime on its own codes, as deployed (quant/export/compare.h).
    json layers = json::array();
    std::printf("%-16s %12s %12s %14s %12s\n", "layer", "codes", "isolated", "end-to-end", "e2e rate");
    for (const auto& l : st.layers) {
      std::printf("%-16s %12lld %12.3g %14lld %12.3g\n", l.name.c_str(), static_cast<long long>(l.total),
                  l.isolated_rate(), static_cast<long long>(l.end_to_end), l.end_to_end_rate());
      layers.push_back({{"name", l.name}, {"code_mismatch", l.isolated_rate()},
                        {"code_mismatch_end_to_end", l.end_to_end_rate()}, {"mismatched", l.isolated},
                        {"mismatched_end_to_end", l.end_to_end}, {"codes", l.total}});
    }
    const double fake_acc = 100.0 * static_cast<double>(st.fake_correct) / static_cast<double>(std::max<int64_t>(1, st.images));
    const double int_acc = 100.0 * static_cast<double>(st.int_correct) / static_cast<double>(std::max<int64_t>(1, st.images));
    std::printf("prediction agreement %.4f%% on %lld images (isolated %.4f%%); accuracy fake-quant %.2f%%, integer %.2f%%\n",
                100.0 * st.prediction_agreement(), static_cast<long long>(st.images),
                100.0 * st.prediction_agreement_isolated(), fake_acc, int_acc);
    if (*as_json)
      print_json_line(json{{"prediction_agreement", st.prediction_agreement()},
                           {"prediction_agreement_isolated", st.prediction_agreement_isolated()},
                           {"images", st.images},
                           {"fake_quant_acc", fake_acc},
                           {"int_acc", int_acc},
                           {"max_code_mismatch", st.max_isolated_mismatch()},
                           {"max_code_mismatch_end_to_end", st.max_end_to_end_mismatch()},
                           {"layers", layers}}
                          .dump());
  });
}

void register_bench_infer(CLI::App& bench, const QuantizerRegistry& registry) {
  auto model = std::make_shared<std::string>();
  auto batch = std::make_shared<int64_t>(256);
  auto threads = std::make_shared<int>(0);
  auto seconds = std::make_shared<double>(3.0);
  auto rounds = std::make_shared<int>(3);
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = bench.add_subcommand("infer", "Integer runtime vs the float32 model it came from, same run");
  cmd->add_option("--model", *model, "Model file from lowbit export")->required();
  cmd->add_option("--batch", *batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--threads", *threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--seconds", *seconds, "Time per measurement, split over the rounds")->capture_default_str();
  cmd->add_option("--rounds", *rounds, "Alternating rounds (medians are reported)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([=] {
    set_num_threads(*threads);
    const IntModel im = IntModel::load(*model, {*threads, ""});
    const intq::IntGraph& m = intq::graph_of(im);
    // The float model (weights do not change its speed): the zoo model named in the provenance, or
    // the architecture it records (any model of library layers) with its quantizers switched off.
    // The loader bounded model_config and checked it against the graph (quant/runtime/model_file.h).
    const json& p = m.provenance;
    Generator gen(0);
    std::shared_ptr<Module> fp;
    if (p.contains("model") && p["model"].is_string() && !p["model"].get<std::string>().empty() &&
        p.contains("model_config")) {
      const json& mc = p["model_config"];
      ModelConfig config{mc["in_channels"].get<int64_t>(), mc["height"].get<int64_t>(), mc["width"].get<int64_t>(),
                         mc["num_classes"].get<int64_t>()};
      fp = make_model(p["model"].get<std::string>(), config, gen);
    } else {
      LOWBIT_CHECK(p.contains("architecture"), "model file ", *model, " has no provenance model/model_config or "
                   "architecture to rebuild the float model from");
      // Bounded before anything is allocated: every float weight is at least one bit of the file.
      const double params = config_parameter_count(p["architecture"], library_layer_types(*methods));
      const double bound = 8.0 * static_cast<double>(m.parameter_bytes()) + 65536.0;
      LOWBIT_CHECK(params <= bound, "model file ", *model, ": provenance.architecture describes ", params,
                   " float parameters, more than its integer graph can hold (at most ", bound,
                   "): it is not the architecture the model was exported from");
      try {
        fp = module_from_config(p["architecture"], library_layer_types(*methods), gen);
      } catch (const Error& e) {
        throw Error(detail::concat("model file ", *model, ": provenance.architecture: ", e.what()));
      }
      set_quantization_enabled(*fp, false);
    }
    fp->eval();
    const auto& in = m.input_info();
    Tensor x = Tensor::randn({*batch, in.c, in.h, in.w}, gen);
    Tensor x1 = Tensor::randn({1, in.c, in.h, in.w}, gen);
    NoGradGuard no_grad;
    // The same file through the C API (lowbit_runtime.h), for its batch-1 overhead.
    lowbit_model* cm = nullptr;
    const lowbit_options copts = {*threads, nullptr};
    LOWBIT_CHECK(lowbit_model_load(model->c_str(), &copts, &cm) == LOWBIT_OK, lowbit_last_error());
    std::unique_ptr<lowbit_model, void (*)(lowbit_model*)> cm_guard(cm, lowbit_model_free);
    std::vector<float> b1_logits(static_cast<size_t>(im.num_classes())), c_logits(b1_logits.size());
    // Rounds alternate integer, float, batch-1 and C API batch-1 runs so that machine noise hits
    // all of them; each figure is the median over rounds (the ratios: medians of per-round ratios).
    std::vector<Rate> int_r, fp_r, b1_r, c1_r;
    std::vector<double> ratio, cpu_ratio, c_api_ratio, c_api_cpu_ratio;
    const double per = *seconds / static_cast<double>(*rounds);
    for (int r = 0; r < *rounds; ++r) {
      int_r.push_back(measure([&] { run_batch(im, x); }, *batch, per));
      fp_r.push_back(measure([&] { fp->forward(x); }, *batch, per));
      b1_r.push_back(measure([&] { im.run(x1.data(), 1, b1_logits.data()); }, 1, per));
      c1_r.push_back(measure([&] { lowbit_run(cm, x1.data(), 1, c_logits.data()); }, 1, per));
      c_api_ratio.push_back(b1_r.back().wall / c1_r.back().wall);  // C API latency / C++ latency
      c_api_cpu_ratio.push_back(b1_r.back().cpu / c1_r.back().cpu);
      ratio.push_back(int_r.back().wall / fp_r.back().wall);
      cpu_ratio.push_back(int_r.back().cpu / fp_r.back().cpu);
    }
    auto wall = [](const std::vector<Rate>& v) { return median(v, &Rate::wall); };
    auto cpu = [](const std::vector<Rate>& v) { return median(v, &Rate::cpu); };
    const double int_ips = wall(int_r), fp_ips = wall(fp_r), b1_ms = 1000.0 / wall(b1_r);
    const double med_ratio = median(ratio), med_cpu_ratio = median(cpu_ratio);
    std::fprintf(stderr,
                 "integer runtime %.0f images/s, float32 %.0f images/s (%.2fx; by CPU time %.2fx) at batch %lld; "
                 "batch-1 latency %.3f ms (C API %.3f ms, ratio %.3f); %d threads; medians of %d rounds\n",
                 int_ips, fp_ips, med_ratio, med_cpu_ratio, static_cast<long long>(*batch), b1_ms,
                 1000.0 / wall(c1_r), median(c_api_ratio), num_threads(), *rounds);
    json kernels = json::array();
    for (const auto& op : m.ops)
      if (const std::string k = intq::op_kernel(op, intq::isa_of(im)); !k.empty()) kernels.push_back({{"name", op.name}, {"kernel", k}});
    if (*as_json)
      print_json_line(json{{"images_per_s", int_ips},
                           {"isa", im.isa()},
                           {"kernels", kernels},
                           {"float_images_per_s", fp_ips},
                           {"ratio", med_ratio},
                           {"batch1_ms", b1_ms},
                           {"c_api_batch1_ms", 1000.0 / wall(c1_r)},
                           {"c_api_batch1_ratio", median(c_api_ratio)},
                           {"c_api_batch1_cpu_ratio", median(c_api_cpu_ratio)},
                           {"images_per_cpu_s", cpu(int_r)},
                           {"float_images_per_cpu_s", cpu(fp_r)},
                           {"cpu_ratio", med_cpu_ratio},
                           {"batch1_cpu_ms", 1000.0 / cpu(b1_r)},
                           {"batch", *batch},
                           {"threads", num_threads()},
                           {"rounds", *rounds}}
                          .dump());
  });
}

}  // namespace lowbit::cli
