// model_file.cpp: writer and validating loader of the integer model file (see model_file.h and
// docs/model-format.md): the container, values, graph and tensors; each op's own fields are
// written and read by its kind's row (op_kinds.cpp). Every check throws one lowbit::Error;
// nothing is allocated from a header-declared size before that size was checked against the file
// or the limits.
#include "quant/runtime/model_file.h"

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
#include "core/file_io.h"
#include "quant/kernels/gemm.h"
#include "quant/runtime/op_context_internal.h"

namespace lowbit::intq {

using json = nlohmann::json;
using Limits = ModelFileLimits;

// ---------------------------------------------------------------- writer

// A float as the shortest decimal that reads back to the same float (9 significant digits at
// most, instead of the 17 of its double): the header stays small and the values exact.
json float_json(float f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(f));
  return std::strtod(buf, nullptr);
}

// The file stores weights densely (no channel or K padding, which would cost up to 60 % on a
// 10-class linear layer): row n holds W[n][0..K) at pack width b, P = 8/b codes per byte, code
// k in byte k/P at bits [b*(k%P), b*(k%P) + b); the tail bits of a row's last byte are zero.
// The loader repacks them into the kernels' 16-channel blocks.
int64_t dense_row_bytes(int64_t k, int bits) {
  const int64_t per_byte = kernels::codes_per_byte(bits);
  return (k + per_byte - 1) / per_byte;
}

namespace {

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

json op_json(const IntGraph& m, const IntOp& op) {
  json j = {{"op", op_kind_name(op.kind)}, {"name", op.name}};
  json ins = json::array();
  for (int i : op.inputs) ins.push_back(m.values[static_cast<size_t>(i)].name);
  j["inputs"] = ins;
  j["output"] = m.values[static_cast<size_t>(op.output)].name;
  op_kind_info(op.kind).write(m, op, j);
  return j;
}

}  // namespace

json graph_to_json(const IntGraph& m) {
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

std::string serialize_int_model(const IntGraph& m) {
  json header = json::object();
  std::string data;
  auto add = [&](const std::string& name, const char* dtype, const std::vector<int64_t>& shape, const void* p,
                 size_t bytes) {
    const size_t b = data.size();
    data.append(static_cast<const char*>(p), bytes);  // x86-64 is little-endian
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {b, data.size()}}};
  };
  for (const auto& op : m.ops) {
    if (!op_kind_info(op.kind).weights) continue;
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
  // The writer never hands out bytes its own reader rejects: read them back (at the scalar level,
  // which measures no kernels) and fail here, naming the problem, instead of at the app's load.
  try {
    (void)parse_int_graph(out, "the model being written", kernels::Isa::scalar);
  } catch (const Error& e) {
    throw Error(detail::concat("serialize_int_model: the model would not load: ", e.what()));
  }
  return out;
}

void save_int_model(const std::string& path, const IntGraph& m) { write_file_atomically(path, serialize_int_model(m)); }

// ---------------------------------------------------------------- loader

const json& field(const Ctx& cx, const json& obj, const char* key, const std::string& where) {
  if (!obj.is_object()) cx.fail(where, " must be a JSON object");
  auto it = obj.find(key);
  if (it == obj.end()) cx.fail(where, " lacks '", key, "'");
  return *it;
}

