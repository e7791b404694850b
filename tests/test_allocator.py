"""deepdig_fast.allocator: glibc's thresholds fixed for deepdig's processes, numbers unchanged."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from deepdig_fast.allocator import SETTINGS

_GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# one autoencoder training step's loss and gradient, as bytes, after tune_allocator() or not
_STEP = """
import sys, torch
from deepdig_fast.allocator import allocator_record, tune_allocator
from deepdig_fast.models import MnistCNN
from deepdig_fast.adversarial import MLPAutoencoder, _loss_terms
if sys.argv[1] == "tuned":
    assert tune_allocator() and tune_allocator()  # idempotent
    assert allocator_record() == {"mmap_threshold": 32 << 20, "trim_threshold": 64 << 20}
else:
    assert allocator_record() is None
torch.manual_seed(0)
clf, ae = MnistCNN().eval(), MLPAutoencoder()
x = torch.rand(128, 1, 28, 28)
onehot = torch.zeros(128, 10); onehot[:, 3] = 1
for _ in range(3):  # enough allocation and release for the thresholds to matter
    loss, _, _ = _loss_terms(ae, clf, x, onehot, 0.8)
    loss.backward()
g = torch.cat([p.grad.flatten() for p in ae.parameters()])
sys.stdout.write(loss.detach().numpy().tobytes().hex() + " " + g.numpy().tobytes().hex())
"""


@pytest.mark.skipif(not _GLIBC, reason="mallopt thresholds are glibc's")
def test_tuned_allocator_changes_no_number():
    out = {
        mode: subprocess.run([sys.executable, "-c", _STEP, mode], capture_output=True, text=True, check=True).stdout
        for mode in ("tuned", "default")
    }
    assert out["tuned"] and out["tuned"] == out["default"]


def test_settings_are_glibcs_own_ceiling():
    # glibc raises its mmap threshold up to 32 MiB (64-bit) and keeps the trim threshold at twice it
    assert SETTINGS == {"mmap_threshold": 32 * 1024 * 1024, "trim_threshold": 2 * SETTINGS["mmap_threshold"]}
