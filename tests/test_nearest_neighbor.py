"""nearest_neighbor: kernel against the reference and torch.cdist + argmin, ties, edge cases."""

from __future__ import annotations

import pytest
import torch
from common_utils import cpu_and_cuda, needs_cuda
from op_samples import HALF_DTYPES, stem_tests

from deepdig_fast import ops
from deepdig_fast import reference as R

DTYPES = [torch.float32, torch.float64]

# every sample against reference.py (CPU and CUDA), opcheck, and the CUDA kernel against the CPU one
test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(
    ["nearest_neighbor"], DTYPES + list(HALF_DTYPES)
)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 3), (57, 300, 50), (200, 33, 7), (5, 1, 130)])
def test_matches_cdist(device, dtype, shape):
    Q, Rn, E = shape
    q = torch.randn(Q, E, dtype=dtype, device=device)
    r = torch.randn(Rn, E, dtype=dtype, device=device)
    idx, dist = ops.nearest_neighbor(q, r)
    ridx, rdist = R.nearest_neighbor(q, r)
    assert idx.dtype == torch.int64 and dist.dtype == dtype
    assert torch.equal(idx, ridx)
    torch.testing.assert_close(dist, rdist)
    cd = torch.cdist(q.double(), r.double())
    assert torch.equal(idx, cd.argmin(1))
    torch.testing.assert_close(
        dist.double(), cd.min(1).values, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6
    )


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_ties_pick_lowest_index(device):
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], device=device)
    q = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], device=device)
    idx, dist = ops.nearest_neighbor(q, r)
    assert idx.tolist() == [0, 0, 1]
    torch.testing.assert_close(dist.cpu(), torch.tensor([1.0, 1.0, 2.0]))


def test_argument_errors():
    q = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"refs must have 3 columns like queries, got shape \[5, 2\]"):
        ops.nearest_neighbor(q, torch.randn(5, 2))
    with pytest.raises(ValueError, match="refs must have at least one row"):
        ops.nearest_neighbor(q, torch.randn(0, 3))
    with pytest.raises(ValueError, match=r"queries must have shape \[N, D\]"):
        ops.nearest_neighbor(torch.randn(3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="refs must have the dtype"):
        ops.nearest_neighbor(q, torch.randn(5, 3, dtype=torch.float64))
    bad = q.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="queries contains NaN"):
        ops.nearest_neighbor(bad, torch.randn(5, 3))
    with pytest.raises(RuntimeError, match="refs must have 3 columns"):
        torch.ops.deepdig_fast.nearest_neighbor(q, torch.randn(5, 2))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu_large(dtype):
    q = torch.randn(1000, 50, dtype=dtype)
    r = torch.randn(3000, 50, dtype=dtype)
    idx, dist = ops.nearest_neighbor(q, r)
    gidx, gdist = ops.nearest_neighbor(q.cuda(), r.cuda())
    assert torch.equal(idx, gidx.cpu())
    torch.testing.assert_close(dist, gdist.cpu())
