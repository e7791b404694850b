"""linear_distances: kernel against the reference, known answers, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from common_utils import cpu_and_cuda, needs_cuda
from op_samples import HALF_DTYPES, stem_tests

from deepdig_fast import ops

DTYPES = [torch.float32, torch.float64]

# every sample against reference.py (CPU and CUDA), opcheck, and the CUDA kernel against the CPU one
test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(
    ["linear_distances"], DTYPES + list(HALF_DTYPES)
)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_known_answer(device):
    # hyperplane x0 = 1 (w = (2, 0), bias = -2): distances are x0 - 1
    h = torch.tensor([[3.0, 5.0], [0.0, 1.0], [1.5, -2.0], [0.5, 0.0]], device=device)
    labels = torch.tensor([1, 0, 0, 0], device=device)  # the third row sits on the positive side: wrong
    d, s = ops.linear_distances(h, torch.tensor([2.0, 0.0], dtype=torch.float64, device=device), -2.0, labels)
    assert d.tolist() == [2.0, -1.0, 0.5, -0.5]
    stats = dict(zip(ops.SUMMARY_FIELDS, s.tolist()))
    assert stats["mean_abs"] == pytest.approx(1.0) and stats["m1"] == pytest.approx(0.5)
    assert stats["mean_abs_misclassified"] == pytest.approx(0.5) and stats["m2"] == pytest.approx(0.5 / 1.5)
    assert (stats["max"], stats["min"]) == (2.0, -1.0)
    assert stats["mean"] == pytest.approx(0.25)
    assert stats["accuracy"] == pytest.approx(0.75) and stats["misclassified"] == 1


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_empty_and_all_correct(device):
    w = torch.ones(3, dtype=torch.float64, device=device)
    d, s = ops.linear_distances(
        torch.empty(0, 3, device=device), w, 0.0, torch.empty(0, dtype=torch.long, device=device)
    )
    assert d.shape == (0,) and math.isnan(s[0]) and s[8] == 0
    d, s = ops.linear_distances(torch.ones(2, 3, device=device), w, 0.0, torch.ones(2, dtype=torch.long, device=device))
    assert s[7] == 1.0 and math.isnan(s[2]) and math.isnan(s[3])


def test_errors():
    with pytest.raises(ValueError, match=r"w must have shape \[3\]"):
        ops.linear_distances(
            torch.rand(4, 3), torch.rand(2, dtype=torch.float64), 0.0, torch.zeros(4, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
        ops.linear_distances(
            torch.rand(4, 3), torch.rand(3, dtype=torch.float64), 0.0, torch.zeros(3, dtype=torch.long)
        )
    with pytest.raises(RuntimeError, match="w must not be all zeros"):
        ops.linear_distances(
            torch.rand(4, 3), torch.zeros(3, dtype=torch.float64), 0.0, torch.zeros(4, dtype=torch.long)
        )


@needs_cuda
def test_cuda_matches_cpu_large():
    h = torch.randn(5000, 50)
    w = torch.randn(50, dtype=torch.float64)
    labels = torch.randint(0, 2, (5000,))
    d, s = ops.linear_distances(h, w, -0.1, labels)
    gd, gs = ops.linear_distances(h.cuda(), w.cuda(), -0.1, labels.cuda())
    torch.testing.assert_close(d, gd.cpu(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s, gs.cpu(), rtol=1e-10, atol=1e-12)
