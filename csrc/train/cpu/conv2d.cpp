// CPU kernels of conv2d (contract: train/conv2d.h): ATen's convolution forward, and the input
// gradient through ATen's unfold + GEMM path on NCHW operands.
//
// Why not oneDNN's data gradient: for the first convolution of an image classifier with one input
// channel it is several times slower than this path, and it was a large share of an autoencoder
// training step; with more input channels it is not, so the training copy uses this op for one
// input channel only (adversarial._takes_kernel_conv). Why not a hand-written kernel: direct NHWC
// loops were slower than both ATen paths, so ATen's own code is used. Figures:
// benchmarks/bench_conv2d.py, benchmarks/RESULTS.md ("The ops").
#include <torch/library.h>

#include <optional>

#include "train/conv2d.h"

namespace deepdig_fast {
namespace {

// t with NCHW strides exactly. For one channel (or a 1 x 1 plane) a channels_last tensor is also
// "contiguous", but ATen's unfold + GEMM path reads its strides as channels_last and then takes
// its slow channels_last branch, many times slower for the MNIST CNN's first convolution.
at::Tensor nchw(const at::Tensor& t) {
  int64_t expect = 1;
  bool plain = true;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    if (t.stride(d) != expect) plain = false;  // size-1 dims too: their strides are read
    expect *= t.size(d);
  }
  return plain ? t : t.clone(at::MemoryFormat::Contiguous);
}

at::Tensor conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding) {
  check_conv_args(x, weight, stride, padding);
  check_bias(bias, x, weight);
  return at::convolution(x, weight, bias, stride, padding, {1, 1}, false, {0, 0}, 1);
}

at::Tensor conv2d_grad_input_cpu(const at::Tensor& grad, const at::Tensor& x,
                                 const at::Tensor& weight, at::IntArrayRef stride,
                                 at::IntArrayRef padding) {
  check_conv_grad(grad, x, weight, stride, padding);
  if (x.numel() == 0) return at::zeros_like(x, at::MemoryFormat::Contiguous);
  // NCHW operands: the unfold + GEMM path is much slower on channels_last ones (RESULTS.md)
  return std::get<0>(at::_slow_conv2d_backward(nchw(grad), nchw(x), nchw(weight),
                                               {weight.size(2), weight.size(3)}, stride, padding,
                                               {true, false, false}));
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("conv2d", &conv2d_cpu);
  m.impl("conv2d_grad_input", &conv2d_grad_input_cpu);
}

}  // namespace deepdig_fast
