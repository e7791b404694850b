"""max_pool2d / max_pool2d_backward: ATen's max pool bit for bit (values, winners, gradients), in
both layouts, through autograd, and in the classifier copy the autoencoder trainings use."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from op_samples import stem_tests

from deepdig_fast import train_ops

DTYPES = [torch.float32, torch.float64]
OPS = ["max_pool2d", "max_pool2d_backward"]


test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "settings", [(2, 2, 0, 1, False), (3, 2, 1, 1, False), (3, 1, 1, 1, True), (3, 2, 1, 2, True), (2, 3, 0, 1, True)]
)
def test_gradient_is_atens_bit_for_bit(settings, dtype, layout):
    """Through autograd: the same outputs, and the same input gradient (overlapping windows add
    several gradients to one element: in ATen's order), laid out like the input."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 12, 11, generator=g, dtype=dtype).contiguous(memory_format=layout)
    x[0, 0, :4, :4] = 0.5  # ties
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, _ = train_ops.max_pool2d(a, *settings)
    ref = F.max_pool2d(b, *settings)
    assert torch.equal(out, ref)
    grad = torch.randn(out.shape, generator=g, dtype=dtype)
    out.backward(grad)
    ref.backward(grad)
    assert torch.equal(a.grad, b.grad)
    assert a.grad.is_contiguous(memory_format=layout)
    if layout == torch.channels_last:
        assert out.is_contiguous(memory_format=layout) and not out.is_contiguous()


def test_gradcheck_float64():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: train_ops.max_pool2d(t, 3, 2, 1)[0], (x,))


def test_indices_are_not_differentiable():
    out, idx = train_ops.max_pool2d(torch.randn(1, 2, 4, 4, requires_grad=True), 2)
    assert out.requires_grad and not idx.requires_grad and idx.dtype == torch.int64


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: train_ops.max_pool2d(torch.randn(2, 4, 4), 2), ValueError, r"x must have shape \[N, C, H, W\]"),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4).half(), 2), TypeError, "x must be float32 or float64"),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4), 0), ValueError, "kernel_size must be an int >= 1"),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4), 2, (1, 2, 3)), ValueError, "stride must be an int >= 1"),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4), 2, 2, 2), ValueError, "padding must be at most half"),
        (
            lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4), 2, dilation=0),
            ValueError,
            "dilation must be an int >= 1",
        ),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 2, 2), 3), ValueError, "too small for this pool"),
        (lambda: train_ops.max_pool2d(torch.randn(1, 1, 4, 4), 2, ceil_mode=1), TypeError, "ceil_mode must be a bool"),
    ],
)
def test_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_backward_argument_errors():
    x = torch.randn(2, 3, 6, 6)
    out, idx = train_ops.max_pool2d(x, 2)
    with pytest.raises(ValueError, match=r"output shape \[2, 3, 3, 3\]"):
        train_ops.max_pool2d_backward(out[:, :, :2], x, idx, 2)
    with pytest.raises(TypeError, match="indices int64"):
        train_ops.max_pool2d_backward(out, x, idx.int(), 2)
    bad = idx.clone()
    bad[0, 0, 0, 0] = 36
    with pytest.raises(RuntimeError, match=r"indices must lie in \[0, 36\)"):  # checked by the kernel
        torch.ops.deepdig_fast.max_pool2d_backward(out, x, bad, [2, 2], [2, 2], [0, 0], [1, 1], False)


def test_kernel_pools_in_the_training_copy_change_nothing():
    """The autoencoder trainings' classifier copy (channels_last, pools through the kernel) gives the
    same logits and input gradients as the same copy with ATen's pools, bit for bit."""
    from deepdig_fast.adversarial.accelerate import KernelMaxPool2d, kernel_pools
    from deepdig_fast.models import MnistCNN

    torch.manual_seed(0)
    model = MnistCNN().eval().requires_grad_(False)
    aten = copy.deepcopy(model).to(memory_format=torch.channels_last)
    ours = copy.deepcopy(aten)
    assert kernel_pools(ours) == 2
    assert sum(isinstance(m, KernelMaxPool2d) for m in ours.modules()) == 2
    assert not any(isinstance(m, KernelMaxPool2d) for m in model.modules())  # the original is untouched
    x = torch.rand(64, 1, 28, 28)
    grads = []
    for net in (aten, ours):
        xi = x.clone().requires_grad_()
        logits = net(xi)
        logits.softmax(1)[:, 3].sum().backward()
        grads.append((logits.detach(), xi.grad))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1], grads[1][1])
    # a pool the kernel does not take (an unbatched input) falls back to torch's
    pool = KernelMaxPool2d(2)
    z = torch.randn(3, 6, 6)
    assert torch.equal(pool(z), F.max_pool2d(z, 2))


