"""conv2d / conv2d_grad_input: F.conv2d's forward bit for bit, its gradients within float tolerance
(the input's by ATen's unfold + GEMM path on a CPU), through autograd, and in the classifier copy
the autoencoder trainings use."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from op_samples import stem_tests
from torch import nn

from deepdig_fast import train_ops

DTYPES = [torch.float32, torch.float64]
OPS = ["conv2d", "conv2d_grad_input"]


test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES, cuda=False)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, stride, padding", [((1, 10), 1, 0), ((3, 6), 2, 1), ((2, 4), (1, 2), (2, 0))])
def test_autograd_matches_f_conv2d(shape, stride, padding, dtype, layout):
    """The same output bit for bit; the input, weight and bias gradients within float tolerance
    (float64: the same as ATen's to a few ulps)."""
    c, o = shape
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, c, 13, 12, generator=g, dtype=dtype).contiguous(memory_format=layout)
    w = torch.randn(o, c, 3, 3, generator=g, dtype=dtype).contiguous(memory_format=layout)
    b = torch.randn(o, generator=g, dtype=dtype)
    ours = [t.clone().requires_grad_() for t in (x, w, b)]
    ref = [t.clone().requires_grad_() for t in (x, w, b)]
    out = train_ops.conv2d(*ours, stride, padding)
    want = F.conv2d(*ref, stride=stride, padding=padding)
    assert torch.equal(out, want)
    grad = torch.randn(out.shape, generator=g, dtype=dtype)
    out.backward(grad)
    want.backward(grad)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    for a, r in zip(ours, ref):
        torch.testing.assert_close(a.grad, r.grad, **tol)


def test_only_the_needed_gradients_are_computed():
    """A frozen layer (the trainings' classifier): only the input's gradient; a frozen input: only
    the weight's and bias's."""
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    w, b = torch.randn(4, 1, 3, 3), torch.randn(4)
    train_ops.conv2d(x, w, b).sum().backward()
    assert x.grad is not None and w.grad is None and b.grad is None
    x2, w2, b2 = torch.rand(2, 1, 8, 8), torch.randn(4, 1, 3, 3, requires_grad=True), torch.randn(4, requires_grad=True)
    train_ops.conv2d(x2, w2, b2).sum().backward()
    torch.testing.assert_close(b2.grad, torch.full((4,), 36.0 * 2))
    assert w2.grad.shape == w2.shape


def test_gradcheck_float64():
    x = torch.randn(2, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: train_ops.conv2d(x, w, b, (2, 1), 1), (x, w, b))


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (
            lambda: train_ops.conv2d(torch.randn(2, 4, 4), torch.randn(1, 1, 3, 3)),
            ValueError,
            r"x must have shape \[N, C, H, W\]",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 4, 4).half(), torch.randn(1, 1, 3, 3).half()),
            TypeError,
            "x must be float32 or float64",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3).double()),
            TypeError,
            "weight must be torch.float32",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 2, 4, 4), torch.randn(1, 1, 3, 3)),
            ValueError,
            "weight must have x's 2 input channels",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3), torch.randn(2)),
            ValueError,
            r"bias must be None or a torch.float32 tensor of shape \[1\]",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3), stride=0),
            ValueError,
            "stride must be an int >= 1",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3), padding=-1),
            ValueError,
            "padding must be an int >= 0",
        ),
        (
            lambda: train_ops.conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3)),
            ValueError,
            "smaller than the kernel",
        ),
        (
            lambda: train_ops.conv2d_grad_input(
                torch.randn(1, 1, 3, 3), torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
            ),
            ValueError,
            r"output shape \[1, 1, 2, 2\]",
        ),
    ],
)
def test_bad_arguments(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_kernel_checks_direct_calls():
    """The raw op checks what the wrapper checks (for callers of torch.ops.deepdig_fast.conv2d)."""
    with pytest.raises(RuntimeError, match="weight must have x's 2 input channels"):
        torch.ops.deepdig_fast.conv2d(torch.randn(1, 2, 4, 4), torch.randn(1, 1, 3, 3), None, [1, 1], [0, 0])
    with pytest.raises(RuntimeError, match="grad must have the forward's output shape"):
        torch.ops.deepdig_fast.conv2d_grad_input(
            torch.randn(1, 1, 3, 3), torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3), [1, 1], [0, 0]
        )


