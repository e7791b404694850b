// Autograd kernels of the differentiable ops (max_pool2d, conv2d, binary_cross_entropy), in C++ so
// that a training step's backward runs no Python: a Python backward per pool per step also fed
// Python's garbage collector, which then walked the whole heap every few hundred steps.
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "train/binary_cross_entropy.h"

namespace deepdig_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class MaxPool2dFunction : public torch::autograd::Function<MaxPool2dFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               at::IntArrayRef kernel_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deepdig_fast::max_pool2d", "")
                               .typed<std::tuple<at::Tensor, at::Tensor>(
                                   const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                   at::IntArrayRef, at::IntArrayRef, bool)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, idx] = op.call(x, kernel_size, stride, padding, dilation, ceil_mode);
    ctx->save_for_backward({x, idx});
    ctx->saved_data["kernel_size"] = kernel_size.vec();
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["ceil_mode"] = ceil_mode;
    ctx->mark_non_differentiable({idx});
    return {out, idx};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("deepdig_fast::max_pool2d_backward", "")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef,
                              bool)>();
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& idx = saved[1];
    at::Tensor grad = grads[0].defined() ? grads[0] : at::zeros_like(idx, x.options());
    at::Tensor gi =
        op.call(grad, x, idx, ctx->saved_data["kernel_size"].toIntVector(),
                ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
                ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["ceil_mode"].toBool());
    return {gi, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> max_pool2d_autograd(const at::Tensor& x,
                                                       at::IntArrayRef kernel_size,
                                                       at::IntArrayRef stride,
                                                       at::IntArrayRef padding,
                                                       at::IntArrayRef dilation, bool ceil_mode) {
  auto out = MaxPool2dFunction::apply(x, kernel_size, stride, padding, dilation, ceil_mode);
  return {out[0], out[1]};
}

// conv2d: differentiable in x, weight and bias; the input's gradient through
// conv2d_grad_input (the point of the op), the weight's and bias's, when needed, through ATen's
// convolution_backward (the autoencoder trainings' classifier is frozen: there only the input's).
class Conv2dFunction : public torch::autograd::Function<Conv2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                            at::IntArrayRef padding) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deepdig_fast::conv2d", "")
                               .typed<at::Tensor(const at::Tensor&, const at::Tensor&,
                                                 const std::optional<at::Tensor>&, at::IntArrayRef,
                                                 at::IntArrayRef)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    at::Tensor out = op.call(x, weight, bias, stride, padding);
    ctx->save_for_backward({x, weight});
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto input_op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("deepdig_fast::conv2d_grad_input", "")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              at::IntArrayRef, at::IntArrayRef)>();
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    variable_list out(5);
    if (!grads[0].defined()) return out;
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    if (ctx->needs_input_grad(0)) out[0] = input_op.call(grads[0], x, weight, stride, padding);
    const bool want_w = ctx->needs_input_grad(1);
    const bool want_b = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    if (want_w || want_b) {
      const std::vector<int64_t> bias_sizes{weight.size(0)};
      auto [unused, gw, gb] = at::convolution_backward(
          grads[0], x, weight, want_b ? std::optional<at::IntArrayRef>(bias_sizes) : std::nullopt,
          stride, padding, {1, 1}, false, {0, 0}, 1, {false, want_w, want_b});
      out[1] = gw;
      out[2] = gb;
    }
    return out;
  }
};

at::Tensor conv2d_autograd(const at::Tensor& x, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                           at::IntArrayRef padding) {
  return Conv2dFunction::apply(x, weight, bias, stride, padding);
}

// binary_cross_entropy: differentiable in input (binary_cross_entropy_backward) and target.
class BinaryCrossEntropyFunction : public torch::autograd::Function<BinaryCrossEntropyFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input,
                            const at::Tensor& target) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("deepdig_fast::binary_cross_entropy", "")
                               .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input, target});
    return op.call(input, target);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("deepdig_fast::binary_cross_entropy_backward", "")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
    const auto saved = ctx->get_saved_variables();
    variable_list out(2);
    if (!grads[0].defined()) return out;
    if (ctx->needs_input_grad(0)) out[0] = op.call(grads[0], saved[0], saved[1]);
    if (ctx->needs_input_grad(1)) out[1] = bce_grad_target(grads[0], saved[0]);
    return out;
  }
};

at::Tensor binary_cross_entropy_autograd(const at::Tensor& input, const at::Tensor& target) {
  return BinaryCrossEntropyFunction::apply(input, target);
}

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, Autograd, m) {
  m.impl("max_pool2d", &max_pool2d_autograd);
  m.impl("conv2d", &conv2d_autograd);
  m.impl("binary_cross_entropy", &binary_cross_entropy_autograd);
}

}  // namespace deepdig_fast
