// lr_schedule.h: LrSchedule, a pure function from training position to a multiplier of every
// group's base lr (Optimizer::set_lr_multiplier). It holds no state, so a resumed run only
// needs its (epoch, step) to get the same lr.
// With t = epoch + step / steps_per_epoch (fractional epoch) and i = epoch*steps_per_epoch + step:
//   none:      1
//   step:      gamma ^ floor(epoch / step_size)                      (changes at epoch starts)
//   multistep: gamma ^ (number of milestones <= epoch)               (duplicates count twice)
//   cosine:    min + (1 - min) * (1 + cos(pi * s)) / 2,  s = clamp((t - W) / (T - W), 0, 1)
//              smooth per step; 1 at the end of warmup, min at epoch T = total_epochs and after
//   warmup (any kind, W = warmup_epochs > 0, Ws = max(1, round(W * steps_per_epoch)) steps):
//              multiplier *= (i + 1) / Ws while i < Ws   (1/Ws on the first step, 1 on step Ws)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lowbit {

// Everything the CLI can set; from_name reads the fields its kind uses.
struct LrScheduleOptions {
  int64_t total_epochs = 0;          // cosine: T
  int64_t step_size = 30;            // step: epochs between decays
  std::vector<int64_t> milestones;   // multistep: epochs at which lr *= gamma
  double gamma = 0.1;                // step, multistep
  double min_multiplier = 0.0;       // cosine floor, as a fraction of the base lr
  double warmup_epochs = 0.0;        // any kind; may be fractional
};

class LrSchedule {
 public:
  enum class Kind { none, step, multistep, cosine };

  LrSchedule() = default;  // none, no warmup
  static LrSchedule constant(double warmup_epochs = 0.0);
  static LrSchedule step(int64_t step_size, double gamma, double warmup_epochs = 0.0);
  static LrSchedule multistep(std::vector<int64_t> milestones, double gamma,
                              double warmup_epochs = 0.0);
  static LrSchedule cosine(int64_t total_epochs, double min_multiplier = 0.0,
                           double warmup_epochs = 0.0);
  // name: "none" | "step" | "multistep" | "cosine" (for --schedule). Throws lowbit::Error naming
  // the unknown name or the option that is out of range.
  static LrSchedule from_name(const std::string& name, const LrScheduleOptions& options);
  static std::vector<std::string> names();

  // Multiplier for the step `step` (0-based) of epoch `epoch` (0-based). Throws on
  // steps_per_epoch < 1, epoch < 0 or step outside [0, steps_per_epoch).
  double multiplier(int64_t epoch, int64_t step, int64_t steps_per_epoch) const;

  Kind kind() const { return kind_; }
  std::string name() const;
  std::string describe() const;  // e.g. "cosine(total_epochs=200, min=0, warmup_epochs=5)"
  const LrScheduleOptions& options() const { return options_; }

 private:
  LrSchedule(Kind kind, LrScheduleOptions options);

  Kind kind_ = Kind::none;
  LrScheduleOptions options_;
};

}  // namespace lowbit