int64_t get_int(const Ctx& cx, const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& where) {
  const json& v = field(cx, obj, key, where);
  if (!v.is_number_integer()) cx.fail(where, ".", key, " must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))
    cx.fail(where, ".", key, " = ", v.get<uint64_t>(), " is outside [", lo, ", ", hi, "]");
  const int64_t x = v.get<int64_t>();
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

namespace {

size_t dtype_size(const std::string& d) { return d == "U8" ? 1 : 4; }

// Length prefix within the file and the limit, header JSON object.
Container read_container(const Ctx& cx, const std::string& bytes) {
  if (bytes.size() < 8) cx.fail("not a model file: ", bytes.size(), " bytes, need at least the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 0; i < 8; ++i) hlen |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[static_cast<size_t>(i)])) << (8 * i);
  if (hlen > static_cast<uint64_t>(Limits::header_bytes) || hlen > bytes.size() - 8)
    cx.fail("header length ", hlen, " exceeds the file (", bytes.size(), " bytes) or the ",
            Limits::header_bytes, "-byte limit: truncated or not a safetensors file");
  Container c;
  c.data_size = bytes.size() - 8 - hlen;
  c.data = bytes.data() + 8 + hlen;
  try {
    c.header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(hlen));
  } catch (const json::exception& e) {
    cx.fail("header is not valid JSON (", e.what(), ")");
  }
  if (!c.header.is_object()) cx.fail("header must be a JSON object");
  return c;
}

// One tensor entry: dtype, shape (overflow-checked), offsets inside the data, byte size.
TensorEntry parse_tensor_entry(const Ctx& cx, const std::string& name, const json& t, uint64_t data_size) {
  const std::string where = "tensor '" + name + "'";
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
  return e;
}

// Every tensor entry, then the layout: contiguous in offset order, no overlap, no tail.
void parse_tensor_table(const Ctx& cx, Container& c) {
  for (auto it = c.header.begin(); it != c.header.end(); ++it)
    if (it.key() != "__metadata__") c.tensors[it.key()] = parse_tensor_entry(cx, it.key(), it.value(), c.data_size);
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& [name, e] : c.tensors) order.push_back({e.begin, name});
  std::sort(order.begin(), order.end());
  uint64_t pos = 0;
  for (const auto& [b, name] : order) {
    if (b < pos) cx.fail("tensor '", name, "' overlaps the previous tensor (starts at ", b, ", previous ends at ", pos, ")");
    if (b > pos) cx.fail("tensor '", name, "' leaves a hole in the data section (starts at ", b, ", expected ", pos, ")");
    pos = c.tensors[name].end;
  }
  if (pos != c.data_size) cx.fail("data section has ", c.data_size - pos, " bytes after the last tensor");
}

// __metadata__: format, version, the graph JSON (returned) and the provenance JSON (into m).
json parse_metadata(const Ctx& cx, const json& header, IntGraph& m) {
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
  if (meta.contains("provenance")) {
    try {
      m.provenance = json::parse(get_string(cx, meta, "provenance", "__metadata__"));
    } catch (const json::exception& e) {
      cx.fail("__metadata__.provenance is not valid JSON (", e.what(), ")");
    }
  }
  if (!g.is_object()) cx.fail("graph must be a JSON object");
  return g;
}

// Provenance is informational, except what `lowbit bench infer` rebuilds the float model from
// (model, model_config): bounded like the graph and required to agree with it.
void check_provenance(const Ctx& cx, const IntGraph& m) {
  const json& p = m.provenance;
  if (!p.is_object()) cx.fail("__metadata__.provenance must be a JSON object");
  if (p.contains("model") && !p["model"].is_string()) cx.fail("provenance.model must be a string (a model zoo name)");
  if (!p.contains("model_config")) return;
  const json& mc = p["model_config"];
  const std::string where = "provenance.model_config";
  const int64_t c = get_int(cx, mc, "in_channels", 1, Limits::channels, where);
  const int64_t h = get_int(cx, mc, "height", 1, Limits::spatial, where);
  const int64_t w = get_int(cx, mc, "width", 1, Limits::spatial, where);
  const int64_t k = get_int(cx, mc, "num_classes", 1, Limits::classes_names, where);
  const ValueInfo& in = m.input_info();
  if (c != in.c || h != in.h || w != in.w || k != m.num_classes())
    cx.fail(where, " (", c, "x", h, "x", w, ", ", k, " classes) disagrees with the graph (input ", in.c, "x", in.h,
            "x", in.w, ", ", m.num_classes(), " classes)");
}

// The graph JSON -> m.values, m.ops, input/output/classes, with every check of model_file.h.
class GraphParser {
 public:
  GraphParser(const Ctx& cx, Container& file, IntGraph& m, kernels::Isa isa) : cx_(cx), file_(file), m_(m), isa_(isa) {}

  void parse(const json& g) {
    values(g);
    input(g);
    ops(g);
    outputs(g);
  }

 private:
  const Ctx& cx_;
  Container& file_;
  IntGraph& m_;
  const kernels::Isa isa_;  // the level prepare_runtime measures kernels at
  std::map<std::string, int> index_;
  std::vector<bool> defined_;

  void values(const json& g);
  void input(const json& g);
  void ops(const json& g);
  void outputs(const json& g);
  int value_ref(const json& name, const std::string& where) const;
  IntOp op_header(const json& j, size_t i, std::string& where);

  const ValueInfo& value(int v) const { return m_.values[static_cast<size_t>(v)]; }
};

void GraphParser::values(const json& g) {
  const json& vals = field(cx_, g, "values", "graph");
  if (!vals.is_array() || vals.empty() || static_cast<int64_t>(vals.size()) > Limits::values)
    cx_.fail("graph.values must be an array of 1..", Limits::values, " values");
  for (size_t i = 0; i < vals.size(); ++i) {
    const std::string where = "graph.values[" + std::to_string(i) + "]";
    const json& v = vals[i];
    ValueInfo vi;
    vi.name = get_string(cx_, v, "name", where);
    if (index_.count(vi.name)) cx_.fail(where, " repeats the value name '", vi.name, "'");
    const std::string type = get_string(cx_, v, "type", where);
    if (type != "codes" && type != "float32") cx_.fail(where, ".type '", type, "' must be codes or float32");
    vi.type = type == "codes" ? ValueType::codes : ValueType::float32;
    const json& shape = field(cx_, v, "shape", where);
    if (!shape.is_array() || shape.size() != 3) cx_.fail(where, ".shape must be [C, H, W]");
    json sh = {{"c", shape[0]}, {"h", shape[1]}, {"w", shape[2]}};
    vi.c = get_int(cx_, sh, "c", 1, Limits::channels * Limits::spatial, where + ".shape");
    vi.h = get_int(cx_, sh, "h", 1, Limits::spatial, where + ".shape");
    vi.w = get_int(cx_, sh, "w", 1, Limits::spatial, where + ".shape");
    if (vi.c * vi.h > Limits::value_elements || vi.numel() > Limits::value_elements)
      cx_.fail(where, " has ", vi.c, "x", vi.h, "x", vi.w, " elements per image, above the limit ", Limits::value_elements);
    if (vi.type == ValueType::codes) {
      vi.bits = static_cast<int>(get_int(cx_, v, "bits", 1, 8, where));
      vi.scale = get_float(cx_, field(cx_, v, "scale", where), where + ".scale");
      vi.zero_point = static_cast<int32_t>(get_int(cx_, v, "zero_point", 0, 255, where));
    }
    index_[vi.name] = static_cast<int>(i);
    m_.values.push_back(vi);
  }
  defined_.assign(m_.values.size(), false);
}

int GraphParser::value_ref(const json& name, const std::string& where) const {
  if (!name.is_string()) cx_.fail(where, " must be a value name (string)");
  auto it = index_.find(name.get<std::string>());
  if (it == index_.end()) cx_.fail(where, " refers to an unknown value '", name.get<std::string>(), "'");
  return it->second;
}

void GraphParser::input(const json& g) {
  const json& gin = field(cx_, g, "input", "graph");
  m_.input = value_ref(field(cx_, gin, "value", "graph.input"), "graph.input.value");
  defined_[static_cast<size_t>(m_.input)] = true;
  const ValueInfo& vin = value(m_.input);
  if (vin.type != ValueType::float32) cx_.fail("graph.input must be a float32 value");
  for (const char* key : {"mean", "std"}) {
    const json& a = field(cx_, gin, key, "graph.input");
    if (!a.is_array() || static_cast<int64_t>(a.size()) != vin.c)
      cx_.fail("graph.input.", key, " must have one entry per input channel (", vin.c, ")");
    for (const json& x : a) {
      const float f = get_float(cx_, x, std::string("graph.input.") + key);
      if (std::string(key) == "std" && !(f > 0.f)) cx_.fail("graph.input.std must be positive, got ", f);
      (std::string(key) == "mean" ? m_.mean : m_.std).push_back(f);
    }
  }
  if (g.contains("method")) {
    if (!g["method"].is_string()) cx_.fail("graph.method must be a string");
    m_.method = g["method"].get<std::string>();
  }
}

// Kind, name, inputs defined before use, output defined once.
IntOp GraphParser::op_header(const json& j, size_t i, std::string& where) {
  where = "graph.ops[" + std::to_string(i) + "]";
  IntOp op;
  const std::string kind = get_string(cx_, j, "op", where);
  op.name = get_string(cx_, j, "name", where);
  where += " ('" + op.name + "')";
  const OpKindInfo* info = find_op_kind(kind);
  if (!info) cx_.fail(where, " has unknown op kind '", kind, "'");
  op.kind = info->kind;
  const json& ins = field(cx_, j, "inputs", where);
  const size_t want_inputs = static_cast<size_t>(info->arity);
  if (!ins.is_array() || ins.size() != want_inputs) cx_.fail(where, ".inputs must list ", want_inputs, " value(s)");
  for (size_t k = 0; k < ins.size(); ++k) {
    const int v = value_ref(ins[k], where + ".inputs");
    if (!defined_[static_cast<size_t>(v)]) cx_.fail(where, " reads value '", value(v).name, "' before it is defined");
    op.inputs.push_back(v);
  }
  op.output = value_ref(field(cx_, j, "output", where), where + ".output");
  if (defined_[static_cast<size_t>(op.output)]) cx_.fail(where, " redefines value '", value(op.output).name, "'");
  defined_[static_cast<size_t>(op.output)] = true;
  return op;
}

void GraphParser::ops(const json& g) {
  const json& ops = field(cx_, g, "ops", "graph");
  if (!ops.is_array() || ops.empty() || static_cast<int64_t>(ops.size()) > Limits::ops)
    cx_.fail("graph.ops must be an array of 1..", Limits::ops, " ops");
  std::set<std::string> op_names;
  for (size_t i = 0; i < ops.size(); ++i) {
    const json& j = ops[i];
    std::string where;
    IntOp op = op_header(j, i, where);
    OpReader reader(cx_, file_, m_);
    op_kind_info(op.kind).read(reader, j, where, op);
    if (op_kind_info(op.kind).weights && !op_names.insert(op.name).second)
      cx_.fail(where, " repeats the layer name '", op.name, "'");
    prepare_runtime(op, value(op.inputs[0]), value(op.output), chunk_images(value(m_.input)), isa_);
    m_.ops.push_back(std::move(op));
  }
  for (const auto& [name, e] : file_.tensors)
    if (!e.used) cx_.fail("tensor '", name, "' is not used by any op of the graph");
}

void GraphParser::outputs(const json& g) {
  m_.output = value_ref(field(cx_, g, "output", "graph"), "graph.output");
  if (!defined_[static_cast<size_t>(m_.output)] || m_.output == m_.input) cx_.fail("graph.output is not produced by any op");
  if (value(m_.output).type != ValueType::float32) cx_.fail("graph.output must be float32 logits");
  for (size_t i = 0; i < m_.values.size(); ++i)
    if (!defined_[i]) cx_.fail("value '", m_.values[i].name, "' is never defined");
  const json& classes = field(cx_, g, "classes", "graph");
  const int64_t count = get_int(cx_, classes, "count", 1, Limits::classes_names, "graph.classes");
  if (count != m_.num_classes()) cx_.fail("graph.classes.count ", count, " != output size ", m_.num_classes());
  if (classes.contains("names")) {
    const json& names = classes["names"];
    if (!names.is_array() || (!names.empty() && static_cast<int64_t>(names.size()) != count))
      cx_.fail("graph.classes.names must be empty or list ", count, " names");
    for (const json& n : names) {
      if (!n.is_string()) cx_.fail("graph.classes.names must be strings");
      m_.class_names.push_back(n.get<std::string>());
    }
  }
}

}  // namespace

TensorEntry& OpReader::op_tensor(const std::string& where, const IntOp& op, const char* role,
                                    const std::string& dtype, const std::vector<int64_t>& shape) {
  const std::string name = op.name + "." + role;
  auto it = file.tensors.find(name);
  if (it == file.tensors.end()) cx.fail(where, " refers to missing tensor '", name, "'");
  if (it->second.used) cx.fail(where, " reuses tensor '", name, "'");
  if (it->second.dtype != dtype || it->second.shape != shape) {
    std::ostringstream want;
    for (auto s : shape) want << s << ",";
    cx.fail("tensor '", name, "' must be ", dtype, " [", want.str(), "] for ", where);
  }
  it->second.used = true;
  return it->second;
}

IntGraph parse_int_graph(const std::string& bytes, const std::string& what, kernels::Isa isa) {
  const Ctx cx{what};
  Container file = read_container(cx, bytes);
  parse_tensor_table(cx, file);
  IntGraph m;
  const json g = parse_metadata(cx, file.header, m);
  GraphParser(cx, file, m, isa).parse(g);
  check_provenance(cx, m);
  return m;
}

IntGraph parse_int_graph(const std::string& bytes, const std::string& what) {
  return parse_int_graph(bytes, what, default_isa());
}

IntGraph load_int_graph(const std::string& path, kernels::Isa isa) {
  return parse_int_graph(read_whole_file(path, "model file"), path, isa);
}

IntGraph load_int_graph(const std::string& path) { return load_int_graph(path, default_isa()); }

kernels::Isa default_isa() { return kernels::resolve_isa(std::getenv("LOWBIT_ISA")); }

}  // namespace lowbit::intq
