"""The training accelerator's operators: what the autoencoder trainings run through to be faster
on a CPU, none of them part of the method. Public wrappers, fake (shape-only) kernels and argument
checks, as in deepdig_fast/ops.py; the plain-PyTorch twins are in deepdig_fast/reference.py, the
kernels in csrc/train/.

Stems:
  max_pool2d        max_pool2d, max_pool2d_backward   (the pools of the classifier copy the
                                                       autoencoder trainings run against)
  conv2d            conv2d, conv2d_grad_input         (its image convolutions: ATen's forward, the
                                                       input gradient by ATen's unfold + GEMM; CPU only)
  binary_cross_entropy  binary_cross_entropy,         (the trainings' two BCE terms, vectorised)
                    binary_cross_entropy_backward

Every use is optional: adversarial.accelerate swaps them in only where they compute the same
values as ATen, and trains against the plain classifier otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepdig_fast import _ext  # noqa: F401  (loads the extension: registers torch.ops.deepdig_fast)

_ops = torch.ops.deepdig_fast

#: ops with CPU kernels only: the library calls them on a CPU only (adversarial.accelerate)
CPU_ONLY = ("conv2d", "conv2d_grad_input")


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


# --------------------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------------------


def _pair(v, name: str, low: int) -> list[int]:
    vals = [v, v] if isinstance(v, int) and not isinstance(v, bool) else v
    if (
        not isinstance(vals, (tuple, list))
        or len(vals) != 2
        or not all(isinstance(u, int) and not isinstance(u, bool) and u >= low for u in vals)
    ):
        raise ValueError(f"{name} must be an int >= {low} or two of them (height, width), got {v!r}")
    return [int(u) for u in vals]


def _pool_args(x: Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> tuple:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {_shape(x)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    k, s, p, d, ceil_mode = pool_settings(kernel_size, stride, padding, dilation, ceil_mode)
    out = [_pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2)]
    if x.shape[2] == 0 or x.shape[3] == 0 or min(out) < 1:
        raise ValueError(f"x's plane {tuple(x.shape[2:])} is too small for this pool (output {tuple(out)})")
    return (k, s, p, d, ceil_mode), [x.shape[0], x.shape[1], *out]


def pool_settings(kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> tuple:
    """(kernel_size, stride, padding, dilation, ceil_mode) as the raw ops take them ([h, w] lists;
    stride None is kernel_size), checked as max_pool2d checks them, for callers that pool many
    inputs with the same settings and call ``torch.ops.deepdig_fast.max_pool2d`` directly."""
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {tuple(k)}, got {tuple(p)}")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {type(ceil_mode).__name__}")
    return k, s, p, d, ceil_mode


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length along one dimension (ATen's pooling_output_shape; csrc/train/max_pool2d.h)."""
    span = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _nhwc(x: Tensor) -> bool:
    """The kernels' layout rule: channels_last when x is channels_last and not also contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    """``F.max_pool2d(x, ..., return_indices=True)`` bit for bit, differentiable in x.

    Args:
        x: [N, C, H, W] float32 / float64; NCHW or channels_last (the outputs follow its layout).
        kernel_size, stride (default kernel_size), padding, dilation: an int or (height, width);
        padding at most half the kernel; ceil_mode: as in torch.nn.MaxPool2d.
    Returns:
        out: [N, C, OH, OW] the window maxima (the first maximum wins among equal values, a NaN
        always); indices: [N, C, OH, OW] int64, the winners' positions ih * W + iw in their plane.
    The gradient (max_pool2d_backward) adds each output's gradient to its winner, in output order,
    as ATen's does, so it is bit for bit ATen's too.
    """
    settings, _ = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _ops.max_pool2d(x, *settings)


def max_pool2d_backward(
    grad: Tensor, x: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False
) -> Tensor:
    """The gradient of :func:`max_pool2d` with respect to x: [N, C, H, W] in x's layout, each element
    the sum of the gradients of the outputs it won (0 for none), added in output order.

    Args:
        grad, indices: [N, C, OH, OW], the gradient of max_pool2d's ``out`` and its ``indices``
        (int64 in [0, H * W)); x: the forward's input (its shape, dtype and layout are used); the
        pool's settings as given to max_pool2d.
    """
    settings, want = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    if not isinstance(grad, Tensor) or not isinstance(indices, Tensor):
        raise TypeError("grad and indices must be torch.Tensors")
    if _shape(grad) != want or _shape(indices) != want:
        raise ValueError(
            f"grad and indices must have the pool's output shape {want}, got {_shape(grad)}, {_shape(indices)}"
        )
    if grad.dtype != x.dtype or indices.dtype != torch.int64:
        raise TypeError(f"grad must be {x.dtype} and indices int64, got {grad.dtype} and {indices.dtype}")
    return _ops.max_pool2d_backward(grad, x, indices, *settings)


@torch.library.register_fake("deepdig_fast::max_pool2d")
def _max_pool2d_fake(x, kernel_size, stride, padding, dilation, ceil_mode):
    shape = [x.shape[0], x.shape[1]] + [
        _pool_out(x.shape[2 + i], kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2)
    ]
    fmt = torch.channels_last if _nhwc(x) else torch.contiguous_format
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    return out, torch.empty(shape, dtype=torch.int64, device=x.device, memory_format=fmt)


@torch.library.register_fake("deepdig_fast::max_pool2d_backward")
def _max_pool2d_backward_fake(grad, x, indices, kernel_size, stride, padding, dilation, ceil_mode):
    fmt = torch.channels_last if _nhwc(x) else torch.contiguous_format
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)


# The autograd kernel of max_pool2d is C++ (csrc/train/autograd.cpp): no Python runs in a backward.


# --------------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------------


def _conv_args(x: Tensor, weight: Tensor, stride, padding) -> tuple[list[int], list[int], list[int]]:
    """(stride, padding, output shape) after checking x, weight and the settings as the kernel does."""
    for t, name, shape in ((x, "x", "[N, C, H, W]"), (weight, "weight", "[O, C, KH, KW]")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape {shape}, got {_shape(t)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if weight.dtype != x.dtype or weight.device != x.device:
        raise TypeError(f"weight must be {x.dtype} on {x.device}, got {weight.dtype} on {weight.device}")
    if x.device.type != "cpu":
        raise ValueError(f"x must be on the CPU: conv2d runs on the CPU only (F.conv2d is the GPU's), got {x.device}")
    if weight.shape[1] != x.shape[1] or min(weight.shape) < 1:
        raise ValueError(
            f"weight must have x's {x.shape[1]} input channels in dim 1 (and no empty dim), got {_shape(weight)}"
        )
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    out = [(x.shape[2 + i] + 2 * p[i] - weight.shape[2 + i]) // s[i] + 1 for i in range(2)]
    if x.shape[2] == 0 or x.shape[3] == 0 or any(x.shape[2 + i] + 2 * p[i] < weight.shape[2 + i] for i in range(2)):
        raise ValueError(
            f"x's plane {tuple(x.shape[2:])} padded by {tuple(p)} is smaller than the kernel {tuple(weight.shape[2:])}"
        )
    return s, p, [x.shape[0], weight.shape[0], *out]


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1, zero padding): the same
    forward bit for bit (ATen's own convolution), differentiable in x, weight and bias, with the
    input gradient from :func:`conv2d_grad_input`.

    Args:
        x: [N, C, H, W] float32 / float64; weight: [O, C, KH, KW]; bias: [O] or None;
        stride (>= 1), padding (>= 0): an int or (height, width).
    Returns:
        [N, O, OH, OW], laid out as F.conv2d lays it out.
    """
    s, p, _ = _conv_args(x, weight, stride, padding)
    if bias is not None and (
        not isinstance(bias, Tensor) or _shape(bias) != [weight.shape[0]] or bias.dtype != x.dtype
    ):
        got = f"{_shape(bias)} {bias.dtype}" if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias must be None or a {x.dtype} tensor of shape [{weight.shape[0]}], got {got}")
    return _ops.conv2d(x, weight, bias, s, p)


