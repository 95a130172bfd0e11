// progress.h: progress reporting for long loops on stderr (the Trainer's progress-bar sink). On a terminal: one live bar
// redrawn in place ("epoch 3/15 [#####.....] 52% loss 0.31 acc 89.1% 5210 img/s ETA 0:41");
// otherwise plain lines at most every few seconds, so logs stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace lowbit {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  // Report that `done` of `total` units are complete, with a short status string.
  void update(int64_t done, const std::string& status);
  void finish(const std::string& status);

 private:
  std::string label_;
  int64_t total_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

std::string format_duration(double seconds);

}  // namespace lowbit
