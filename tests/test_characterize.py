"""characterize.trajectory_oscillation / linearity: values known by construction, modes, chunking, edges."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from deepdig_fast import reference as R
from deepdig_fast.characterize import linearity, trajectory_oscillation

# --------------------------------------------------------------------------------------------------
# trajectory: a classifier whose labels are thresholds on the first feature
# --------------------------------------------------------------------------------------------------


class Stripes(nn.Module):
    """3 classes by thresholds on the first feature x1 (the rest is ignored):
    [0, .15) -> 0, [.15, .35) -> 1, [.35, .55) -> 2, [.55, .75) -> 1, [.75, ...) -> 0.
    A segment from x1 = 0 to x1 = 1 (or back) sampled at k/10 has labels 0 0 1 1 2 2 1 1 0 0:
    4 changes, 3 distinct labels, 2 changes involving class 2, and 2 points where p_0 = p_1 (class 2
    wins), i.e. inside the band on p_0 - p_1. A segment with constant x1 has no change."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))
        self.register_buffer("edges", torch.tensor([0.15, 0.35, 0.55, 0.75], dtype=torch.float64))
        self.register_buffer("table", torch.tensor([0, 1, 2, 1, 0]))
        self.seen_training: list[bool] = []

    def forward(self, x):
        self.seen_training.append(self.training)
        x1 = x.reshape(x.shape[0], -1)[:, 0].double()
        label = self.table[torch.bucketize(x1, self.edges)]
        return self.scale * nn.functional.one_hot(label, 3).to(x.dtype)


