"""bracket_propose / bracket_update: kernels against the plain-torch reference, opcheck, edge cases."""

from __future__ import annotations

import pytest
import torch
from common_utils import cpu_and_cuda, needs_cuda
from op_samples import (
    HALF_DTYPES,
    bracket_state,
    call_update,
    run_op,
    sample_inputs,
    stem_tests,
    update_case,
)

from deepdig_fast import ops
from deepdig_fast import reference as R

DTYPES = [torch.float32, torch.float64]
OPS = ["bracket_propose", "bracket_update"]


test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES + list(HALF_DTYPES))


def test_update_samples_cover_every_outcome():
    """The samples reach every status code the kernel can return (else parity proves little)."""
    seen = set()
    for s in sample_inputs("bracket_update", "cpu", torch.float64):
        seen |= set(run_op(ops.bracket_update, "bracket_update", s)[0].tolist())
    assert seen >= {-1, 0, 1, 2, 3, 5}, seen


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES)
def test_propose_bisect_is_midpoint(device, dtype):
    a, b, fstate = bracket_state(37, 29, dtype, device)
    idx = torch.randperm(37, device=device)[:23]
    x, lam, _ = ops.bracket_propose(a, b, idx, fstate, 0)
    assert x.dtype == dtype and x.shape == (23, 29)
    f = fstate[idx]
    torch.testing.assert_close(lam, 0.5 * (f[:, 0] + f[:, 1]), rtol=0, atol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_propose_illinois_stays_inside_bracket(device):
    a, b, fstate = bracket_state(50, 4, torch.float64, device, seed=3)
    # A degenerate gap (g_lo == g_hi is impossible for a real bracket) must fall back to the midpoint.
    fstate[0, 2] = float("inf")
    idx = torch.arange(50, device=device)
    _, lam, _ = ops.bracket_propose(a, b, idx, fstate, 1)
    assert bool(((lam > fstate[:, 0]) & (lam < fstate[:, 1])).all())
    assert float(lam[0]) == pytest.approx(0.5 * float(fstate[0, 0] + fstate[0, 1]))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES)
def test_propose_stall_detection(device, dtype):
    P, D = 4, 8
    a, b, fstate = bracket_state(P, D, dtype, device)
    b[0] = a[0]  # identical ends: every point equals both ends
    fstate[1, 1] = fstate[1, 0] + 1e-300  # bracket far below the working precision
    idx = torch.arange(P, device=device)
    _, _, stalled = ops.bracket_propose(a, b, idx, fstate, 0)
    _, _, rstalled = R.bracket_propose(a, b, idx, fstate, 0)
    assert stalled.tolist()[:2] == [True, True]
    assert stalled.tolist()[2:] == [False, False]
    assert torch.equal(stalled, rstalled)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_update_rules(device):
    """Hand-made rows whose outcome is known: third class, success, stall, cap, bracket moves."""
    C, P, D = 3, 6, 2
    s, t = 0, 1
    logits = torch.tensor(
        [
            [0.0, 0.0, 5.0],  # third class (2) wins -> THIRD_CLASS, intruder 2
            [1.0, 1.0, -3.0],  # exact tie -> SUCCESS
            [2.0, 1.0, 0.0],  # source side; stalled -> STALLED
            [2.0, 1.0, 0.0],  # source side; attempts hits the cap -> MAX_STEPS
            [2.0, 1.0, 0.0],  # source side -> lo moves to lam
            [1.0, 2.0, 0.0],  # target side -> hi moves to lam
        ],
        dtype=torch.float64,
        device=device,
    )
    idx = torch.arange(P, device=device)
    lam = torch.full((P,), 0.25, dtype=torch.float64, device=device)
    stalled = torch.tensor([False, False, True, False, False, False], device=device)
    fstate = torch.tensor([[0.0, 1.0, 1.0, -1.0]] * P, dtype=torch.float64, device=device)
    istate = torch.tensor([[0, -1, -1, -1]] * P, device=device)
    istate[3, 0] = 9
    points = torch.zeros(P, D, dtype=torch.float64, device=device)
    x = torch.arange(P * D, dtype=torch.float64, device=device).view(P, D)
    probs = torch.zeros(P, C, dtype=torch.float64, device=device)
    lam_out = torch.zeros(P, dtype=torch.float64, device=device)
    st = torch.full((P,), s, device=device)
    tt = torch.full((P,), t, device=device)
    codes = ops.bracket_update(
        logits, x, idx, lam, stalled, st, tt, fstate, istate, points, probs, lam_out, 1e-4, 10, 0
    )
    assert codes.tolist() == [1, 0, 2, 3, -1, -1]
    assert istate[:, 2].tolist() == [2, -1, -1, -1, -1, -1]
    assert istate[:, 0].tolist() == [1, 1, 1, 10, 1, 1]
    assert fstate[4].tolist() == [0.25, 1.0, 1.0, -1.0]
    assert fstate[5].tolist() == [0.0, 0.25, 1.0, -1.0]
    assert torch.equal(points[:4], x[:4]) and bool((points[4:] == 0).all())
    torch.testing.assert_close(probs[1], torch.softmax(logits[1], 0))
    assert lam_out[:4].tolist() == [0.25] * 4


