// Per-pair bracket logic of the borderline engine (DeepDIG component III), shared by the CPU and
// CUDA kernels so both backends make bit-identical decisions.
//
// A pair is the segment x(lam) = a + lam * (b - a), a predicted `source` (lam = 0), b predicted
// `target` (lam = 1). Its float state is [lo, hi, g_lo, g_hi] (float64): the current bracket and
// the logit gap g = z_source - z_target at its ends (g_lo > 0 > g_hi). Its integer state is
// [attempts, status, intruder, side]; `side` remembers which end the previous step replaced (for
// the Illinois rule), -1 when none yet.
#pragma once

#include <c10/macros/Macros.h>
#include <cmath>
#include <cstdint>

namespace deepdig_fast {

// The status codes, as one list (X-macro: X(PYTHON_NAME, enumerator, value)) from which both the
// enum and the name table that the constants() op reports are made. deepdig_fast.engine.Status is
// the Python side; tests/test_build.py checks that the two agree by name and value.
#define DEEPDIG_STATUS_CODES(X)          \
  X(PENDING, kPending, -1)               \
  X(SUCCESS, kSuccess, 0)                \
  X(THIRD_CLASS, kThirdClass, 1)         \
  X(STALLED, kStalled, 2)                \
  X(MAX_STEPS, kMaxSteps, 3)             \
  X(INVALID_BRACKET, kInvalidBracket, 4) \
  X(NONFINITE, kNonFinite, 5)

#define DEEPDIG_ENUMERATOR(py_name, id, value) id = value,
enum StatusCode : int64_t { DEEPDIG_STATUS_CODES(DEEPDIG_ENUMERATOR) };
#undef DEEPDIG_ENUMERATOR

enum Method : int64_t { kBisect = 0, kIllinois = 1 };

C10_HOST_DEVICE inline bool is_finite(double v) {
#if defined(__CUDA_ARCH__)
  return ::isfinite(v);
#else
  return std::isfinite(v);
#endif
}

C10_HOST_DEVICE inline bool is_nan(double v) {
#if defined(__CUDA_ARCH__)
  return ::isnan(v);
#else
  return std::isnan(v);
#endif
}

// An idx entry of kEmptyRow marks an empty slot of a fixed-size live batch (the engine's static
// loop, whose step can be captured as a CUDA graph): bracket_propose writes a zero point there
// (lam NaN, not stalled) and bracket_update reads and writes no pair state for it and reports
// kPending, so an empty slot is never taken for a finished pair.
constexpr int64_t kEmptyRow = -1;

// Column layout of the state tensors.
constexpr int kLo = 0, kHi = 1, kGLo = 2, kGHi = 3, kFloatCols = 4;
constexpr int kAttempts = 0, kStatus = 1, kIntruder = 2, kSide = 3, kIntCols = 4;

// Names of the constants above, as the constants() op reports them to Python (host only).
struct NamedConstant {
  const char* name;
  int64_t value;
};
#define DEEPDIG_NAMED(py_name, id, value) {#py_name, id},
inline constexpr NamedConstant kStatusNames[] = {DEEPDIG_STATUS_CODES(DEEPDIG_NAMED)};
#undef DEEPDIG_NAMED
inline constexpr NamedConstant kMethodNames[] = {{"bisect", kBisect}, {"illinois", kIllinois}};
inline constexpr NamedConstant kFloatColNames[] = {
    {"lo", kLo}, {"hi", kHi}, {"g_lo", kGLo}, {"g_hi", kGHi}};
inline constexpr NamedConstant kIntColNames[] = {
    {"attempts", kAttempts}, {"status", kStatus}, {"intruder", kIntruder}, {"side", kSide}};
inline constexpr NamedConstant kIdxNames[] = {{"empty_row", kEmptyRow}};
static_assert(sizeof(kFloatColNames) / sizeof(NamedConstant) == kFloatCols, "name every column");
static_assert(sizeof(kIntColNames) / sizeof(NamedConstant) == kIntCols, "name every column");

// a + lam * diff with one rounding per operation on every backend (no fused multiply-add), so the
// CPU kernel, the CUDA kernel and the plain-torch reference materialise identical points.
C10_HOST_DEVICE inline double lerp_from(double a, double lam, double diff) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, __dmul_rn(lam, diff));
#else
  return a + lam * diff;
