// layer_config.cpp: the layer-type table, the float layers' rows (one line each; each row is
// defined in its type's file), and writing / rebuilding a module tree (layer_config.h).
#include "layers/layer_config.h"

#include <typeindex>

#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/residual.h"
#include "layers/sequential.h"

namespace lowbit {

using json = nlohmann::json;

LayerTypes::LayerTypes(std::vector<LayerType> rows) : rows_(std::move(rows)) {
  for (size_t i = 0; i < rows_.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      LOWBIT_CHECK(rows_[i].name != rows_[j].name, "layer type '", rows_[i].name, "' is registered twice");
}

LayerTypes LayerTypes::extended(std::vector<LayerType> more) const {
  std::vector<LayerType> all = rows_;
  for (auto& r : more) all.push_back(std::move(r));
  return LayerTypes(std::move(all));
}

const LayerType* LayerTypes::find(const std::string& name) const {
  for (const auto& r : rows_)
    if (r.name == name) return &r;
  return nullptr;
}

std::vector<std::string> LayerTypes::names() const {
  std::vector<std::string> out;
  for (const auto& r : rows_) out.push_back(r.name);
  return out;
}

const LayerType* LayerTypes::row_of(const Module& module) const {
  const LayerType* row = find(module.config_type());
  if (!row) return nullptr;
  if (row->cls) return std::type_index(typeid(module)) == std::type_index(*row->cls) ? row : nullptr;
  return !row->describes || row->describes(module) ? row : nullptr;
}

const LayerTypes& float_layer_types() {
  static const LayerTypes types({
      relu_layer_type(),
      identity_layer_type(),
      flatten_layer_type(),
      dropout_layer_type(),
      max_pool2d_layer_type(),
      avg_pool2d_layer_type(),
      global_avg_pool2d_layer_type(),
      conv2d_layer_type(),
      linear_layer_type(),
      batch_norm2d_layer_type(),
      basic_block_layer_type(),
      sequential_layer_type(),
  });
  return types;
}

json module_config(const Module& model, const LayerTypes& types) {
  const LayerType* row = types.row_of(model);
  if (!row) {
    // Written without "config": module_from_config names it. A subclass that reports a library
    // type name is still not that type: say so.
    const std::string type = model.type_name();
    return {{"type", types.find(type) || types.find(model.config_type()) ? type + " (a subclass)" : type}};
  }
  json out = {{"type", model.config_type()}};
  out["config"] = row->write(model);
  json children = json::array();
  for (const auto& [name, child] : model.children()) {
    json c = module_config(*child, types);
    c["name"] = name;
    children.push_back(std::move(c));
  }
  if (!children.empty()) out["children"] = std::move(children);
  return out;
}

std::optional<std::pair<std::string, std::string>> undescribed_module(const Module& model, const LayerTypes& types) {
  if (!types.row_of(model)) return std::make_pair(std::string(), module_config(model, types)["type"].get<std::string>());
  for (const auto& [name, child] : model.children())
    if (auto bad = undescribed_module(*child, types)) {
      bad->first = bad->first.empty() ? name : name + "." + bad->first;
      return bad;
    }
  return std::nullopt;
}

namespace {

std::string place(const std::string& path) {
  return path.empty() ? std::string("the model's top module") : "model layer '" + path + "'";
}

std::shared_ptr<Module> rebuild(const json& config, const std::string& path, const LayerTypes& types, Generator& gen) {
  LOWBIT_CHECK(config.is_object() && config.contains("type") && config["type"].is_string(), place(path),
               ": its architecture entry is not an object with a string 'type'");
  const std::string type = config["type"].get<std::string>();
  const LayerType* row = types.find(type);
  LOWBIT_CHECK(row && config.contains("config"), place(path), " has type '", type,
               "', which has no registered config (known types: ",
               [&] {
                 std::string s;
                 for (const auto& n : types.names()) s += (s.empty() ? "" : ", ") + n;
                 return s;
               }(),
               "); the program that defines it can rebuild the model itself and call the library with the module: "
               "export_model(module, serving, path), evaluate(module, data, batch), intq::convert_to_int(module, info)");
  NamedModules children;
  if (config.contains("children")) {
    LOWBIT_CHECK(config["children"].is_array(), place(path), ": 'children' must be an array");
    for (const json& c : config["children"]) {
      LOWBIT_CHECK(c.is_object() && c.contains("name") && c["name"].is_string(), place(path),
                   ": every child needs a string 'name'");
      const std::string name = c["name"].get<std::string>();
      children.emplace_back(name, rebuild(c, path.empty() ? name : path + "." + name, types, gen));
    }
  }
  std::shared_ptr<Module> m;
  try {
    m = row->make(config["config"], children, gen);
  } catch (const Error& e) {
    throw Error(detail::concat(place(path), " (", type, "): ", e.what()));
  }
  // Every rebuilt child must sit in the module under its name (a row that dropped one is a bug).
  const NamedModules got = m->children();
  bool same = got.size() == children.size();
  for (size_t i = 0; same && i < got.size(); ++i)
    same = got[i].first == children[i].first && got[i].second == children[i].second;
  LOWBIT_CHECK(same, place(path), " (", type, "): its children differ from the architecture's");
  return m;
}

const json& field(const json& config, const char* key) {
  LOWBIT_CHECK(config.is_object() && config.contains(key), "layer config lacks '", key, "'");
  return config[key];
}

}  // namespace

std::shared_ptr<Module> module_from_config(const json& config, const LayerTypes& types, Generator& gen) {
  return rebuild(config, "", types, gen);
}

double config_parameter_count(const json& config, const LayerTypes& types) {
  if (!config.is_object()) return 0;
  double n = 0;
  const LayerType* row = config.contains("type") && config["type"].is_string() ? types.find(config["type"]) : nullptr;
  if (row && row->parameter_count && config.contains("config")) {
    try {
      n += row->parameter_count(config["config"]);
    } catch (const Error&) {
      // a malformed setting: module_from_config names it
    }
  }
  if (config.contains("children") && config["children"].is_array())
    for (const json& c : config["children"]) n += config_parameter_count(c, types);
  return n;
}

int64_t config_int(const json& config, const char* key) {
  const json& v = field(config, key);
  LOWBIT_CHECK(v.is_number_integer(), "layer config '", key, "' must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

double config_number(const json& config, const char* key) {
  const json& v = field(config, key);
  LOWBIT_CHECK(v.is_number(), "layer config '", key, "' must be a number, got ", v.dump());
  return v.get<double>();
}

bool config_bool(const json& config, const char* key) {
  const json& v = field(config, key);
  LOWBIT_CHECK(v.is_boolean(), "layer config '", key, "' must be true or false, got ", v.dump());
  return v.get<bool>();
}

std::string config_string(const json& config, const char* key) {
  const json& v = field(config, key);
  LOWBIT_CHECK(v.is_string(), "layer config '", key, "' must be a string, got ", v.dump());
  return v.get<std::string>();
}

std::shared_ptr<Module> find_child(const NamedModules& children, const std::string& name) {
  for (const auto& [n, m] : children)
    if (n == name) return m;
  return nullptr;
}

}  // namespace lowbit
