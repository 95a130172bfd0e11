// op_kinds.h: the one table of the integer graph's op kinds (what the kind is called in a model
// file, how many inputs it reads, whether it owns weight tensors). The name lookups, the loader's
// arity check and the writer's tensor list derive from it; every switch over OpKind (the writer's
// and reader's fields, run_graph's op) lists every kind with no default, so -Wswitch names each
// place a new kind must be handled (quant/runtime/README.md lists them).
#pragma once
#include <cstddef>
#include <string>

namespace lowbit::intq {

enum class OpKind { quantize, conv, linear, maxpool, gap, add, relu, flatten };

struct OpKindInfo {
  OpKind kind;
  const char* name;  // the file's "op" field
  int arity;         // inputs
  bool weights;      // stores NAME.weight and NAME.epilogue (a conv/linear: GEMM + epilogue)
};

// One row per kind, in enum order (op_kinds.cpp checks it at compile time).
inline constexpr OpKindInfo kOpKinds[] = {
    {OpKind::quantize, "quantize", 1, false}, {OpKind::conv, "conv", 1, true},
    {OpKind::linear, "linear", 1, true},      {OpKind::maxpool, "maxpool", 1, false},
    {OpKind::gap, "gap", 1, false},           {OpKind::add, "add", 2, false},
    {OpKind::relu, "relu", 1, false},         {OpKind::flatten, "flatten", 1, false},
};

constexpr const OpKindInfo& op_kind_info(OpKind kind) { return kOpKinds[static_cast<size_t>(kind)]; }
inline const char* op_kind_name(OpKind kind) { return op_kind_info(kind).name; }
// nullptr when no kind has that name.
const OpKindInfo* find_op_kind(const std::string& name);
// "quantize, conv, ..." (for messages).
std::string op_kind_names();

}  // namespace lowbit::intq
