// CPU kernel of linear_distances: signed distances of embeddings to a hyperplane (a linear SVM's
// w, bias) and the summary the linearity metrics need, in one op. Distances are computed in
// parallel; the summary is reduced serially (deterministic).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "common/checks.h"
#include "common/trajectory.h"

namespace deepdig_fast {

namespace {

std::tuple<at::Tensor, at::Tensor> linear_distances_cpu(const at::Tensor& h_in,
                                                        const at::Tensor& w_in, double bias,
                                                        const at::Tensor& labels_in) {
  check_linear_args(h_in, w_in, labels_in);
  const at::Tensor h = h_in.contiguous(), w = w_in.contiguous(), labels = labels_in.contiguous();
  const int64_t N = h.size(0), E = h.size(1);
  at::Tensor d = at::empty({N}, h.options().dtype(at::kDouble));
  at::Tensor summary = at::empty({kSummaryLen}, d.options());
  const double* wp = w.data_ptr<double>();
  double norm = 0.0;
  for (int64_t e = 0; e < E; ++e) norm += wp[e] * wp[e];
  norm = std::sqrt(norm);
  TORCH_CHECK(norm > 0, "w must not be all zeros");
  double* dp = d.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "linear_distances",
                                  [&] {
                                    const scalar_t* hp = h.data_ptr<scalar_t>();
                                    at::parallel_for(0, N, 256, [&](int64_t begin, int64_t end) {
                                      for (int64_t i = begin; i < end; ++i) {
                                        double acc = 0.0;
                                        for (int64_t e = 0; e < E; ++e)
                                          acc += static_cast<double>(hp[i * E + e]) * wp[e];
                                        dp[i] = (acc + bias) / norm;
                                      }
                                    });
                                  });
  const int64_t* lp = labels.data_ptr<int64_t>();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  double sum_abs = 0, sum_abs_wrong = 0, sum = 0, mx = -INFINITY, mn = INFINITY;
  int64_t wrong = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double v = dp[i];
    sum_abs += std::fabs(v);
    sum += v;
    mx = nan_max(mx, v);
    mn = nan_min(mn, v);
    if ((v > 0) != (lp[i] == 1)) {
      ++wrong;
      sum_abs_wrong += std::fabs(v);
    }
  }
  double* sp = summary.data_ptr<double>();
  const double mean_abs = N ? sum_abs / N : nan;
  const double mean_abs_wrong = wrong ? sum_abs_wrong / wrong : nan;
  sp[kMeanAbs] = mean_abs;
  sp[kM1] = mean_abs / (1 + mean_abs);
  sp[kMeanAbsWrong] = mean_abs_wrong;
  sp[kM2] = mean_abs_wrong / (1 + mean_abs_wrong);
  sp[kMax] = N ? mx : nan;
  sp[kMean] = N ? sum / N : nan;
  sp[kMin] = N ? mn : nan;
  sp[kAccuracy] = N ? 1.0 - static_cast<double>(wrong) / N : nan;
  sp[kWrong] = static_cast<double>(wrong);
  return {d, summary};
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("linear_distances", &linear_distances_cpu);
}

}  // namespace deepdig_fast
