// CUDA kernels of conv2d (contract: common/conv2d.h): ATen's convolution (cuDNN) and its input
// gradient; only the CPU routes the input gradient differently.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>

#include "common/conv2d.h"

namespace deepdig_fast {
namespace {

at::Tensor conv2d_cuda(const at::Tensor& x, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                       at::IntArrayRef padding) {
  check_conv_args(x, weight, stride, padding);
  check_bias(bias, x, weight);
  const c10::cuda::CUDAGuard guard(x.device());
  return at::convolution(x, weight, bias, stride, padding, {1, 1}, false, {0, 0}, 1);
}

at::Tensor conv2d_grad_input_cuda(const at::Tensor& grad, const at::Tensor& x,
                                  const at::Tensor& weight, at::IntArrayRef stride,
                                  at::IntArrayRef padding) {
  check_conv_grad(grad, x, weight, stride, padding);
  const c10::cuda::CUDAGuard guard(x.device());
  if (x.numel() == 0) return at::zeros_like(x);
  return std::get<0>(at::convolution_backward(grad, x, weight, std::nullopt, stride, padding,
                                              {1, 1}, false, {0, 0}, 1, {true, false, false}))
      .contiguous();  // NCHW, as on a CPU
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("conv2d", &conv2d_cuda);
  m.impl("conv2d_grad_input", &conv2d_grad_input_cuda);
}

}  // namespace deepdig_fast