def conv2d_grad_input(grad: Tensor, x: Tensor, weight: Tensor, stride=1, padding=0) -> Tensor:
    """The gradient of :func:`conv2d` with respect to x: [N, C, H, W], contiguous. On a CPU ATen's
    unfold + GEMM path on NCHW operands (for one input channel faster than oneDNN's data-gradient
    kernel, which F.conv2d's backward uses: benchmarks/RESULTS.md, "The ops"); CPU only. Equal to
    F.conv2d's input gradient up to the order of float sums.

    Args:
        grad: [N, O, OH, OW], the gradient of conv2d's output; x, weight, stride, padding: the forward's.
    """
    s, p, want = _conv_args(x, weight, stride, padding)
    if not isinstance(grad, Tensor) or _shape(grad) != want or grad.dtype != x.dtype:
        got = f"{_shape(grad)} {grad.dtype}" if isinstance(grad, Tensor) else type(grad).__name__
        raise ValueError(f"grad must be a {x.dtype} tensor of the forward's output shape {want}, got {got}")
    return _ops.conv2d_grad_input(grad, x, weight, s, p)


@torch.library.register_fake("deepdig_fast::conv2d")
def _conv2d_fake(x, weight, bias, stride, padding):
    return torch.nn.functional.conv2d(x, weight, bias, stride, padding)  # ATen's own shape and layout


