// cmd_export.cpp: `lowbit export`: a QAT checkpoint -> a packed integer model file
// (quant/export/convert.h + model_file.h; format in docs/model-format.md).
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/data/dataset.h"
#include "core/error.h"
#include "core/serialize.h"
#include "models/checkpoint.h"
#include "models/export_model.h"
#include "models/model_spec.h"
#include "quant/export/convert.h"
#include "quant/quantizer.h"
#include "quant/runtime/model_file.h"
#include "tools/commands.h"

namespace lowbit::cli {

using nlohmann::json;

// Rows of the export summary: per conv/linear op, bits and stored bytes.
json export_layers_json(const intq::IntGraph& m) {
  json layers = json::array();
  for (const auto& op : m.ops) {
    if (!intq::op_kind_info(op.kind).weights) continue;
    layers.push_back({{"name", op.name},
                      {"op", intq::op_kind_name(op.kind)},
                      {"weight_bits", op.weight_bits},
                      {"act_bits", op.act_bits},
                      {"out", op.out_codes ? "codes" : "float"},
                      {"bytes", intq::stored_bytes(op)}});
  }
  return layers;
}

namespace {
// The float model's parameters: the zoo model's by name; a program's model less its quantizers'.
int64_t float_parameter_count(const Checkpoint& ck, Module& model) {
  if (!ck.spec.name.empty()) {
    Generator init(0);  // only the shapes count
    return make_model(ck.spec.name, ck.spec.config, init)->parameter_count();
  }
  int64_t n = model.parameter_count();
  for (const auto& [name, m] : model.named_modules())
    if (dynamic_cast<const Quantizer*>(m.get())) n -= m->parameter_count();
  return n;
}
}  // namespace

void register_export(CLI::App& app, const QuantizerRegistry& registry) {
  auto checkpoint = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("export", "Export a QAT checkpoint as a packed integer model (safetensors)");
  cmd->footer(
      "Example:\n  lowbit export --checkpoint runs/w2a2/best.ckpt --out w2a2.safetensors --json\n"
      "The file format is documented in docs/model-format.md.");
  cmd->add_option("--checkpoint", *checkpoint, "QAT checkpoint (lowbit train --method ...)")->required();
  cmd->add_option("--out", *out, "Output model file (.safetensors)")->required();
  cmd->add_option("--data", *data, "Dataset spec whose class names to store (default: the checkpoint's); the input "
                  "normalisation always comes from the checkpoint");
  cmd->add_flag("--json", *as_json, "Print a JSON summary as the last stdout line");
  const QuantizerRegistry* methods = &registry;
  cmd->callback([=] {
    const Checkpoint ck = Checkpoint::load(*checkpoint, *methods);
    LOWBIT_CHECK(is_quantized(ck.spec), "checkpoint ", *checkpoint,
                 " holds a float model; export needs a QAT checkpoint (lowbit train --method ...)");
    intq::ExportInfo info = checkpoint_export_info(ck, *checkpoint);  // what export_model() writes
    const auto model = ck.build_model(*checkpoint);
    const ModelConfig mc = ck.model_config();
    if (!data->empty()) {
      Dataset test = load_dataset(*data, Split::Test);
      ck.serving.apply_to(test, *data);  // checks that it fits
      info.class_names = test.class_names;
      info.class_names.resize(static_cast<size_t>(mc.num_classes));
      for (size_t i = 0; i < info.class_names.size(); ++i)
        if (info.class_names[i].empty()) info.class_names[i] = std::to_string(i);
      info.provenance["data"] = *data;
    }
    const intq::IntGraph m = intq::convert_to_int(*model, info);
    const std::string bytes = intq::serialize_int_model(m);
    write_file_atomically(*out, bytes);
    // The float32 model's parameter bytes (weights, biases, BatchNorm), for the size ratio.
    const int64_t fp32_bytes = 4 * float_parameter_count(ck, *model);
    if (!is_root()) return;
    std::fprintf(stderr, "exported %s: %zu bytes (float32 parameters %lld bytes, %.1fx smaller), %zu ops\n",
                 out->c_str(), bytes.size(), static_cast<long long>(fp32_bytes),
                 static_cast<double>(fp32_bytes) / static_cast<double>(bytes.size()), m.ops.size());
    if (*as_json)
      print_json_line(json{{"file", *out},
                           {"bytes", bytes.size()},
                           {"fp32_param_bytes", fp32_bytes},
                           {"ratio", static_cast<double>(fp32_bytes) / static_cast<double>(bytes.size())},
                           {"method", m.method},
                           {"layers", export_layers_json(m)}}
                          .dump());
  });
}

}  // namespace lowbit::cli
