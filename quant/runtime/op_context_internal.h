// op_context_internal.h: what an op kind's functions (its row in op_kinds.cpp) work with, INTERNAL to the
// runtime: the loader's error and field helpers and the file's tensor table, the reader of one op
// (OpReader: values, type and shape checks, the op's tensors), and one chunk of images as
// run_graph() runs it (ChunkRun: where each value lives, the output buffers, the GEMM path).
// model_file.cpp defines the loader's part, int_graph.cpp the chunk's.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "quant/runtime/int_graph.h"

namespace lowbit::intq {

// ---------------------------------------------------------------- loader

// The loader's error context: every failure is one lowbit::Error "WHAT: ...".
struct Ctx {
  std::string what;
  template <class... A>
  [[noreturn]] void fail(const A&... a) const {
    throw Error(detail::concat(what, ": ", a...));
  }
};

// obj[key]; fails naming `where` when obj is not an object or lacks key.
const nlohmann::json& field(const Ctx& cx, const nlohmann::json& obj, const char* key, const std::string& where);
// obj[key] as an integer in [lo, hi].
int64_t get_int(const Ctx& cx, const nlohmann::json& obj, const char* key, int64_t lo, int64_t hi,
                const std::string& where);
// v as a finite float.
float get_float(const Ctx& cx, const nlohmann::json& v, const std::string& where);
// obj[key] as a string.
std::string get_string(const Ctx& cx, const nlohmann::json& obj, const char* key, const std::string& where);

struct TensorEntry {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  bool used = false;
};

// The safetensors container: header JSON, data section, tensor table.
struct Container {
  nlohmann::json header;
  const char* data = nullptr;
  uint64_t data_size = 0;
  std::map<std::string, TensorEntry> tensors;
};

// Bytes of one dense weight row of k codes at pack width `bits` (docs/model-format.md).
int64_t dense_row_bytes(int64_t k, int bits);
// A float as the shortest decimal that reads back to the same float.
nlohmann::json float_json(float f);

// What an op kind's reader sees: the values (all declared; the op's inputs defined), the file's
// tensors, and the checks whose messages every kind shares.
class OpReader {
 public:
  OpReader(const Ctx& cx, Container& file, const IntGraph& m) : cx(cx), file(file), m_(m) {}

  const Ctx& cx;
  Container& file;

  const ValueInfo& value(int v) const { return m_.values[static_cast<size_t>(v)]; }
  void expect_shape(const std::string& where, const ValueInfo& out, int64_t c, int64_t h, int64_t w) const {
    if (out.c != c || out.h != h || out.w != w)
      cx.fail(where, " output '", out.name, "' has shape [", out.c, ", ", out.h, ", ", out.w, "], the op gives [", c,
              ", ", h, ", ", w, "]");
  }
  void expect_type(const std::string& where, const ValueInfo& v, ValueType t, const char* role) const {
    if (v.type != t)
      cx.fail(where, " ", role, " '", v.name, "' must be ", value_type_name(t), ", is ", value_type_name(v.type));
  }
  // The op's tensor NAME.role, which must exist with that dtype and shape and not be used yet
  // (it is marked used).
  TensorEntry& op_tensor(const std::string& where, const IntOp& op, const char* role, const std::string& dtype,
                         const std::vector<int64_t>& shape);

 private:
  const IntGraph& m_;
};

// ---------------------------------------------------------------- runner

struct Workspace;  // int_graph.cpp

// One chunk of images [i0, i0 + count) as run_graph() runs it: where each value of the chunk lives
// (a workspace buffer, the input, or an alias of another value) and the buffers ops write into.
struct ChunkRun {
  ChunkRun(const IntGraph& m, kernels::Isa isa, Workspace& ws, const CodeTrace& trace, int64_t i0, int64_t count,
           float* logits);

  const IntGraph& m;
  const kernels::Isa isa;
  Workspace& ws;
  const CodeTrace& trace;
  const int64_t i0, count;
  float* const logits;                 // the chunk's rows of the model output
  std::vector<const uint8_t*>& codes;  // per value: where its codes live in this chunk
  std::vector<const float*>& floats;   // per value: where its floats live in this chunk

  const ValueInfo& value(int v) const { return m.values[static_cast<size_t>(v)]; }
  // A buffer of n elements for value v, which codes/floats then point at; the model output goes
  // straight into the logits.
  float* float_out(int v, int64_t n);
  uint8_t* codes_out(int v, int64_t n);
  // Conv / linear op k on its input codes x into y (codes or float, as its epilogue says):
  // conv_codes, or packed im2col (or rows) + the GEMM.
  void gemm(size_t k, const uint8_t* x, void* y);
};

}  // namespace lowbit::intq
