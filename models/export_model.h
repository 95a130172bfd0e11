// export_model.h: one call from a trained model to a served file.
//   export_model(checkpoint_path, out_path): a QAT checkpoint (Trainer's, `lowbit train`'s) ->
//     a packed integer model file, with the checkpoint's input size, normalization and class
//     names (ServingInfo) and its provenance: what `lowbit export` writes.
//   export_model(module, serving, out_path): a converted, calibrated QAT module the program holds
//     (quant/policy.h convert_model, a forward or Trainer run done) -> the same file.
// Both validate everything before writing (the serving info against the model, the converter's
// requirements, and the file read back by the runtime's loader), then write atomically: on any
// error, one lowbit::Error naming the input and no file. Load the result with IntModel::load
// (quant/runtime/int_model.h) or lowbit_model_load (lowbit_runtime.h).
#pragma once
#include <string>

#include "layers/module.h"
#include "models/checkpoint.h"
#include "quant/export/convert.h"

namespace lowbit {

struct ExportSummary {
  int64_t bytes = 0;  // the file's size
  int64_t ops = 0;    // integer graph ops
};

// registry: the quantizer methods the checkpoint's policy may name (a program's own, quant/registry.h).
ExportSummary export_model(const std::string& checkpoint_path, const std::string& out_path,
                           const QuantizerRegistry& registry = QuantizerRegistry::builtin());
// registry: what writes the architecture of the model's quantizers (a program's own methods too).
ExportSummary export_model(Module& model, const ServingInfo& serving, const std::string& out_path,
                           const QuantizerRegistry& registry = QuantizerRegistry::builtin());

// What export_model(checkpoint_path, ...) converts with: the checkpoint's serving info (class
// names completed with their indices) and provenance. Throws unless it holds a QAT model.
intq::ExportInfo checkpoint_export_info(const Checkpoint& checkpoint, const std::string& checkpoint_path);

}  // namespace lowbit
