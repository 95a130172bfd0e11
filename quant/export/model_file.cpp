// model_file.cpp: writer and validating loader of the integer model file (see model_file.h and
// docs/model-format.md). Every check throws one lowbit::Error; nothing is allocated from a
// header-declared size before that size was checked against the file or the limits.
#include "quant/export/model_file.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/serialize.h"
#include "quant/kernels/gemm.h"

namespace lowbit::intq {
namespace {

using json = nlohmann::json;
using Limits = ModelFileLimits;

// ---------------------------------------------------------------- writer

// The file stores weights densely (no channel or K padding, which would cost up to 60 % on a
// 10-class linear layer): row n holds W[n][0..K) at pack width b, P = 8/b codes per byte, code
// k in byte k/P at bits [b*(k%P), b*(k%P) + b); the tail bits of a row's last byte are zero.
// The loader repacks them into the kernels' 16-channel blocks.
int64_t dense_row_bytes(int64_t k, int bits) {
  const int64_t per_byte = kernels::codes_per_byte(bits);
  return (k + per_byte - 1) / per_byte;
}

std::vector<uint8_t> dense_weight_rows(const kernels::PackedWeights& w) {
  std::vector<uint8_t> codes(static_cast<size_t>(w.n * w.k));
  kernels::unpack_weights(w, codes.data(), w.k);
  const int64_t row_bytes = dense_row_bytes(w.k, w.bits), per_byte = kernels::codes_per_byte(w.bits);
  std::vector<uint8_t> rows(static_cast<size_t>(w.n * row_bytes), 0);
  for (int64_t n = 0; n < w.n; ++n)
    for (int64_t k = 0; k < w.k; ++k)
      rows[static_cast<size_t>(n * row_bytes + k / per_byte)] |=
          static_cast<uint8_t>(codes[static_cast<size_t>(n * w.k + k)] << (w.bits * (k % per_byte)));
  return rows;
}

// A float as the shortest decimal that reads back to the same float (9 significant digits at
// most, instead of the 17 of its double): the header stays small and the values exact.
json float_json(float f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(f));
  return std::strtod(buf, nullptr);
}
json floats_json(const std::vector<float>& v) {
  json a = json::array();
  for (float f : v) a.push_back(float_json(f));
  return a;
}

json value_json(const ValueInfo& v) {
  json j = {{"name", v.name}, {"type", value_type_name(v.type)}, {"shape", {v.c, v.h, v.w}}};
  if (v.type == ValueType::codes) {
    j["bits"] = v.bits;
    j["scale"] = float_json(v.scale);
    j["zero_point"] = v.zero_point;
  }
  return j;
}

json op_json(const IntModel& m, const IntOp& op) {
  json j = {{"op", op_kind_name(op.kind)}, {"name", op.name}};
  json ins = json::array();
  for (int i : op.inputs) ins.push_back(m.values[static_cast<size_t>(i)].name);
  j["inputs"] = ins;
  j["output"] = m.values[static_cast<size_t>(op.output)].name;
  switch (op.kind) {
    case OpKind::quantize:
      j["method"] = op.method;
      j["bits"] = op.bits;
      j["params"] = {float_json(op.p0), float_json(op.p1)};
      break;
    case OpKind::conv:
    case OpKind::linear:
      j["in_channels"] = op.in_channels;
      j["out_channels"] = op.out_channels;
      j["kernel"] = op.kernel;
      j["stride"] = op.stride;
      j["padding"] = op.padding;
      j["weight_bits"] = op.weight_bits;
      j["act_bits"] = op.act_bits;
      j["act_zero_point"] = op.act_zero_point;
      j["weight_method"] = op.weight_method;
      j["weight_grid"] = op.weight_grid;
      j["weight_scale"] = float_json(op.weight_scale);
      j["acc_mul"] = op.acc_mul;
      j["rowsum_mul"] = op.rowsum_mul;
      j["epilogue"] = op.out_codes ? "codes" : "float";
      j["out_max_code"] = op.out_max_code;
      break;
    case OpKind::maxpool:
      j["kernel"] = op.pool_kernel;
      j["stride"] = op.pool_stride;
      j["padding"] = op.pool_padding;
      break;
    default: break;
  }
  return j;
}

}  // namespace

