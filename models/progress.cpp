// progress.cpp: terminal progress bar / plain progress lines.
#include "models/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lowbit {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::update(int64_t done, const std::string& status) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  if (since_last < (tty_ ? 0.2 : 10.0) && done < total_) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 1.0;
  const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
  if (tty_) {
    const int width = 20, fill = static_cast<int>(frac * width);
    std::string bar(fill, '#');
    bar.append(width - fill, '.');
    std::fprintf(stderr, "\r%s [%s] %3d%% %s ETA %s\033[K", label_.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), status.c_str(), format_duration(eta).c_str());
  } else {
    std::fprintf(stderr, "%s %3d%% %s ETA %s\n", label_.c_str(), static_cast<int>(frac * 100), status.c_str(),
                 format_duration(eta).c_str());
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& status) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s %s (%s)\n", tty_ ? "\r" : "", label_.c_str(), status.c_str(),
               format_duration(elapsed).c_str());
  if (tty_) std::fprintf(stderr, "\033[K");
  std::fflush(stderr);
}

}  // namespace lowbit
