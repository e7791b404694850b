"""deepdig_fast's max_pool2d kernel against ATen's max pool with indices, forward and backward, at
the shape of the paper's MNIST CNN's first pool inside an autoencoder training step (batch 128, 10
channels, 26 x 26, 2 x 2 windows) and at a wider layer's (64 channels, 16 x 16), in both layouts.

  aten_<layout>_c<C>    F.max_pool2d(return_indices=True) + its backward through autograd
  kernel_<layout>_c<C>  train_ops.max_pool2d + its backward through autograd

Run:  .venv/bin/python -m pytest benchmarks/bench_max_pool2d.py -s
Env:  DEEPDIG_BENCH_DEVICE. Ratios (ATen's time over the kernel's) are printed at the end; nothing
is asserted on times (the outputs and gradients are compared: equal bit for bit).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from bench_utils import record, sync

from deepdig_fast import train_ops

SHAPES = {10: (128, 10, 26, 26), 64: (128, 64, 16, 16)}
LAYOUTS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def _inputs(device, layout, channels):
    shape = SHAPES[channels]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device).contiguous(memory_format=LAYOUTS[layout])
    grad = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2, generator=g).to(device)
    return x, grad.contiguous(memory_format=LAYOUTS[layout])


def _pool(which):
    if which == "aten":
        return lambda x: F.max_pool2d(x, 2, return_indices=True)
    return lambda x: train_ops.max_pool2d(x, 2)


@pytest.mark.benchmark(group="max_pool2d")
@pytest.mark.parametrize("channels", list(SHAPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("which", ["aten", "kernel"])
def test_forward_backward(benchmark, record_property, device, which, layout, channels):
    x, grad = _inputs(device, layout, channels)
    pool = _pool(which)
    out = {}

    def run():
        xi = x.detach().requires_grad_()
        y, idx = pool(xi)
        y.backward(grad)
        sync(device)
        out["r"] = (y.detach(), idx, xi.grad)

    benchmark.pedantic(run, rounds=30, iterations=1, warmup_rounds=3)
    y, idx, gx = out["r"]
    ref_y, ref_idx = F.max_pool2d(x, 2, return_indices=True)
    xr = x.detach().requires_grad_()
    F.max_pool2d(xr, 2).backward(grad)
    same = torch.equal(y, ref_y) and torch.equal(idx, ref_idx) and torch.equal(gx, xr.grad)
    record(benchmark, record_property, "max_pool2d", f"{which}_{layout}_c{channels}", bit_equal_to_aten=same)