json graph_to_json(const IntModel& m) {
  json g;
  const ValueInfo& in = m.input_info();
  g["input"] = {{"value", in.name}, {"shape", {in.c, in.h, in.w}}, {"mean", floats_json(m.mean)}, {"std", floats_json(m.std)}};
  g["output"] = m.values.at(static_cast<size_t>(m.output)).name;
  g["classes"] = {{"count", m.num_classes()}, {"names", m.class_names}};
  g["method"] = m.method;
  json vals = json::array();
  for (const auto& v : m.values) vals.push_back(value_json(v));
  g["values"] = vals;
  json ops = json::array();
  for (const auto& op : m.ops) ops.push_back(op_json(m, op));
  g["ops"] = ops;
  return g;
}

std::string serialize_int_model(const IntModel& m) {
  json header = json::object();
  std::string data;
  auto add = [&](const std::string& name, const char* dtype, const std::vector<int64_t>& shape, const void* p,
                 size_t bytes) {
    const size_t b = data.size();
    data.append(static_cast<const char*>(p), bytes);  // x86-64 is little-endian
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {b, data.size()}}};
  };
  for (const auto& op : m.ops) {
    if (op.kind != OpKind::conv && op.kind != OpKind::linear) continue;
    const std::vector<uint8_t> rows = dense_weight_rows(*op.weights);
    add(op.name + ".weight", "U8", {op.out_channels, dense_row_bytes(op.weights->k, op.weights->bits)}, rows.data(),
        rows.size());
    std::vector<float> epilogue(op.scale);
    epilogue.insert(epilogue.end(), op.bias.begin(), op.bias.end());
    add(op.name + ".epilogue", "F32", {2, op.out_channels}, epilogue.data(), epilogue.size() * sizeof(float));
  }
  header["__metadata__"] = {{"format", kModelFormat},
                            {"format_version", std::to_string(kModelFormatVersion)},
                            {"graph", graph_to_json(m).dump()},
                            {"provenance", m.provenance.dump()}};
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');  // data section 8-byte aligned (safetensors)
  std::string out(8, '\0');
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  out += h;
  out += data;
  return out;
}

void save_int_model(const std::string& path, const IntModel& m) { write_file_atomically(path, serialize_int_model(m)); }

// ---------------------------------------------------------------- loader

namespace {

struct Ctx {
  std::string what;
  template <class... A>
  [[noreturn]] void fail(const A&... a) const {
    throw Error(detail::concat(what, ": ", a...));
  }
};

const json& field(const Ctx& cx, const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) cx.fail(where, " must be a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) cx.fail(where, " lacks '", key, "'");
  return *it;
}

int64_t get_int(const Ctx& cx, const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  const json& v = field(cx, obj, key, where);
  if (!v.is_number_integer()) cx.fail(where, ".", key, " must be an integer");
  const int64_t x = v.is_number_unsigned() ? (v.get<uint64_t>() > static_cast<uint64_t>(hi) ? hi + 1 : v.get<int64_t>())
                                           : v.get<int64_t>();
  if (x < lo || x > hi) cx.fail(where, ".", key, " = ", x, " is outside [", lo, ", ", hi, "]");
  return x;
}

float get_float(const Ctx& cx, const json& v, const std::string& where) {
  if (!v.is_number()) cx.fail(where, " must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > 3.0e38) cx.fail(where, " = ", d, " is not a finite float");
  return static_cast<float>(d);
}

std::string get_string(const Ctx& cx, const json& obj, const char* key, const std::string& where) {
  const json& v = field(cx, obj, key, where);
  if (!v.is_string()) cx.fail(where, ".", key, " must be a string");
  return v.get<std::string>();
}

struct TensorEntry {
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
  bool used = false;
};

size_t dtype_size(const std::string& d) { return d == "U8" ? 1 : 4; }

}  // namespace

IntModel parse_int_model(const std::string& bytes, const std::string& what) {
  const Ctx cx{what};
  if (bytes.size() < 8) cx.fail("not a model file: ", bytes.size(), " bytes, need at least the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
  if (hlen > static_cast<uint64_t>(Limits::header_bytes) || hlen > bytes.size() - 8)
    cx.fail("header length ", hlen, " exceeds the file (", bytes.size(), " bytes) or the ",
            Limits::header_bytes, "-byte limit: truncated or not a safetensors file");
  const uint64_t data_size = bytes.size() - 8 - hlen;
  const char* data = bytes.data() + 8 + hlen;
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(hlen));
  } catch (const json::exception& e) {
    cx.fail("header is not valid JSON (", e.what(), ")");
  }
  if (!header.is_object()) cx.fail("header must be a JSON object");

