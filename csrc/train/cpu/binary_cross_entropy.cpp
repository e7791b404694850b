// CPU kernels of binary_cross_entropy (contract and formulas: train/binary_cross_entropy.h).
#include <torch/library.h>

#include "train/binary_cross_entropy.h"

namespace deepdig_fast {
namespace {

at::Tensor binary_cross_entropy_cpu(const at::Tensor& input, const at::Tensor& target) {
  return bce_forward(input, target);
}

at::Tensor binary_cross_entropy_backward_cpu(const at::Tensor& grad, const at::Tensor& input,
                                             const at::Tensor& target) {
  return bce_grad_input(grad, input, target);
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, CPU, m) {
  m.impl("binary_cross_entropy", &binary_cross_entropy_cpu);
  m.impl("binary_cross_entropy_backward", &binary_cross_entropy_backward_cpu);
}

}  // namespace deepdig_fast
