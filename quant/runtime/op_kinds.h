// op_kinds.h: the one table of the integer graph's op kinds. A kind's row holds all the runtime
// knows about it: what it is called in a model file, how many inputs it reads, whether it owns
// weight tensors, and its functions: write (its fields to the file's JSON), read (its fields from
// the JSON, validated, with its output's type and shape checked against its inputs: the shape
// inference), run (on a chunk of images). The name lookups, the writer, the loader and run_graph
// derive from it; the rows and their functions live in op_kinds.cpp, one section per kind
// (quant/runtime/README.md: adding an op kind).
#pragma once
#include <cstddef>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace lowbit::intq {

enum class OpKind { quantize, conv, linear, maxpool, gap, add, relu, flatten };

struct IntGraph;
struct IntOp;
class OpReader;
struct ChunkRun;

struct OpKindInfo {
  OpKind kind;
  const char* name;  // the file's "op" field
  int arity;         // inputs
  bool weights;      // stores NAME.weight and NAME.epilogue (a conv/linear: GEMM + epilogue)
  // The kind's fields beyond op, name, inputs and output into the op's JSON object j.
  void (*write)(const IntGraph& m, const IntOp& op, nlohmann::json& j);
  // The kind's fields from j into op (kind, name, inputs, output already read; `where` names the
  // op in messages), every check of docs/model-format.md, the output's type and shape against
  // the inputs', and the op's tensors.
  void (*read)(OpReader& r, const nlohmann::json& j, const std::string& where, IntOp& op);
  // Op k of the graph on the chunk: reads its inputs' codes/floats, writes its output's.
  void (*run)(ChunkRun& c, size_t k);
};

// One row per kind, in enum order (op_kinds.cpp checks it at compile time).
extern const OpKindInfo kOpKinds[];

inline const OpKindInfo& op_kind_info(OpKind kind) { return kOpKinds[static_cast<size_t>(kind)]; }
inline const char* op_kind_name(OpKind kind) { return op_kind_info(kind).name; }
// nullptr when no kind has that name.
const OpKindInfo* find_op_kind(const std::string& name);
// "quantize, conv, ..." (for messages).
std::string op_kind_names();

}  // namespace lowbit::intq