def test_first_pool_hands_nchw_planes_to_the_first_convolution(monkeypatch):
    """In the training copy a pool of a one-channel convolution's output (the MNIST CNN's first
    layer) returns that output's gradient in NCHW planes -- the layout train_ops.conv2d's input gradient
    takes, so no transposing copy -- with the input gradients and logits of the plain kernel path
    bit for bit; a pool of any other tensor keeps channels_last."""
    import deepdig_fast.adversarial as adv
    from deepdig_fast.models import MnistCNN

    torch.manual_seed(0)
    model = MnistCNN().eval()
    x = torch.rand(32, 1, 28, 28)
    runs = {}
    for planes in (True, False):
        monkeypatch.setattr(adv.accelerate.KernelMaxPool2d, "grad_to_planes", planes)
        with adv.accelerate.training_view(model, "channels_last") as (view, _):
            seen: dict[str, bool] = {}

            def watch(name, seen=seen):  # records whether the gradient of the layer's output is NCHW
                def record(grad):
                    seen[name] = grad.is_contiguous()

                def hook(module, inputs, out):
                    out.register_hook(record)

                return hook

            view.features[0].register_forward_hook(watch("conv1"))
            view.features[3].register_forward_hook(watch("conv2"))
            xi = x.clone().requires_grad_()
            logits = view(xi)
            logits.softmax(1)[:, 3].sum().backward()
            runs[planes] = (logits.detach(), xi.grad, seen)
    assert runs[True][2] == {"conv1": True, "conv2": False}  # only the first layer's gradient in planes
    assert runs[False][2] == {"conv1": False, "conv2": False}
    assert torch.equal(runs[True][0], runs[False][0]) and torch.equal(runs[True][1], runs[False][1])


def test_kernel_pool_takes_few_channels_and_leaves_wider_layers_to_aten():
    """The training copy's pool runs the kernel up to KERNEL_POOL_MAX_CHANNELS channels, ATen's pool
    above (where ATen is as fast or faster: benchmarks/bench_max_pool2d.py); the values and gradients
    are the same bit for bit either way, so only the autograd node tells which ran."""
    from deepdig_fast.adversarial.accelerate import KERNEL_POOL_MAX_CHANNELS, KernelMaxPool2d

    pool = KernelMaxPool2d(2)
    for c, ours in ((KERNEL_POOL_MAX_CHANNELS, True), (KERNEL_POOL_MAX_CHANNELS + 1, False)):
        x = torch.randn(2, c, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
        out = pool(x)
        assert torch.equal(out, F.max_pool2d(x, 2))
        node = type(out.grad_fn).__name__  # the kernel's C++ autograd node, or ATen's
        assert (node == "CppFunction") == ours and (node == "MaxPool2DWithIndicesBackward0") != ours, (c, node)


@pytest.mark.parametrize("channels", [10, 16, 32])
def test_nhwc_kernel_whole_blocks_of_channels(channels):
    """Layers of 16 and 32 channels (whole blocks of the NHWC kernel) and 10 (a partial one), on
    random data with NaNs: ATen's values and winners."""
    g = torch.Generator().manual_seed(channels)
    x = torch.randn(3, channels, 10, 10, generator=g).contiguous(memory_format=torch.channels_last)
    x[0, 1, 2, 3] = float("nan")
    out, idx = train_ops.max_pool2d(x, 2)
    ref, ref_idx = F.max_pool2d(x, 2, return_indices=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(idx, ref_idx)