def two_groups(n0: int, n1: int, shape=(1, 2, 3), seed=0):
    """Samples whose first feature is 0 (first n0) or 1 (next n1); other features random."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n0 + n1, *shape, generator=g)
    flat = x.view(n0 + n1, -1)
    flat[:n0, 0] = 0.0
    flat[n0:, 0] = 1.0
    return x


def test_known_oscillation_all_others():
    x = two_groups(3, 3)
    r = trajectory_oscillation(Stripes(), x, 0, 1, K=50, T=10)
    assert r.mode == "exact" and r.n_samples == 6 and r.n_segments == 30 and r.forwards == 300
    # N - 1 <= K: every ordered pair (i, j), i != j, once
    assert sorted(zip(r.i.tolist(), r.j.tolist())) == [(a, b) for a in range(6) for b in range(6) if a != b]
    cross = (r.i < 3) != (r.j < 3)
    want = torch.where(cross[:, None], torch.tensor([4, 3, 2, 2]), torch.tensor([0, 1, 0, 0]))
    assert torch.equal(r.stats, want)
    assert r.stats.dtype == torch.int64 and r.stats.device.type == "cpu"
    # 3 of every sample's 5 partners are in the other group: (3/5) * (4/10)
    assert r.oscillation == pytest.approx(0.24, abs=1e-12)
    assert r.ci95 is None
    assert r.mean_distinct_labels == pytest.approx((18 * 3 + 12 * 1) / 30)
    assert r.third_class_change_share == pytest.approx(0.5)
    assert r.third_class_oscillation == pytest.approx(0.12)
    assert r.band_share == pytest.approx(18 * 2 / 300)
    d = r.to_dict()
    json.dumps(d)  # JSON-able
    assert d["oscillation"] == r.oscillation and "stats" not in d
    t = r.tensors()
    assert set(t) >= {"stats", "i", "j", "T"} and t["T"] == 10


def test_exact_design_draws_K_distinct_partners_and_matches_brute_force():
    x = two_groups(12, 18, shape=(5,))
    model = Stripes()
    r = trajectory_oscillation(model, x, 0, 1, K=7, T=10, seed=3)
    assert r.n_segments == 30 * 7
    assert torch.equal(r.i, torch.arange(30).repeat_interleave(7))
    for a in range(30):
        js = r.j[r.i == a]
        assert len(set(js.tolist())) == 7 and a not in js.tolist()
    cross = (r.i < 12) != (r.j < 12)
    assert torch.equal(r.stats[:, 0], 4 * cross.long())
    # plain torch over the same segments
    pts = R.segment_points(x.view(30, -1), r.i, r.j, 10)
    with torch.no_grad():
        logits = model(pts)
    S = r.n_segments
    want = R.trajectory_stats(logits, torch.zeros(S, dtype=torch.long), torch.ones(S, dtype=torch.long), 10, -0.1, 0.1)
    assert torch.equal(r.stats, want)
    assert r.oscillation == pytest.approx(float(cross.double().mean()) * 0.4, abs=1e-12)
    # the design depends on the seed only
    r2 = trajectory_oscillation(model, x, 0, 1, K=7, T=10, seed=3)
    assert torch.equal(r.j, r2.j)
    assert not torch.equal(r.j, trajectory_oscillation(model, x, 0, 1, K=7, T=10, seed=4).j)


def test_exact_design_for_a_large_set_draws_distinct_partners():
    # N - 1 >= 2 K^2: the with-replacement-and-redraw path of the design
    x = two_groups(20, 40, shape=(3,))
    r = trajectory_oscillation(Stripes(), x, 0, 1, K=4, T=10, seed=1)
    assert r.n_segments == 60 * 4
    j = r.j.view(60, 4)
    assert bool((j[:, 1:] > j[:, :-1]).all())  # distinct (sorted) per sample
    assert bool((j != torch.arange(60)[:, None]).all()) and int(j.max()) <= 59
    cross = (r.i < 20) != (r.j < 20)
    assert torch.equal(r.stats[:, 0], 4 * cross.long())
    # every partner is used by someone (uniform over the others, not a fixed subset)
    assert r.j.unique().numel() > 50


def test_chunking_and_batching_do_not_change_the_result():
    x = two_groups(9, 11)
    one = trajectory_oscillation(Stripes(), x, 0, 1, K=6, T=10)
    for kw in ({"chunk_segments": 1}, {"chunk_segments": 7, "batch_size": 3}, {"batch_size": 1}):
        other = trajectory_oscillation(Stripes(), x, 0, 1, K=6, T=10, **kw)
        assert torch.equal(one.stats, other.stats) and torch.equal(one.i, other.i) and torch.equal(one.j, other.j)
        assert other.oscillation == one.oscillation
    small = trajectory_oscillation(Stripes(), x, 0, 1, K=6, T=10, chunk_segments=7)
    assert small.chunk_segments == 7
    assert one.chunk_segments == 8192 // 10  # the CPU default


def random_stripes_set(n=200, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 4, generator=g)


def test_estimate_mode_ci_contains_the_exact_value():
    x = random_stripes_set()
    exact = trajectory_oscillation(Stripes(), x, 0, 1, K=50, T=10)
    est = trajectory_oscillation(Stripes(), x, 0, 1, T=10, segments=5000, seed=1)
    assert est.mode == "estimate" and est.n_segments == 5000 and est.forwards == 50000
    lo, hi = est.ci95
    assert lo < est.oscillation < hi
    assert lo <= exact.oscillation <= hi, (exact.oscillation, est.ci95)
    half = (hi - lo) / 2
    assert half == pytest.approx(1.959963984540054 * est.oscillation_std / math.sqrt(5000))
    assert (est.i != est.j).all()
    assert est.i.unique().numel() == 200  # i covers the samples
    assert json.loads(json.dumps(est.to_dict()))["ci95"] == [lo, hi]


def test_estimate_mode_small_set_targets_the_all_pairs_mean():
    x = two_groups(4, 6)  # exact (N - 1 <= K) is the mean over all ordered pairs
    exact = trajectory_oscillation(Stripes(), x, 0, 1, T=10)
    est = trajectory_oscillation(Stripes(), x, 0, 1, T=10, segments=4000, seed=2)
    assert est.ci95[0] <= exact.oscillation <= est.ci95[1]


@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_samples_give_nan_and_a_reason(n):
    r = trajectory_oscillation(Stripes(), torch.rand(n, 3), 0, 1, T=10)
    assert math.isnan(r.oscillation) and r.n_segments == 0 and r.forwards == 0
    assert "at least 2" in r.reason
    assert r.stats.shape == (0, 4) and r.i.shape == (0,)
    json.dumps(r.to_dict())
    r = trajectory_oscillation(Stripes(), torch.rand(n, 3), 0, 1, T=10, segments=100)
    assert math.isnan(r.oscillation) and r.ci95 is None


def test_model_is_in_eval_mode_during_the_call_and_restored_after():
    model = nn.Sequential(nn.Dropout(0.5), Stripes())
    model.train()
    model[1].eval()  # mixed flags must come back as they were
    trajectory_oscillation(model, two_groups(2, 2), 0, 1, T=5)
    assert model[1].seen_training and not any(model[1].seen_training)
    assert model.training and model[0].training and not model[1].training


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"K": 0}, "K must be a positive int"),
        ({"T": 0}, "T must be a positive int"),
        ({"T": 2.5}, "T must be a positive int"),
        ({"segments": 0}, r"segments must be a positive int, got .* \(or None\)"),
        ({"chunk_segments": 0}, r"chunk_segments must be a positive int, got .* \(or None\)"),
        ({"batch_size": -1}, r"batch_size must be a positive int, got .* \(or None\)"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"band": (0.1, -0.1)}, r"band must be \(lo, hi\)"),
        ({"band": 0.1}, r"band must be \(lo, hi\)"),
    ],
)
def test_trajectory_argument_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        trajectory_oscillation(Stripes(), torch.rand(4, 3), 0, 1, **kw)


def test_trajectory_input_errors():
    with pytest.raises(ValueError, match="source and target must differ"):
        trajectory_oscillation(Stripes(), torch.rand(4, 3), 1, 1)
    with pytest.raises(ValueError, match="source must be a non-negative int"):
        trajectory_oscillation(Stripes(), torch.rand(4, 3), -1, 1)
    with pytest.raises(TypeError, match="points must be a torch.Tensor"):
        trajectory_oscillation(Stripes(), [[0.0, 1.0]], 0, 1)
    with pytest.raises(TypeError, match="points must be a float32 or float64 tensor, got torch.int64"):
        trajectory_oscillation(Stripes(), torch.ones(4, 3, dtype=torch.long), 0, 1)
    with pytest.raises(ValueError, match=r"points must have shape \[N, \*sample_shape\]"):
        trajectory_oscillation(Stripes(), torch.rand(4), 0, 1)
    with pytest.raises(ValueError, match=r"target must be a class id in \[0, 3\)"):
        trajectory_oscillation(Stripes(), torch.rand(4, 3), 0, 7, T=3)
    bad = torch.rand(4, 3)
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="points contains NaN"):
        trajectory_oscillation(Stripes(), bad, 0, 1, T=3)


# --------------------------------------------------------------------------------------------------
# linearity: a classifier that is linear in its embedding space
# --------------------------------------------------------------------------------------------------


class LinearInEmbedding(nn.Module):
    """embedding: h = Q x (Q orthogonal); logits of classes (0, 1, 2) = (-u.h, -10, u.h) with
    u = Q e1: the 0|2 boundary is the hyperplane u.h = 0, i.e. x1 = 0."""

    def __init__(self, D=6, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
        self.embedding = nn.Linear(D, D, bias=False)
        self.embedding.weight.data = q.float()
        self.register_buffer("u", q[:, 0].float())

    def forward(self, x):
        h = self.embedding(x.reshape(x.shape[0], -1))
        z = h @ self.u
        return torch.stack([-z, torch.full_like(z, -10.0), z], 1)


def mirrored_blobs(n=150, D=6, seed=0):
    """Class 2 at x1 > 0.5, class 0 its mirror image (x1 -> -x1): the SVM optimum is the model's
    hyperplane x1 = 0 by symmetry. Plus a class-1 blob the SVM must ignore."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, D, generator=g)
    pos[:, 0] = 0.5 + pos[:, 0].abs()
    neg = pos.clone()
    neg[:, 0] = -neg[:, 0]
    other = torch.randn(20, D, generator=g) + 5
    x = torch.cat([pos, neg, other])
    y = torch.cat([torch.full((n,), 2), torch.zeros(n, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    return x, y


def on_boundary(n, D=6, seed=5):
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(n, D, generator=g)
    b[:, 0] = 0.0
    return b


def test_linear_boundary_gives_borderline_distances_near_zero():
    model = LinearInEmbedding()
    x, y = mirrored_blobs()
    xt, yt = mirrored_blobs(40, seed=1)
    b_st, b_ts = on_boundary(30), on_boundary(25, seed=6)
    res = linearity(model, "embedding", x, y, xt, yt, 2, 0, b_st, b_ts)
    sets = res.sets
    assert res.svm["classes"] == [0, 2] and res.svm["positive_class"] == 2
    assert res.svm["converged"] is True and res.svm["n_iter"] >= 1
    assert sets["train"]["n"] == 300 and sets["test"]["n"] == 80
    assert sets["borderline"]["n"] == 55
    assert sets["borderline"]["n_source_to_target"] == 30 and sets["borderline"]["n_target_to_source"] == 25
    assert sets["train"]["accuracy"] == 1.0 and sets["test"]["accuracy"] == 1.0
    assert sets["train"]["misclassified"] == 0 and math.isnan(sets["train"]["m2"])
    assert sets["train"]["m1"] > 0.3 and sets["train"]["min"] < -0.5 < 0.5 < sets["train"]["max"]
    d_b = res.distances["borderline"]
    assert d_b.abs().max() < 1e-4, d_b.abs().max()
    assert sets["borderline"]["m1"] < 1e-4 < 0.01 < sets["test"]["m1"] / 10
    # the summary is the definition applied to the distances
    d_tr = res.distances["train"]
    a = d_tr.abs().mean()
    assert sets["train"]["m1"] == pytest.approx(float(a / (1 + a)))
    assert sets["train"]["mean"] == pytest.approx(float(d_tr.mean()))
    # train labels: true classes, class 2 on the positive side
    lab = res.labels["train"]
    assert set(lab.tolist()) == {0, 2}
    assert bool((d_tr[lab == 2] > 0).all()) and bool((d_tr[lab == 0] < 0).all())
    assert res.labels["borderline"].tolist() == [2] * 30 + [0] * 25


def test_distances_match_sklearn_decision_function():
    from sklearn.svm import LinearSVC

    from deepdig_fast.forward import embed

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 4))
    x = torch.randn(200, 8)
    with torch.no_grad():
        y = model(x).argmax(1)
    s, t = int(y[0]), int(next(c for c in y.tolist() if c != int(y[0])))
    res = linearity(model, "2", x, y, x[:50], y[:50], s, t, x[:3], x[3:4], seed=0)
    keep = (y == s) | (y == t)
    _, h = embed(model, x[keep], "2")
    svm = LinearSVC(C=1.0, max_iter=10000, random_state=0).fit(h.double().numpy(), y[keep].numpy())
    want = torch.as_tensor(svm.decision_function(h.double().numpy())) / float(torch.as_tensor(svm.coef_[0]).norm())
    torch.testing.assert_close(res.distances["train"], want, rtol=1e-9, atol=1e-9)
    acc = float((torch.as_tensor(svm.predict(h.double().numpy())) == y[keep]).double().mean())
    assert res.sets["train"]["accuracy"] == pytest.approx(acc)
    js, arrays = res.to_dict(), res.tensors()
    assert "arrays" not in js and set(arrays["distances"]) == {"train", "test", "borderline"}
    json.dumps(js)


def test_linearity_empty_sets():
    model = LinearInEmbedding()
    x, y = mirrored_blobs(50)
    empty = torch.empty(0, 6)
    no_test_y = torch.ones(5, dtype=torch.long)  # no member of classes 0 or 2
    res = linearity(model, "embedding", x, y, torch.rand(5, 6), no_test_y, 0, 2, empty, empty)
    for name in ("test", "borderline"):
        s = res.sets[name]
        assert s["n"] == 0 and s["misclassified"] == 0 and math.isnan(s["m1"]) and math.isnan(s["accuracy"])
        assert res.distances[name].shape == (0,)
    json.dumps(res.to_dict())  # NaN is allowed in JSON output (the pipeline maps it to null)


def test_linearity_argument_errors():
    model = LinearInEmbedding()
    x, y = mirrored_blobs(20)
    b = on_boundary(3)
    with pytest.raises(ValueError, match="y_train has no training input of class 1"):
        linearity(model, "embedding", x[y != 1], y[y != 1], x, y, 0, 1, b, b)
    with pytest.raises(ValueError, match="y_train must be a 1-d label tensor of length"):
        linearity(model, "embedding", x, y[:-1], x, y, 0, 2, b, b)
    with pytest.raises(TypeError, match="y_train must hold integer class labels"):
        linearity(model, "embedding", x, y.float(), x, y, 0, 2, b, b)
    with pytest.raises(ValueError, match="source and target must differ"):
        linearity(model, "embedding", x, y, x, y, 2, 2, b, b)
    with pytest.raises(ValueError, match="borderline_ts must have sample shape"):
        linearity(model, "embedding", x, y, x, y, 0, 2, b, torch.rand(2, 7))
    with pytest.raises(ValueError, match="is not a submodule"):
        linearity(model, "nope", x, y, x, y, 0, 2, b, b)
    with pytest.raises(ValueError, match="C must be a number > 0"):
        linearity(model, "embedding", x, y, x, y, 0, 2, b, b, C=0)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        linearity(lambda v: v, "embedding", x, y, x, y, 0, 2, b, b)
