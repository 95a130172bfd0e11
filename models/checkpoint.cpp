// checkpoint.cpp: Checkpoint <-> StateDict file, with validation of every field it reads.
#include "models/checkpoint.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/serialize.h"
#include "quant/runtime/model_file.h"

namespace lowbit {

using json = nlohmann::json;

ServingInfo ServingInfo::from_dataset(const Dataset& d) {
  return {d.channels, d.height, d.width, d.mean, d.std, d.class_names};
}

void ServingInfo::apply_to(Dataset& d, const std::string& spec) const {
  LOWBIT_CHECK(d.channels == channels && d.height == height && d.width == width &&
                   d.num_classes() <= static_cast<int64_t>(class_names.size()),
               "dataset ", spec, " (", d.channels, "x", d.height, "x", d.width, ", ", d.num_classes(),
               " classes) does not match the checkpoint's model input ", channels, "x", height, "x", width, ", ",
               class_names.size(), " classes");
  d.mean = mean;
  d.std = std;
}

namespace {

std::string rng_to_string(const std::array<uint64_t, 4>& state) {
  std::string s;
  for (uint64_t w : state) s += std::to_string(w) + " ";
  return s;
}

json serving_json(const ServingInfo& s) {
  return {{"channels", s.channels}, {"height", s.height}, {"width", s.width},
          {"mean", s.mean},         {"std", s.std},       {"class_names", s.class_names}};
}

// A stored number as written: integers in full (not 1.09951e+12), anything else with every digit.
std::string number_text(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e18) return std::to_string(static_cast<int64_t>(v));
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

constexpr int64_t kMaxCount = int64_t{1} << 52;  // counts are exact in a double below this

// Field lookups that name the file and the missing field.
struct Fields {
  const StateDict& sd;
  const std::string& source;
  double scalar(const std::string& key) const {
    auto it = sd.scalars.find(key);
    LOWBIT_CHECK(it != sd.scalars.end(), "checkpoint ", source, " lacks '", key, "'");
    return it->second;
  }
  const std::string& string(const std::string& key) const {
    auto it = sd.strings.find(key);
    LOWBIT_CHECK(it != sd.strings.end(), "checkpoint ", source, " lacks '", key, "'");
    return it->second;
  }
  // A count stored as a double, bounded before anything is sized from it (same bounds as the
  // model-file loader's, quant/runtime/model_file.h): one error naming the file and the field.
  int64_t count(const std::string& key, int64_t lo, int64_t hi) const {
    const double v = scalar(key);
    LOWBIT_CHECK(std::isfinite(v) && v == std::floor(v) && v >= static_cast<double>(lo) && v <= static_cast<double>(hi),
                 "checkpoint ", source, ": ", key, " = ", number_text(v), " is outside [", lo, ", ", hi, "]");
    return static_cast<int64_t>(v);
  }
  std::string string_or(const std::string& key, const std::string& fallback) const {
    auto it = sd.strings.find(key);
    return it == sd.strings.end() ? fallback : it->second;
  }
};

ModelSpec read_spec(const Fields& f, const QuantizerRegistry& registry) {
  ModelSpec spec;
  spec.policy.registry = &registry;  // also what rebuilds a program-defined model's quantizers
  spec.name = f.string_or("model.name", "");
  if (!spec.name.empty()) {
    using Limits = intq::ModelFileLimits;
    spec.config = {f.count("model.in_channels", 1, Limits::channels), f.count("model.height", 1, Limits::spatial),
                   f.count("model.width", 1, Limits::spatial), f.count("model.num_classes", 1, Limits::classes_names)};
  }
  if (auto p = f.sd.strings.find("quant.policy"); p != f.sd.strings.end())
    spec.policy = QuantPolicy::from_json_string(p->second, registry);
  if (auto a = f.sd.strings.find("model.architecture"); a != f.sd.strings.end()) {
    try {
      spec.architecture = json::parse(a->second);
    } catch (const std::exception& e) {
      throw Error(detail::concat("checkpoint ", f.source, ": field 'model.architecture' is not JSON: ", e.what()));
    }
    LOWBIT_CHECK(spec.architecture.is_object(), "checkpoint ", f.source,
                 ": field 'model.architecture' must be a JSON object");
  }
  return spec;
}

ServingInfo read_serving(const Fields& f) {
  const std::string& text = f.string("serving");
  try {
    const json j = json::parse(text);
    ServingInfo s;
    using Limits = intq::ModelFileLimits;
    auto bounded = [&](const char* key, int64_t hi) {
      const int64_t v = j.at(key).get<int64_t>();
      LOWBIT_CHECK(v >= 1 && v <= hi, key, " = ", v, " is outside [1, ", hi, "]");
      return v;
    };
    s.channels = bounded("channels", Limits::channels);
    s.height = bounded("height", Limits::spatial);
    s.width = bounded("width", Limits::spatial);
    s.mean = j.at("mean").get<std::vector<float>>();
    s.std = j.at("std").get<std::vector<float>>();
    s.class_names = j.at("class_names").get<std::vector<std::string>>();
    LOWBIT_CHECK(s.mean.size() == static_cast<size_t>(s.channels) && s.std.size() == s.mean.size(),
                 "mean/std need ", s.channels, " entries");
    return s;
  } catch (const std::exception& e) {
    throw Error(detail::concat("checkpoint ", f.source, ": field 'serving' is malformed: ", e.what()));
  }
}

// The streams under "rng.<name>" (the older single "rng" field is not one of them).
RngStates read_rng(const Fields& f) {
  RngStates out;
  for (const auto& [name, text] : f.sd.sub("rng").strings) {
    std::array<uint64_t, 4> rng{};
    std::istringstream in(text);
    for (auto& w : rng)
      LOWBIT_CHECK(static_cast<bool>(in >> w), "checkpoint ", f.source, ": field 'rng.", name, "' is malformed");
    out[name] = rng;
  }
  return out;
}

void write_rng(StateDict& sd, const RngStates& states) {
  for (const auto& [name, state] : states) sd.strings["rng." + name] = rng_to_string(state);
}

TrainingState read_training(const Fields& f) {
  TrainingState t;
  t.epoch = f.count("epoch", 0, kMaxCount);
  t.best_acc = f.scalar("best_acc");
  t.test_acc = f.scalar("test_acc");
  t.global_step = f.count("global_step", 0, kMaxCount);
  t.schedule = f.string("schedule");
  t.rng = read_rng(f);
  if (f.sd.scalars.count("global_batch")) t.global_batch = f.count("global_batch", 1, kMaxCount);
  if (f.sd.scalars.count("epoch_step")) {
    t.epoch_steps = f.count("epoch_steps", 2, kMaxCount);
    t.epoch_step = f.count("epoch_step", 1, t.epoch_steps - 1);
    const int64_t ranks = f.count("ranks", 1, int64_t{1} << 20);
    for (int64_t r = 0; r < ranks; ++r)
      t.ranks.push_back(RankState::from_state_dict(f.sd.sub(detail::concat("rank.", r)),
                                                   detail::concat(f.source, " (rank.", r, ")")));
  }
  t.optimizer = f.sd.sub("optim");
  LOWBIT_CHECK(t.optimizer.strings.count("type"), "checkpoint ", f.source, " lacks 'optim.type' (the optimizer state)");
  return t;
}

std::string describe(const ModelSpec& s) {
  const std::string model =
      s.name.empty() ? std::string("a program-defined model")
                     : detail::concat("model '", s.name, "' (", s.config.in_channels, "x", s.config.height, "x",
                                      s.config.width, ", ", s.config.num_classes, " classes)");
  return model + " with quantization " + s.policy.to_json_string();
}

}  // namespace

StateDict RankState::to_state_dict() const {
  StateDict sd;
  sd.merge(buffers, "buffer");
  sd.scalars["loss_sum"] = loss_sum;
  sd.scalars["correct"] = static_cast<double>(correct);
  sd.scalars["seen"] = static_cast<double>(seen);
  write_rng(sd, rng);
  return sd;
}

RankState RankState::from_state_dict(const StateDict& sd, const std::string& source) {
  const Fields f{sd, source};
  RankState r;
  r.buffers = sd.sub("buffer");
  r.loss_sum = f.scalar("loss_sum");
  r.correct = f.count("correct", 0, kMaxCount);
  r.seen = f.count("seen", 0, kMaxCount);
  r.rng = read_rng(f);
  return r;
}

StateDict Checkpoint::to_state_dict() const {
  StateDict sd;
  sd.merge(model, "model");
  if (!spec.name.empty()) {
    sd.strings["model.name"] = spec.name;
    sd.scalars["model.in_channels"] = static_cast<double>(spec.config.in_channels);
    sd.scalars["model.height"] = static_cast<double>(spec.config.height);
    sd.scalars["model.width"] = static_cast<double>(spec.config.width);
    sd.scalars["model.num_classes"] = static_cast<double>(spec.config.num_classes);
  }
  if (spec.architecture.is_object()) sd.strings["model.architecture"] = spec.architecture.dump();
  sd.strings["quant.policy"] = spec.policy.to_json_string();
  sd.strings["serving"] = serving_json(serving).dump();
  if (!data.empty()) sd.strings["data"] = data;
  if (training) {
    sd.merge(training->optimizer, "optim");
    sd.scalars["epoch"] = static_cast<double>(training->epoch);
    sd.scalars["global_step"] = static_cast<double>(training->global_step);
    sd.scalars["best_acc"] = training->best_acc;
    sd.scalars["test_acc"] = training->test_acc;
    write_rng(sd, training->rng);
    sd.strings["schedule"] = training->schedule;
    if (training->global_batch > 0) sd.scalars["global_batch"] = static_cast<double>(training->global_batch);
    if (training->epoch_step > 0) {
      sd.scalars["epoch_step"] = static_cast<double>(training->epoch_step);
      sd.scalars["epoch_steps"] = static_cast<double>(training->epoch_steps);
      sd.scalars["ranks"] = static_cast<double>(training->ranks.size());
      for (size_t r = 0; r < training->ranks.size(); ++r)
        sd.merge(training->ranks[r].to_state_dict(), detail::concat("rank.", r));
    }
  }
  for (const auto& [k, v] : notes) sd.strings["note." + k] = v;
  return sd;
}

Checkpoint Checkpoint::from_state_dict(const StateDict& sd, const std::string& source,
                                       const QuantizerRegistry& registry) {
  const Fields f{sd, source};
  Checkpoint c;
  c.model = sd.sub("model");
  c.model.scalars.clear();  // the spec's dimensions live under "model." too
  c.model.strings.clear();
  LOWBIT_CHECK(!c.model.tensors.empty(), "checkpoint ", source, " lacks 'model' (no model weights)");
  c.spec = read_spec(f, registry);
  c.serving = read_serving(f);
  c.data = f.string_or("data", "");
  // Training state: present from "epoch" on; then every part of it must be there.
  if (sd.scalars.count("epoch")) c.training = read_training(f);
  for (const auto& [k, v] : sd.sub("note").strings) c.notes[k] = v;
  return c;
}

void Checkpoint::save(const std::string& path) const { save_state_dict(path, to_state_dict()); }

Checkpoint Checkpoint::load(const std::string& path, const QuantizerRegistry& registry) {
  return from_state_dict(load_state_dict_file(path), path, registry);
}

std::shared_ptr<Module> Checkpoint::build_model(const std::string& source) const {
  LOWBIT_CHECK(!spec.name.empty() || spec.architecture.is_object(), "checkpoint ", source,
               " lacks 'model.name' and 'model.architecture': it holds a model its program defined, saved without "
               "its architecture, which only that program can rebuild");
  Generator init(0);  // the weights are loaded next: what the init draws does not matter
  std::shared_ptr<Module> m;
  try {
    m = ::lowbit::build_model(spec, init);
    m->load_state_dict(model);
  } catch (const Error& e) {
    throw Error(detail::concat("checkpoint ", source, ": ", e.what()));
  }
  return m;
}

ModelConfig Checkpoint::model_config() const {
  if (!spec.name.empty()) return spec.config;
  return {serving.channels, serving.height, serving.width, static_cast<int64_t>(serving.class_names.size())};
}

RngStates rng_states(Module& model) {
  RngStates out;
  for (const auto& [name, g] : model.named_generators()) out[name] = g->state();
  return out;
}

void set_rng_states(Module& model, const RngStates& states, const std::string& source) {
  const auto generators = model.named_generators();
  for (const auto& [name, g] : generators)
    LOWBIT_CHECK(states.count(name), "checkpoint ", source, " lacks the random stream 'rng.", name,
                 "' of the model (it was written by another model or an older lowbit)");
  for (const auto& [name, g] : generators) g->set_state(states.at(name));
}

void Checkpoint::check_resumes(const ModelSpec& run, const std::string& source) const {
  LOWBIT_CHECK(training.has_value(), "cannot resume from ", source, ": it is a model-only checkpoint (it lacks "
               "'epoch', the optimizer state and the RNG state); resume from a training checkpoint (last.ckpt) or "
               "start a new run from its weights (TrainOptions::init_from, load_weights)");
  // A program-defined model is its architecture (a zoo model: its name, input and policy); compared
  // when both sides know it (older checkpoints lack it).
  const bool same_layers = !run.name.empty() || !run.architecture.is_object() || !spec.architecture.is_object() ||
                           run.architecture == spec.architecture;
  const bool same = same_layers && run.name == spec.name && run.policy.to_json_string() == spec.policy.to_json_string() &&
                    (run.name.empty() || (run.config.in_channels == spec.config.in_channels &&
                                          run.config.height == spec.config.height &&
                                          run.config.width == spec.config.width &&
                                          run.config.num_classes == spec.config.num_classes));
  LOWBIT_CHECK(same, "cannot resume from ", source, ": it holds ", describe(spec), ", but this run is ", describe(run),
               same_layers ? "" : " (their layer architectures differ)",
               "; resume with the checkpoint's options or start a new run from its weights (TrainOptions::init_from, "
               "load_weights)");
}

void load_weights(Module& model, const Checkpoint& checkpoint, const std::string& source) {
  const StateDict current = model.state_dict();
  for (const auto& [name, t] : checkpoint.model.tensors)
    LOWBIT_CHECK(current.tensors.count(name) && current.tensors.at(name).shape() == t.shape(), "load_weights: checkpoint ", source,
                 ": entry '", name, "' does not match the model (different architecture?)");
  // Non-strict: the quantizers' own parameters are not in a float checkpoint and keep their init.
  model.load_state_dict(checkpoint.model, /*strict=*/false);
}

}  // namespace lowbit
