// CUDA kernels of binary_cross_entropy (contract and formulas: train/binary_cross_entropy.h):
// the same passes as on a CPU, each one of ATen's CUDA element-wise kernels; no range check.
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "train/binary_cross_entropy.h"

namespace deepdig_fast {
namespace {

at::Tensor binary_cross_entropy_cuda(const at::Tensor& input, const at::Tensor& target) {
  const c10::cuda::CUDAGuard guard(input.device());
  return bce_forward(input, target);
}

at::Tensor binary_cross_entropy_backward_cuda(const at::Tensor& grad, const at::Tensor& input,
                                              const at::Tensor& target) {
  const c10::cuda::CUDAGuard guard(input.device());
  return bce_grad_input(grad, input, target);
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CUDA, m) {
  m.impl("binary_cross_entropy", &binary_cross_entropy_cuda);
  m.impl("binary_cross_entropy_backward", &binary_cross_entropy_backward_cuda);
}

}  // namespace deepdig_fast