  // --- tensors: dtype, shape, offsets inside the data, contiguous, no overlap
  std::map<std::string, TensorEntry> tensors;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string where = "tensor '" + it.key() + "'";
    const json& t = it.value();
    TensorEntry e;
    e.dtype = get_string(cx, t, "dtype", where);
    if (e.dtype != "U8" && e.dtype != "F32" && e.dtype != "I32")
      cx.fail(where, " has dtype ", e.dtype, "; expected U8, F32 or I32");
    const json& shape = field(cx, t, "shape", where);
    if (!shape.is_array() || shape.size() > 8) cx.fail(where, ".shape must be an array of at most 8 sizes");
    uint64_t count = 1;
    for (const json& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0 || d.get<int64_t>() > (int64_t{1} << 40))
        cx.fail(where, ".shape has an invalid size ", d.dump());
      const uint64_t s = d.get<uint64_t>();
      if (s != 0 && count > (uint64_t{1} << 50) / s) cx.fail(where, ".shape ", shape.dump(), " is absurdly large");
      count *= s;
      e.shape.push_back(static_cast<int64_t>(s));
    }
    const json& off = field(cx, t, "data_offsets", where);
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      cx.fail(where, ".data_offsets must be [begin, end] (non-negative integers)");
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size)
      cx.fail(where, " has data_offsets [", e.begin, ", ", e.end, "] outside the ", data_size, "-byte data section");
    if (e.end - e.begin != count * dtype_size(e.dtype))
      cx.fail(where, " has ", e.end - e.begin, " bytes but shape ", shape.dump(), " of ", e.dtype, " needs ",
              count * dtype_size(e.dtype));
    tensors[it.key()] = e;
  }
  {
    std::vector<std::pair<uint64_t, std::string>> order;
    for (const auto& [name, e] : tensors) order.push_back({e.begin, name});
    std::sort(order.begin(), order.end());
    uint64_t pos = 0;
    for (const auto& [b, name] : order) {
      const auto& e = tensors[name];
      if (b < pos) cx.fail("tensor '", name, "' overlaps the previous tensor (starts at ", b, ", previous ends at ", pos, ")");
      if (b > pos) cx.fail("tensor '", name, "' leaves a hole in the data section (starts at ", b, ", expected ", pos, ")");
      pos = e.end;
    }
    if (pos != data_size) cx.fail("data section has ", data_size - pos, " bytes after the last tensor");
  }

  // --- metadata
  if (!header.contains("__metadata__")) cx.fail("header lacks __metadata__ (not a lowbit integer model)");
  const json& meta = header["__metadata__"];
  if (!meta.is_object()) cx.fail("__metadata__ must be an object of strings");
  for (auto it = meta.begin(); it != meta.end(); ++it)
    if (!it.value().is_string()) cx.fail("__metadata__.", it.key(), " must be a string");
  const std::string format = get_string(cx, meta, "format", "__metadata__");
  if (format != kModelFormat) cx.fail("__metadata__.format is '", format, "', expected '", kModelFormat, "'");
  const std::string version = get_string(cx, meta, "format_version", "__metadata__");
  if (version != std::to_string(kModelFormatVersion))
    cx.fail("format_version '", version, "' is not supported (this reader reads version ", kModelFormatVersion, ")");
  json g;
  try {
    g = json::parse(get_string(cx, meta, "graph", "__metadata__"));
  } catch (const json::exception& e) {
    cx.fail("__metadata__.graph is not valid JSON (", e.what(), ")");
  }
  IntModel m;
  if (meta.contains("provenance")) {
    try {
      m.provenance = json::parse(meta["provenance"].get<std::string>());
    } catch (const json::exception& e) {
      cx.fail("__metadata__.provenance is not valid JSON (", e.what(), ")");
    }
  }
  if (!g.is_object()) cx.fail("graph must be a JSON object");

  // --- values
  const json& vals = field(cx, g, "values", "graph");
  if (!vals.is_array() || vals.empty() || static_cast<int64_t>(vals.size()) > Limits::values)
    cx.fail("graph.values must be an array of 1..", Limits::values, " values");
  std::map<std::string, int> index;
  for (size_t i = 0; i < vals.size(); ++i) {
    const std::string where = "graph.values[" + std::to_string(i) + "]";
    const json& v = vals[i];
    ValueInfo vi;
    vi.name = get_string(cx, v, "name", where);
    if (index.count(vi.name)) cx.fail(where, " repeats the value name '", vi.name, "'");
    const std::string type = get_string(cx, v, "type", where);
    if (type != "codes" && type != "float32") cx.fail(where, ".type '", type, "' must be codes or float32");
    vi.type = type == "codes" ? ValueType::codes : ValueType::float32;
    const json& shape = field(cx, v, "shape", where);
    if (!shape.is_array() || shape.size() != 3) cx.fail(where, ".shape must be [C, H, W]");
    json sh = {{"c", shape[0]}, {"h", shape[1]}, {"w", shape[2]}};
    vi.c = get_int(cx, sh, "c", 1, Limits::channels * Limits::spatial, where + ".shape");
    vi.h = get_int(cx, sh, "h", 1, Limits::spatial, where + ".shape");
    vi.w = get_int(cx, sh, "w", 1, Limits::spatial, where + ".shape");
    if (vi.c * vi.h > Limits::value_elements || vi.numel() > Limits::value_elements)
      cx.fail(where, " has ", vi.c, "x", vi.h, "x", vi.w, " elements per image, above the limit ", Limits::value_elements);
    if (vi.type == ValueType::codes) {
      vi.bits = static_cast<int>(get_int(cx, v, "bits", 1, 8, where));
      vi.scale = get_float(cx, field(cx, v, "scale", where), where + ".scale");
      vi.zero_point = static_cast<int32_t>(get_int(cx, v, "zero_point", 0, 255, where));
    }
    index[vi.name] = static_cast<int>(i);
    m.values.push_back(vi);
  }
  auto value_ref = [&](const json& name, const std::string& where) {
    if (!name.is_string()) cx.fail(where, " must be a value name (string)");
    auto it = index.find(name.get<std::string>());
    if (it == index.end()) cx.fail(where, " refers to an unknown value '", name.get<std::string>(), "'");
    return it->second;
  };

  // --- input, output, classes
  const json& gin = field(cx, g, "input", "graph");
  m.input = value_ref(field(cx, gin, "value", "graph.input"), "graph.input.value");
  const ValueInfo& vin = m.values[static_cast<size_t>(m.input)];
  if (vin.type != ValueType::float32) cx.fail("graph.input must be a float32 value");
  for (const char* key : {"mean", "std"}) {
    const json& a = field(cx, gin, key, "graph.input");
    if (!a.is_array() || static_cast<int64_t>(a.size()) != vin.c)
      cx.fail("graph.input.", key, " must have one entry per input channel (", vin.c, ")");
    for (const json& x : a) {
      const float f = get_float(cx, x, std::string("graph.input.") + key);
      if (std::string(key) == "std" && !(f > 0.f)) cx.fail("graph.input.std must be positive, got ", f);
      (std::string(key) == "mean" ? m.mean : m.std).push_back(f);
    }
  }
  if (g.contains("method")) {
    if (!g["method"].is_string()) cx.fail("graph.method must be a string");
    m.method = g["method"].get<std::string>();
  }

  // --- ops
  const json& ops = field(cx, g, "ops", "graph");
  if (!ops.is_array() || ops.empty() || static_cast<int64_t>(ops.size()) > Limits::ops)
    cx.fail("graph.ops must be an array of 1..", Limits::ops, " ops");
  std::vector<bool> defined(m.values.size(), false);
  defined[static_cast<size_t>(m.input)] = true;
  std::set<std::string> op_names;
  for (size_t i = 0; i < ops.size(); ++i) {
    const json& j = ops[i];
    std::string where = "graph.ops[" + std::to_string(i) + "]";
    IntOp op;
    const std::string kind = get_string(cx, j, "op", where);
    op.name = get_string(cx, j, "name", where);
    where += " ('" + op.name + "')";
    static const std::map<std::string, OpKind> kinds = {
        {"quantize", OpKind::quantize}, {"conv", OpKind::conv}, {"linear", OpKind::linear},
        {"maxpool", OpKind::maxpool},   {"gap", OpKind::gap},   {"add", OpKind::add},
        {"relu", OpKind::relu},         {"flatten", OpKind::flatten}};
    auto kit = kinds.find(kind);
    if (kit == kinds.end()) cx.fail(where, " has unknown op kind '", kind, "'");
    op.kind = kit->second;
    const json& ins = field(cx, j, "inputs", where);
    const size_t want_inputs = op.kind == OpKind::add ? 2 : 1;
    if (!ins.is_array() || ins.size() != want_inputs) cx.fail(where, ".inputs must list ", want_inputs, " value(s)");
    for (size_t k = 0; k < ins.size(); ++k) {
      const int v = value_ref(ins[k], where + ".inputs");
      if (!defined[static_cast<size_t>(v)]) cx.fail(where, " reads value '", m.values[static_cast<size_t>(v)].name, "' before it is defined");
      op.inputs.push_back(v);
    }
    op.output = value_ref(field(cx, j, "output", where), where + ".output");
    if (defined[static_cast<size_t>(op.output)]) cx.fail(where, " redefines value '", m.values[static_cast<size_t>(op.output)].name, "'");
    defined[static_cast<size_t>(op.output)] = true;
    const ValueInfo& in = m.values[static_cast<size_t>(op.inputs[0])];
    const ValueInfo& out = m.values[static_cast<size_t>(op.output)];
    auto expect_shape = [&](int64_t c, int64_t h, int64_t w) {
      if (out.c != c || out.h != h || out.w != w)
        cx.fail(where, " output '", out.name, "' has shape [", out.c, ", ", out.h, ", ", out.w, "], the op gives [", c,
                ", ", h, ", ", w, "]");
    };
    auto expect_type = [&](const ValueInfo& v, ValueType t, const char* role) {
      if (v.type != t) cx.fail(where, " ", role, " '", v.name, "' must be ", value_type_name(t), ", is ", value_type_name(v.type));
    };
    switch (op.kind) {
      case OpKind::quantize: {
        op.method = get_string(cx, j, "method", where);
        op.bits = static_cast<int>(get_int(cx, j, "bits", 1, 8, where));
        const json& p = field(cx, j, "params", where);
        if (!p.is_array() || p.size() != 2) cx.fail(where, ".params must be [p0, p1]");
        op.p0 = get_float(cx, p[0], where + ".params[0]");
        op.p1 = get_float(cx, p[1], where + ".params[1]");
        expect_type(in, ValueType::float32, "input");
        expect_type(out, ValueType::codes, "output");
        int zp = 0;
        if (op.method == "pact" || op.method == "lsq") {
          if (!(op.p0 > 0.f)) cx.fail(where, " needs a positive ", op.method == "pact" ? "alpha" : "step", ", got ", op.p0);
        } else if (op.method == "qil") {
          if (!(op.p1 > 0.f)) cx.fail(where, " needs a positive QIL d, got ", op.p1);
        } else if (op.method == "input") {
          if (op.bits < 2 || !(op.p0 > 0.f)) cx.fail(where, " input quantizer needs bits >= 2 and a positive step");
          zp = (1 << (op.bits - 1)) - 1;
        } else if (op.method != "dorefa") {
          cx.fail(where, " has unknown quantize method '", op.method, "' (pact, dorefa, qil, lsq, input)");
        }
        if (out.bits != op.bits || out.zero_point != zp)
          cx.fail(where, " output '", out.name, "' must have bits ", op.bits, " and zero point ", zp);
        expect_shape(in.c, in.h, in.w);
        break;
      }
      case OpKind::conv:
      case OpKind::linear: {
        const bool lin = op.kind == OpKind::linear;
        expect_type(in, ValueType::codes, "input");
        op.in_channels = get_int(cx, j, "in_channels", 1, Limits::value_elements, where);
        op.out_channels = get_int(cx, j, "out_channels", 1, Limits::channels, where);
        op.kernel = get_int(cx, j, "kernel", 1, Limits::kernel, where);
        op.stride = get_int(cx, j, "stride", 1, Limits::stride, where);
        op.padding = get_int(cx, j, "padding", 0, op.kernel - 1, where);
        op.weight_bits = static_cast<int>(get_int(cx, j, "weight_bits", 1, 8, where));
        op.act_bits = static_cast<int>(get_int(cx, j, "act_bits", 1, 8, where));
        op.act_zero_point = static_cast<int32_t>(get_int(cx, j, "act_zero_point", 0, 255, where));
        op.acc_mul = static_cast<int32_t>(get_int(cx, j, "acc_mul", 1, 2, where));
        op.rowsum_mul = static_cast<int32_t>(get_int(cx, j, "rowsum_mul", -255, 0, where));
        op.weight_method = j.contains("weight_method") && j["weight_method"].is_string() ? j["weight_method"].get<std::string>() : "";
        op.weight_grid = j.contains("weight_grid") && j["weight_grid"].is_string() ? j["weight_grid"].get<std::string>() : "";
        if (j.contains("weight_scale")) op.weight_scale = get_float(cx, j["weight_scale"], where + ".weight_scale");
        const std::string epi = get_string(cx, j, "epilogue", where);
        if (epi != "codes" && epi != "float") cx.fail(where, ".epilogue must be codes or float, got '", epi, "'");
        op.out_codes = epi == "codes";
        if (op.act_bits != in.bits || op.act_zero_point != in.zero_point)
          cx.fail(where, " act_bits/act_zero_point (", op.act_bits, "/", op.act_zero_point, ") disagree with input '",
                  in.name, "' (", in.bits, "/", in.zero_point, ")");
        int64_t K = 0, ho = 1, wo = 1;
        if (lin) {
          if (op.kernel != 1 || op.stride != 1 || op.padding != 0) cx.fail(where, " linear needs kernel 1, stride 1, padding 0");
          if (op.in_channels != in.numel()) cx.fail(where, " in_channels ", op.in_channels, " != input size ", in.numel());
          K = op.in_channels;
        } else {
          if (op.in_channels != in.c) cx.fail(where, " in_channels ", op.in_channels, " != input channels ", in.c);
          if (in.h + 2 * op.padding < op.kernel || in.w + 2 * op.padding < op.kernel)
            cx.fail(where, " kernel ", op.kernel, " does not fit the ", in.h, "x", in.w, " input");
          ho = (in.h + 2 * op.padding - op.kernel) / op.stride + 1;
          wo = (in.w + 2 * op.padding - op.kernel) / op.stride + 1;
          K = op.in_channels * op.kernel * op.kernel;
          if (K > Limits::value_elements || ho * wo * K > Limits::im2col_bytes)
            cx.fail(where, " K = ", K, " x ", ho * wo, " output pixels is above the im2col limit ", Limits::im2col_bytes);
        }
        expect_shape(op.out_channels, ho, wo);
        if (op.out_codes) {
          expect_type(out, ValueType::codes, "output");
          op.out_max_code = static_cast<int>(get_int(cx, j, "out_max_code", 1, 255, where));
          if (out.zero_point != 0 || op.out_max_code != (1 << out.bits) - 1)
            cx.fail(where, " out_max_code ", op.out_max_code, " must be 2^bits - 1 of output '", out.name,
                    "' (zero point 0)");
        } else {
          expect_type(out, ValueType::float32, "output");
        }
        const int wpb = pack_bits(op.weight_bits), apb = pack_bits(op.act_bits);
        const int64_t k_pad = (K + kernels::kPadK - 1) / kernels::kPadK * kernels::kPadK;
        const int64_t limit = kernels::gemm_k_limit(wpb, apb, op.acc_mul, op.rowsum_mul);
        if (k_pad > limit) cx.fail(where, " K = ", K, " could overflow the int32 accumulator (limit ", limit, ")");
        auto tensor = [&](const char* role, const std::string& dtype, const std::vector<int64_t>& shape) -> TensorEntry& {
          const std::string name = op.name + "." + role;
          auto it = tensors.find(name);
          if (it == tensors.end()) cx.fail(where, " refers to missing tensor '", name, "'");
          if (it->second.used) cx.fail(where, " reuses tensor '", name, "'");
          if (it->second.dtype != dtype || it->second.shape != shape) {
            std::ostringstream want;
            for (auto s : shape) want << s << ",";
            cx.fail("tensor '", name, "' must be ", dtype, " [", want.str(), "] for ", where);
          }
          it->second.used = true;
          return it->second;
        };
        const int64_t row_bytes = dense_row_bytes(K, wpb), per_byte = kernels::codes_per_byte(wpb);
        TensorEntry& tw = tensor("weight", "U8", {op.out_channels, row_bytes});
        TensorEntry& te = tensor("epilogue", "F32", {2, op.out_channels});
        // Weights: unpack the dense rows (codes within weight_bits, zero tail bits), then pack
        // them into the kernels' blocks. The codes buffer is at most 4x the tensor's bytes,
        // which lie inside the file, so a hostile shape cannot cause a huge allocation.
        const auto* rows = reinterpret_cast<const uint8_t*>(data + tw.begin);
        std::vector<uint8_t> codes(static_cast<size_t>(op.out_channels * K));
        const int wmax = (1 << op.weight_bits) - 1;
        for (int64_t n = 0; n < op.out_channels; ++n) {
          const uint8_t* row = rows + n * row_bytes;
          for (int64_t k = 0; k < K; ++k) {
            const int code = (row[k / per_byte] >> (wpb * (k % per_byte))) & kernels::max_code(wpb);
            if (code > wmax)
              cx.fail("tensor '", op.name, ".weight' has code ", code, " above the ", op.weight_bits,
                      "-bit maximum (channel ", n, ", k ", k, ")");
            codes[static_cast<size_t>(n * K + k)] = static_cast<uint8_t>(code);
          }
          if (K % per_byte != 0 && (row[row_bytes - 1] >> (wpb * (K % per_byte))) != 0)
            cx.fail("tensor '", op.name, ".weight' has non-zero bits after the last code of channel ", n);
        }
        op.weights = std::make_shared<kernels::PackedWeights>(
            kernels::pack_weights(codes.data(), op.out_channels, K, K, wpb));
        op.scale.resize(static_cast<size_t>(op.out_channels));
        op.bias.resize(static_cast<size_t>(op.out_channels));
        std::memcpy(op.scale.data(), data + te.begin, op.scale.size() * sizeof(float));
        std::memcpy(op.bias.data(), data + te.begin + op.scale.size() * sizeof(float), op.bias.size() * sizeof(float));
        for (size_t c = 0; c < op.scale.size(); ++c)
          if (!std::isfinite(op.scale[c]) || !std::isfinite(op.bias[c]))
            cx.fail("tensor '", op.name, ".epilogue' has a non-finite scale or bias at channel ", c);
        break;
      }
      case OpKind::maxpool: {
        op.pool_kernel = get_int(cx, j, "kernel", 1, Limits::kernel, where);
        op.pool_stride = get_int(cx, j, "stride", 1, Limits::stride, where);
        op.pool_padding = get_int(cx, j, "padding", 0, op.pool_kernel / 2, where);
        if (in.h + 2 * op.pool_padding < op.pool_kernel || in.w + 2 * op.pool_padding < op.pool_kernel)
          cx.fail(where, " kernel does not fit the input");
        if (in.type == ValueType::codes && (out.type != ValueType::codes || out.bits != in.bits ||
                                            out.zero_point != in.zero_point))
          cx.fail(where, " output must have the input's type, bits and zero point");
        expect_type(out, in.type, "output");
        expect_shape(in.c, (in.h + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1,
                     (in.w + 2 * op.pool_padding - op.pool_kernel) / op.pool_stride + 1);
        break;
      }
      case OpKind::gap:
        expect_type(in, ValueType::float32, "input");
        expect_type(out, ValueType::float32, "output");
        expect_shape(in.c, 1, 1);
        break;
      case OpKind::add: {
        const ValueInfo& b = m.values[static_cast<size_t>(op.inputs[1])];
        expect_type(in, ValueType::float32, "input");
        expect_type(b, ValueType::float32, "input");
        expect_type(out, ValueType::float32, "output");
        if (b.c != in.c || b.h != in.h || b.w != in.w) cx.fail(where, " adds values of different shapes");
        expect_shape(in.c, in.h, in.w);
        break;
      }
      case OpKind::relu:
        expect_type(in, ValueType::float32, "input");
        expect_type(out, ValueType::float32, "output");
        expect_shape(in.c, in.h, in.w);
        break;
      case OpKind::flatten:
        expect_type(out, in.type, "output");
        if (in.type == ValueType::codes && (out.bits != in.bits || out.zero_point != in.zero_point))
          cx.fail(where, " output must keep the input's bits and zero point");
        expect_shape(in.numel(), 1, 1);
        break;
    }
    if ((op.kind == OpKind::conv || op.kind == OpKind::linear) && !op_names.insert(op.name).second)
      cx.fail(where, " repeats the layer name '", op.name, "'");
    m.ops.push_back(std::move(op));
  }
  for (const auto& [name, e] : tensors)
    if (!e.used) cx.fail("tensor '", name, "' is not used by any op of the graph");
  m.output = value_ref(field(cx, g, "output", "graph"), "graph.output");
  if (!defined[static_cast<size_t>(m.output)] || m.output == m.input) cx.fail("graph.output is not produced by any op");
  if (m.values[static_cast<size_t>(m.output)].type != ValueType::float32) cx.fail("graph.output must be float32 logits");
  for (size_t i = 0; i < m.values.size(); ++i)
    if (!defined[i]) cx.fail("value '", m.values[i].name, "' is never defined");
  const json& classes = field(cx, g, "classes", "graph");
  const int64_t count = get_int(cx, classes, "count", 1, Limits::classes_names, "graph.classes");
  if (count != m.num_classes()) cx.fail("graph.classes.count ", count, " != output size ", m.num_classes());
  if (classes.contains("names")) {
    const json& names = classes["names"];
    if (!names.is_array() || (!names.empty() && static_cast<int64_t>(names.size()) != count))
      cx.fail("graph.classes.names must be empty or list ", count, " names");
    for (const json& n : names) {
      if (!n.is_string()) cx.fail("graph.classes.names must be strings");
      m.class_names.push_back(n.get<std::string>());
    }
  }
  return m;
}

IntModel load_int_model(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LOWBIT_CHECK(f.good(), "cannot open model file ", path);
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  LOWBIT_CHECK(size >= 0, "cannot read model file ", path);
  f.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  f.read(bytes.data(), size);
  LOWBIT_CHECK(f.gcount() == size, "cannot read model file ", path, " (short read)");
  return parse_int_model(bytes, path);
}

}  // namespace lowbit::intq
