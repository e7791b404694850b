// Per-point and per-segment helpers of the trajectory and linearity ops, shared by CPU and CUDA.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>

namespace deepdig_fast {

// Argmax (first maximum) of one logits row and p_s - p_t from a softmax whose denominator is
// summed in class order.
template <typename scalar_t>
C10_HOST_DEVICE inline int64_t argmax_and_gap(const scalar_t* z, int64_t C, int64_t s, int64_t t,
                                              double* gap) {
  double m = static_cast<double>(z[0]);
  int64_t am = 0;
  for (int64_t c = 1; c < C; ++c) {
    const double v = static_cast<double>(z[c]);
    if (v > m) {
      m = v;
      am = c;
    }
  }
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) sum += ::exp(static_cast<double>(z[c]) - m);
  *gap = (::exp(static_cast<double>(z[s]) - m) - ::exp(static_cast<double>(z[t]) - m)) / sum;
  return am;
}

// Indices of the per-segment statistics (columns of trajectory_stats' output).
constexpr int kChanges = 0, kDistinct = 1, kThirdChanges = 2, kInBand = 3, kStatCols = 4;

// Indices of linear_distances' summary.
constexpr int kMeanAbs = 0, kM1 = 1, kMeanAbsWrong = 2, kM2 = 3, kMax = 4, kMean = 5, kMin = 6,
              kAccuracy = 7, kWrong = 8, kSummaryLen = 9;

}  // namespace deepdig_fast
