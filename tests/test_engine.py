"""refine_borderline: agreement with the reference loop, invariants, termination, errors."""

from __future__ import annotations

import pytest
import torch
from common_utils import correct_pairs, cpu_and_cuda
from torch import nn

import deepdig_fast as dd
from deepdig_fast import reference as R
from deepdig_fast.engine import Status


def test_matches_reference_loop_on_trained_model(small_fcn):
    """The public code's per-pair loop (batch 1, 3 forwards a step) as an oracle: >= 99% agreement
    (the eager model, as the oracle runs it)."""
    model, data = small_fcn
    a, b = correct_pairs(model, data, 3, 5, 150)
    assert len(a) >= 100
    res = dd.refine_borderline(model, a, b, 3, 5, batch_size=64, compile=False)
    ref = [R.bisect_pair_reference(model, a[i], b[i], 3, 5) for i in range(len(a))]
    ref_status = torch.tensor([r[0] for r in ref])
    ref_attempts = torch.tensor([r[2] for r in ref])
    same = (ref_status == res.status) & (ref_attempts == res.attempts)
    assert float(same.float().mean()) >= 0.99, (ref_status, res.status)
    # successes of both are the same point up to float rounding
    both = (ref_status == Status.SUCCESS) & (res.status == Status.SUCCESS) & same
    ref_points = torch.stack([r[1] for r in ref])
    torch.testing.assert_close(res.points[both], ref_points[both], atol=1e-5, rtol=0)
    # the reference spends 3 forwards a step at batch 1; the engine one forward per live pair
    assert res.forwards == 2 * len(a) + int(res.attempts.sum())
    assert sum(r[4] for r in ref) == 3 * int(ref_attempts.sum())


@pytest.mark.parametrize("method", ["bisect", "illinois"])
def test_invariants(small_fcn, method):
    model, data = small_fcn
    a, b = correct_pairs(model, data, 7, 9, 200)
    res = dd.refine_borderline(model, a, b, 7, 9, method=method, embedding_layer="embedding", compile=False)
    assert res.inference == "eager"
    ok = res.success
    assert int(ok.sum()) > 0.5 * len(a)
    p = res.probs[ok]
    assert bool(((p[:, 7] - p[:, 9]).abs() < 1e-4).all())
    # the point lies on its pair's segment at lam
    lam = res.lam[ok].float()[:, None, None, None]
    torch.testing.assert_close(res.points[ok], a[ok] + lam * (b[ok] - a[ok]), atol=1e-6, rtol=0)
    assert bool(((res.lam[ok] > 0) & (res.lam[ok] < 1)).all())
    # the recorded probabilities and embeddings are the model's at the point
    with torch.no_grad():
        torch.testing.assert_close(torch.softmax(model(res.points[ok]).double(), 1), p, atol=1e-6, rtol=0)
        torch.testing.assert_close(model.embedding(res.points[ok]), res.embeddings[ok], atol=1e-5, rtol=0)
    # third-class failures name their intruder
    third = res.status == Status.THIRD_CLASS
    assert bool((res.intruder[third] >= 0).all()) and bool((res.intruder[~third] == -1).all())
    s = res.summary()
    assert s["pairs"] == len(a) and sum(s["counts"].values()) == len(a)
    assert s["success_rate"] == pytest.approx(float(ok.float().mean()))


def test_illinois_needs_fewer_forwards(small_fcn):
    model, data = small_fcn
    a, b = correct_pairs(model, data, 2, 6, 200)
    bis = dd.refine_borderline(model, a, b, 2, 6, method="bisect")
    ill = dd.refine_borderline(model, a, b, 2, 6, method="illinois")
    assert ill.summary()["success_rate"] >= bis.summary()["success_rate"] - 0.02
    assert ill.forwards < 0.75 * bis.forwards


def test_batch_size_does_not_change_results(small_fcn):
    model, data = small_fcn
    a, b = correct_pairs(model, data, 1, 8, 60)
    r1 = dd.refine_borderline(model, a, b, 1, 8, batch_size=7)
    r2 = dd.refine_borderline(model, a, b, 1, 8, batch_size=1000)
    r3 = dd.refine_borderline(model, a, b, 1, 8)  # measured batch size
    for r in (r2, r3):
        assert torch.equal(r1.status, r.status) and torch.equal(r1.attempts, r.attempts)
        assert torch.equal(r1.points, r.points)


def test_per_pair_classes_and_invalid_brackets(small_fcn):
    model, data = small_fcn
    a1, b1 = correct_pairs(model, data, 0, 6, 20)
    a2, b2 = correct_pairs(model, data, 4, 9, 20)
    a = torch.cat([a1, a2, b1[:5]])
    b = torch.cat([b1, b2, a1[:5]])  # the last 5 pairs are reversed: invalid brackets
    src = torch.tensor([0] * 20 + [4] * 20 + [0] * 5)
    tgt = torch.tensor([6] * 20 + [9] * 20 + [6] * 5)
    res = dd.refine_borderline(model, a, b, src, tgt)
    assert bool((res.status[-5:] == Status.INVALID_BRACKET).all())
    assert bool((res.attempts[-5:] == 0).all()) and bool(res.points[-5:].isnan().all())
    ok = res.success
    p = res.probs
    rows = torch.arange(len(a))
    assert bool(((p[rows, src] - p[rows, tgt]).abs()[ok] < 1e-4).all())