def test_kernel_convs_in_the_training_copy_change_nothing_but_the_gradient_order():
    """kernel_convs turns exactly the convolutions train_ops.conv2d speeds up (one input channel; groups
    1, dilation 1, numeric zero padding) of a private copy into KernelConv2d, in place; logits stay
    bit for bit, input gradients within tolerance; the original model is untouched."""
    from deepdig_fast.adversarial.accelerate import KernelConv2d, kernel_convs
    from deepdig_fast.models import MnistCNN

    torch.manual_seed(0)
    model = MnistCNN().eval()
    model.extra = nn.Sequential(  # swapped: 1 -> 32 (5 x 5); not: 3 in, 4 in, grouped, dilated, string padding
        nn.Conv2d(1, 32, 5),
        nn.Conv2d(3, 16, 3),
        nn.Conv2d(4, 4, 3),
        nn.Conv2d(2, 2, 3, groups=2),
        nn.Conv2d(1, 1, 3, dilation=2),
        nn.Conv2d(1, 1, 3, padding="same"),
    )
    ours = copy.deepcopy(model).requires_grad_(False)
    assert kernel_convs(ours) == 2
    assert isinstance(ours.features[0], KernelConv2d) and type(ours.features[3]) is nn.Conv2d
    assert [isinstance(m, KernelConv2d) for m in ours.extra] == [True] + [False] * 5
    assert not any(isinstance(m, KernelConv2d) for m in model.modules())  # the original is untouched
    assert all(p.requires_grad for p in model.parameters())
    # every attribute stays (a model may read them: a Hugging Face ViT reads its patch
    # embedding's weight dtype)
    conv = ours.features[0]
    assert conv.weight is not None and conv.in_channels == 1 and conv.kernel_size == (3, 3)
    x = torch.rand(5, 1, 28, 28)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = ours(a), model.requires_grad_(False)(b)
    assert torch.equal(out, ref)
    g = torch.randn(out.shape)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)


def test_kernel_conv_passes_other_inputs_to_nn_conv2d():
    from deepdig_fast.adversarial.accelerate import KernelConv2d

    torch.manual_seed(0)
    layer = KernelConv2d(1, 2, 3)
    conv = nn.Conv2d(1, 2, 3)
    conv.load_state_dict(layer.state_dict())
    x = torch.rand(2, 1, 6, 6)
    assert torch.equal(layer(x), conv(x))
    assert type(layer(x.requires_grad_()).grad_fn).__name__ == "CppFunction"  # the op's node
    h = torch.rand(1, 6, 6)  # 3-d input: nn.Conv2d's unbatched form, not the op's
    assert torch.equal(layer(h), conv(h))


def test_training_copy_of_a_model_that_reads_its_layers_attributes():
    """A model whose forward reads its convolution's and pool's attributes trains against the copy
    (the copy's layers are subclasses of the originals' classes, changed in place)."""
    from deepdig_fast.adversarial import AdversarialConfig, train_adversarial_autoencoder

    class Reads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.pool = nn.MaxPool2d(2)
            self.head = nn.Linear(4 * 3 * 3, 3)

        def forward(self, x):
            x = x.to(self.conv.weight.dtype)  # as transformers' ViT does
            assert self.pool.kernel_size == 2
            return self.head(self.pool(torch.relu(self.conv(x))).flatten(1))

    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    cfg = AdversarialConfig(steps=3, batch_size=8, compile=False, channels_last=True)
    _, hist = train_adversarial_autoencoder(Reads().eval(), x, 1, cfg)
    assert hist.layout == "channels_last" and len(hist.loss) == 1


def test_kernel_conv_built_with_settings_the_op_does_not_take_runs_nn_conv2d():
    from deepdig_fast.adversarial.accelerate import KernelConv2d

    torch.manual_seed(0)
    for kw in ({"padding": "same"}, {"dilation": 2}, {"groups": 2}):
        layer = KernelConv2d(2, 2, 3, **kw)
        conv = nn.Conv2d(2, 2, 3, **kw)
        conv.load_state_dict(layer.state_dict())
        x = torch.rand(2, 2, 9, 9, requires_grad=True)
        out = layer(x)
        assert torch.equal(out, conv(x)) and type(out.grad_fn).__name__ != "CppFunction", kw


def test_the_private_aten_path_is_checked_and_the_trainings_fall_back_without_it(monkeypatch):
    """conv2d_grad_input runs ATen's private at::_slow_conv2d_backward. The training copy uses it only
    after checking it against torch's own input gradient once per process: under this torch it
    agrees; a torch that changed it (simulated: a wrong gradient, then a missing symbol) gets
    nn.Conv2d's public path instead, with one warning naming the reason."""
    import deepdig_fast.adversarial.accelerate as acc
    from deepdig_fast.models import MnistCNN

    monkeypatch.setattr(acc, "_CONV_CHECK", [])
    assert acc.conv2d_agrees_with_autograd() is True
    for broken, reason in (
        (lambda grad, x, w, stride, padding: torch.zeros_like(x), "differs from torch's input gradient"),
        (lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no such op")), "failed \\(RuntimeError: no such op\\)"),
    ):
        monkeypatch.setattr(acc, "_CONV_CHECK", [])
        monkeypatch.setattr(acc.train_ops, "conv2d_grad_input", broken)
        model = MnistCNN().eval()
        with pytest.warns(RuntimeWarning, match=reason):
            assert acc.kernel_convs(model) == 0
        assert not any(isinstance(m, acc.KernelConv2d) for m in model.modules())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # decided once per process: no second warning
            assert acc.kernel_convs(MnistCNN()) == 0
