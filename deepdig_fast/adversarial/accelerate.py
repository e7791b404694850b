"""The training accelerator: a frozen, channels_last copy of the classifier to train against,
whose max pools and image convolutions run deepdig_fast's kernels (train_ops.max_pool2d, train_ops.conv2d's
input gradient). Optional: a classifier that cannot be copied trains contiguous, against itself;
values are the same either way (tests/test_conv2d.py, tests/test_max_pool2d.py)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from deepdig_fast import train_ops
from deepdig_fast.adversarial.autoencoders import Classifier
from deepdig_fast.hooks import eval_mode


@contextlib.contextmanager
def frozen(classifier: object) -> Iterator[None]:
    """Eval mode and requires_grad=False on the classifier's parameters; both restored afterwards.

    Gradients still flow through the classifier to its input, but none is computed for its weights.
    """
    with eval_mode(classifier):
        if not isinstance(classifier, nn.Module):
            yield
            return
        flags = [(p, p.requires_grad) for p in classifier.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


# The max_pool2d kernel runs a training copy's pools of at most this many channels: from 16 on it
# is not clearly faster than ATen's pool (benchmarks/bench_max_pool2d.py, RESULTS.md "The ops");
# the values are the same either way.
KERNEL_POOL_MAX_CHANNELS = 15


class KernelMaxPool2d(nn.MaxPool2d):
    """An nn.MaxPool2d computed by deepdig_fast's max_pool2d kernel (train_ops.max_pool2d) for inputs of at
    most KERNEL_POOL_MAX_CHANNELS channels on a CPU, by nn.MaxPool2d's own forward otherwise: the
    same values and gradients bit for bit either way (tests/test_max_pool2d.py), so the choice is
    free. Inputs the kernel does not take (not 4-d, not float32 / 64, not on a CPU) go to
    nn.MaxPool2d's forward too. A subclass, so a model that reads its pools' attributes still
    finds them; the training copy's pools become one in place (:func:`kernel_pools`)."""

    # a pool of a KernelConv2d's output returns that output's gradient in NCHW planes (_PLANES_GRAD)
    grad_to_planes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare()

    def _prepare(self) -> None:
        # checked and normalised once: the forward (twice per training step) calls the raw op
        self._settings = train_ops.pool_settings(
            self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dim() == 4
            and x.shape[1] <= KERNEL_POOL_MAX_CHANNELS
            and x.dtype in (torch.float32, torch.float64)
            and x.device.type == "cpu"
        ):
            if self.grad_to_planes and getattr(x, _PLANES_GRAD, False) and x.requires_grad and torch.is_grad_enabled():
                return PoolGradToPlanes.apply(x, self._settings)
            return torch.ops.deepdig_fast.max_pool2d(x, *self._settings)[0]
        return super().forward(x)


# Set on a KernelConv2d's output (a tensor attribute): its gradient goes to train_ops.conv2d's input
# gradient, which takes NCHW operands, so a KernelMaxPool2d that pools this very tensor returns
# its input gradient in NCHW planes instead of channels_last (PoolGradToPlanes): one transposing
# copy of the largest gradient of the paper's CNN's step less. Only a layout: values bit for bit.
_PLANES_GRAD = "_deepdig_grad_to_planes"