@torch.library.register_fake("deepdig_fast::conv2d_grad_input")
def _conv2d_grad_input_fake(grad, x, weight, stride, padding):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------------------------------
# binary_cross_entropy
# --------------------------------------------------------------------------------------------------


def _bce_args(input: Tensor, target: Tensor) -> None:
    for t, name in ((input, "input"), (target, "target")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if input.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"input must be float32 or float64, got {input.dtype}")
    if target.shape != input.shape or target.dtype != input.dtype:
        raise ValueError(
            f"target must match input (shape {_shape(input)}, {input.dtype}), got {_shape(target)}, {target.dtype}"
        )


def binary_cross_entropy(input: Tensor, target: Tensor) -> Tensor:
    """``F.binary_cross_entropy(input, target)`` (mean, no weight): the mean over all elements of
    -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100)), a 0-dim tensor, differentiable in both
    (the target's gradient is that of the clamped logarithms). ATen's value up to float rounding; its
    CPU kernel takes two scalar logarithms per element, this op ATen's vectorised ones.

    Args:
        input: probabilities in [0, 1] (checked on a CPU; elsewhere values outside give NaN), float32 /
        float64, any shape; target: the same shape and dtype. An empty input gives NaN, as in ATen.
    """
    _bce_args(input, target)
    return _ops.binary_cross_entropy(input, target)


def binary_cross_entropy_backward(grad: Tensor, input: Tensor, target: Tensor) -> Tensor:
    """The gradient of :func:`binary_cross_entropy` with respect to input, ATen's formula
    grad * (x - t) / max(x * (1 - x), 1e-12) / numel; contiguous, input's shape.

    Args:
        grad: the loss's gradient (one value); input, target: the forward's.
    """
    _bce_args(input, target)
    if not isinstance(grad, Tensor) or grad.numel() != 1 or grad.dtype != input.dtype:
        got = f"{_shape(grad)} {grad.dtype}" if isinstance(grad, Tensor) else type(grad).__name__
        raise ValueError(f"grad must be a {input.dtype} tensor of one value, got {got}")
    return _ops.binary_cross_entropy_backward(grad, input, target)


@torch.library.register_fake("deepdig_fast::binary_cross_entropy")
def _bce_fake(input, target):
    return torch.empty((), dtype=input.dtype, device=input.device)


@torch.library.register_fake("deepdig_fast::binary_cross_entropy_backward")
def _bce_backward_fake(grad, input, target):
    return torch.empty(input.shape, dtype=input.dtype, device=input.device)


# The autograd kernels of conv2d and binary_cross_entropy are C++ too (csrc/train/autograd.cpp).
