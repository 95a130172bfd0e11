// layer_config.h: self-describing modules (in the spirit of Keras get_config/from_config). A
// model built from library layers writes its architecture as JSON and is rebuilt from it, so a
// program's own model can be evaluated, exported and benchmarked by code that never saw the
// program. The architecture of a module is
//   {"type": T, "config": {...its own settings...}, "children": [{"name": n, <child's architecture>}, ...]}
// T is Module::config_type(); "config" is what T's row writes (shapes, flags: never weights, which
// live in the state dict); children are written recursively, in registration order (absent ones,
// e.g. a null quantizer slot, are left out).
//
// LayerTypes is the explicit table of rows, keyed by type name. A type's file owns its row (the
// writer, the maker, e.g. conv2d_layer_type() in conv2d.cpp); layer_config.cpp lists the float
// rows, one line each, and quant/ extends the table with its own (quant/layer_types.h). An explicit,
// immutable table instead of self-registering statics: nothing is mutated at start-up and a
// static link cannot silently drop a row. A module whose type has no row (a program's own class,
// or a subclass of a library class) is written as {"type": T} only; module_from_config then throws
// one lowbit::Error naming its place in the model and its type.
//
// Rebuilding draws a fresh initialisation from the Generator it is given (loading a state dict
// afterwards makes that draw irrelevant); a rebuilt module is in training mode, as a new one is.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/random.h"
#include "layers/module.h"

namespace lowbit {

using NamedModules = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;

struct LayerType {
  std::string name;  // == config_type() of the modules the row describes
  // The one C++ class the row describes; a module of another class (a program's subclass) is not
  // described by it even when it reports the same type name. null: `describes` decides (the
  // Quantizer row: a family of classes, each rebuilt by the quantizer registry).
  const std::type_info* cls = nullptr;
  // The module's own configuration (children excluded).
  std::function<nlohmann::json(const Module& module)> write;
  // A module of this type from its configuration and its already rebuilt children (by name, in the
  // written order); every child given must end up a child of the result under the same name.
  std::function<std::shared_ptr<Module>(const nlohmann::json& config, const NamedModules& children, Generator& gen)>
      make;
  // With cls null: whether the row describes `module` (true when empty).
  std::function<bool(const Module& module)> describes = {};
  // The float parameters and buffers make() allocates for `config` itself (children excluded);
  // empty: none. Read before rebuilding from untrusted input (config_parameter_count).
  std::function<double(const nlohmann::json& config)> parameter_count = {};
};

class LayerTypes {
 public:
  // Throws lowbit::Error on a repeated name.
  explicit LayerTypes(std::vector<LayerType> rows);
  // This table plus `more` (a new table; this one is unchanged).
  LayerTypes extended(std::vector<LayerType> more) const;
  const LayerType* find(const std::string& name) const;  // nullptr when unknown
  std::vector<std::string> names() const;
  // The row that describes `module` exactly (name and class), or nullptr.
  const LayerType* row_of(const Module& module) const;

 private:
  std::vector<LayerType> rows_;
};

// The float layers of layers/: ReLU, Identity, Flatten, Dropout, MaxPool2d, AvgPool2d,
// GlobalAvgPool2d, Conv2d, Linear, BatchNorm2d, BasicBlock, Sequential.
const LayerTypes& float_layer_types();

// The architecture of `model` (format above). Never throws for an unknown type (see top).
nlohmann::json module_config(const Module& model, const LayerTypes& types);
// The first module of `model`, depth first, that `types` cannot describe: (dotted name, type name).
std::optional<std::pair<std::string, std::string>> undescribed_module(const Module& model, const LayerTypes& types);
// The module `config` describes, its initialisation drawn from `gen`. Throws lowbit::Error naming
// the module's place ("model layer '3.conv1'") and type for an unknown type or a bad setting.
std::shared_ptr<Module> module_from_config(const nlohmann::json& config, const LayerTypes& types, Generator& gen);

// The float parameters and buffers module_from_config(config, ...) would allocate, from the rows'
// parameter_count (0 for an unknown type, which module_from_config refuses anyway), in double so
// absurd settings cannot overflow: what a caller bounds before rebuilding from a file it did not write.
double config_parameter_count(const nlohmann::json& config, const LayerTypes& types);

// Readers for a row's maker: the value of `key` in `config`, or a lowbit::Error naming the key and
// the expected kind of value.
int64_t config_int(const nlohmann::json& config, const char* key);
double config_number(const nlohmann::json& config, const char* key);
bool config_bool(const nlohmann::json& config, const char* key);
std::string config_string(const nlohmann::json& config, const char* key);
// The child called `name` among `children`, or nullptr.
std::shared_ptr<Module> find_child(const NamedModules& children, const std::string& name);

// A row for a parameter-free module M that has a default constructor and no settings.
template <class M>
LayerType plain_layer_type(const std::string& name) {
  return {name, &typeid(M), [](const Module&) { return nlohmann::json::object(); },
          [](const nlohmann::json&, const NamedModules&, Generator&) { return std::static_pointer_cast<Module>(std::make_shared<M>()); }};
}

}  // namespace lowbit
