// CUDA kernels of the borderline engine. Work decomposition:
//   bracket_propose: one block per live pair; its threads stride over the D features, and the stall
//                    test is a block-wide AND (__syncthreads_and).
//   bracket_update:  one block per evaluated point; thread 0 decides the pair (common/bracket.h,
//   the
//                    same code as the CPU kernel), then the block copies the point and its softmax
//                    into the outputs when the pair has finished.
// No atomics: every pair is owned by one block, so results are deterministic. A row with idx
// kEmptyRow (-1) is an empty slot of the engine's fixed-size live batch; its block returns early.
// Neither op synchronises with the host, so the engine can capture a step as a CUDA graph.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <math_constants.h>
#include <torch/library.h>

#include "common/bracket.h"
#include "common/checks.h"

namespace deepdig_fast {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void propose_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b,
                               const int64_t* __restrict__ idx, const double* __restrict__ fstate,
                               int64_t P, int64_t D, int64_t method, scalar_t* __restrict__ x,
                               double* __restrict__ lam, bool* __restrict__ stalled) {
  const int64_t r = blockIdx.x;
  const int64_t p = idx[r];
  CUDA_KERNEL_ASSERT(p >= kEmptyRow && p < P && "idx out of range");
  scalar_t* xr = x + r * D;
  if (p == kEmptyRow) {  // uniform across the block: no thread reaches the barriers below
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) xr[d] = scalar_t(0);
    if (threadIdx.x == 0) {
      lam[r] = CUDART_NAN;
      stalled[r] = false;
    }
    return;
  }
  const double* f = fstate + p * kFloatCols;
  const double l = propose_lambda(f, method);
  const double lo = f[kLo], hi = f[kHi];
  const scalar_t* ar = a + p * D;
  const scalar_t* br = b + p * D;
  int same_lo = 1, same_hi = 1;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const double av = static_cast<double>(ar[d]);
    const double diff = static_cast<double>(br[d]) - av;
    const scalar_t v = static_cast<scalar_t>(lerp_from(av, l, diff));
    xr[d] = v;
    same_lo &= (v == static_cast<scalar_t>(lerp_from(av, lo, diff)));
    same_hi &= (v == static_cast<scalar_t>(lerp_from(av, hi, diff)));
  }
  same_lo = __syncthreads_and(same_lo);
  same_hi = __syncthreads_and(same_hi);
  if (threadIdx.x == 0) {
    lam[r] = l;
    stalled[r] = same_lo || same_hi;
  }
}

