// CPU kernels of conv2d (contract: common/conv2d.h): ATen's convolution forward, and the input
// gradient through ATen's unfold + GEMM path on NCHW operands.
//
// Why not oneDNN's data gradient: for the first convolution of an image classifier with one input
// channel it costs 1.8-4.9x more (2.4 ms vs 0.38 ms for the MNIST CNN's 1 -> 10 channels at batch
// 128, one thread: benchmarks/bench_conv2d.py), and it was a third of an autoencoder training step.
// (With three input channels it depends on the shape: slower for 3 x 3 kernels, faster for a ViT's
// patch embedding; the training copy uses this op for one input channel only,
// adversarial._takes_kernel_conv.)
// Why not a hand-written kernel: direct NHWC loops written for this stem (AVX-512, pixel and
// channel blocking) were 2-5x slower than oneDNN's forward and than this path's gradient, so
// ATen's own code is used (benchmarks/RESULTS.md).
#include <torch/library.h>

#include <optional>

#include "common/conv2d.h"

namespace deepdig_fast {
namespace {

// t with NCHW strides exactly. For one channel (or a 1 x 1 plane) a channels_last tensor is also
// "contiguous", but ATen's unfold + GEMM path reads its strides as channels_last and then takes
// its slow channels_last branch (3.4 ms instead of 0.37 for the MNIST CNN's first convolution).
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
  // NCHW operands: the unfold + GEMM path is 1.6-9x slower on channels_last ones
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
