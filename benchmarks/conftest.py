"""Benchmark fixtures: the trained MNIST CNN (the paper's architecture) shared with the CLI's cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def bench_device() -> torch.device:
    return torch.device(os.environ.get("DEEPDIG_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))


@pytest.fixture(scope="session")
def device():
    return bench_device()


@pytest.fixture(scope="session")
def mnist_cnn(device):
    """(model on device, data): the MNIST CNN at checkpoints/mnist-cnn (trained on first use)."""
    from deepdig_fast.checkpoint import load_or_train_classifier
    from deepdig_fast.data import load_mnist

    data = load_mnist()
    model, meta = load_or_train_classifier(ROOT / "checkpoints" / "mnist-cnn", "cnn", data, device=device)
    print(f"\n[bench] MNIST CNN test accuracy {meta['accuracy']:.4f} on {device}")
    return model.eval(), data


def pairs_of(model, data, s: int, t: int, device, n: int | None = None):
    """RPBS pairs (docs/METHOD-NOTES.md): training images of class s predicted s and of class t predicted t,
    shuffled with a fixed seed, truncated to the shorter list."""
    from deepdig_fast.baselines import random_pairs

    p = random_pairs(model, data.x_train, data.y_train, s, t, seed=0)
    a, b = p.a, p.b
    if n is not None:
        a, b = a[:n], b[:n]
    return a.to(device), b.to(device)
