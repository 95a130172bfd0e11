// model_file.h: the exported integer model file (docs/model-format.md is the full specification).
//
// A safetensors container:
//   [u64 LE header length N][N bytes JSON header][data section: raw little-endian tensor bytes]
// Header: one entry per tensor {"dtype": "U8"|"F32"|"I32", "shape": [...], "data_offsets": [b, e]}
// (offsets relative to the data section, tensors contiguous in offset order, no holes, no overlap)
// and "__metadata__" with string values:
//   "format": "lowbit-int-model", "format_version": "1",
//   "graph": the IntGraph as JSON (input normalisation, classes, values, ops in order),
//   "provenance": JSON of where the model came from (checkpoint, model, policy, accuracy).
// Tensors per conv/linear op NAME: NAME.weight (U8 [out_channels, ceil(K / P)]: each channel's
// K codes densely packed, P = 8 / pack width per byte; repacked into the kernels' blocks at load),
// NAME.epilogue (F32 [2, out_channels]: row 0 the per-channel scale, row 1 the bias).
//
// The loader validates everything and throws ONE lowbit::Error naming the file and the problem:
// length and header bounds, JSON syntax and types, dtypes, shapes (overflow-checked products),
// offsets inside the data and contiguous/non-overlapping, the format version, every graph field
// (known op kinds, value references defined before use, bits, zero points, shapes recomputed from
// the op parameters), every tensor's dtype/shape against the graph, no unreferenced tensors,
// zero tail bits and codes within the weight bits, finite scales, the int32
// accumulator guard, and size limits (ModelFileLimits) so a hostile header never causes a huge
// allocation. Quantize methods must be registered activation methods whose rule accepts the
// parameters (quant/registry.h). The provenance's model_config (what `lowbit bench infer`
// rebuilds the float model from) is bounded by the same limits and must match the graph.
// load_int_graph refuses a path that is not a regular file (a directory: "P is a directory,
// expected a model file").
#pragma once
#include <string>

#include "quant/runtime/int_graph.h"

namespace lowbit::intq {

inline constexpr const char* kModelFormat = "lowbit-int-model";
inline constexpr int kModelFormatVersion = 2;

// Upper bounds the loader enforces (a valid lowbit export is far below all of them).
struct ModelFileLimits {
  static constexpr int64_t header_bytes = 64LL << 20;   // JSON header
  static constexpr int64_t values = 4096, ops = 4096;
  static constexpr int64_t channels = 1 << 16;           // per value / layer
  static constexpr int64_t spatial = 1 << 14;            // H, W
  static constexpr int64_t value_elements = 1LL << 24;   // per image, per value
  static constexpr int64_t im2col_bytes = 1LL << 28;     // per image, per conv (rows x K)
  static constexpr int64_t kernel = 32, stride = 32;
  static constexpr int64_t classes_names = 1 << 16;
};

// The file's bytes, read back before they are returned: throws lowbit::Error
// ("serialize_int_model: the model would not load: ...") rather than give bytes the loader rejects.
std::string serialize_int_model(const IntGraph& model);
// Atomic write (temporary file + rename).
void save_int_model(const std::string& path, const IntGraph& model);
// Parse + validate bytes; `what` names the source in errors (a path). The conv kernels are
// prepared (prepare_runtime) for level `isa`; without it, default_isa().
IntGraph parse_int_graph(const std::string& bytes, const std::string& what, kernels::Isa isa);
IntGraph parse_int_graph(const std::string& bytes, const std::string& what);
IntGraph load_int_graph(const std::string& path, kernels::Isa isa);
IntGraph load_int_graph(const std::string& path);

// The level LOWBIT_ISA asks for, else the best this CPU has (kernels::resolve_isa), read now:
// what a model loaded without an explicit level runs at. Throws like resolve_isa.
kernels::Isa default_isa();

// The graph JSON of a model (what "__metadata__.graph" holds), e.g. for --json output.
nlohmann::json graph_to_json(const IntGraph& model);

}  // namespace lowbit::intq
