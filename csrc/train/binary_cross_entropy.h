// binary_cross_entropy (mean) and its gradient, written once for the CPU and CUDA registrations.
//
// The op is torch.nn.functional.binary_cross_entropy(input, target) with reduction "mean" and no
// weight: the mean over all elements of -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100)),
// its gradient in x  grad * (x - t) / max(x * (1 - x), 1e-12f) / numel  (ATen's formula) and in t
// grad * (max(log(1 - x), -100) - max(log x, -100)) / numel. ATen's CPU kernel evaluates two scalar
// logarithms and a range check per element, a large share of an autoencoder training step
// (benchmarks/RESULTS.md, "The ops"); here every pass is one of ATen's vectorised
// element-wise kernels and autograd sees one node instead of ATen's two or a dozen of a
// composition (benchmarks/bench_binary_cross_entropy.py). Values equal ATen's up to float rounding
// (the same terms, summed in another order).
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"

namespace deepdig_fast {

inline void check_bce_args(const at::Tensor& input, const at::Tensor& target) {
  TORCH_CHECK(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
              "input must be float32 or float64, got ", input.scalar_type());
  TORCH_CHECK(target.scalar_type() == input.scalar_type(), "target must have the dtype of input (",
              input.scalar_type(), "), got ", target.scalar_type());
  TORCH_CHECK(target.sizes() == input.sizes(), "target must have the shape of input ",
              input.sizes(), ", got ", target.sizes());
  check_same_device(target, input, "target");
}

// max(log x, -100) and max(log(1 - x), -100), element-wise.
inline std::pair<at::Tensor, at::Tensor> bce_logs(const at::Tensor& input) {
  at::Tensor log_x = at::log(input).clamp_min_(-100);
  at::Tensor log_1mx = at::neg(input).log1p_().clamp_min_(-100);
  return {log_x, log_1mx};
}

// The loss: a 0-dim tensor. On a CPU, inputs outside [0, 1] are an error, as in ATen (one
// min/max pass); on a GPU they give NaN (a check would be a host sync on every call).
inline at::Tensor bce_forward(const at::Tensor& input, const at::Tensor& target) {
  check_bce_args(input, target);
  if (input.device().is_cpu() && input.numel() > 0) {
    const auto [lo, hi] = at::aminmax(input);
    TORCH_CHECK(lo.item<double>() >= 0 && hi.item<double>() <= 1,
                "input must lie in [0, 1] (probabilities), got values in [", lo.item<double>(),
                ", ", hi.item<double>(), "]");
  }
  auto [log_x, log_1mx] = bce_logs(input);
  // t * log x + (1 - t) * log(1 - x) = log(1 - x) + t * (log x - log(1 - x))
  log_x.sub_(log_1mx).mul_(target).add_(log_1mx);
  return log_x.mean().neg_();
}

inline at::Tensor bce_grad_input(const at::Tensor& grad, const at::Tensor& input,
                                 const at::Tensor& target) {
  check_bce_args(input, target);
  TORCH_CHECK(grad.numel() == 1, "grad must hold one value (the loss's gradient), got shape ",
              grad.sizes());
  // ATen's epsilon is the float 1e-12 (9.9999999600e-13), in float64 too
  at::Tensor denom = at::neg(input).add_(1).mul_(input).clamp_min_(static_cast<double>(1e-12f));
  return at::sub(input, target).div_(denom).mul_(grad.reshape({}) / input.numel()).contiguous();
}

inline at::Tensor bce_grad_target(const at::Tensor& grad, const at::Tensor& input) {
  auto [log_x, log_1mx] = bce_logs(input);
  return log_1mx.sub_(log_x).mul_(grad.reshape({}) / input.numel());
}

}  // namespace deepdig_fast
