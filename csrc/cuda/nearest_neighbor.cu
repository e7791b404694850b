// CUDA kernel of nearest_neighbor. Work decomposition: one thread per query; a block of kThreads
// queries walks the references in tiles of kTile rows, each staged in shared memory kChunk features
// at a time, and keeps one running squared distance per (query, tile row) in registers.
// Squared distances accumulate in double; the lowest index wins exact ties, as on the CPU.
// Memory: O(Q + R), no [Q, R] matrix.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda/std/limits>

#include "common/checks.h"

namespace deepdig_fast {
namespace {

constexpr int kThreads = 128;
constexpr int kTile = 32;   // reference rows per shared-memory tile (one register each)
constexpr int kChunk = 64;  // features per shared-memory tile

template <typename scalar_t>
__global__ void nearest_neighbor_kernel(const scalar_t* __restrict__ q,
                                        const scalar_t* __restrict__ refs, int64_t Q, int64_t R,
                                        int64_t E, int64_t* __restrict__ index,
                                        scalar_t* __restrict__ dist) {
  __shared__ double tile[kTile][kChunk + 1];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool active = i < Q;
  double best = ::cuda::std::numeric_limits<double>::infinity();
  int64_t arg = 0;
  for (int64_t r0 = 0; r0 < R; r0 += kTile) {
    const int rows = static_cast<int>(R - r0 < kTile ? R - r0 : kTile);
    double acc[kTile];
#pragma unroll
    for (int k = 0; k < kTile; ++k) acc[k] = 0.0;
    for (int64_t e0 = 0; e0 < E; e0 += kChunk) {
      const int cols = static_cast<int>(E - e0 < kChunk ? E - e0 : kChunk);
      __syncthreads();
      for (int t = threadIdx.x; t < rows * cols; t += blockDim.x) {
        const int rr = t / cols, cc = t % cols;
        tile[rr][cc] = static_cast<double>(refs[(r0 + rr) * E + e0 + cc]);
      }
      __syncthreads();
      if (active) {
        for (int cc = 0; cc < cols; ++cc) {
          const double qv = static_cast<double>(q[i * E + e0 + cc]);
#pragma unroll
          for (int rr = 0; rr < kTile; ++rr) {
            const double d = qv - tile[rr][cc];
            acc[rr] += d * d;  // rows past `rows` hold stale values and are never read
          }
        }
      }
    }
    if (active) {
#pragma unroll
      for (int rr = 0; rr < kTile; ++rr) {
        if (rr < rows && acc[rr] < best) {
          best = acc[rr];
          arg = r0 + rr;
        }
      }
    }
  }
  if (active) {
    index[i] = arg;
    dist[i] = static_cast<scalar_t>(::sqrt(best));
  }
}

std::tuple<at::Tensor, at::Tensor> nearest_neighbor_cuda(const at::Tensor& queries_in,
                                                         const at::Tensor& refs_in) {
  check_nearest_neighbor_args(queries_in, refs_in);
  const int64_t Q = queries_in.size(0), R = refs_in.size(0), E = queries_in.size(1);
  const c10::cuda::CUDAGuard guard(queries_in.device());
  const at::Tensor q = queries_in.contiguous(), ref = refs_in.contiguous();
  at::Tensor index = at::empty({Q}, q.options().dtype(at::kLong));
  at::Tensor dist = at::empty({Q}, q.options());
  if (Q == 0) return {index, dist};
  const int64_t blocks = (Q + kThreads - 1) / kThreads;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, q.scalar_type(), "nearest_neighbor_cuda", [&] {
        nearest_neighbor_kernel<scalar_t><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
            q.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), Q, R, E, index.data_ptr<int64_t>(),
            dist.data_ptr<scalar_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return {index, dist};
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("nearest_neighbor", &nearest_neighbor_cuda);
}

}  // namespace deepdig_fast
