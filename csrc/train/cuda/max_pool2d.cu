// CUDA kernels of max_pool2d (contract: train/max_pool2d.h). Work decomposition:
//   forward:  a grid-stride loop over the output elements; each thread scans its window in the
//             CPU kernels' order (rows, then columns) with the same winner rule.
//   backward: a grid-stride loop over the input elements; each thread gathers the gradients of the
//             outputs whose window covers it and whose winner it is, in output order (row-major),
//             which is the order in which the CPU kernel adds them: no atomics, deterministic, and
//             equal to the CPU result. Indices outside the input plane match no element (the CPU
//             kernel rejects them; here that would need a host sync).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <tuple>

#include "common/checks.h"
#include "train/max_pool2d.h"

namespace deepdig_fast {
namespace {

constexpr int kThreads = 256;

inline unsigned pool_blocks(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
}

template <typename scalar_t>
__global__ void max_pool2d_kernel(PoolGeometry g, const scalar_t* __restrict__ x,
                                  scalar_t* __restrict__ out, int64_t* __restrict__ idx,
                                  int64_t total) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t oh, ow, base, step;  // base: element (ih, iw) = (0, 0) of x's plane; step: per iw
    if (g.nhwc) {
      const int64_t c = e % g.C;
      ow = (e / g.C) % g.OW;
      oh = (e / (g.C * g.OW)) % g.OH;
      base = (e / (g.C * g.OW * g.OH)) * g.H * g.W * g.C + c;
      step = g.C;
    } else {
      ow = e % g.OW;
      oh = (e / g.OW) % g.OH;
      base = (e / (g.OW * g.OH)) * g.H * g.W;
      step = 1;
    }
    const Window w = pool_window(g, oh, ow);
    scalar_t m = -std::numeric_limits<scalar_t>::infinity();
    int64_t at = w.h0 * g.W + w.w0;
    for (int64_t ih = w.h0; ih < w.h1; ih += g.dh) {
      for (int64_t iw = w.w0; iw < w.w1; iw += g.dw) {
        const scalar_t v = x[base + (ih * g.W + iw) * step];
        if (beats(v, m)) {
          m = v;
          at = ih * g.W + iw;
        }
      }
    }
    out[e] = m;
    idx[e] = at;
  }
}

// First output row (or column) whose window can cover input position i: windows start at
// o * s - p and span (k - 1) * d + 1 positions.
__device__ inline int64_t first_covering(int64_t i, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t num = i + p - (k - 1) * d;
  return num <= 0 ? 0 : (num + s - 1) / s;
}

template <typename scalar_t>
__global__ void max_pool2d_backward_kernel(PoolGeometry g, const scalar_t* __restrict__ grad,
                                           const int64_t* __restrict__ idx,
                                           scalar_t* __restrict__ gi, int64_t total) {
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t ih, iw, obase, ostep;  // obase: output (0, 0) of this plane; ostep: per output column
    if (g.nhwc) {
      const int64_t c = e % g.C;
      iw = (e / g.C) % g.W;
      ih = (e / (g.C * g.W)) % g.H;
      const int64_t n = e / (g.C * g.W * g.H);
      obase = n * g.OH * g.OW * g.C + c;
      ostep = g.C;
    } else {
      iw = e % g.W;
      ih = (e / g.W) % g.H;
      obase = (e / (g.W * g.H)) * g.OH * g.OW;
      ostep = 1;
    }
    const int64_t me = ih * g.W + iw;
    const int64_t oh_last = (ih + g.ph) / g.sh, ow_last = (iw + g.pw) / g.sw;
    const int64_t oh1 = oh_last < g.OH - 1 ? oh_last : g.OH - 1;
    const int64_t ow1 = ow_last < g.OW - 1 ? ow_last : g.OW - 1;
    scalar_t acc = scalar_t(0);
    for (int64_t oh = first_covering(ih, g.kh, g.sh, g.ph, g.dh); oh <= oh1; ++oh) {
      for (int64_t ow = first_covering(iw, g.kw, g.sw, g.pw, g.dw); ow <= ow1; ++ow) {
        const int64_t o = obase + (oh * g.OW + ow) * ostep;
        if (idx[o] == me) acc += grad[o];
      }
    }
    gi[e] = acc;
  }
}

std::tuple<at::Tensor, at::Tensor> max_pool2d_cuda(const at::Tensor& x_in,
                                                   at::IntArrayRef kernel_size,
                                                   at::IntArrayRef stride, at::IntArrayRef padding,
                                                   at::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = pool_geometry(x_in, kernel_size, stride, padding, dilation, ceil_mode);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::MemoryFormat fmt = layout_of(g.nhwc);
  const at::Tensor x = x_in.contiguous(fmt);
  at::Tensor out = at::empty({g.N, g.C, g.OH, g.OW}, x.options().memory_format(fmt));
  at::Tensor idx =
      at::empty({g.N, g.C, g.OH, g.OW}, x.options().dtype(at::kLong).memory_format(fmt));
  const int64_t total = out.numel();
  if (total == 0) return {out, idx};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool2d_cuda", [&] {
    max_pool2d_kernel<scalar_t><<<pool_blocks(total), kThreads, 0, stream>>>(
        g, x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {out, idx};
}

at::Tensor max_pool2d_backward_cuda(const at::Tensor& grad_in, const at::Tensor& x,
                                    const at::Tensor& idx_in, at::IntArrayRef kernel_size,
                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                    at::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = check_pool_backward_args(grad_in, x, idx_in, kernel_size, stride, padding,
                                                  dilation, ceil_mode);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::MemoryFormat fmt = layout_of(g.nhwc);
  const at::Tensor grad = grad_in.contiguous(fmt), idx = idx_in.contiguous(fmt);
  at::Tensor gi = at::empty(x.sizes(), x.options().memory_format(fmt));
  const int64_t total = gi.numel();
  if (total == 0) return gi;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "max_pool2d_backward_cuda", [&] {
    max_pool2d_backward_kernel<scalar_t><<<pool_blocks(total), kThreads, 0, stream>>>(
        g, grad.data_ptr<scalar_t>(), idx.data_ptr<int64_t>(), gi.data_ptr<scalar_t>(), total);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gi;
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("max_pool2d", &max_pool2d_cuda);
  m.impl("max_pool2d_backward", &max_pool2d_backward_cuda);
}

}  // namespace deepdig_fast
