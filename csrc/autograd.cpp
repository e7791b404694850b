// Autograd kernels of the differentiable ops (max_pool2d), in C++ so that a training step's
// backward runs no Python: a Python backward per pool per step also fed Python's garbage
// collector, which then walked the whole heap every few hundred steps.
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

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

}  // namespace

TORCH_LIBRARY_IMPL(deepdig_fast, Autograd, m) {
  m.impl("max_pool2d", &max_pool2d_autograd);
}

}  // namespace deepdig_fast
