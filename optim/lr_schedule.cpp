// lr_schedule.cpp: validation and evaluation of the lr schedules.
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "core/error.h"

namespace lowbit {

LrSchedule::LrSchedule(Kind kind, LrScheduleOptions options)
    : kind_(kind), options_(std::move(options)) {
  const auto& o = options_;
  LOWBIT_CHECK(std::isfinite(o.warmup_epochs) && o.warmup_epochs >= 0,
               "lr schedule: warmup_epochs must be finite and >= 0, got ", o.warmup_epochs);
  switch (kind_) {
    case Kind::none:
      break;
    case Kind::step:
      LOWBIT_CHECK(o.step_size >= 1, "step lr schedule: step_size must be >= 1 epoch, got ",
                   o.step_size);
      LOWBIT_CHECK(std::isfinite(o.gamma) && o.gamma > 0,
                   "step lr schedule: gamma must be finite and > 0, got ", o.gamma);
      break;
    case Kind::multistep:
      LOWBIT_CHECK(!o.milestones.empty(), "multistep lr schedule: needs at least one milestone");
      for (int64_t m : o.milestones)
        LOWBIT_CHECK(m >= 0, "multistep lr schedule: milestones must be >= 0, got ", m);
      LOWBIT_CHECK(std::isfinite(o.gamma) && o.gamma > 0,
                   "multistep lr schedule: gamma must be finite and > 0, got ", o.gamma);
      break;
    case Kind::cosine:
      LOWBIT_CHECK(o.total_epochs >= 1 && static_cast<double>(o.total_epochs) > o.warmup_epochs,
                   "cosine lr schedule: total_epochs must be >= 1 and > warmup_epochs (",
                   o.warmup_epochs, "), got ", o.total_epochs);
      LOWBIT_CHECK(o.min_multiplier >= 0 && o.min_multiplier <= 1,
                   "cosine lr schedule: min_multiplier must be in [0, 1], got ", o.min_multiplier);
      break;
  }
}

LrSchedule LrSchedule::constant(double warmup_epochs) {
  LrScheduleOptions o;
  o.warmup_epochs = warmup_epochs;
  return LrSchedule(Kind::none, o);
}

LrSchedule LrSchedule::step(int64_t step_size, double gamma, double warmup_epochs) {
  LrScheduleOptions o;
  o.step_size = step_size;
  o.gamma = gamma;
  o.warmup_epochs = warmup_epochs;
  return LrSchedule(Kind::step, o);
}

LrSchedule LrSchedule::multistep(std::vector<int64_t> milestones, double gamma,
                                 double warmup_epochs) {
  LrScheduleOptions o;
  o.milestones = std::move(milestones);
  o.gamma = gamma;
  o.warmup_epochs = warmup_epochs;
  return LrSchedule(Kind::multistep, o);
}

LrSchedule LrSchedule::cosine(int64_t total_epochs, double min_multiplier, double warmup_epochs) {
  LrScheduleOptions o;
  o.total_epochs = total_epochs;
  o.min_multiplier = min_multiplier;
  o.warmup_epochs = warmup_epochs;
  return LrSchedule(Kind::cosine, o);
}

std::vector<std::string> LrSchedule::names() { return {"none", "step", "multistep", "cosine"}; }

LrSchedule LrSchedule::from_name(const std::string& name, const LrScheduleOptions& options) {
  if (name == "none") return LrSchedule(Kind::none, options);
  if (name == "step") return LrSchedule(Kind::step, options);
  if (name == "multistep") return LrSchedule(Kind::multistep, options);
  if (name == "cosine") return LrSchedule(Kind::cosine, options);
  throw Error("unknown lr schedule '" + name + "', expected one of: none, step, multistep, cosine");
}

std::string LrSchedule::name() const {
  switch (kind_) {
    case Kind::step: return "step";
    case Kind::multistep: return "multistep";
    case Kind::cosine: return "cosine";
    case Kind::none: break;
  }
  return "none";
}

std::string LrSchedule::describe() const {
  std::ostringstream os;
  os << name() << "(";
  switch (kind_) {
    case Kind::none: break;
    case Kind::step: os << "step_size=" << options_.step_size << ", gamma=" << options_.gamma << ", "; break;
    case Kind::multistep:
      os << "milestones=[";
      for (size_t i = 0; i < options_.milestones.size(); ++i)
        os << (i ? "," : "") << options_.milestones[i];
      os << "], gamma=" << options_.gamma << ", ";
      break;
    case Kind::cosine:
      os << "total_epochs=" << options_.total_epochs << ", min=" << options_.min_multiplier << ", ";
      break;
  }
  os << "warmup_epochs=" << options_.warmup_epochs << ")";
  return os.str();
}

double LrSchedule::multiplier(int64_t epoch, int64_t step, int64_t steps_per_epoch) const {
  LOWBIT_CHECK(steps_per_epoch >= 1, "lr schedule: steps_per_epoch must be >= 1, got ",
               steps_per_epoch);
  LOWBIT_CHECK(epoch >= 0, "lr schedule: epoch must be >= 0, got ", epoch);
  LOWBIT_CHECK(step >= 0 && step < steps_per_epoch, "lr schedule: step must be in [0, ",
               steps_per_epoch, "), got ", step);
  const auto& o = options_;
  double m = 1.0;
  switch (kind_) {
    case Kind::none:
      break;
    case Kind::step:
      m = std::pow(o.gamma, static_cast<double>(epoch / o.step_size));
      break;
    case Kind::multistep: {
      const auto passed = std::count_if(o.milestones.begin(), o.milestones.end(),
                                        [&](int64_t ms) { return ms <= epoch; });
      m = std::pow(o.gamma, static_cast<double>(passed));
      break;
    }
    case Kind::cosine: {
      const double t = static_cast<double>(epoch) +
                       static_cast<double>(step) / static_cast<double>(steps_per_epoch);
      const double span = static_cast<double>(o.total_epochs) - o.warmup_epochs;
      const double s = std::clamp((t - o.warmup_epochs) / span, 0.0, 1.0);
      m = o.min_multiplier + (1.0 - o.min_multiplier) * 0.5 * (1.0 + std::cos(std::numbers::pi * s));
      break;
    }
  }
  if (o.warmup_epochs > 0) {
    const int64_t warmup_steps = std::max<int64_t>(
        1, std::llround(o.warmup_epochs * static_cast<double>(steps_per_epoch)));
    const int64_t i = epoch * steps_per_epoch + step;
    if (i < warmup_steps) m *= static_cast<double>(i + 1) / static_cast<double>(warmup_steps);
  }
  return m;
}

}  // namespace lowbit
