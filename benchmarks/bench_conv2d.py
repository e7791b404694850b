"""deepdig_fast's conv2d (ATen's forward; the input gradient by ATen's unfold + GEMM path) against
F.conv2d (oneDNN's forward and data gradient), forward + input gradient through autograd with frozen
weights -- what a convolution of the classifier copy costs in an autoencoder training step, in the
layout it has there (channels_last weights, batch 128):

  <which>_mnist      the paper's MNIST CNN's first layer: 1 -> 10 channels, 28 x 28, 3 x 3
  <which>_mnist5x5   1 -> 32 channels, 28 x 28, 5 x 5, padding 2
  <which>_rgb        a CIFAR-sized first layer: 3 -> 16 channels, 32 x 32, 3 x 3, padding 1
  <which>_rgb64      the CIFAR ResNet's stem: 3 -> 64 channels, 32 x 32, 3 x 3, padding 1
  <which>_vit_patch  a ViT's patch embedding: 3 -> 192 channels, 16 x 16, stride 16, batch 8 at 224 px
  <which>_10ch       the MNIST CNN's second layer (10 -> 10, 13 x 13)
The training copy uses the op for one input channel only (adversarial._takes_kernel_conv); the rgb,
rgb64 and 10ch rows show why not everywhere.

with <which> aten (F.conv2d) or op (train_ops.conv2d).

Run:  .venv/bin/python -m pytest benchmarks/bench_conv2d.py -s
Env:  DEEPDIG_BENCH_DEVICE. Ratios (ATen's time over the op's) are printed at the end; nothing is
asserted on times (the outputs are compared: equal; the input gradients: their largest difference).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bench_utils import record, sync

from deepdig_fast import train_ops

CASES = {  # x shape, weight shape, stride, padding
    "mnist": ((128, 1, 28, 28), (10, 1, 3, 3), 1, 0),
    "mnist5x5": ((128, 1, 28, 28), (32, 1, 5, 5), 1, 2),
    "rgb": ((128, 3, 32, 32), (16, 3, 3, 3), 1, 1),
    "rgb64": ((128, 3, 32, 32), (64, 3, 3, 3), 1, 1),
    "vit_patch": ((8, 3, 224, 224), (192, 3, 16, 16), 16, 0),
    "10ch": ((128, 10, 13, 13), (10, 10, 3, 3), 1, 0),
}


def _inputs(device, case):
    xs, ws, stride, pad = CASES[case]
    g = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    x = torch.rand(xs, generator=g).to(device)
    w = torch.randn(ws, generator=g).to(device).contiguous(memory_format=cl)
    b = torch.randn(ws[0], generator=g).to(device)
    out = F.conv2d(x, w, b, stride, pad)
    grad = torch.randn(out.shape, generator=g).to(device).contiguous(memory_format=cl)
    return x, w, b, stride, pad, grad


@pytest.mark.benchmark(group="conv2d")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("which", ["aten", "op"])
def test_forward_input_gradient(benchmark, record_property, device, which, case):
    x, w, b, stride, pad, grad = _inputs(device, case)
    if which == "aten":
        conv = lambda t: F.conv2d(t, w, b, stride, pad)  # noqa: E731
    else:
        conv = lambda t: train_ops.conv2d(t, w, b, stride, pad)  # noqa: E731
    out = {}

    def run():
        xi = x.detach().requires_grad_()
        y = conv(xi)
        y.backward(grad)
        sync(device)
        out["r"] = (y.detach(), xi.grad)

    benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=3)
    y, gx = out["r"]
    xr = x.detach().requires_grad_()
    ref = F.conv2d(xr, w, b, stride, pad)
    ref.backward(grad)
    diff = float((gx - xr.grad).abs().max())
    record(
        benchmark,
        record_property,
        "conv2d",
        f"{which}_{case}",
        output_equal=torch.equal(y, ref),
        grad_max_abs_diff=f"{diff:.1e}",
    )