class StepModel(nn.Module):
    """Logits that jump at x0 = 0.5 (no point with |p_s - p_t| < beta exists): forces a stall."""

    def forward(self, x):
        v = (x.reshape(x.shape[0], -1)[:, :1] > 0.5).double().to(x.dtype)
        return torch.cat([1 - v, v, torch.zeros_like(v) - 5], 1) * 4


class ThirdClassModel(nn.Module):
    """Class 0 near x0 = 0, class 1 near x0 = 1, class 2 in the middle third."""

    def forward(self, x):
        u = x.reshape(x.shape[0], -1)[:, :1]
        return torch.cat([-(u - 0.0).abs(), -(u - 1.0).abs(), -(u - 0.5).abs() + 0.2], 1) * 10


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_terminates_on_discontinuous_model(device, dtype):
    a = torch.zeros(3, 4, dtype=dtype, device=device)
    b = torch.ones(3, 4, dtype=dtype, device=device)
    res = dd.refine_borderline(StepModel(), a, b, 0, 1, max_steps=200)
    assert bool((res.status == Status.STALLED).all())
    limit = 30 if dtype == torch.float32 else 60
    assert bool((res.attempts < limit).all())
    res = dd.refine_borderline(StepModel(), a, b, 0, 1, max_steps=5)
    assert bool((res.status == Status.MAX_STEPS).all()) and bool((res.attempts == 5).all())


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("method", ["bisect", "illinois"])
def test_third_class(device, method):
    a = torch.zeros(2, 1, device=device)
    b = torch.ones(2, 1, device=device)
    res = dd.refine_borderline(ThirdClassModel(), a, b, 0, 1, method=method)
    assert res.status.tolist() == [Status.THIRD_CLASS] * 2
    assert res.intruder.tolist() == [2, 2]


def test_nonfinite_logits_and_empty():
    class NanModel(nn.Module):
        def forward(self, x):
            z = torch.stack([1 - x[:, 0], x[:, 0]], 1)
            return torch.where(((x[:, 0] - 0.5).abs() < 0.01)[:, None], float("nan"), z)

    res = dd.refine_borderline(NanModel(), torch.zeros(1, 1), torch.ones(1, 1), 0, 1)
    assert res.status.tolist() == [Status.NONFINITE]
    res = dd.refine_borderline(NanModel(), torch.zeros(0, 1), torch.ones(0, 1), 0, 1)
    assert len(res) == 0 and res.forwards == 0
    assert res.summary()["pairs"] == 0


def test_model_mode_is_restored(small_fcn):
    model, data = small_fcn
    a, b = correct_pairs(model, data, 3, 5, 4)
    model.train()
    try:
        dd.refine_borderline(model, a, b, 3, 5)
        assert model.training
    finally:
        model.eval()


def test_errors():
    lin = nn.Linear(3, 4)
    a, b = torch.rand(5, 3), torch.rand(5, 3)
    with pytest.raises(ValueError, match=r"a and b must have the same shape"):
        dd.refine_borderline(lin, a, b[:4], 0, 1)
    with pytest.raises(ValueError, match="source and target must differ"):
        dd.refine_borderline(lin, a, b, 2, 2)
    with pytest.raises(ValueError, match=r"class ids in \[0, 4\)"):
        dd.refine_borderline(lin, a, b, 0, 7)
    with pytest.raises(TypeError, match="a must be a float32 or float64 tensor, got torch.int64"):
        dd.refine_borderline(lin, a.long(), b.long(), 0, 1)
    bad = a.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="a contains NaN or Inf"):
        dd.refine_borderline(lin, bad, b, 0, 1)
    with pytest.raises(ValueError, match=r"model must return logits of shape \[5, C\]"):
        dd.refine_borderline(lambda x: x[:, 0], a, b, 0, 1)
    with pytest.raises(TypeError, match="model must return a logits tensor"):
        dd.refine_borderline(lambda x: (x, x), a, b, 0, 1)
    with pytest.raises(ValueError, match=r"source must be an int or a tensor of shape \[5\]"):
        dd.refine_borderline(lin, a, b, torch.tensor([0, 1]), 1)
    with pytest.raises(ValueError, match="method must be one of"):
        dd.refine_borderline(lin, a, b, 0, 1, method="newton")
    with pytest.raises(ValueError, match="beta must be a number"):
        dd.refine_borderline(lin, a, b, 0, 1, beta=0)
    with pytest.raises(ValueError, match="embedding_layer 'nope' is not a submodule"):
        dd.refine_borderline(lin, a, b, 0, 1, embedding_layer="nope")
