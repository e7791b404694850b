// Per-point and per-segment rules of the trajectory and linearity ops, shared by the CPU and CUDA
// kernels so both compute identical statistics.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>

namespace deepdig_fast {

// Argmax of one logits row as torch.argmax defines it (the first maximum; NaN counts as larger
// than every number, so the first NaN wins) and p_s - p_t from a softmax whose denominator is
// summed in class order (NaN when the row holds a NaN).
template <typename scalar_t>
C10_HOST_DEVICE inline int64_t argmax_and_gap(const scalar_t* z, int64_t C, int64_t s, int64_t t,
                                              double* gap) {
  double m = static_cast<double>(z[0]);
  int64_t am = 0;
  for (int64_t c = 1; c < C && m == m; ++c) {
    const double v = static_cast<double>(z[c]);
    if (v > m || v != v) {
      m = v;
      am = c;
    }
  }
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) sum += ::exp(static_cast<double>(z[c]) - m);
  *gap = (::exp(static_cast<double>(z[s]) - m) - ::exp(static_cast<double>(z[t]) - m)) / sum;
  return am;
}

// Max and min that propagate NaN (as torch.max / torch.min do).
C10_HOST_DEVICE inline double nan_max(double a, double b) {
  return (a != a || b != b) ? a + b : (a > b ? a : b);
}
C10_HOST_DEVICE inline double nan_min(double a, double b) {
  return (a != a || b != b) ? a + b : (a < b ? a : b);
}

// Indices of the per-segment statistics (columns of trajectory_stats' output).
constexpr int kChanges = 0, kDistinct = 1, kThirdChanges = 2, kInBand = 3, kStatCols = 4;

// Whether a point counts as inside the boundary band: band_lo <= p_s - p_t <= band_hi.
C10_HOST_DEVICE inline bool in_band(double gap, double band_lo, double band_hi) {
  return gap >= band_lo && gap <= band_hi;
}

// Whether label y is neither of the segment's two classes.
C10_HOST_DEVICE inline bool is_third_class(int64_t y, int64_t s, int64_t t) {
  return y != s && y != t;
}

// The label walk along one segment of trajectory_stats, shared by the CPU and CUDA kernels: feed
// the labels y_0, ..., y_{T-1} in order to step(); `seen` is one zeroed flag per class (C bytes,
// owned by the caller). It counts label changes, distinct labels, and changes where either label
// is a third class; write() stores them with the in-band count (summed by the caller) as one row.
struct LabelWalk {
  int64_t changes = 0, distinct = 0, third = 0;
  int64_t prev = -1;  // the previous label; -1 before the first point

  C10_HOST_DEVICE void step(int64_t y, int64_t s, int64_t t, uint8_t* seen) {
    if (!seen[y]) {
      seen[y] = 1;
      ++distinct;
    }
    if (prev >= 0 && y != prev) {
      ++changes;
      if (is_third_class(y, s, t) || is_third_class(prev, s, t)) ++third;
    }
    prev = y;
  }

  C10_HOST_DEVICE void write(int64_t* row, int64_t in_band_count) const {
    row[kChanges] = changes;
    row[kDistinct] = distinct;
    row[kThirdChanges] = third;
    row[kInBand] = in_band_count;
  }
};

// Indices of linear_distances' summary.
constexpr int kMeanAbs = 0, kM1 = 1, kMeanAbsWrong = 2, kM2 = 3, kMax = 4, kMean = 5, kMin = 6,
              kAccuracy = 7, kWrong = 8, kSummaryLen = 9;

}  // namespace deepdig_fast
