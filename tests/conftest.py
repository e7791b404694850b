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
