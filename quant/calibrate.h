// calibrate.h: post-training calibration baselines (what came before PACT): set the activation
// clip values of an already converted model from a few batches of data, run in FP32.
//   max               clip = max |x| over the calibration batches
//   fraction_of_max   clip = r * max (r = fraction, e.g. 0.8)
//   percentile        2048-bin histogram of |x| on [0, max]; clip = the upper edge of the bin
//                     where the cumulative mass first reaches p% (default p = 99.99)
//   kl                TensorRT entropy calibration (GTC 2017) on the same histogram: for each
//                     i in [L, bins), L = number of levels (2^b for unsigned codes, 2^(b-1) for
//                     the signed input quantizer's |x|): P = bins[0:i] with the outlier mass
//                     sum(bins[i:]) added to P[i-1]; Q = bins[0:i] merged into L groups (the last
//                     group takes the remainder) and expanded back uniformly over the bins where
//                     P is non-zero; both normalised, zeros smoothed with eps = 1e-4 (taken from
//                     the non-zero entries); clip = (argmin_i KL(P||Q) + 0.5) * bin_width.
// Weights: SAWB quantizers use the SAWB alpha_w (default) or max|w|; DoReFa weights have no
// range to calibrate.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/data/loader.h"
#include "layers/module.h"

namespace lowbit {

enum class CalibrationMethod { max, fraction_of_max, percentile, kl };
const char* calibration_method_name(CalibrationMethod m);  // max | fraction | percentile | kl
CalibrationMethod calibration_method_from_name(const std::string& name);

enum class WeightCalibration { sawb, max };

struct CalibrationOptions {
  double fraction = 0.8;       // fraction_of_max
  double percentile = 99.99;   // percentile
  int bins = 2048;
  // Histogram methods ignore exact zeros (pytorch-quantization's skip_zeros). Post-ReLU zeros
  // are code 0 at any clip, yet their spike in bin 0 pulls KL at 16 levels or fewer to
  // degenerate, very tight clips. Off by default: the reference algorithm counts them.
  bool skip_zeros = false;
  WeightCalibration weights = WeightCalibration::sawb;
};

// Clip from a histogram of |x| (bins of width bin_width starting at 0).
double percentile_threshold(const std::vector<double>& hist, double bin_width, double percent);
double kl_threshold(const std::vector<double>& hist, double bin_width, int levels);

// Runs `batches` batches (from step 0 of the loader's current epoch) through the model in eval
// mode with quantization disabled, then sets every activation quantizer's clip (set_clip) and the
// SAWB weight scales. Restores the training mode and the global quantization switch.
// Returns the clip set per quantizer, by dotted module name. Throws when the model has no
// activation quantizer or batches < 1.
std::map<std::string, double> calibrate(Module& model, const DataLoader& loader, int batches,
                                        CalibrationMethod method, const CalibrationOptions& options = {});

}  // namespace lowbit
