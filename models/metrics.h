// metrics.h: what the Trainer reports while it trains, and the sinks that record it:
//   JsonlSink     one JSON object per epoch (OUT/metrics.jsonl; quantizer scalars under "quantizers")
//   CsvSink       one CSV row per epoch after a header (OUT/metrics.csv)
//   ProgressSink  a live progress bar per epoch on stderr (models/progress.h)
// A sink sees every rank's calls; the Trainer only attaches file sinks on the rank that writes
// (DataParallel::is_root), so each line is written once.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace lowbit {

class Progress;

struct StepMetrics {
  int64_t epoch = 0, step = 0, steps = 0;  // 0-based epoch and step; steps per epoch
  int64_t epochs = 0;                      // of the whole schedule
  double loss = 0;                         // this step's global mean loss
  double running_loss = 0, running_acc = 0;  // this rank's epoch so far (acc in %)
  double images_per_s = 0;                 // all ranks together
};

struct EpochMetrics {
  int64_t epoch = 0, epochs = 0;  // epoch is 1-based here: epochs completed
  double train_loss = 0, train_acc = 0, test_loss = 0, test_acc = 0, lr = 0, images_per_s = 0, seconds = 0;
  int64_t images = 0;        // training images of the epoch over all ranks
  nlohmann::json quantizers;  // every quantizer scalar by name; null for a float model
};

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  virtual void begin_epoch(int64_t epoch, int64_t epochs, int64_t steps) { (void)epoch, (void)epochs, (void)steps; }
  virtual void step(const StepMetrics& m) { (void)m; }
  virtual void end_epoch(const EpochMetrics& m) { (void)m; }
};

// fresh: start a new file (training from scratch); otherwise append (resume).
class JsonlSink : public MetricsSink {
 public:
  JsonlSink(std::string path, bool fresh);
  void end_epoch(const EpochMetrics& m) override;

 private:
  std::string path_;
};

class CsvSink : public MetricsSink {
 public:
  CsvSink(std::string path, bool fresh);  // fresh: also writes the header line
  void end_epoch(const EpochMetrics& m) override;

 private:
  std::string path_;
};

class ProgressSink : public MetricsSink {
 public:
  ProgressSink();
  ~ProgressSink() override;
  void begin_epoch(int64_t epoch, int64_t epochs, int64_t steps) override;
  void step(const StepMetrics& m) override;
  void end_epoch(const EpochMetrics& m) override;

 private:
  std::unique_ptr<Progress> bar_;
};

// Appends one line to a text file (throws naming the file when it cannot).
void append_line(const std::string& path, const std::string& line);

}  // namespace lowbit
