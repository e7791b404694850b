"""Shared test helpers: a device parametrization that skips CUDA without a GPU, and small models."""
from __future__ import annotations

import pytest
import torch


def _cuda_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    from deepdig_fast import build_info

    return "CUDA" in build_info()["kernels"]["bracket_update"]


CUDA_OK = _cuda_ready()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not CUDA_OK, reason="needs a GPU and the CUDA kernels")],
    ),
]

needs_cuda = pytest.mark.skipif(not CUDA_OK, reason="needs a GPU and the CUDA kernels")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _train_small(arch: str, n: int = 6000, steps: int = 400, seed: int = 0):
    """A small classifier trained on the first n MNIST training images (a few seconds on 2 cores)."""
    from deepdig_fast.data import load_mnist
    from deepdig_fast.models import MnistCNN, MnistFCN

    data = load_mnist()
    x, y = data.x_train[:n], data.y_train[:n]
    torch.manual_seed(seed)
    model = (MnistFCN if arch == "fcn" else MnistCNN)()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, n, (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), data


@pytest.fixture(scope="session")
def small_fcn():
    """(model, data): an MNIST FCN trained briefly; good enough for real decision boundaries."""
    return _train_small("fcn")


def correct_pairs(model, data, s: int, t: int, n: int, offset: int = 0):
    """n pairs (a, b) of held-out training images: a of class s predicted s, b of class t predicted t."""
    x, y = data.x_train[10000:20000], data.y_train[10000:20000]
    with torch.no_grad():
        pred = model(x).argmax(1)
    a = x[(y == s) & (pred == s)][offset : offset + n]
    b = x[(y == t) & (pred == t)][offset : offset + n]
    k = min(len(a), len(b))
    return a[:k].contiguous(), b[:k].contiguous()
