// Geometry and argument checks of max_pool2d, shared by the CPU and CUDA kernels.
//
// The op is torch.nn.functional.max_pool2d(..., return_indices=True) -- the same output size, the
// same window scan (rows, then columns, of the window, in order), the same winner (a value beats
// the running maximum when it is larger or NaN, so the first maximum wins among equal values and
// the last NaN among NaNs) and the same indices (ih * W + iw within the input plane) -- so results
// equal ATen's bit for bit, and max_pool2d_backward, which adds each output's gradient to its
// winner in output order (row-major over the output plane), equals ATen's backward bit for bit too.
// Layout: NHWC (kernels loop over the channels innermost) when the input is channels_last and not
// also contiguous, NCHW otherwise; outputs and gradients are laid out like the input (the x given
// to max_pool2d_backward: only its shape, dtype and layout are read, and grad / indices may come in
// either layout -- the CPU kernel scatters channels_last ones into an NCHW x's planes directly).
#pragma once

#include <ATen/ATen.h>
#include <c10/macros/Macros.h>

#include <cstdint>

#include "common/checks.h"

namespace deepdig_fast {

struct PoolGeometry {
  int64_t N, C, H, W, OH, OW;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  bool nhwc;
};

// Output length along one dimension, as ATen's pooling_output_shape computes it.
inline int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d,
                             bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (span >= 0 ? span / s : -((-span + s - 1) / s)) + 1;
  // with ceil_mode the last window must start inside the input or its left padding
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

inline bool is_nhwc(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline at::MemoryFormat layout_of(bool nhwc) {
  return nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

inline int64_t pair_at(at::IntArrayRef v, const char* name, int64_t i) {
  TORCH_CHECK(v.size() == 2, name, " must have two values (height, width), got ", v.size());
  return v[i];
}

inline PoolGeometry pool_geometry(const at::Tensor& x, at::IntArrayRef kernel_size,
                                  at::IntArrayRef stride, at::IntArrayRef padding,
                                  at::IntArrayRef dilation, bool ceil_mode) {
  check_dim(x, 4, "x");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "x must be float32 or float64, got ", x.scalar_type());
  PoolGeometry g;
  g.N = x.size(0);
  g.C = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.kh = pair_at(kernel_size, "kernel_size", 0);
  g.kw = pair_at(kernel_size, "kernel_size", 1);
  g.sh = pair_at(stride, "stride", 0);
  g.sw = pair_at(stride, "stride", 1);
  g.ph = pair_at(padding, "padding", 0);
  g.pw = pair_at(padding, "padding", 1);
  g.dh = pair_at(dilation, "dilation", 0);
  g.dw = pair_at(dilation, "dilation", 1);
  TORCH_CHECK(g.kh > 0 && g.kw > 0, "kernel_size must be positive, got (", g.kh, ", ", g.kw, ")");
  TORCH_CHECK(g.sh > 0 && g.sw > 0, "stride must be positive, got (", g.sh, ", ", g.sw, ")");
  TORCH_CHECK(g.dh > 0 && g.dw > 0, "dilation must be positive, got (", g.dh, ", ", g.dw, ")");
  TORCH_CHECK(g.ph >= 0 && g.pw >= 0 && g.ph <= g.kh / 2 && g.pw <= g.kw / 2,
              "padding must lie in [0, kernel_size / 2], got (", g.ph, ", ", g.pw, ")");
  TORCH_CHECK(g.H > 0 && g.W > 0, "x must have a non-empty plane, got shape ", x.sizes());
  g.OH = pool_out_size(g.H, g.kh, g.sh, g.ph, g.dh, ceil_mode);
  g.OW = pool_out_size(g.W, g.kw, g.sw, g.pw, g.dw, ceil_mode);
  TORCH_CHECK(g.OH > 0 && g.OW > 0, "the output would be empty (", g.OH, " x ", g.OW,
              ") for an input plane of ", g.H, " x ", g.W);
  g.nhwc = is_nhwc(x);
  return g;
}

// The window of output (oh, ow): its first valid row and column (ATen's starting index) and the
// ends (exclusive) of its rows and columns, clipped to the input.
struct Window {
  int64_t h0, h1, w0, w1;
};

C10_HOST_DEVICE inline Window pool_window(const PoolGeometry& g, int64_t oh, int64_t ow) {
  Window w;
  w.h0 = oh * g.sh - g.ph;
  w.w0 = ow * g.sw - g.pw;
  w.h1 = w.h0 + (g.kh - 1) * g.dh + 1;
  w.w1 = w.w0 + (g.kw - 1) * g.dw + 1;
  if (w.h1 > g.H) w.h1 = g.H;
  if (w.w1 > g.W) w.w1 = g.W;
  while (w.h0 < 0) w.h0 += g.dh;
  while (w.w0 < 0) w.w0 += g.dw;
  return w;
}

// Whether v replaces the running maximum m (ATen's rule: larger, or NaN). A bitwise or, not ||:
// no branch, so the kernels can select (and vectorise) instead of mispredicting on random data.
template <typename scalar_t>
C10_HOST_DEVICE inline bool beats(scalar_t v, scalar_t m) {
  return static_cast<bool>(static_cast<int>(v > m) | static_cast<int>(v != v));
}

// Checks of max_pool2d_backward's arguments (grad and indices shaped like the forward's output
// for x and these settings); returns the forward's geometry.
inline PoolGeometry check_pool_backward_args(const at::Tensor& grad, const at::Tensor& x,
                                             const at::Tensor& indices, at::IntArrayRef kernel_size,
                                             at::IntArrayRef stride, at::IntArrayRef padding,
                                             at::IntArrayRef dilation, bool ceil_mode) {
  const PoolGeometry g = pool_geometry(x, kernel_size, stride, padding, dilation, ceil_mode);
  check_dim(grad, 4, "grad");
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "grad must have the dtype of x (",
              x.scalar_type(), "), got ", grad.scalar_type());
  TORCH_CHECK(
      grad.size(0) == g.N && grad.size(1) == g.C && grad.size(2) == g.OH && grad.size(3) == g.OW,
      "grad must have the forward's output shape [", g.N, ", ", g.C, ", ", g.OH, ", ", g.OW,
      "], got ", grad.sizes());
  check_dtype(indices, at::kLong, "indices");
  TORCH_CHECK(indices.sizes() == grad.sizes(), "indices must have the shape of grad ", grad.sizes(),
              ", got ", indices.sizes());
  check_same_device(grad, x, "grad");
  check_same_device(indices, x, "indices");
  return g;
}

}  // namespace deepdig_fast
