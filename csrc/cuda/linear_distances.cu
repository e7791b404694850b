// CUDA kernels of linear_distances. Work decomposition: one thread per embedding row computes its
// signed distance (float64 dot product); then one block of kReduce threads reduces the distances
// to the summary with a fixed-order shared-memory tree (deterministic, no atomics).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda/std/limits>

#include "common/checks.h"
#include "common/trajectory.h"

namespace deepdig_fast {

namespace {

constexpr int kReduce = 512;

template <typename scalar_t>
__global__ void distances_kernel(const scalar_t* __restrict__ h, const double* __restrict__ w,
                                 double bias, double norm, int64_t N, int64_t E,
                                 double* __restrict__ d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N) return;
  double acc = 0.0;
  for (int64_t e = 0; e < E; ++e) acc += static_cast<double>(h[i * E + e]) * w[e];
  d[i] = (acc + bias) / norm;
}

__global__ void summary_kernel(const double* __restrict__ d, const int64_t* __restrict__ labels,
                               int64_t N, double* __restrict__ out) {
  __shared__ double s_abs[kReduce], s_abs_wrong[kReduce], s_sum[kReduce], s_max[kReduce],
      s_min[kReduce];
  __shared__ long long s_wrong[kReduce];
  const double inf = ::cuda::std::numeric_limits<double>::infinity();
  double a = 0, aw = 0, sum = 0, mx = -inf, mn = inf;
  long long wrong = 0;
  for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
    const double v = d[i];
    a += ::fabs(v);
    sum += v;
    mx = nan_max(mx, v);
    mn = nan_min(mn, v);
    if ((v > 0) != (labels[i] == 1)) {
      ++wrong;
      aw += ::fabs(v);
    }
  }
  const int t = threadIdx.x;
  s_abs[t] = a;
  s_abs_wrong[t] = aw;
  s_sum[t] = sum;
  s_max[t] = mx;
  s_min[t] = mn;
  s_wrong[t] = wrong;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) {
      s_abs[t] += s_abs[t + stride];
      s_abs_wrong[t] += s_abs_wrong[t + stride];
      s_sum[t] += s_sum[t + stride];
      s_max[t] = nan_max(s_max[t], s_max[t + stride]);
      s_min[t] = nan_min(s_min[t], s_min[t + stride]);
      s_wrong[t] += s_wrong[t + stride];
    }
    __syncthreads();
  }
  if (t != 0) return;
  const double nan = ::cuda::std::numeric_limits<double>::quiet_NaN();
  const double mean_abs = N ? s_abs[0] / N : nan;
  const double mean_abs_wrong = s_wrong[0] ? s_abs_wrong[0] / s_wrong[0] : nan;
  out[kMeanAbs] = mean_abs;
  out[kM1] = mean_abs / (1 + mean_abs);
  out[kMeanAbsWrong] = mean_abs_wrong;
  out[kM2] = mean_abs_wrong / (1 + mean_abs_wrong);
  out[kMax] = N ? s_max[0] : nan;
  out[kMean] = N ? s_sum[0] / N : nan;
  out[kMin] = N ? s_min[0] : nan;
  out[kAccuracy] = N ? 1.0 - static_cast<double>(s_wrong[0]) / N : nan;
  out[kWrong] = static_cast<double>(s_wrong[0]);
}

std::tuple<at::Tensor, at::Tensor> linear_distances_cuda(const at::Tensor& h_in,
                                                         const at::Tensor& w_in, double bias,
                                                         const at::Tensor& labels_in) {
  check_linear_args(h_in, w_in, labels_in);
  const c10::cuda::CUDAGuard guard(h_in.device());
  const at::Tensor h = h_in.contiguous(), w = w_in.contiguous(), labels = labels_in.contiguous();
  const int64_t N = h.size(0), E = h.size(1);
  const double norm = w.norm().item<double>();
  TORCH_CHECK(norm > 0, "w must not be all zeros");
  at::Tensor d = at::empty({N}, h.options().dtype(at::kDouble));
  at::Tensor summary = at::empty({kSummaryLen}, d.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  if (N > 0) {
    const int threads = 256;
    const int64_t blocks = (N + threads - 1) / threads;
    AT_DISPATCH_FLOATING_TYPES_AND2(
        at::kHalf, at::kBFloat16, h.scalar_type(), "linear_distances_cuda", [&] {
          distances_kernel<scalar_t><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
              h.data_ptr<scalar_t>(), w.data_ptr<double>(), bias, norm, N, E, d.data_ptr<double>());
          C10_CUDA_KERNEL_LAUNCH_CHECK();
        });
  }
  summary_kernel<<<1, kReduce, 0, stream>>>(d.data_ptr<double>(), labels.data_ptr<int64_t>(), N,
                                            summary.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {d, summary};
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("linear_distances", &linear_distances_cuda);
}

}  // namespace deepdig_fast
