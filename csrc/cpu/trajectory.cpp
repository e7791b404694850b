// CPU kernels of the trajectory stage. segment_points materialises T points on each of S segments
// (gather + interpolate in one pass, float64 arithmetic, one rounding); trajectory_stats reduces
// the classifier's logits at those points to per-segment label statistics. Both split over rows /
// segments with at::parallel_for.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "common/bracket.h"
#include "common/checks.h"
#include "common/trajectory.h"

namespace deepdig_fast {
namespace {

at::Tensor segment_points_cpu(const at::Tensor& x_in, const at::Tensor& i_in,
                              const at::Tensor& j_in, int64_t T) {
  check_segment_args(x_in, i_in, j_in, T);
  const at::Tensor x = x_in.contiguous(), ii = i_in.contiguous(), jj = j_in.contiguous();
  const int64_t S = ii.size(0), N = x.size(0), D = x.size(1);
  at::Tensor out = at::empty({S * T, D}, x.options());
  if (S == 0) return out;
  const int64_t* ip = ii.data_ptr<int64_t>();
  const int64_t* jp = jj.data_ptr<int64_t>();
  for (int64_t s = 0; s < S; ++s) {
    TORCH_CHECK(ip[s] >= 0 && ip[s] < N && jp[s] >= 0 && jp[s] < N, "segment ", s, " has ends (",
                ip[s], ", ", jp[s], ") outside [0, ", N, ")");
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "segment_points", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    at::parallel_for(0, S * T, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t s = r / T, k = r % T;
        const double tau = static_cast<double>(k) / static_cast<double>(T);
        const scalar_t* xi = xp + ip[s] * D;
        const scalar_t* xj = xp + jp[s] * D;
        scalar_t* o = op + r * D;
        for (int64_t d = 0; d < D; ++d) {
          const double a = static_cast<double>(xj[d]);
          o[d] = static_cast<scalar_t>(lerp_from(a, tau, static_cast<double>(xi[d]) - a));
        }
      }
    });
  });
  return out;
}

at::Tensor trajectory_stats_cpu(const at::Tensor& logits_in, const at::Tensor& source_in,
                                const at::Tensor& target_in, int64_t T, double band_lo,
                                double band_hi) {
  check_trajectory_stats_args(logits_in, source_in, target_in, T);
  const int64_t S = source_in.size(0), C = logits_in.size(1);
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor source = source_in.contiguous(), target = target_in.contiguous();
  at::Tensor out = at::zeros({S, kStatCols}, source.options());
  if (S == 0) return out;
  const int64_t* sp = source.data_ptr<int64_t>();
  const int64_t* tp = target.data_ptr<int64_t>();
  for (int64_t s = 0; s < S; ++s) {
    TORCH_CHECK(sp[s] >= 0 && sp[s] < C && tp[s] >= 0 && tp[s] < C, "source/target of segment ", s,
                " (", sp[s], ", ", tp[s], ") must lie in [0, ", C, ")");
  }
  int64_t* op = out.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "trajectory_stats", [&] {
        const scalar_t* zp = logits.data_ptr<scalar_t>();
        at::parallel_for(0, S, 16, [&](int64_t begin, int64_t end) {
          std::vector<uint8_t> seen(C);
          for (int64_t s = begin; s < end; ++s) {
            std::fill(seen.begin(), seen.end(), 0);
            LabelWalk walk;
            int64_t band = 0;
            for (int64_t k = 0; k < T; ++k) {
              double gap;
              const int64_t y = argmax_and_gap(zp + (s * T + k) * C, C, sp[s], tp[s], &gap);
              walk.step(y, sp[s], tp[s], seen.data());
              band += in_band(gap, band_lo, band_hi) ? 1 : 0;
            }
            walk.write(op + s * kStatCols, band);
          }
        });
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("segment_points", &segment_points_cpu);
  m.impl("trajectory_stats", &trajectory_stats_cpu);
}

}  // namespace deepdig_fast
