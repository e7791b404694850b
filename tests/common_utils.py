"""Test helpers shared by the test modules (imported by name; conftest.py holds only fixtures).

  cpu_and_cuda()   device parametrisation: the CUDA case is marked `cuda` and skips itself without a
                   GPU and the extension's CUDA kernels, so one test file runs on a laptop and a GPU box
  needs_cuda       the same skip, for a whole test
  train_small      a small MNIST classifier trained in a few seconds (real decision boundaries)
  correct_pairs    pairs of held-out images both predicted as their own class

The directory holding this file is on sys.path through pyproject's [tool.pytest.ini_options]
pythonpath, so test modules write `from common_utils import ...`.
"""

from __future__ import annotations

import pytest
import torch


def _cuda_ready() -> bool:
    """A GPU is visible and the extension was built with its CUDA kernels (a build that has CUDA but
    misses one op's kernel is not skipped: that op's CUDA tests fail, as they should)."""
    if not torch.cuda.is_available():
        return False
    from deepdig_fast import build_info

    return bool(build_info()["with_cuda"])


CUDA_OK = _cuda_ready()
_NO_CUDA_REASON = "needs a GPU and deepdig_fast's CUDA kernels"

needs_cuda = pytest.mark.skipif(not CUDA_OK, reason=_NO_CUDA_REASON)


def cpu_and_cuda() -> tuple:
    """Parameters for `@pytest.mark.parametrize("device", cpu_and_cuda())`: "cpu" always, "cuda"
    marked `cuda` and skipped where CUDA_OK is false."""
    return (
        pytest.param("cpu", id="cpu"),
        pytest.param("cuda", id="cuda", marks=(pytest.mark.cuda, needs_cuda)),
    )


def train_small(arch: str, n: int = 6000, steps: int = 400, seed: int = 0):
    """(model, data): a classifier ("fcn" or "cnn") trained on the first n MNIST training images
    (a few seconds on 2 cores); good enough for real decision boundaries."""
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


def correct_pairs(model, data, s: int, t: int, n: int, offset: int = 0):
    """n pairs (a, b) of held-out training images: a of class s predicted s, b of class t predicted t."""
    x, y = data.x_train[10000:20000], data.y_train[10000:20000]
    with torch.no_grad():
        pred = model(x).argmax(1)
    a = x[(y == s) & (pred == s)][offset : offset + n]
    b = x[(y == t) & (pred == t)][offset : offset + n]
    k = min(len(a), len(b))
    return a[:k].contiguous(), b[:k].contiguous()
