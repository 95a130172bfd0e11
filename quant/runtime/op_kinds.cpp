// op_kinds.cpp: lookups over the op-kind table (op_kinds.h).
#include "quant/runtime/op_kinds.h"

namespace lowbit::intq {

namespace {
constexpr bool rows_in_enum_order() {
  for (size_t i = 0; i < std::size(kOpKinds); ++i)
    if (static_cast<size_t>(kOpKinds[i].kind) != i) return false;
  return true;
}
static_assert(rows_in_enum_order(), "kOpKinds: one row per OpKind, in enum order");
static_assert(std::size(kOpKinds) == static_cast<size_t>(OpKind::flatten) + 1, "kOpKinds: a row per OpKind");
}  // namespace

const OpKindInfo* find_op_kind(const std::string& name) {
  for (const OpKindInfo& k : kOpKinds)
    if (name == k.name) return &k;
  return nullptr;
}

std::string op_kind_names() {
  std::string out;
  for (const OpKindInfo& k : kOpKinds) out += (out.empty() ? "" : ", ") + std::string(k.name);
  return out;
}

}  // namespace lowbit::intq
