"""binary_cross_entropy / binary_cross_entropy_backward: F.binary_cross_entropy's value and gradients
within float tolerance, through autograd, and as the loss of the trainings against the classifier copy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from op_samples import stem_tests

from deepdig_fast import train_ops

DTYPES = [torch.float32, torch.float64]
OPS = ["binary_cross_entropy", "binary_cross_entropy_backward"]


test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES)


@pytest.mark.parametrize("dtype", DTYPES)
def test_autograd_matches_aten(dtype):
    """The loss and the input gradient as ATen's; the target's gradient is the derivative of the
    clamped loss (ATen's is +-inf at inputs 0 and 1, where the loss it computes is flat in t)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 7, 7, generator=g, dtype=dtype)
    x[0, 0, 0, :3] = torch.tensor([0.0, 1.0, 1e-30], dtype=dtype)
    t = torch.rand(32, 1, 7, 7, generator=g, dtype=dtype)
    a, ta = x.clone().requires_grad_(), t.clone().requires_grad_()
    b, tb = x.clone().requires_grad_(), t.clone().requires_grad_()
    loss, ref = train_ops.binary_cross_entropy(a, ta), F.binary_cross_entropy(b, tb)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(loss, ref, rtol=16 * eps, atol=0)
    (loss * 3).backward()
    (ref * 3).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=16 * eps, atol=0)
    finite = torch.isfinite(tb.grad)
    assert not finite[0, 0, 0, :2].any()  # ATen's at inputs 0 and 1
    # ATen takes one logarithm of a ratio, this op two clamped ones: cancellation near x = 1/2
    tol = dict(rtol=1e-5, atol=1e-9) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-17)
    torch.testing.assert_close(ta.grad[finite], tb.grad[finite], **tol)
    # d/dt = max(log(1 - x), -100) - max(log x, -100): 0 - (-100) at x = 0, -100 - 0 at x = 1
    want_edges = 3 * torch.tensor([100.0, -100.0], dtype=dtype) / x.numel()
    torch.testing.assert_close(ta.grad[0, 0, 0, :2], want_edges)


def test_gradcheck_float64():
    x = (torch.rand(3, 4, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    t = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(train_ops.binary_cross_entropy, (x, t))


def test_empty_input_is_nan_as_in_aten():
    x = torch.empty(0, 3)
    assert torch.isnan(train_ops.binary_cross_entropy(x, x)) and torch.isnan(F.binary_cross_entropy(x, x))


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: train_ops.binary_cross_entropy(torch.rand(3).half(), torch.rand(3).half()),
            TypeError,
            "input must be float32 or float64",
        ),
        (
            lambda: train_ops.binary_cross_entropy(torch.rand(3), torch.rand(4)),
            ValueError,
            r"target must match input \(shape \[3\]",
        ),
        (
            lambda: train_ops.binary_cross_entropy(torch.rand(3), torch.rand(3).double()),
            ValueError,
            "target must match input",
        ),
        (
            lambda: train_ops.binary_cross_entropy_backward(torch.ones(2), torch.rand(3), torch.rand(3)),
            ValueError,
            "grad must be a torch.float32 tensor of one value",
        ),
        (lambda: train_ops.binary_cross_entropy([0.5], torch.rand(1)), TypeError, "input must be a torch.Tensor"),
    ],
)
def test_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_inputs_outside_the_unit_interval_are_an_error_on_a_cpu():
    with pytest.raises(RuntimeError, match=r"input must lie in \[0, 1\] \(probabilities\), got values in \[-0.5, 1"):
        train_ops.binary_cross_entropy(torch.tensor([-0.5, 1.0]), torch.tensor([0.0, 1.0]))
