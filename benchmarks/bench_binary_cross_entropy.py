"""deepdig_fast's binary_cross_entropy against F.binary_cross_entropy, loss + input gradient through
autograd, at the reconstruction term of an autoencoder training step (an MNIST batch of 128: 100,352
probabilities):

  aten  F.binary_cross_entropy (ATen's CPU kernel: two scalar logarithms and a range check per element)
  op    train_ops.binary_cross_entropy (ATen's vectorised element-wise kernels, one autograd node)

Run:  .venv/bin/python -m pytest benchmarks/bench_binary_cross_entropy.py -s
Env:  DEEPDIG_BENCH_DEVICE. The ratio (ATen's time over the op's) is printed at the end; nothing is
asserted on times (the losses and gradients are compared: their largest relative difference).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bench_utils import record, sync

from deepdig_fast import train_ops

SHAPE = (128, 1, 28, 28)


@pytest.mark.benchmark(group="binary_cross_entropy")
@pytest.mark.parametrize("which", ["aten", "op"])
def test_loss_and_gradient(benchmark, record_property, device, which):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(SHAPE, generator=g).to(device)
    t = torch.rand(SHAPE, generator=g).to(device)
    bce = F.binary_cross_entropy if which == "aten" else train_ops.binary_cross_entropy
    out = {}

    def run():
        xi = x.detach().requires_grad_()
        loss = bce(xi, t)
        loss.backward()
        sync(device)
        out["r"] = (loss.detach(), xi.grad)

    benchmark.pedantic(run, rounds=50, iterations=1, warmup_rounds=5)
    loss, gx = out["r"]
    xr = x.detach().requires_grad_()
    ref = F.binary_cross_entropy(xr, t)
    ref.backward()
    rel = float(((gx - xr.grad).abs() / xr.grad.abs().clamp_min(1e-30)).max())
    record(
        benchmark,
        record_property,
        "binary_cross_entropy",
        which,
        loss_rel_diff=f"{abs(float(loss - ref)) / abs(float(ref)):.1e}",
        grad_max_rel_diff=f"{rel:.1e}",
    )
