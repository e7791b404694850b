// CUDA kernels of the trajectory stage. Work decomposition:
//   segment_points:   a grid-stride loop over the S*T*D output elements (64-bit indices); each
//                     thread interpolates one element from the two gathered ends.
//   trajectory_stats: one block per segment; its threads evaluate argmax and p_s - p_t of the T
//                     points in parallel into shared memory, then thread 0 walks the label
//                     sequence (common/trajectory.h's LabelWalk, the CPU kernel's code). The
//                     in-band count is an integer sum (a shared-memory atomic), so results are
//                     deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/bracket.h"
#include "common/checks.h"
#include "common/trajectory.h"

namespace deepdig_fast {
namespace {

template <typename scalar_t>
__global__ void segment_points_kernel(const scalar_t* __restrict__ x,
                                      const int64_t* __restrict__ ii,
                                      const int64_t* __restrict__ jj, int64_t N, int64_t T,
                                      int64_t D, int64_t total, scalar_t* __restrict__ out) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / D, d = e % D;
    const int64_t s = r / T, k = r % T;
    const int64_t i = ii[s], j = jj[s];
    CUDA_KERNEL_ASSERT(i >= 0 && i < N && j >= 0 && j < N && "segment end out of range");
    const double tau = static_cast<double>(k) / static_cast<double>(T);
    const double a = static_cast<double>(x[j * D + d]);
    out[e] = static_cast<scalar_t>(lerp_from(a, tau, static_cast<double>(x[i * D + d]) - a));
  }
}

template <typename scalar_t>
__global__ void trajectory_stats_kernel(const scalar_t* __restrict__ logits,
                                        const int64_t* __restrict__ source,
                                        const int64_t* __restrict__ target, int64_t T, int64_t C,
                                        double band_lo, double band_hi, int64_t* __restrict__ out) {
  extern __shared__ unsigned char smem[];
  int* labels = reinterpret_cast<int*>(smem);
  unsigned char* seen = smem + T * sizeof(int);
  __shared__ int band_count;
  const int64_t s = blockIdx.x;
  const int64_t src = source[s], tgt = target[s];
  CUDA_KERNEL_ASSERT(src >= 0 && src < C && tgt >= 0 && tgt < C && "source/target out of range");
  if (threadIdx.x == 0) band_count = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) seen[c] = 0;
  __syncthreads();
  int local_band = 0;
  for (int64_t k = threadIdx.x; k < T; k += blockDim.x) {
    double gap;
    labels[k] = static_cast<int>(argmax_and_gap(logits + (s * T + k) * C, C, src, tgt, &gap));
    local_band += in_band(gap, band_lo, band_hi) ? 1 : 0;
  }
  // An integer sum is exact in any order, so this shared-memory atomic is deterministic.
  atomicAdd(&band_count, local_band);
  __syncthreads();
  if (threadIdx.x != 0) return;
  LabelWalk walk;
  for (int64_t k = 0; k < T; ++k) walk.step(labels[k], src, tgt, seen);
  walk.write(out + s * kStatCols, band_count);
}

at::Tensor segment_points_cuda(const at::Tensor& x_in, const at::Tensor& i_in,
                               const at::Tensor& j_in, int64_t T) {
  check_segment_args(x_in, i_in, j_in, T);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), ii = i_in.contiguous(), jj = j_in.contiguous();
  const int64_t S = ii.size(0), D = x.size(1);
  at::Tensor out = at::empty({S * T, D}, x.options());
  const int64_t total = S * T * D;
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, 65536);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, x.scalar_type(), "segment_points_cuda", [&] {
        segment_points_kernel<scalar_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
            x.data_ptr<scalar_t>(), ii.data_ptr<int64_t>(), jj.data_ptr<int64_t>(), x.size(0), T, D,
            total, out.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out;
}

at::Tensor trajectory_stats_cuda(const at::Tensor& logits_in, const at::Tensor& source_in,
                                 const at::Tensor& target_in, int64_t T, double band_lo,
                                 double band_hi) {
  check_trajectory_stats_args(logits_in, source_in, target_in, T);
  const int64_t S = source_in.size(0), C = logits_in.size(1);
  const size_t shared = static_cast<size_t>(T) * sizeof(int) + static_cast<size_t>(C);
  TORCH_CHECK(shared <= 40000, "trajectory_stats on CUDA supports T*4 + C <= 40000 bytes of shared",
              " memory, got T = ", T, ", C = ", C);
  const c10::cuda::CUDAGuard guard(logits_in.device());
  const at::Tensor logits = logits_in.contiguous();
  const at::Tensor source = source_in.contiguous(), target = target_in.contiguous();
  at::Tensor out = at::zeros({S, kStatCols}, source.options());
  if (S == 0) return out;
  TORCH_CHECK(S <= 2147483647LL, "trajectory_stats: at most 2^31-1 segments per call, got ", S);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, logits.scalar_type(), "trajectory_stats_cuda", [&] {
        trajectory_stats_kernel<scalar_t><<<static_cast<unsigned>(S), 64, shared, stream>>>(
            logits.data_ptr<scalar_t>(), source.data_ptr<int64_t>(), target.data_ptr<int64_t>(), T,
            C, band_lo, band_hi, out.data_ptr<int64_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("segment_points", &segment_points_cuda);
  m.impl("trajectory_stats", &trajectory_stats_cuda);
}

}  // namespace deepdig_fast
