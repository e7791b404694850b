"""Property-based tests (hypothesis): every op against deepdig_fast/reference.py on CPU.

Inputs: random sizes including 0 and 1, float32 / float64, non-contiguous views (transposed, strided,
offset into a larger tensor), small integers (exact ties), subnormals, large values and, where an op's
contract takes them, +-inf and NaN. Where the wrapper rejects an input, the property is the error.

Comparison rules (op_samples.assert_same): discrete outputs (status codes, indices, counts, istate)
exactly; floats that kernel and reference form with the same float64 operations exactly; reductions
done in a different order (softmax denominators, distances, dot products) within a bound stated at
the check. Documented float ties: a nearest-neighbour index may differ from the reference's only
between references whose squared distances differ by float64 rounding (the kernel's own summation
order is then checked exactly), and an example whose softmax gap lies within 1e-12 of a threshold
(beta, a band edge) is discarded (`assume`), since torch's exp and libm's exp may differ by an ulp.

Profiles (settings below): "ci" is the default, deterministic (derandomize=True), a few thousand
cases in all; "long" (DEEPDIG_HYPOTHESIS_PROFILE=long) runs >= 10,000 random cases.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from op_samples import assert_same

from deepdig_fast import ops
from deepdig_fast import reference as R

# --------------------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------------------

PROFILE_ENV = "DEEPDIG_HYPOTHESIS_PROFILE"
_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=400, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=2500, derandomize=False, **_COMMON)
PROFILE = os.environ.get(PROFILE_ENV, "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"{PROFILE_ENV} must be 'ci' or 'long', got {PROFILE!r}")
settings.load_profile(PROFILE)
_MAX = settings.get_profile(PROFILE).max_examples


def fewer(k: int):
    """Settings for a property cheaper to cover (error paths): 1/k of the profile's examples."""
    return settings(max_examples=max(25, _MAX // k))


# Logit rows that mix finite values and -inf: another change redefines a non-finite row as one with
# NaN, +inf, or nothing but -inf (today: any non-finite logit). Switch this on once reference.py and
# the kernels follow the new rule; rows of all -inf are generated either way (non-finite under both).
MIXED_NEG_INF_LOGITS = False

INF, NAN = float("inf"), float("nan")
DTYPES = st.sampled_from([torch.float32, torch.float64])

# --------------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------------


def _subnormals(dtype) -> list[float]:
    fi = torch.finfo(dtype)
    vals = [fi.tiny * fi.eps, fi.tiny / 2, fi.tiny * 0.75, fi.tiny]  # smallest subnormal .. smallest normal
    return vals + [-v for v in vals]


def finite(dtype, bound: float = 1e6):
    """Finite values exactly representable in dtype: general, small integers (ties), subnormals."""
    width = 32 if dtype == torch.float32 else 64
    return st.one_of(
        st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False),
        st.integers(-4, 4).map(float),
        st.sampled_from(_subnormals(dtype) + [0.0, -0.0]),
    )


def values(dtype, *, nonfinite=(), bound: float = 1e6):
    """finite(dtype), plus the given non-finite values about one time in eight."""
    base = finite(dtype, bound)
    if not nonfinite:
        return base
    return st.one_of(base, base, base, base, base, base, base, st.sampled_from(list(nonfinite)))


@st.composite
def matrix(draw, rows: int, cols: int, dtype, elements):
    flat = draw(st.lists(elements, min_size=rows * cols, max_size=rows * cols))
    return torch.tensor(flat, dtype=torch.float64).reshape(rows, cols).to(dtype)


@st.composite
def layout2d(draw, t: torch.Tensor, name: str):
    """t's values, as the contiguous tensor or a non-contiguous view of a larger one."""
    kind = draw(st.sampled_from(["contiguous", "transposed", "strided", "offset"]))
    note(f"{name}: {kind} {tuple(t.shape)}")
    n, m = t.shape
    if kind == "transposed":
        return t.t().contiguous().t()
    if kind == "strided":
        big = torch.zeros(2 * n, 3 * m, dtype=t.dtype)
        big[::2, ::3] = t
        return big[::2, ::3]
    if kind == "offset":
        big = torch.zeros(n + 2, m + 3, dtype=t.dtype)
        big[1 : n + 1, 2 : m + 2] = t
        return big[1 : n + 1, 2 : m + 2]
    return t


@st.composite
def layout1d(draw, t: torch.Tensor, name: str):
    kind = draw(st.sampled_from(["contiguous", "strided", "offset"]))
    note(f"{name}: {kind} {tuple(t.shape)}")
    n = t.shape[0]
    if kind == "strided":
        big = torch.zeros(2 * n, dtype=t.dtype)
        big[::2] = t
        return big[::2]
    if kind == "offset":
        big = torch.zeros(n + 1, dtype=t.dtype)
        big[1:] = t
        return big[1:]
    return t


@st.composite
def subset(draw, P: int) -> torch.Tensor:
    """Unique rows of [0, P) in random order (the live pairs of the engine)."""
    perm = draw(st.permutations(list(range(P))))
    M = draw(st.integers(0, P))
    return torch.tensor(perm[:M], dtype=torch.int64)


@st.composite
def bracket_fstate(draw, P: int) -> torch.Tensor:
    """[P, 4] float64 (lo, hi, g_lo, g_hi): lo <= hi in [0, 1] (lo == hi included); gaps of any sign,
    zero (the secant's denominator 0), infinite or NaN (the Illinois step must fall back)."""
    rows = []
    gap = st.one_of(st.floats(-1e3, 1e3), st.integers(-2, 2).map(float), st.sampled_from([INF, -INF, NAN]))
    for _ in range(P):
        lo = draw(st.floats(0, 1))
        hi = draw(st.one_of(st.just(lo), st.floats(lo, 1), st.just(math.nextafter(lo, 2.0))))
        rows.append([lo, hi, draw(gap), draw(gap)])
    return torch.tensor(rows, dtype=torch.float64).reshape(P, 4)


# --------------------------------------------------------------------------------------------------
# bracket
# --------------------------------------------------------------------------------------------------


@given(data=st.data())
def test_bracket_propose(data):
    draw = data.draw
    dtype = draw(DTYPES)
    P, D, method = draw(st.integers(0, 6)), draw(st.integers(0, 5)), draw(st.sampled_from([0, 1]))
    el = values(dtype, nonfinite=(INF, -INF, NAN))
    a = draw(layout2d(draw(matrix(P, D, dtype, el)), "a"))
    b = draw(layout2d(draw(matrix(P, D, dtype, el)), "b"))
    idx = draw(layout1d(draw(subset(P)), "idx"))
    fstate = draw(layout2d(draw(bracket_fstate(P)), "fstate"))
    args = (a, b, idx, fstate, method)
    assert_same("bracket_propose", ops.bracket_propose(*args), R.bracket_propose(*args), dtype)


def _logit_rows(draw, M: int, C: int, dtype) -> torch.Tensor:
    z = draw(matrix(M, C, dtype, finite(dtype, bound=50.0)))
    kinds = ["finite"] * 5 + ["nan", "+inf", "all -inf"] + (["mixed -inf"] if MIXED_NEG_INF_LOGITS else [])
    for r in range(M):
        kind = draw(st.sampled_from(kinds))
        c = draw(st.integers(0, C - 1))
        if kind == "nan":
            z[r, c] = NAN
        elif kind == "+inf":
            z[r, c] = INF
        elif kind == "all -inf":
            z[r] = -INF
        elif kind == "mixed -inf":
            z[r, c] = -INF
    return z


def _softmax_gap(logits: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """|p_s - p_t| per row, as the reference computes it (NaN for non-finite rows)."""
    z = logits.double()
    e = torch.exp(z - z.max(1, keepdim=True).values)
    p = e / e.sum(1, keepdim=True)
    rows = torch.arange(z.shape[0])
    return (p[rows, s] - p[rows, t]).abs()


@given(data=st.data())
def test_bracket_update(data):
    draw = data.draw
    dtype = draw(DTYPES)
    P, C, D = draw(st.integers(1, 6)), draw(st.integers(2, 5)), draw(st.integers(0, 3))
    beta = draw(st.one_of(st.sampled_from([1e-4, 0.01, 0.3, 1.0, 2.0]), st.floats(1e-6, 2.0)))
    max_steps, method = draw(st.integers(1, 6)), draw(st.sampled_from([0, 1]))
    idx = draw(subset(P))
    M = idx.shape[0]
    logits = _logit_rows(draw, M, C, dtype)
    x = draw(matrix(M, D, dtype, finite(dtype)))
    lam = torch.tensor(draw(st.lists(st.floats(0, 1), min_size=M, max_size=M)), dtype=torch.float64)
    stalled = torch.tensor(draw(st.lists(st.booleans(), min_size=M, max_size=M)), dtype=torch.bool)
    source = torch.tensor(draw(st.lists(st.integers(0, C - 1), min_size=P, max_size=P)), dtype=torch.int64)
    target = torch.tensor(draw(st.lists(st.integers(0, C - 1), min_size=P, max_size=P)), dtype=torch.int64)
    fstate = draw(bracket_fstate(P))
    istate = torch.tensor(
        [[draw(st.integers(0, max_steps)), -1, -1, draw(st.sampled_from([-1, 0, 1]))] for _ in range(P)],
        dtype=torch.int64,
    ).reshape(P, 4)
    # a softmax gap within rounding of beta: kernel (libm exp) and reference (torch exp) may disagree
    gap = _softmax_gap(logits, source[idx], target[idx])
    assume(not bool(((gap - beta).abs() <= 1e-12 * beta).any()))
    inputs = (
        draw(layout2d(logits, "logits")),
        draw(layout2d(x, "x")),
        draw(layout1d(idx, "idx")),
        draw(layout1d(lam, "lam")),
        draw(layout1d(stalled, "stalled")),
        draw(layout1d(source, "source")),
        draw(layout1d(target, "target")),
    )
    state = (
        fstate,
        istate,
        torch.zeros(P, D, dtype=dtype),
        torch.zeros(P, C, dtype=torch.float64),
        torch.zeros(P, dtype=torch.float64),
    )
    results = []
    for fn in (ops.bracket_update, R.bracket_update):
        st_copy = tuple(s.clone() for s in state)  # state and outputs must be contiguous: no views
        codes = fn(*inputs, *st_copy, beta, max_steps, method)
        results.append((codes, *st_copy))
    assert_same("bracket_update", results[0], results[1], dtype)


# --------------------------------------------------------------------------------------------------
# nearest_neighbor
# --------------------------------------------------------------------------------------------------


def _sequential_sq_distances(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """[Q, R] float64 squared distances summed over e in order, one rounding per operation: the
    kernel's arithmetic, so its argmin (first minimum) must be the kernel's index exactly."""
    qd, rd = q.double(), r.double()
    acc = torch.zeros(q.shape[0], r.shape[0], dtype=torch.float64)
    for e in range(q.shape[1]):
        d = qd[:, None, e] - rd[None, :, e]
        acc = acc + d * d
    return acc


@given(data=st.data())
def test_nearest_neighbor(data):
    draw = data.draw
    dtype = draw(DTYPES)
    Q, E = draw(st.integers(0, 6)), draw(st.integers(0, 4))
    Rn = draw(st.integers(0 if Q == 0 else 1, 6))
    el = finite(dtype, bound=1e6)
    q = draw(layout2d(draw(matrix(Q, E, dtype, el)), "queries"))
    r = draw(layout2d(draw(matrix(Rn, E, dtype, el)), "refs"))
    idx, dist = ops.nearest_neighbor(q, r)
    ridx, rdist = R.nearest_neighbor(q, r)
    if Q:
        # the kernel's own summation order: the lowest index among exact ties, exactly
        assert torch.equal(idx, _sequential_sq_distances(q, r).argmin(1)), "lowest index among ties"
        # against the reference: equal, or a tie up to float64 rounding of the squared distances
        d2 = ((q.double()[:, None, :] - r.double()[None, :, :]) ** 2).sum(-1)
        rows = torch.arange(Q)
        slack = (E + 2) * torch.finfo(torch.float64).eps * d2[rows, ridx] + torch.finfo(torch.float64).tiny
        tie = (d2[rows, idx] - d2[rows, ridx]).abs() <= slack
        assert bool(((idx == ridx) | tie).all()), (idx, ridx)
        ridx = torch.where(tie, idx, ridx)
    assert_same("nearest_neighbor", (idx, dist), (ridx, rdist), dtype)


@fewer(4)
@given(data=st.data())
def test_nearest_neighbor_rejects_nonfinite(data):
    draw = data.draw
    dtype = draw(DTYPES)
    Q, Rn, E = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    q = draw(matrix(Q, E, dtype, finite(dtype)))
    r = draw(matrix(Rn, E, dtype, finite(dtype)))
    name, bad = draw(st.sampled_from([("queries", q), ("refs", r)]))
    bad[draw(st.integers(0, bad.shape[0] - 1)), draw(st.integers(0, E - 1))] = draw(st.sampled_from([INF, -INF, NAN]))
    with pytest.raises(ValueError, match=f"{name} contains NaN or Inf"):
        ops.nearest_neighbor(q, r)


# --------------------------------------------------------------------------------------------------
# trajectory
# --------------------------------------------------------------------------------------------------


@given(data=st.data())
def test_segment_points(data):
    draw = data.draw
    dtype = draw(DTYPES)
    S = draw(st.integers(0, 6))
    N = draw(st.integers(1 if S else 0, 6))
    D, T = draw(st.integers(0, 4)), draw(st.integers(1, 6))
    x = draw(layout2d(draw(matrix(N, D, dtype, values(dtype, nonfinite=(INF, -INF, NAN)))), "x"))
    ends = st.lists(st.integers(0, max(N - 1, 0)), min_size=S, max_size=S)
    i_idx = draw(layout1d(torch.tensor(draw(ends), dtype=torch.int64), "i_idx"))
    j_idx = draw(layout1d(torch.tensor(draw(ends), dtype=torch.int64), "j_idx"))
    args = (x, i_idx, j_idx, T)
    assert_same("segment_points", (ops.segment_points(*args),), (R.segment_points(*args),), dtype)


@fewer(4)
@given(data=st.data())
def test_segment_points_rejects_bad_ends(data):
    draw = data.draw
    N, S = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    x = torch.zeros(N, 2)
    i_idx = torch.tensor(draw(st.lists(st.integers(0, N - 1), min_size=S, max_size=S)))
    j_idx = torch.tensor(draw(st.lists(st.integers(0, N - 1), min_size=S, max_size=S)))
    bad = draw(st.sampled_from([i_idx, j_idx]))
    s = draw(st.integers(0, S - 1))
    bad[s] = draw(st.one_of(st.integers(-10, -1), st.integers(N, N + 10)))
    first = int(((i_idx < 0) | (i_idx >= N) | (j_idx < 0) | (j_idx >= N)).nonzero()[0])
    with pytest.raises(RuntimeError, match=rf"segment {first} has ends .* outside \[0, {N}\)"):
        ops.segment_points(x, i_idx, j_idx, 3)


BAND_EDGES = st.sampled_from([-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0])


@given(data=st.data())
def test_trajectory_stats(data):
    draw = data.draw
    dtype = draw(DTYPES)
    S, T, C = draw(st.integers(0, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    # +-inf in the logits but no NaN: see test_trajectory_stats_nan_logits_agree below
    logits = draw(matrix(S * T, C, dtype, values(dtype, nonfinite=(INF, -INF), bound=50.0)))
    classes = st.lists(st.integers(0, C - 1), min_size=S, max_size=S)
    source = torch.tensor(draw(classes), dtype=torch.int64)
    target = torch.tensor(draw(classes), dtype=torch.int64)
    lo, hi = sorted(draw(st.one_of(st.tuples(BAND_EDGES, BAND_EDGES), st.tuples(st.floats(-1, 1), st.floats(-1, 1)))))
    if S:
        # kernel and reference round p_s - p_t differently by a few ulps of p_s + p_t; discard examples
        # with a gap that close to (but not on) a band edge. Exempt: a gap of exactly 0 (z_s == z_t:
        # the same exp on both sides, zero in both), and edges at +-1 (the gap (e_s - e_t) / sum e
        # never leaves [-1, 1], whatever the rounding).
        z = logits.double()
        e = torch.exp(z - z.max(1, keepdim=True).values)
        rows = torch.arange(S * T)
        es, et = e[rows, source.repeat_interleave(T)], e[rows, target.repeat_interleave(T)]
        gap = (es - et) / e.sum(1)
        slack = 8 * torch.finfo(torch.float64).eps * (es + et) / e.sum(1)
        for edge in (lo, hi):
            near = ((gap - edge).abs() <= slack) & (gap != edge) & (gap != 0)
            assume(abs(edge) >= 1 or not bool(near.any()))
    args = (
        draw(layout2d(logits, "logits")),
        draw(layout1d(source, "source")),
        draw(layout1d(target, "target")),
        T,
        lo,
        hi,
    )
    assert_same("trajectory_stats", (ops.trajectory_stats(*args),), (R.trajectory_stats(*args),), dtype)


def test_trajectory_stats_nan_logits_agree():
    """A NaN logit is the argmax, as torch.argmax has it (the first NaN of a row wins)."""
    logits = torch.tensor([[1.0, NAN, 0.0], [1.0, 0.0, 0.0]])
    args = (logits, torch.tensor([0]), torch.tensor([1]), 2, -0.1, 0.1)
    assert torch.equal(ops.trajectory_stats(*args), R.trajectory_stats(*args))


# --------------------------------------------------------------------------------------------------
# linear_distances
# --------------------------------------------------------------------------------------------------


@given(data=st.data())
def test_linear_distances(data):
    draw = data.draw
    dtype = draw(DTYPES)
    N, E = draw(st.integers(0, 8)), draw(st.integers(1, 5))
    with_inf = draw(st.sampled_from([False, False, False, True]))  # +-inf in h for a quarter of the examples
    h = draw(matrix(N, E, dtype, values(dtype, nonfinite=(INF, -INF) if with_inf else ())))
    w_el = st.one_of(st.integers(-3, 3).map(float), st.floats(-1e3, 1e3).filter(lambda v: v == 0 or abs(v) > 1e-100))
    w = torch.tensor(draw(st.lists(w_el, min_size=E, max_size=E)), dtype=torch.float64)
    assume(float((w * w).sum()) > 0)  # else the op raises: test_linear_distances_rejects_zero_w
    bias = draw(st.one_of(st.integers(-2, 2).map(float), st.floats(-1e6, 1e6)))
    labels = torch.tensor(draw(st.lists(st.integers(0, 1), min_size=N, max_size=N)), dtype=torch.int64)
    rd, rsummary = R.linear_distances(h, w, bias, labels)
    assume(not bool(rd.isnan().any()))  # inf - inf or inf * 0: see test_linear_distances_nan_agree
    args = (draw(layout2d(h, "h")), draw(layout1d(w, "w")), bias, draw(layout1d(labels, "labels")))
    d, summary = ops.linear_distances(*args)
    assert d.dtype == torch.float64 and d.shape == (N,) and summary.shape == (9,)
    # d: the kernel sums h_e * w_e in order, the reference with a BLAS dot; both round each of the
    # E products and E + 1 sums, so they differ by at most (E + 2) eps * (sum |h_e w_e| + |bias|) / ||w||
    eps = torch.finfo(torch.float64).eps
    norm = float(torch.linalg.vector_norm(w))
    bound = (E + 2) * eps * ((h.double().abs() @ w.abs()) + abs(bias)) / norm + 1e-300
    same_nonfinite = ~torch.isfinite(rd) & (d == rd)
    assert bool(((d - rd).abs() <= bound).logical_or(same_nonfinite).all()), (d, rd, bound)
    # the summary is a function of d and labels: the reference applied to the kernel's own d (as a
    # one-feature embedding with w = 1, bias 0) must give it, up to the order of the sums (mean d)
    _, want = R.linear_distances(d[:, None], torch.ones(1, dtype=torch.float64), 0.0, labels)
    big = float(d.abs().max()) if N and bool(torch.isfinite(d).all()) else 0.0
    torch.testing.assert_close(summary[:7], want[:7], rtol=1e-12, atol=4 * N * eps * big, equal_nan=True)
    assert torch.equal(summary[7:].nan_to_num(-1.0), want[7:].nan_to_num(-1.0)), (summary, want)
    # and where no distance is within rounding of the plane, the misclassified count is the reference's
    if not bool((rd.abs() <= bound).any()):
        assert summary[8] == rsummary[8]


@fewer(8)
@given(data=st.data())
def test_linear_distances_rejects_zero_w(data):
    N, E = data.draw(st.integers(0, 4)), data.draw(st.integers(1, 4))
    with pytest.raises(RuntimeError, match="w must not be all zeros"):
        ops.linear_distances(
            torch.rand(N, E), torch.zeros(E, dtype=torch.float64), 0.0, torch.zeros(N, dtype=torch.int64)
        )


def test_linear_distances_nan_agree():
    """A NaN distance makes the summary's max and min NaN, as torch's max / min do."""
    h = torch.tensor([[1.0, NAN], [2.0, 0.0], [-1.0, 0.0]])
    w = torch.ones(2, dtype=torch.float64)
    labels = torch.tensor([1, 1, 0])
    _, got = ops.linear_distances(h, w, 0.0, labels)
    _, want = R.linear_distances(h, w, 0.0, labels)
    torch.testing.assert_close(got, want, equal_nan=True)
