// Argument checks of conv2d and conv2d_grad_input (CPU kernels only: the library routes a GPU's
// convolutions through F.conv2d).
//
// The op is torch.nn.functional.conv2d with groups = 1, dilation = 1 and zero padding, computed
// by ATen's own convolution (oneDNN on a CPU), so the forward equals F.conv2d bit for bit. What
// differs is the input gradient (conv2d_grad_input = d(sum(out * grad)) / dx): it takes ATen's
// unfold + GEMM path (at::_slow_conv2d_backward, a private ATen symbol: adversarial.accelerate
// checks it against autograd before it uses the op, and trains without it when they differ) on
// NCHW operands, which for one input channel is faster than oneDNN's data-gradient kernel
// (benchmarks/bench_conv2d.py, benchmarks/RESULTS.md "The ops"). The weight and bias
// gradients are ATen's convolution_backward's (csrc/train/autograd.cpp). The results equal ATen's
// up to the order of the sums. conv2d's output is laid out as ATen lays it out; conv2d_grad_input's
// is contiguous (NCHW).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

#include "common/checks.h"

namespace deepdig_fast {

inline int64_t conv_pair(at::IntArrayRef v, const char* name, int64_t i) {
  TORCH_CHECK(v.size() == 2, name, " must have two values (height, width), got ", v.size());
  return v[i];
}

// Checks x [N, C, H, W] and weight [O, C, KH, KW] (float32/float64, one device), the settings,
// and that the output plane is not empty.
inline void check_conv_args(const at::Tensor& x, const at::Tensor& weight, at::IntArrayRef stride,
                            at::IntArrayRef padding) {
  check_dim(x, 4, "x");
  check_dim(weight, 4, "weight");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "x must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), "weight must have the dtype of x (",
              x.scalar_type(), "), got ", weight.scalar_type());
  check_same_device(weight, x, "weight");
  TORCH_CHECK(weight.size(1) == x.size(1), "weight must have x's ", x.size(1),
              " input channels in dim 1, got shape ", weight.sizes());
  TORCH_CHECK(weight.size(0) > 0 && weight.size(1) > 0 && weight.size(2) > 0 && weight.size(3) > 0,
              "weight must have a non-empty shape, got ", weight.sizes());
  for (int64_t i = 0; i < 2; ++i) {
    const int64_t s = conv_pair(stride, "stride", i), p = conv_pair(padding, "padding", i);
    TORCH_CHECK(s > 0, "stride must be positive, got ", stride);
    TORCH_CHECK(p >= 0, "padding must be non-negative, got ", padding);
    const int64_t in = x.size(2 + i), k = weight.size(2 + i);
    TORCH_CHECK(in > 0 && in + 2 * p >= k, "x's plane (", x.size(2), " x ", x.size(3),
                ") padded by ", padding, " is smaller than the kernel (", weight.size(2), " x ",
                weight.size(3), ")");
  }
}

inline void check_bias(const std::optional<at::Tensor>& bias, const at::Tensor& x,
                       const at::Tensor& weight) {
  if (!bias.has_value() || !bias->defined()) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), "bias must have shape [",
              weight.size(0), "], got ", bias->sizes());
  TORCH_CHECK(bias->scalar_type() == x.scalar_type(), "bias must have the dtype of x (",
              x.scalar_type(), "), got ", bias->scalar_type());
  check_same_device(*bias, x, "bias");
}

inline int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p) {
  return (in + 2 * p - k) / s + 1;
}

// Checks of conv2d_grad_input's grad: the forward's output shape [N, O, OH, OW], x's dtype.
inline void check_conv_grad(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight,
                            at::IntArrayRef stride, at::IntArrayRef padding) {
  check_conv_args(x, weight, stride, padding);
  check_dim(grad, 4, "grad");
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "grad must have the dtype of x (",
              x.scalar_type(), "), got ", grad.scalar_type());
  check_same_device(grad, x, "grad");
  const int64_t oh = conv_out(x.size(2), weight.size(2), stride[0], padding[0]);
  const int64_t ow = conv_out(x.size(3), weight.size(3), stride[1], padding[1]);
  TORCH_CHECK(grad.size(0) == x.size(0) && grad.size(1) == weight.size(0) && grad.size(2) == oh &&
                  grad.size(3) == ow,
              "grad must have the forward's output shape [", x.size(0), ", ", weight.size(0), ", ",
              oh, ", ", ow, "], got ", grad.sizes());
}

}  // namespace deepdig_fast