class PoolGradToPlanes(torch.autograd.Function):
    """train_ops.max_pool2d's output of a channels_last x whose gradient with respect to x comes back in
    NCHW planes: max_pool2d_backward returns its gradient in the layout of the x it is given and
    reads only that x's shape, dtype and layout, so the backward gives it an NCHW one (the CPU
    kernel then scatters the channels_last gradients straight into planes)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, settings: tuple) -> torch.Tensor:
        out, idx = torch.ops.deepdig_fast.max_pool2d(x, *settings)
        ctx.save_for_backward(idx)
        ctx.settings, ctx.shape = settings, x.shape
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (idx,) = ctx.saved_tensors
        planes = grad.new_empty(ctx.shape)  # NCHW, never read: the layout the gradient comes back in
        return torch.ops.deepdig_fast.max_pool2d_backward(grad, planes, idx, *ctx.settings), None


class KernelConv2d(nn.Conv2d):
    """An nn.Conv2d whose input gradient on a CPU takes train_ops.conv2d's route (ATen's unfold + GEMM
    instead of oneDNN's data-gradient kernel: benchmarks/bench_conv2d.py); the forward is
    F.conv2d's, bit for bit. Inputs the op does not take (not 4-d, not float32 / 64, not on a CPU)
    go to nn.Conv2d's own forward. A subclass, so a model that reads its convolutions' attributes
    (a Hugging Face ViT reads its patch embedding's weight dtype) still finds them; the training
    copy's convolutions become one in place (:func:`kernel_convs`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare()

    def _prepare(self) -> None:
        self._op_ok = _op_takes(self)  # anything else runs nn.Conv2d's forward
        self._op_stride = list(self.stride)
        self._op_padding = [] if isinstance(self.padding, str) else list(self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._op_ok and x.dim() == 4 and x.dtype in (torch.float32, torch.float64) and x.device.type == "cpu":
            out = torch.ops.deepdig_fast.conv2d(x, self.weight, self.bias, self._op_stride, self._op_padding)
            setattr(out, _PLANES_GRAD, True)  # a pool of `out` may hand back NCHW gradients
            return out
        return super().forward(x)


def _op_takes(m: nn.Conv2d) -> bool:
    """Whether train_ops.conv2d computes convolution m: groups 1, dilation 1, zero padding given as numbers."""
    return (
        m.groups == 1 and tuple(m.dilation) == (1, 1) and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    )


def takes_kernel_conv(m: nn.Conv2d) -> bool:
    """Whether the training copy gives convolution m train_ops.conv2d's input gradient: one input channel,
    where that gradient is faster than oneDNN's (with more input channels it is not:
    benchmarks/bench_conv2d.py, RESULTS.md "The ops"), and a convolution the op takes."""
    return m.in_channels == 1 and _op_takes(m)


_CONV_CHECK: list[bool] = []  # the answer of conv2d_agrees_with_autograd, once per process


def conv2d_agrees_with_autograd() -> bool:
    """Whether train_ops.conv2d_grad_input, which runs ATen's private at::_slow_conv2d_backward,
    gives torch's own input gradient (F.conv2d's, through autograd) on a small float64 case -- checked
    once per process, so that a torch release that changes or drops the private function makes the
    trainings fall back to ATen's public path (nn.Conv2d) with one warning instead of training on
    wrong gradients. tests/test_conv2d.py compares the op with autograd in depth."""
    if not _CONV_CHECK:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 1, 7, 6, generator=g, dtype=torch.float64)
        w = torch.rand(3, 1, 3, 2, generator=g, dtype=torch.float64)
        grad = torch.rand(2, 3, 3, 5, generator=g, dtype=torch.float64)
        try:
            ours = train_ops.conv2d_grad_input(grad, x, w, stride=(2, 1), padding=(0, 0))
            xg = x.clone().requires_grad_(True)
            with torch.enable_grad():
                (want,) = torch.autograd.grad(F.conv2d(xg, w, stride=(2, 1)), xg, grad)
            ok = ours.shape == want.shape and bool(torch.allclose(ours, want, rtol=1e-12, atol=1e-12))
            why = "differs from torch's input gradient"
        except Exception as exc:  # a missing or changed symbol: the op itself fails
            ok, why = False, f"failed ({type(exc).__name__}: {exc})"
        if not ok:
            warnings.warn(
                f"deepdig_fast's conv2d input gradient {why} under torch {torch.__version__}: the "
                f"autoencoder trainings use torch's own convolution instead (same values, slower)",
                RuntimeWarning,
                stacklevel=2,
            )
        _CONV_CHECK.append(ok)
    return _CONV_CHECK[0]


def kernel_convs(model: nn.Module) -> int:
    """Turn every plain nn.Conv2d of `model` (a private copy) that :func:`takes_kernel_conv` into a
    KernelConv2d, in place (every attribute stays); returns how many (none when the op does not
    give torch's gradient under this torch: :func:`conv2d_agrees_with_autograd`)."""
    convs = [m for m in model.modules() if type(m) is nn.Conv2d and takes_kernel_conv(m)]
    if convs and not conv2d_agrees_with_autograd():
        return 0
    for m in convs:
        m.__class__ = KernelConv2d
        cast(KernelConv2d, m)._prepare()
    return len(convs)


def kernel_pools(model: nn.Module) -> int:
    """Turn every plain nn.MaxPool2d of `model` (a private copy) into a KernelMaxPool2d, in place
    (every attribute stays); returns how many."""
    pools = [m for m in model.modules() if type(m) is nn.MaxPool2d and not m.return_indices]
    for m in pools:
        m.__class__ = KernelMaxPool2d
        cast(KernelMaxPool2d, m)._prepare()
    return len(pools)


@contextlib.contextmanager
def training_view(classifier: Classifier, layout: str) -> Iterator[tuple[Classifier, str]]:
    """(the classifier to train against, its layout): for "channels_last" a frozen eval-mode copy in
    that memory format whose max pools run through deepdig_fast's kernel (KernelMaxPool2d) and
    whose image convolutions take train_ops.conv2d's input gradient (KernelConv2d; the caller's model is
    not touched); otherwise the classifier itself, frozen (frozen). A model that
    cannot be copied trains contiguous, with one warning."""
    if layout == "channels_last":
        try:
            view = copy.deepcopy(classifier)
        except Exception as e:
            warnings.warn(
                f"autoencoder training runs against the contiguous classifier: it could not be copied "
                f"for channels_last ({type(e).__name__})",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            assert isinstance(view, nn.Module)
            view.eval().requires_grad_(False)
            view.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (4-d tensors; not in the stubs)
            kernel_pools(view)
            kernel_convs(view)
            yield view, layout
            return
    with frozen(classifier):
        yield classifier, "contiguous"
