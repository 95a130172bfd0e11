// export_model.cpp: checkpoint or module -> validated integer model file (export_model.h).
#include "models/export_model.h"

#include <filesystem>

#include "core/error.h"
#include "core/file_io.h"
#include "quant/runtime/model_file.h"

namespace lowbit {

namespace {

intq::ExportInfo serving_export_info(const ServingInfo& s) {
  intq::ExportInfo info;
  info.channels = s.channels;
  info.height = s.height;
  info.width = s.width;
  info.mean = s.mean;  // what the model was trained on, never recomputed from data
  info.std = s.std;
  info.class_names = s.class_names;
  return info;
}

ExportSummary write_export(Module& model, const intq::ExportInfo& info, const std::string& out_path) {
  LOWBIT_CHECK(!out_path.empty(), "export_model: the output path is empty");
  const intq::IntGraph graph = intq::convert_to_int(model, info);  // checks info (check_export_info)
  const std::string bytes = intq::serialize_int_model(graph);      // read back by the loader
  write_file_atomically(out_path, bytes);
  return {static_cast<int64_t>(bytes.size()), static_cast<int64_t>(graph.ops.size())};
}

}  // namespace

intq::ExportInfo checkpoint_export_info(const Checkpoint& ck, const std::string& checkpoint_path) {
  LOWBIT_CHECK(is_quantized(ck.spec), "checkpoint ", checkpoint_path,
               " holds a float model; export needs a QAT checkpoint (a quantization policy or quantized layers)");
  const ModelConfig mc = ck.model_config();
  intq::ExportInfo info = serving_export_info(ck.serving);
  info.channels = mc.in_channels;
  info.height = mc.height;
  info.width = mc.width;
  info.class_names.resize(static_cast<size_t>(mc.num_classes));
  for (size_t i = 0; i < info.class_names.size(); ++i)
    if (info.class_names[i].empty()) info.class_names[i] = std::to_string(i);
  info.method = quant_method(ck.spec);
  // model + model_config (a zoo model) or architecture (any model of library layers): what
  // `lowbit bench infer` rebuilds the float model from.
  nlohmann::json prov = {{"checkpoint", std::filesystem::absolute(checkpoint_path).string()},
                         {"model_config",
                          {{"in_channels", mc.in_channels}, {"height", mc.height}, {"width", mc.width},
                           {"num_classes", mc.num_classes}}},
                         {"policy", ck.spec.policy.to_json()},
                         {"data", ck.data},
                         {"exporter", "lowbit 0.1.0"}};
  if (!ck.spec.name.empty()) prov["model"] = ck.spec.name;
  if (ck.spec.architecture.is_object()) prov["architecture"] = ck.spec.architecture;
  if (ck.training) {
    prov["epoch"] = ck.training->epoch;
    prov["test_acc"] = ck.training->test_acc;
  }
  info.provenance = prov;
  return info;
}

ExportSummary export_model(const std::string& checkpoint_path, const std::string& out_path,
                           const QuantizerRegistry& registry) {
  const Checkpoint ck = Checkpoint::load(checkpoint_path, registry);
  const intq::ExportInfo info = checkpoint_export_info(ck, checkpoint_path);
  const auto model = ck.build_model(checkpoint_path);
  return write_export(*model, info, out_path);
}

ExportSummary export_model(Module& model, const ServingInfo& serving, const std::string& out_path,
                           const QuantizerRegistry& registry) {
  intq::ExportInfo info = serving_export_info(serving);
  info.provenance = {{"exporter", "lowbit 0.1.0"}, {"architecture", model_architecture(model, registry)}};
  return write_export(model, info, out_path);
}

}  // namespace lowbit
