"""segment_points / trajectory_stats: kernels against the reference, known answers, edge cases."""

from __future__ import annotations

import pytest
import torch
from common_utils import cpu_and_cuda, needs_cuda
from op_samples import HALF_DTYPES, random_logits, stem_tests

from deepdig_fast import ops

DTYPES = [torch.float32, torch.float64]
OPS = ["segment_points", "trajectory_stats"]


test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES + list(HALF_DTYPES))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_segment_points_start_at_x_j(device, dtype):
    x = torch.rand(20, 33, dtype=dtype, device=device)
    i = torch.randint(0, 20, (17,), device=device)
    j = torch.randint(0, 20, (17,), device=device)
    got = ops.segment_points(x, i, j, 7)
    assert got.shape == (17 * 7, 33) and got.dtype == dtype
    # the first point of each segment is x_j exactly; the paper's tau stops short of x_i
    torch.testing.assert_close(got.view(17, 7, 33)[:, 0], x[j], rtol=0, atol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_segment_points_one_point_is_x_j(device):
    x = torch.rand(5, 4, device=device)
    i = torch.tensor([0, 4], device=device)
    j = torch.tensor([3, 1], device=device)
    torch.testing.assert_close(ops.segment_points(x, i, j, 1), x[j], rtol=0, atol=0)


def test_segment_points_errors():
    x = torch.rand(5, 4)
    with pytest.raises(ValueError, match="T must be a positive int"):
        ops.segment_points(x, torch.tensor([0]), torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="i_idx and j_idx must have the same shape"):
        ops.segment_points(x, torch.tensor([0, 1]), torch.tensor([1]), 3)
    with pytest.raises(RuntimeError, match=r"segment 0 has ends \(9, 1\) outside \[0, 5\)"):
        ops.segment_points(x, torch.tensor([9]), torch.tensor([1]), 3)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_trajectory_stats_known_answer(device):
    # labels along the segment: 0 0 1 1 2 1 0 -> changes 4 (one at each of 0|1, 1|2, 2|1, 1|0),
    # distinct 3, changes touching the third class 2 (1|2 and 2|1), in the band 2 (point 1, and
    # point 4 where p0 = p1)
    labels = [0, 0, 1, 1, 2, 1, 0]
    logits = torch.full((7, 3), -5.0, device=device)
    logits[torch.arange(7), torch.tensor(labels)] = 5.0
    logits[1] = torch.tensor([0.01, 0.0, -9.0])  # p0 - p1 = 0.0025: inside a +-0.05 band
    out = ops.trajectory_stats(
        logits, torch.tensor([0], device=device), torch.tensor([1], device=device), 7, -0.05, 0.05
    )
    assert out.tolist() == [[4, 3, 2, 2]]


def test_trajectory_stats_errors():
    with pytest.raises(ValueError, match=r"logits must have S\*T = 10 rows"):
        ops.trajectory_stats(torch.rand(9, 3), torch.tensor([0, 1]), torch.tensor([1, 2]), 5)
    with pytest.raises(RuntimeError, match=r"must lie in \[0, 3\)"):
        ops.trajectory_stats(torch.rand(5, 3), torch.tensor([0]), torch.tensor([7]), 5)
    with pytest.raises(ValueError, match="band_lo must be <= band_hi"):
        ops.trajectory_stats(torch.rand(5, 3), torch.tensor([0]), torch.tensor([1]), 5, 0.5, 0.1)


@needs_cuda
def test_cuda_matches_cpu_large():
    x = torch.rand(300, 784)
    i = torch.randint(0, 300, (500,))
    j = torch.randint(0, 300, (500,))
    assert torch.equal(ops.segment_points(x, i, j, 50), ops.segment_points(x.cuda(), i.cuda(), j.cuda(), 50).cpu())
    logits, src, tgt = random_logits(500, 50, 10, torch.float32, "cpu")
    got = ops.trajectory_stats(logits.cuda(), src.cuda(), tgt.cuda(), 50).cpu()
    assert torch.equal(got, ops.trajectory_stats(logits, src, tgt, 50))
