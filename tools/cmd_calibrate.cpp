// cmd_calibrate.cpp: `lowbit calibrate`, the post-training quantization baselines (max,
// fraction of max, percentile, KL) on a trained float checkpoint: the model is converted with
// PACT-style fixed activation clips and SAWB (or max) weight scales, the clips are set from a
// few training batches, and the result is saved as a checkpoint that eval and export accept.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/data/loader.h"
#include "core/error.h"
#include "core/threading.h"
#include "quant/calibrate.h"
#include "tools/commands.h"
#include "models/checkpoint.h"
#include "models/model_spec.h"

namespace lowbit::cli {

void register_calibrate(CLI::App& app, const QuantizerRegistry& registry) {
  struct Opts {
    std::string checkpoint, data = "fashion-mnist", calibration = "kl", weights = "sawb", out;
    int wbits = 4, abits = 4, first_last_bits = 8, batches = 10, threads = 0;
    bool json = false, skip_zeros = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* cmd = app.add_subcommand("calibrate", "Post-training quantization of a float checkpoint (max/percentile/KL)");
  cmd->footer("Example:\n  lowbit calibrate --checkpoint runs/convnet/best.ckpt --calibration kl --wbits 4 --abits 4 --out ptq4.ckpt\n"
              "  lowbit eval --checkpoint ptq4.ckpt");
  cmd->add_option("--checkpoint", o->checkpoint, "Trained float checkpoint")->required();
  cmd->add_option("--calibration", o->calibration, "Activation range: max | fraction | percentile | kl")
      ->capture_default_str()->check(CLI::IsMember({"max", "fraction", "percentile", "kl"}));
  // The calibration algorithm was --method, which elsewhere is the quantization method: the old
  // spelling is a usage error (exit 2) that names the new one. Hidden from --help.
  cmd->add_option_function<std::string>("--method", [](const std::string&) {
       throw CLI::ValidationError("--method", "calibrate's algorithm is now --calibration (max | fraction | percentile | kl)");
     })->group("");
  cmd->add_option("--weights", o->weights, "Weight scale: sawb | max")->capture_default_str()
      ->check(CLI::IsMember({"sawb", "max"}));
  cmd->add_option("--wbits", o->wbits, "Weight bits of the middle layers")->capture_default_str();
  cmd->add_option("--abits", o->abits, "Activation bits of the middle layers")->capture_default_str();
  cmd->add_option("--first-last-bits", o->first_last_bits, "Bits of the first and last layers")->capture_default_str();
  cmd->add_flag("--skip-zeros", o->skip_zeros,
               "percentile/kl: leave exact zeros out of the histogram (post-ReLU zeros are code 0 at any "
               "clip; at 4 bits or fewer their spike drives KL to far too tight clips)");
  cmd->add_option("--data", o->data, "Dataset spec (calibration uses its training split)")->capture_default_str();
  cmd->add_option("--batches", o->batches, "Calibration batches of 128 images")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--out", o->out, "Output checkpoint")->required();
  cmd->add_flag("--json", o->json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([o, methods] {
    set_num_threads(o->threads);
    const Checkpoint fp = Checkpoint::load(o->checkpoint, *methods);
    LOWBIT_CHECK(!is_quantized(fp.spec), "calibrate: ", o->checkpoint, " is already quantized (method ",
                 quant_method(fp.spec), "); calibrate a float checkpoint");
    ModelSpec spec = fp.spec;
    spec.policy.method = "pact-sawb";  // fixed activation clips (PACT form) + SAWB-grid weights
    spec.policy.wbits = o->wbits;
    spec.policy.abits = o->abits;
    spec.policy.first_last_bits = o->first_last_bits;
    spec.policy.validate();
    // The float model with its weights (a zoo model by name, a program's by its architecture), converted.
    auto model = fp.build_model(o->checkpoint);
    convert_model(*model, spec.policy);
    Dataset train = load_dataset(o->data, Split::Train);
    fp.serving.apply_to(train, o->data);  // the normalization the model was trained with
    LoaderOptions lo;
    lo.batch_size = 128;
    DataLoader loader(train, lo);
    CalibrationOptions co;
    co.weights = o->weights == "max" ? WeightCalibration::max : WeightCalibration::sawb;
    co.skip_zeros = o->skip_zeros;
    const auto clips = calibrate(*model, loader, o->batches, calibration_method_from_name(o->calibration), co);
    Checkpoint out;  // model-only: eval and export accept it, --resume does not
    out.spec = spec;
    out.spec.architecture = model_architecture(*model, *methods);  // after calibration (it may switch SAWB to max)
    out.model = model->state_dict();
    out.serving = fp.serving;
    out.data = fp.data;
    out.notes = {{"calibration", o->calibration}, {"calibrated_from", o->checkpoint}};
    out.save(o->out);
    for (const auto& [name, clip] : clips) std::fprintf(stderr, "  %-32s clip %.5g\n", name.c_str(), clip);
    std::fprintf(stderr, "calibrated %s (%s, W%d/A%d) -> %s\n", o->checkpoint.c_str(), o->calibration.c_str(), o->wbits,
                 o->abits, o->out.c_str());
    if (o->json) print_json_line(nlohmann::json{{"checkpoint", o->out}, {"calibration", o->calibration}, {"clips", clips}}.dump());
  });
}

}  // namespace lowbit::cli