#endif
}

// The next point to evaluate inside [lo, hi].
C10_HOST_DEVICE inline double propose_lambda(const double* fs, int64_t method) {
  const double lo = fs[kLo], hi = fs[kHi];
  const double mid = 0.5 * (lo + hi);
  if (method == kIllinois) {
    const double glo = fs[kGLo], ghi = fs[kGHi];
    const double denom = glo - ghi;  // > 0 for a valid bracket
    const double lam = lo + glo * (hi - lo) / denom;
    // Fall back to the midpoint when the secant is undefined or leaves the open bracket.
    if (is_finite(lam) && lam > lo && lam < hi) return lam;
  }
  return mid;
}

// Whether softmax is defined on a row of logits whose maximum is zmax (NaN if the row holds a NaN):
// no NaN, no +inf, and not every entry -inf. Entries of -inf are allowed: they mask classes out
// (probability 0), as a model may do for classes it never predicts.
C10_HOST_DEVICE inline bool softmax_defined(bool any_nan, double zmax) {
  return !any_nan && is_finite(zmax);
}

// Scans one row of logits: argmax (first maximum, as torch.argmax), softmax of source and target
// (in double), and whether softmax is defined on the row (softmax_defined).
template <typename scalar_t>
C10_HOST_DEVICE inline void scan_logits(const scalar_t* z, int64_t C, int64_t s, int64_t t,
                                        int64_t* argmax, double* p_s, double* p_t, double* zmax,
                                        double* denom, bool* finite) {
  double m = static_cast<double>(z[0]);
  int64_t am = 0;
  bool any_nan = is_nan(m);
  for (int64_t c = 1; c < C; ++c) {
    const double v = static_cast<double>(z[c]);
    any_nan = any_nan || is_nan(v);
    if (v > m) {
      m = v;
      am = c;
    }
  }
  double sum = 0.0;
  for (int64_t c = 0; c < C; ++c) sum += ::exp(static_cast<double>(z[c]) - m);
  *argmax = am;
  *zmax = m;
  *denom = sum;
  *p_s = ::exp(static_cast<double>(z[s]) - m) / sum;
  *p_t = ::exp(static_cast<double>(z[t]) - m) / sum;
  *finite = softmax_defined(any_nan, m);
}

// Decides one evaluated point of one pair and updates that pair's state in place. Returns the new
// status (kPending while the pair goes on); *zmax and *denom receive the softmax normaliser.
template <typename scalar_t>
C10_HOST_DEVICE inline int64_t update_pair(const scalar_t* z, int64_t C, int64_t s, int64_t t,
                                           double lam, bool stalled, double beta, int64_t max_steps,
                                           int64_t method, double* fs, int64_t* is, double* zmax,
                                           double* denom) {
  int64_t am;
  double ps, pt;
  bool finite;
  scan_logits(z, C, s, t, &am, &ps, &pt, zmax, denom, &finite);
  is[kAttempts] += 1;
  int64_t status = kPending;
  if (!finite) {
    status = kNonFinite;
  } else if (am != s && am != t) {
    status = kThirdClass;
    is[kIntruder] = am;
  } else if (::fabs(ps - pt) < beta) {
    status = kSuccess;
  } else if (stalled) {
    status = kStalled;
  } else if (is[kAttempts] >= max_steps) {
    status = kMaxSteps;
  } else {
    const double g = static_cast<double>(z[s]) - static_cast<double>(z[t]);
    if (am == s) {  // the point is on the source side: it replaces the low end
      fs[kLo] = lam;
      fs[kGLo] = g;
      if (method == kIllinois && is[kSide] == 0) fs[kGHi] *= 0.5;
      is[kSide] = 0;
    } else {
      fs[kHi] = lam;
      fs[kGHi] = g;
      if (method == kIllinois && is[kSide] == 1) fs[kGLo] *= 0.5;
      is[kSide] = 1;
    }
  }
  is[kStatus] = status;
  return status;
}

}  // namespace deepdig_fast
