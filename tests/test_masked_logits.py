"""Logits of -inf mask classes out: softmax stays defined while a row's maximum is finite.

A row is non-finite (NONFINITE) only if it holds a NaN or a +inf, or every entry is -inf. The
kernels (csrc/common/bracket.h) and their plain-torch twins (deepdig_fast/reference.py) must agree.
"""

from __future__ import annotations

import pytest
import torch
from common_utils import cpu_and_cuda
from op_samples import call_update

from deepdig_fast import ops
from deepdig_fast import reference as R
from deepdig_fast.engine import Status

INF, NAN = float("inf"), float("nan")

# source 0, target 1, four classes; the expected status of each row after one bracket_update.
ROWS = [
    ([2.0, 1.0, -INF, -INF], Status.PENDING),  # source side, two classes masked
    ([1.0, 2.0, -INF, 0.0], Status.PENDING),  # target side
    ([1.0, 1.0, -INF, -INF], Status.SUCCESS),  # tie between the two unmasked classes
    ([0.0, -INF, 5.0, -INF], Status.THIRD_CLASS),  # the target masked, a third class wins
    ([3.0, -INF, 0.0, 1.0], Status.PENDING),  # source side, target masked: g = +inf
    ([-INF, 2.0, 0.0, -INF], Status.PENDING),  # target side, source masked: g = -inf
    ([-INF, -INF, -INF, -INF], Status.NONFINITE),  # softmax undefined
    ([NAN, 1.0, 0.0, 0.0], Status.NONFINITE),
    ([1.0, 0.0, NAN, -INF], Status.NONFINITE),
    ([INF, 1.0, 0.0, 0.0], Status.NONFINITE),
    ([-INF, -INF, INF, 0.0], Status.NONFINITE),
]


def _case(dtype, device):
    P, C, D = len(ROWS), 4, 3
    logits = torch.tensor([r for r, _ in ROWS], dtype=torch.float64).to(dtype)
    state = dict(
        logits=logits,
        x=torch.arange(P * D, dtype=torch.float64).view(P, D).to(dtype),
        idx=torch.arange(P),
        lam=torch.full((P,), 0.375, dtype=torch.float64),
        stalled=torch.zeros(P, dtype=torch.bool),
        source=torch.zeros(P, dtype=torch.int64),
        target=torch.ones(P, dtype=torch.int64),
        fstate=torch.tensor([[0.0, 1.0, 2.0, -2.0]] * P, dtype=torch.float64),
        istate=torch.tensor([[0, -1, -1, -1]] * P),
        points=torch.zeros(P, D, dtype=dtype),
        probs=torch.zeros(P, C, dtype=torch.float64),
        lam_out=torch.zeros(P, dtype=torch.float64),
    )
    return {k: v.to(device) for k, v in state.items()}


def test_softmax_defined_rule():
    z = torch.tensor([r for r, _ in ROWS], dtype=torch.float64)
    want = [s != Status.NONFINITE for _, s in ROWS]
    assert R.softmax_defined(z).tolist() == want
    # Exactly where torch.softmax gives a probability distribution.
    p = torch.softmax(z, 1)
    assert (torch.isfinite(p).all(1) & ((p.sum(1) - 1).abs() < 1e-12)).tolist() == want


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("method", [0, 1])
def test_update_with_masked_logits_matches_reference(device, dtype, method):
    case = _case(dtype, device)
    codes, got = call_update(ops.bracket_update, case, max_steps=10, method=method)
    rcodes, want = call_update(R.bracket_update, case, max_steps=10, method=method)
    assert codes.tolist() == [int(s) for _, s in ROWS]
    assert torch.equal(codes, rcodes)
    assert torch.equal(got["istate"], want["istate"])
    assert got["istate"][3, 2] == 2  # the intruder of the THIRD_CLASS row
    torch.testing.assert_close(got["fstate"], want["fstate"], rtol=0, atol=0)
    torch.testing.assert_close(got["points"], want["points"], rtol=0, atol=0)
    torch.testing.assert_close(got["probs"], want["probs"], rtol=1e-14, atol=1e-15, equal_nan=True)
    torch.testing.assert_close(got["lam_out"], want["lam_out"], rtol=0, atol=0)
    # A masked class has probability 0 in a finished pair's softmax; a tie splits the rest evenly.
    assert got["probs"][2].tolist() == [0.5, 0.5, 0.0, 0.0]
    assert got["probs"][3, 1] == 0 and got["probs"][3, 3] == 0
    # An undefined softmax leaves NaN probabilities.
    assert bool(got["probs"][6:].isnan().all(1).all())


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("method", [0, 1])
def test_infinite_gap_keeps_the_next_point_inside_the_bracket(device, method):
    # Rows 4 and 5 store g = +inf / -inf at the end they replace; the next proposal must still be a
    # finite point strictly inside the bracket (Illinois falls back to the midpoint).
    case = _case(torch.float64, device)
    _, got = call_update(ops.bracket_update, case, max_steps=10, method=method)
    live = torch.tensor([0, 1, 4, 5], device=device)
    assert not bool(torch.isfinite(got["fstate"][4:6, 2:]).all())
    a = torch.zeros(len(ROWS), 2, dtype=torch.float64, device=device)
    b = torch.ones(len(ROWS), 2, dtype=torch.float64, device=device)
    x, lam, stalled = ops.bracket_propose(a, b, live, got["fstate"], method)
    rx, rlam, rstalled = R.bracket_propose(a, b, live, got["fstate"], method)
    f = got["fstate"][live]
    assert bool(torch.isfinite(lam).all()) and bool(((lam > f[:, 0]) & (lam < f[:, 1])).all())
    assert torch.equal(lam, rlam) and torch.equal(x, rx) and torch.equal(stalled, rstalled)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trajectory_stats_with_masked_logits_matches_reference(device, dtype):
    g = torch.Generator().manual_seed(5)
    S, T, C = 7, 9, 5
    logits = torch.randn(S * T, C, generator=g, dtype=torch.float64)
    mask = torch.rand(S * T, C, generator=g) < 0.4
    mask[torch.arange(S * T), logits.argmax(1)] = False  # keep every row's softmax defined
    logits = logits.masked_fill(mask, -INF).to(dtype).to(device)
    source = torch.randint(0, C, (S,), generator=g).to(device)
    target = ((source + 1) % C).to(device)
    got = ops.trajectory_stats(logits, source, target, T, -0.3, 0.3)
    want = R.trajectory_stats(logits, source, target, T, -0.3, 0.3)
    assert torch.equal(got, want)
    assert int(got[:, 3].sum()) > 0  # some points fall in the band despite the masks
