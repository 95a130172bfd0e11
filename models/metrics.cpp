// metrics.cpp: the Trainer's metrics sinks (JSON lines, CSV, progress bar).
#include "models/metrics.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "models/progress.h"

namespace lowbit {

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  LOWBIT_CHECK(f.good(), "cannot write ", path);
  f << line << "\n";
}

JsonlSink::JsonlSink(std::string path, bool fresh) : path_(std::move(path)) {
  if (fresh) std::filesystem::remove(path_);
}

void JsonlSink::end_epoch(const EpochMetrics& m) {
  nlohmann::json line = {{"epoch", m.epoch},        {"train_loss", m.train_loss}, {"train_acc", m.train_acc},
                         {"test_loss", m.test_loss}, {"test_acc", m.test_acc},     {"lr", m.lr},
                         {"images_per_s", m.images_per_s}, {"seconds", m.seconds}};
  if (!m.quantizers.is_null()) line["quantizers"] = m.quantizers;  // every alpha, c, d, gamma, s, alpha_w
  append_line(path_, line.dump());
}

CsvSink::CsvSink(std::string path, bool fresh) : path_(std::move(path)) {
  if (!fresh) return;
  std::filesystem::remove(path_);
  append_line(path_, "epoch,train_loss,train_acc,test_loss,test_acc,lr,images_per_s,seconds");
}

void CsvSink::end_epoch(const EpochMetrics& m) {
  append_line(path_, detail::concat(m.epoch, ",", m.train_loss, ",", m.train_acc, ",", m.test_loss, ",", m.test_acc,
                                    ",", m.lr, ",", m.images_per_s, ",", m.seconds));
}

ProgressSink::ProgressSink() = default;
ProgressSink::~ProgressSink() = default;

void ProgressSink::begin_epoch(int64_t epoch, int64_t epochs, int64_t steps) {
  bar_ = std::make_unique<Progress>(detail::concat("epoch ", epoch + 1, "/", epochs), steps);
}

void ProgressSink::step(const StepMetrics& m) {
  char status[128];
  std::snprintf(status, sizeof status, "loss %.4f acc %.2f%% %.0f img/s", m.running_loss, m.running_acc,
                m.images_per_s);
  if (bar_) bar_->update(m.step + 1, status);
}

void ProgressSink::end_epoch(const EpochMetrics& m) {
  char status[160];
  std::snprintf(status, sizeof status, "train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.0f img/s",
                m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.images_per_s);
  if (bar_) bar_->finish(status);
  bar_.reset();
}

}  // namespace lowbit