def test_update_illinois_halves_retained_end():
    logits = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    fstate = torch.tensor([[0.0, 1.0, 3.0, -2.0]], dtype=torch.float64)
    istate = torch.tensor([[1, -1, -1, 0]])  # the low end was replaced last step too
    args = (
        logits,
        torch.zeros(1, 1, dtype=torch.float64),
        torch.tensor([0]),
        torch.tensor([0.4], dtype=torch.float64),
        torch.tensor([False]),
        torch.tensor([0]),
        torch.tensor([1]),
        fstate,
        istate,
        torch.zeros(1, 1, dtype=torch.float64),
        torch.zeros(1, 2, dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    ops.bracket_update(*args, 1e-4, 10, 1)
    assert fstate[0].tolist() == [0.4, 1.0, 1.0, -1.0]  # g_hi halved, g_lo = z_s - z_t = 1
    assert istate[0, 3] == 0


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_update_empty(device):
    case = update_case(3, 4, 5, torch.float32, device)
    assert case["idx"].numel() == 0
    codes, got = call_update(ops.bracket_update, case)
    assert codes.shape == (0,)
    assert torch.equal(got["istate"], case["istate"])


def test_update_argument_errors():
    case = update_case(10, 4, 5, torch.float32)
    bad = dict(case)
    bad["probs"] = torch.zeros(10, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"probs must have shape \[10, 4\]"):
        call_update(ops.bracket_update, bad)
    bad = dict(case)
    bad["idx"] = case["idx"].clone()
    bad["idx"][0] = 99
    with pytest.raises(RuntimeError, match=r"idx\[0\] = 99 must be a pair in \[0, 10\) or -1 \(an empty row\)"):
        call_update(ops.bracket_update, bad)
    bad = dict(case)
    bad["source"] = case["source"].clone()
    bad["source"][case["idx"][0]] = 7
    with pytest.raises(RuntimeError, match=r"must lie in \[0, 4\)"):
        call_update(ops.bracket_update, bad)
    with pytest.raises(ValueError, match="beta must be > 0"):
        call_update(ops.bracket_update, case, beta=0.0)
    a, b, fstate = bracket_state(5, 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"b must match a"):
        ops.bracket_propose(a, b[:, :2], torch.arange(5), fstate, 0)
    with pytest.raises(ValueError, match=r"fstate must be float64 of shape \[5, 4\]"):
        ops.bracket_propose(a, b, torch.arange(5), fstate[:, :3], 0)
    with pytest.raises(RuntimeError, match=r"idx\[0\] = -2 must be a pair in \[0, 5\) or -1"):
        torch.ops.deepdig_fast.bracket_propose(a, b, torch.tensor([-2]), fstate, 0)
    with pytest.raises(RuntimeError, match="a must be a floating-point tensor"):
        torch.ops.deepdig_fast.bracket_propose(a.long(), b.long(), torch.arange(5), fstate, 0)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", [0, 1])
def test_cuda_matches_cpu_large(dtype, method):
    a, b, fstate = bracket_state(300, 784, dtype, "cpu")
    idx = torch.randperm(300)[:250]
    cpu = ops.bracket_propose(a, b, idx, fstate, method)
    gpu = ops.bracket_propose(a.cuda(), b.cuda(), idx.cuda(), fstate.cuda(), method)
    for u, v in zip(cpu, gpu):
        assert torch.equal(u, v.cpu())
    case = update_case(300, 10, 784, dtype, seed=method)
    codes, got = call_update(ops.bracket_update, case, method=method)
    gcase = {k: v.cuda() for k, v in case.items()}
    gcodes, ggot = call_update(ops.bracket_update, gcase, method=method)
    assert torch.equal(codes, gcodes.cpu())
    for k in ("istate", "fstate", "points", "lam_out"):
        assert torch.equal(got[k], ggot[k].cpu()), k
    torch.testing.assert_close(got["probs"], ggot["probs"].cpu(), rtol=1e-13, atol=1e-15, equal_nan=True)