template <typename scalar_t>
__global__ void update_kernel(const scalar_t* __restrict__ logits, const char* __restrict__ x,
                              const int64_t* __restrict__ idx, const double* __restrict__ lam,
                              const bool* __restrict__ stalled, const int64_t* __restrict__ source,
                              const int64_t* __restrict__ target, double* __restrict__ fstate,
                              int64_t* __restrict__ istate, char* __restrict__ points,
                              double* __restrict__ probs, double* __restrict__ lam_out, int64_t P,
                              int64_t C, int64_t row_bytes, double beta, int64_t max_steps,
                              int64_t method, int64_t* __restrict__ codes) {
  __shared__ int64_t status;
  __shared__ double zmax, denom;
  const int64_t r = blockIdx.x;
  const int64_t p = idx[r];
  CUDA_KERNEL_ASSERT(p >= kEmptyRow && p < P && "idx out of range");
  if (p == kEmptyRow) {  // uniform across the block
    if (threadIdx.x == 0) codes[r] = kPending;
    return;
  }
  const scalar_t* z = logits + r * C;
  if (threadIdx.x == 0) {
    CUDA_KERNEL_ASSERT(source[p] >= 0 && source[p] < C && target[p] >= 0 && target[p] < C &&
                       "source/target out of range");
    double m, s;
    status = update_pair(z, C, source[p], target[p], lam[r], stalled[r], beta, max_steps, method,
                         fstate + p * kFloatCols, istate + p * kIntCols, &m, &s);
    zmax = m;
    denom = s;
    codes[r] = status;
    if (status != kPending) lam_out[p] = lam[r];
  }
  __syncthreads();
  if (status == kPending) return;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    probs[p * C + c] = ::exp(static_cast<double>(z[c]) - zmax) / denom;
  }
  const char* src = x + r * row_bytes;
  char* dst = points + p * row_bytes;
  for (int64_t i = threadIdx.x; i < row_bytes; i += blockDim.x) dst[i] = src[i];
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> bracket_propose_cuda(const at::Tensor& a_in,
                                                                    const at::Tensor& b_in,
                                                                    const at::Tensor& idx_in,
                                                                    const at::Tensor& fstate_in,
                                                                    int64_t method) {
  check_propose_args(a_in, b_in, idx_in, fstate_in);
  const c10::cuda::CUDAGuard guard(a_in.device());
  const at::Tensor a = a_in.contiguous(), b = b_in.contiguous();
  const at::Tensor idx = idx_in.contiguous(), fstate = fstate_in.contiguous();
  const int64_t M = idx.size(0), D = a.size(1);
  at::Tensor x = at::empty({M, D}, a.options());
  at::Tensor lam = at::empty({M}, fstate.options());
  at::Tensor stalled = at::empty({M}, a.options().dtype(at::kBool));
  if (M == 0) return {x, lam, stalled};
  TORCH_CHECK(M <= 2147483647LL, "bracket_propose: at most 2^31-1 live pairs per call, got ", M);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, a.scalar_type(), "bracket_propose_cuda", [&] {
        propose_kernel<scalar_t><<<static_cast<unsigned>(M), kThreads, 0, stream>>>(
            a.data_ptr<scalar_t>(), b.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(),
            fstate.data_ptr<double>(), a.size(0), D, method, x.data_ptr<scalar_t>(),
            lam.data_ptr<double>(), stalled.data_ptr<bool>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {x, lam, stalled};
}

at::Tensor bracket_update_cuda(const at::Tensor& logits_in, const at::Tensor& x_in,
                               const at::Tensor& idx_in, const at::Tensor& lam_in,
                               const at::Tensor& stalled_in, const at::Tensor& source_in,
                               const at::Tensor& target_in, at::Tensor& fstate, at::Tensor& istate,
                               at::Tensor& points, at::Tensor& probs, at::Tensor& lam_out,
                               double beta, int64_t max_steps, int64_t method) {
  check_update_args(logits_in, x_in, idx_in, lam_in, stalled_in, source_in, target_in, fstate,
                    istate, points, probs, lam_out);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous(), x = x_in.contiguous();
  const at::Tensor idx = idx_in.contiguous(), lam = lam_in.contiguous();
  const at::Tensor stalled = stalled_in.contiguous();
  const at::Tensor source = source_in.contiguous(), target = target_in.contiguous();
  const int64_t M = logits.size(0), C = logits.size(1);
  at::Tensor codes = at::empty({M}, idx.options());
  if (M == 0) return codes;
  TORCH_CHECK(M <= 2147483647LL, "bracket_update: at most 2^31-1 rows per call, got ", M);
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t row_bytes = x.size(1) * static_cast<int64_t>(x.element_size());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "bracket_update_cuda", [&] {
        update_kernel<scalar_t><<<static_cast<unsigned>(M), 128, 0, stream>>>(
            logits.data_ptr<scalar_t>(), static_cast<const char*>(x.data_ptr()),
            idx.data_ptr<int64_t>(), lam.data_ptr<double>(), stalled.data_ptr<bool>(),
            source.data_ptr<int64_t>(), target.data_ptr<int64_t>(), fstate.data_ptr<double>(),
            istate.data_ptr<int64_t>(), static_cast<char*>(points.data_ptr()),
            probs.data_ptr<double>(), lam_out.data_ptr<double>(), fstate.size(0), C, row_bytes,
            beta, max_steps, method, codes.data_ptr<int64_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return codes;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("bracket_propose", &bracket_propose_cuda);
  m.impl("bracket_update", &bracket_update_cuda);
}

}  // namespace deepdig_fast
