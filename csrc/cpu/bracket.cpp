// CPU kernels of the borderline engine: bracket_propose materialises the next point of every live
// pair (gather + interpolate in one pass, with the stall test), bracket_update decides each
// evaluated point and updates the pair's state. Work is split over live pairs with
// at::parallel_for. A row whose idx is kEmptyRow (-1) is an empty slot of a fixed-size live batch
// (common/bracket.h).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "common/bracket.h"
#include "common/checks.h"

namespace deepdig_fast {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> bracket_propose_cpu(const at::Tensor& a_in,
                                                                   const at::Tensor& b_in,
                                                                   const at::Tensor& idx_in,
                                                                   const at::Tensor& fstate_in,
                                                                   int64_t method) {
  check_propose_args(a_in, b_in, idx_in, fstate_in);
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const at::Tensor idx = idx_in.contiguous(), fstate = fstate_in.contiguous();
  const int64_t M = idx.size(0), P = a.size(0), D = a.size(1);
  at::Tensor x = at::empty({M, D}, a.options());
  at::Tensor lam = at::empty({M}, fstate.options());
  at::Tensor stalled = at::empty({M}, a.options().dtype(at::kBool));
  if (M == 0) return {x, lam, stalled};
  const int64_t* ip = idx.data_ptr<int64_t>();
  for (int64_t r = 0; r < M; ++r) {
    TORCH_CHECK(ip[r] >= kEmptyRow && ip[r] < P, "idx[", r, "] = ", ip[r],
                " must be a pair in [0, ", P, ") or ", kEmptyRow, " (an empty row)");
  }
  const double* fs = fstate.data_ptr<double>();
  double* lp = lam.data_ptr<double>();
  bool* sp = stalled.data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.scalar_type(), "bracket_propose", [&] {
        const scalar_t* ap = a.data_ptr<scalar_t>();
        const scalar_t* bp = b.data_ptr<scalar_t>();
        scalar_t* xp = x.data_ptr<scalar_t>();
        at::parallel_for(0, M, 16, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t p = ip[r];
            scalar_t* xr = xp + r * D;
            if (p == kEmptyRow) {
              std::fill(xr, xr + D, scalar_t(0));
              lp[r] = std::numeric_limits<double>::quiet_NaN();
              sp[r] = false;
              continue;
            }
            const double* f = fs + p * kFloatCols;
            const double l = propose_lambda(f, method);
            const double lo = f[kLo], hi = f[kHi];
            lp[r] = l;
            const scalar_t* ar = ap + p * D;
            const scalar_t* br = bp + p * D;
            bool same_lo = true, same_hi = true;
            for (int64_t d = 0; d < D; ++d) {
              const double av = static_cast<double>(ar[d]);
              const double diff = static_cast<double>(br[d]) - av;
              const scalar_t v = static_cast<scalar_t>(lerp_from(av, l, diff));
              xr[d] = v;
              same_lo = same_lo && v == static_cast<scalar_t>(lerp_from(av, lo, diff));
              same_hi = same_hi && v == static_cast<scalar_t>(lerp_from(av, hi, diff));
            }
            sp[r] = same_lo || same_hi;
          }
        });
      });
  return {x, lam, stalled};
}

at::Tensor bracket_update_cpu(const at::Tensor& logits_in, const at::Tensor& x_in,
                              const at::Tensor& idx_in, const at::Tensor& lam_in,
                              const at::Tensor& stalled_in, const at::Tensor& source_in,
                              const at::Tensor& target_in, at::Tensor& fstate, at::Tensor& istate,
                              at::Tensor& points, at::Tensor& probs, at::Tensor& lam_out,
                              double beta, int64_t max_steps, int64_t method) {
  check_update_args(logits_in, x_in, idx_in, lam_in, stalled_in, source_in, target_in, fstate,
                    istate, points, probs, lam_out);
  const at::Tensor logits = logits_in.contiguous(), x = x_in.contiguous();
  const at::Tensor idx = idx_in.contiguous(), lam = lam_in.contiguous();
  const at::Tensor stalled = stalled_in.contiguous();
  const at::Tensor source = source_in.contiguous(), target = target_in.contiguous();
  const int64_t M = logits.size(0), C = logits.size(1), P = fstate.size(0), D = x.size(1);
  at::Tensor codes = at::empty({M}, idx.options());
  if (M == 0) return codes;
  const int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t* src = source.data_ptr<int64_t>();
  const int64_t* tgt = target.data_ptr<int64_t>();
  for (int64_t r = 0; r < M; ++r) {
    TORCH_CHECK(ip[r] >= kEmptyRow && ip[r] < P, "idx[", r, "] = ", ip[r],
                " must be a pair in [0, ", P, ") or ", kEmptyRow, " (an empty row)");
    if (ip[r] == kEmptyRow) continue;
    const int64_t s = src[ip[r]], t = tgt[ip[r]];
    TORCH_CHECK(s >= 0 && s < C && t >= 0 && t < C, "source/target of pair ", ip[r], " (", s, ", ",
                t, ") must lie in [0, ", C, ")");
  }
  const double* lp = lam.data_ptr<double>();
  const bool* sp = stalled.data_ptr<bool>();
  double* fs = fstate.data_ptr<double>();
  int64_t* is = istate.data_ptr<int64_t>();
  double* pr = probs.data_ptr<double>();
  double* lo = lam_out.data_ptr<double>();
  int64_t* cp = codes.data_ptr<int64_t>();
  const char* xb = static_cast<const char*>(x.data_ptr());
  char* pb = static_cast<char*>(points.data_ptr());
  const int64_t row_bytes = D * static_cast<int64_t>(x.element_size());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "bracket_update", [&] {
        const scalar_t* zp = logits.data_ptr<scalar_t>();
        at::parallel_for(0, M, 64, [&](int64_t begin, int64_t end) {
          for (int64_t r = begin; r < end; ++r) {
            const int64_t p = ip[r];
            if (p == kEmptyRow) {
              cp[r] = kPending;
              continue;
            }
            const scalar_t* z = zp + r * C;
            double zmax, denom;
            const int64_t status =
                update_pair(z, C, src[p], tgt[p], lp[r], sp[r], beta, max_steps, method,
                            fs + p * kFloatCols, is + p * kIntCols, &zmax, &denom);
            cp[r] = status;
            if (status != kPending) {
              std::memcpy(pb + p * row_bytes, xb + r * row_bytes, row_bytes);
              for (int64_t c = 0; c < C; ++c) {
                pr[p * C + c] = std::exp(static_cast<double>(z[c]) - zmax) / denom;
              }
              lo[p] = lp[r];
            }
          }
        });
      });
  return codes;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("bracket_propose", &bracket_propose_cpu);
  m.impl("bracket_update", &bracket_update_cpu);
}

}  // namespace deepdig_fast
