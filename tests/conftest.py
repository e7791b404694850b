"""Fixtures only; helpers live in tests/common_utils.py and tests/op_samples.py."""

from __future__ import annotations

import pytest
import torch
from common_utils import train_small


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def small_fcn():
    """(model, data): an MNIST FCN trained briefly; good enough for real decision boundaries."""
    return train_small("fcn")


@pytest.fixture(scope="session")
def tiny_fcn_checkpoint(tmp_path_factory):
    """A deepdig checkpoint (path of its .pt) of a briefly trained MNIST FCN, for CLI and subprocess tests."""
    from common_utils import train_small

    from deepdig_fast.checkpoint import save_classifier

    model, data = train_small("fcn", n=3000, steps=150)
    path = tmp_path_factory.mktemp("ckpt") / "fcn"
    save_classifier(
        path, model, arch="fcn", dataset="mnist", classes=data.classes, accuracy=None, embedding_layer="embedding"
    )
    return str(path) + ".pt"
