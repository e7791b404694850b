"""Representative arguments for every deepdig_fast op, and one comparison rule per op.

`sample_inputs(op, device, dtype)` yields `Sample`s: named positional-argument tuples that the public
wrapper (deepdig_fast.ops.<op> or deepdig_fast.train_ops.<op>), the raw operator (torch.ops.deepdig_fast.<op>) and the plain-torch
twin (deepdig_fast.reference.<op>) all accept. One generator per stem (bracket, nearest_neighbor,
trajectory, linear_distances) covers: empty inputs, one row, a typical size, non-contiguous views
(where the op takes views: bracket_update's state and output tensors must be contiguous), and edge
values. `dtype` is the dtype of the point / logit tensors; index, state and float64 arguments keep
their own dtypes. The samples feed the reference-parity, CPU/CUDA-parity, opcheck, torch.compile and
16-bit tests.

`run_op(fn, op, sample)` calls one implementation on fresh copies of the arguments and returns every
tensor the op produces (bracket_update: its codes and the five tensors it mutates); `assert_same(op,
got, want, dtype)` compares two such results with the op's rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

OPS = (
    "bracket_propose",
    "bracket_update",
    "nearest_neighbor",
    "segment_points",
    "trajectory_stats",
    "linear_distances",
    "max_pool2d",
    "max_pool2d_backward",
    "conv2d",
    "conv2d_grad_input",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
)
HALF_DTYPES = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Sample:
    name: str
    args: tuple

    def fresh(self) -> tuple:
        """The arguments with every tensor cloned (preserving strides), so an op that mutates its
        inputs (bracket_update) leaves the sample untouched."""
        return tuple(_clone_keep_strides(a) if isinstance(a, Tensor) else a for a in self.args)

    def to(self, device) -> Sample:
        """The same sample on another device; views stay views (the base tensor moves)."""
        return Sample(self.name, tuple(_to_keep_strides(a, device) if isinstance(a, Tensor) else a for a in self.args))


def _clone_keep_strides(t: Tensor) -> Tensor:
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


def _to_keep_strides(t: Tensor, device) -> Tensor:
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=device)
    out.copy_(t.to(device))
    return out


def sample_inputs(op: str, device, dtype: torch.dtype) -> Iterator[Sample]:
    """Every sample of `op` (see the module docstring)."""
    gens = {
        "bracket_propose": bracket_samples,
        "bracket_update": bracket_samples,
        "nearest_neighbor": nearest_neighbor_samples,
        "segment_points": trajectory_samples,
        "trajectory_stats": trajectory_samples,
        "linear_distances": linear_distances_samples,
        "max_pool2d": max_pool2d_samples,
        "max_pool2d_backward": max_pool2d_samples,
        "conv2d": conv2d_samples,
        "conv2d_grad_input": conv2d_samples,
        "binary_cross_entropy": bce_samples,
        "binary_cross_entropy_backward": bce_samples,
    }
    if op not in gens:
        raise KeyError(f"no samples for op {op!r}; known: {OPS}")
    for s in gens[op](op, "cpu", dtype):
        yield s if torch.device(device).type == "cpu" else s.to(device)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _noncontig_cols(t: Tensor) -> Tensor:
    """t's values as a view with column stride 2 (not contiguous)."""
    big = torch.zeros(t.shape[0], 2 * t.shape[1], dtype=t.dtype, device=t.device)
    big[:, ::2] = t
    view = big[:, ::2]
    assert t.shape[1] < 1 or not view.is_contiguous()
    return view


def _noncontig_1d(t: Tensor) -> Tensor:
    big = torch.zeros(2 * t.shape[0], dtype=t.dtype, device=t.device)
    big[::2] = t
    return big[::2]


# --------------------------------------------------------------------------------------------------
# bracket
# --------------------------------------------------------------------------------------------------


def bracket_state(P: int, D: int, dtype, device="cpu", seed: int = 0):
    """(a [P, D], b [P, D], fstate [P, 4]): random ends and a valid bracket, g_lo > 0 > g_hi."""
    g = _gen(seed)
    a = torch.rand(P, D, generator=g, dtype=torch.float64).to(dtype)
    b = torch.rand(P, D, generator=g, dtype=torch.float64).to(dtype)
    lo = torch.rand(P, generator=g, dtype=torch.float64) * 0.5
    hi = lo + torch.rand(P, generator=g, dtype=torch.float64) * 0.5 + 1e-3
    glo = torch.rand(P, generator=g, dtype=torch.float64) * 3 + 0.01
    ghi = -torch.rand(P, generator=g, dtype=torch.float64) * 3 - 0.01
    fstate = torch.stack([lo, hi, glo, ghi], 1)
    return a.to(device), b.to(device), fstate.to(device)


UPDATE_KEYS = (
    "logits",
    "x",
    "idx",
    "lam",
    "stalled",
    "source",
    "target",
    "fstate",
    "istate",
    "points",
    "probs",
    "lam_out",
)


def update_case(P: int, C: int, D: int, dtype, device="cpu", seed: int = 0) -> dict:
    """bracket_update's tensor arguments for P pairs (M = P - 3 of them evaluated) whose rows cover
    every outcome: source or target wins, a third class wins, exact ties (success), a near-tie,
    stalled rows, attempts near the cap (max_steps = 5) and, when M > 0, a NaN logit in row 0."""
    g = _gen(seed)
    _, _, fstate = bracket_state(P, D, dtype, seed=seed)
    source = torch.randint(0, C, (P,), generator=g)
    target = (source + 1 + torch.randint(0, C - 1, (P,), generator=g)) % C
    M = max(P - 3, 0)
    idx = torch.randperm(P, generator=g)[:M]
    logits = torch.randn(M, C, generator=g, dtype=torch.float64) * 3
    s, t = source[idx], target[idx]
    rows = torch.arange(M)
    kind = torch.randint(0, 6, (M,), generator=g)
    top = logits.abs().max(1).values + 5 if M else logits.new_empty(0)
    logits[rows, s] = torch.where(kind == 0, top, logits[rows, s])
    logits[rows, t] = torch.where(kind == 1, top, logits[rows, t])
    logits[rows, s] = torch.where(kind == 2, top, logits[rows, s])
    logits[rows, t] = torch.where(kind == 2, top + 1e-9, logits[rows, t])  # |ps - pt| < beta
    logits[rows, s] = torch.where(kind == 3, top, logits[rows, s])
    logits[rows, t] = torch.where(kind == 3, top - 0.5, logits[rows, t])
    stalled = torch.rand(M, generator=g) < 0.15
    istate = torch.zeros(P, 4, dtype=torch.int64)
    istate[:, 0] = torch.randint(0, 5, (P,), generator=g)
    istate[:, 1] = -1
    istate[:, 2] = -1
    istate[:, 3] = torch.randint(-1, 2, (P,), generator=g)
    if M:
        logits[0, 0] = float("nan")
    lam = torch.rand(M, generator=g, dtype=torch.float64)
    x = torch.rand(M, D, generator=g, dtype=torch.float64).to(dtype)
    case = dict(
        logits=logits.to(dtype),
        x=x,
        idx=idx,
        lam=lam,
        stalled=stalled,
        source=source,
        target=target,
        fstate=fstate,
        istate=istate,
        points=torch.zeros(P, D, dtype=dtype),
        probs=torch.zeros(P, C, dtype=torch.float64),
        lam_out=torch.zeros(P, dtype=torch.float64),
    )
    return {k: v.to(device) for k, v in case.items()}


def update_args(case: dict, beta: float = 1e-4, max_steps: int = 5, method: int = 0) -> tuple:
    return tuple(case[k] for k in UPDATE_KEYS) + (beta, max_steps, method)


def call_update(fn, case: dict, beta: float = 1e-4, max_steps: int = 5, method: int = 0) -> tuple[Tensor, dict]:
    """bracket_update (`fn`: the op or its reference twin) on a copy of `case`: (codes, the updated copy)."""
    c = {k: v.clone() for k, v in case.items()}
    return fn(*update_args(c, beta, max_steps, method)), c


def bracket_samples(op: str, device, dtype) -> Iterator[Sample]:
    if op == "bracket_propose":
        for method in (0, 1):
            a, b, fstate = bracket_state(10, 12, dtype, device)
            yield Sample(f"empty-m{method}", (a, b, torch.empty(0, dtype=torch.long), fstate, method))
            a, b, fstate = bracket_state(1, 5, dtype, device, seed=1)
            yield Sample(f"one-m{method}", (a, b, torch.tensor([0]), fstate, method))
            a, b, fstate = bracket_state(37, 29, dtype, device, seed=2)
            idx = torch.randperm(37, generator=_gen(2))[:23]
            yield Sample(f"typical-m{method}", (a, b, idx, fstate, method))
            a, b, fstate = bracket_state(10, 12, dtype, device, seed=3)
            fstate_view = torch.cat([fstate, fstate], 1)[:, ::2]
            yield Sample(
                f"noncontiguous-m{method}",
                (_noncontig_cols(a), _noncontig_cols(b), _noncontig_1d(torch.tensor([9, 0, 4])), fstate_view, method),
            )
            a, b, fstate = bracket_state(9, 7, dtype, device, seed=6)
            yield Sample(f"empty-rows-m{method}", (a, b, torch.tensor([-1, 4, -1, 0, 8, -1]), fstate, method))
        # identical ends; a bracket far below the working precision; an empty bracket lo == hi; a
        # secant that leaves the bracket (g_lo = inf) and one that is undefined (g_lo == g_hi)
        a, b, fstate = bracket_state(6, 8, dtype, device, seed=4)
        b[0] = a[0]
        fstate[1, 1] = fstate[1, 0] + 1e-300
        fstate[2, 1] = fstate[2, 0]
        fstate[3, 2] = float("inf")
        fstate[4, 2] = fstate[4, 3] = 0.0
        for method in (0, 1):
            yield Sample(f"edges-m{method}", (a, b, torch.arange(6), fstate, method))
        # denormal, huge and non-finite coordinates (the ops interpolate whatever they are given)
        a, b, fstate = bracket_state(4, 3, dtype, device, seed=5)
        tiny = torch.finfo(dtype).tiny
        a[0] = tiny / 4
        b[0] = -tiny / 2
        a[1] = torch.finfo(dtype).max / 2
        b[1] = -torch.finfo(dtype).max / 2
        a[2, 0] = float("inf")
        b[3, 1] = float("nan")
        yield Sample("values", (a, b, torch.arange(4), fstate, 0))
        return
    yield Sample("typical-m0", update_args(update_case(60, 6, 11, dtype), method=0))
    yield Sample("typical-m1", update_args(update_case(60, 6, 11, dtype, seed=1), method=1))
    yield Sample("empty", update_args(update_case(3, 4, 5, dtype)))
    yield Sample("one", update_args(update_case(4, 2, 3, dtype, seed=2), method=1))
    c = update_case(20, 5, 7, dtype, seed=3)
    for k in ("logits", "x"):
        c[k] = _noncontig_cols(c[k])
    for k in ("idx", "lam", "stalled", "source", "target"):
        c[k] = _noncontig_1d(c[k])
    yield Sample("noncontiguous", update_args(c, method=1))
    # rows: +inf, all -inf (non-finite under any rule), exact tie, third class; large beta; cap 1
    c = update_case(8, 3, 2, dtype, seed=4)
    c["logits"][1] = float("inf")
    c["logits"][2] = float("-inf")
    c["logits"][3] = torch.tensor([1.0, 1.0, 1.0])
    c["logits"][4] = torch.tensor([-3.0, 0.0, 2.0])
    yield Sample("values", update_args(c, beta=0.25, max_steps=1, method=0))
    # empty slots of a fixed-size live batch (idx -1) between real rows, with the NaN row among them
    for method in (0, 1):
        c = update_case(30, 5, 6, dtype, seed=5 + method)
        c["idx"][::3] = -1
        yield Sample(f"empty-rows-m{method}", update_args(c, method=method))


# --------------------------------------------------------------------------------------------------
# nearest_neighbor
# --------------------------------------------------------------------------------------------------


def nearest_neighbor_samples(op: str, device, dtype) -> Iterator[Sample]:
    g = _gen(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    yield Sample("empty", (randn(0, 6), randn(10, 6)))
    yield Sample("empty-both", (randn(0, 6), randn(0, 6)))
    yield Sample("one", (randn(1, 3), randn(1, 3)))
    yield Sample("typical", (randn(57, 50), randn(300, 50)))  # > 256 refs: crosses the CPU ref tile
    yield Sample("few-refs", (randn(200, 7), randn(33, 7)))
    # exact ties (the lowest index wins) and duplicated reference rows
    r = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    q = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 0.0]], dtype=dtype)
    yield Sample("ties", (q, r))
    yield Sample("noncontiguous", (randn(40, 12)[::2, ::2], randn(6, 30).t()))
    tiny = torch.finfo(dtype).tiny
    q = torch.tensor([[tiny / 2, 0.0], [1e4, -1e4], [0.0, 0.0]], dtype=dtype)
    r = torch.tensor([[0.0, 0.0], [1e4, -1e4], [tiny, tiny]], dtype=dtype)
    yield Sample("values", (q, r))


# --------------------------------------------------------------------------------------------------
# trajectory
# --------------------------------------------------------------------------------------------------


def random_logits(S: int, T: int, C: int, dtype, device="cpu", seed: int = 0):
    """(logits [S*T, C], source [S], target [S]): labels piecewise constant along each segment
    (runs of about T/4 points, as a classifier gives), source != target."""
    g = _gen(seed)
    pieces = torch.randn(S, 4, C, generator=g, dtype=torch.float64)
    run = (torch.arange(T) * 4) // T
    logits = pieces[:, run].reshape(S * T, C)
    src = torch.randint(0, C, (S,), generator=g)
    tgt = (src + 1 + torch.randint(0, C - 1, (S,), generator=g)) % C
    return logits.to(dtype).to(device), src.to(device), tgt.to(device)


def trajectory_samples(op: str, device, dtype) -> Iterator[Sample]:
    g = _gen(0)
    if op == "segment_points":
        x = torch.rand(20, 33, generator=g, dtype=torch.float64).to(dtype)
        i = torch.randint(0, 20, (17,), generator=g)
        j = torch.randint(0, 20, (17,), generator=g)
        empty = torch.empty(0, dtype=torch.long)
        yield Sample("empty", (x, empty, empty, 9))
        yield Sample("one", (x[:1], torch.tensor([0]), torch.tensor([0]), 1))
        yield Sample("typical", (x, i, j, 7))
        yield Sample("long", (x, i[:3], j[:3], 64))
        yield Sample(
            "noncontiguous",
            (
                _noncontig_cols(x[:5, :4]),
                _noncontig_1d(torch.tensor([0, 4, 2])),
                _noncontig_1d(torch.tensor([3, 1, 2])),
                3,
            ),
        )
        v = x[:4, :3].clone()
        v[0, 0], v[1, 1], v[2, 2] = float("inf"), float("-inf"), float("nan")
        v[3] = torch.finfo(dtype).tiny / 2
        yield Sample("values", (v, torch.tensor([0, 1, 3, 2]), torch.tensor([1, 3, 0, 2]), 4))
        return
    empty = torch.empty(0, dtype=torch.long)
    yield Sample("empty", (torch.empty(0, 4, dtype=dtype), empty, empty, 5, -0.1, 0.1))
    yield Sample("one", random_logits(1, 1, 2, dtype) + (1, -0.2, 0.3))
    yield Sample("typical", random_logits(13, 50, 10, dtype, seed=1) + (50, -0.2, 0.3))
    yield Sample("short-segments", random_logits(40, 7, 3, dtype, seed=2) + (7, -0.1, 0.1))
    logits, src, tgt = random_logits(6, 5, 4, dtype, seed=3)
    yield Sample("noncontiguous", (_noncontig_cols(logits), _noncontig_1d(src), _noncontig_1d(tgt), 5, -0.1, 0.1))
    # +-inf logits, exact ties, source == target, a band of one value (gap exactly 0 counts)
    logits = torch.randn(4 * 3, 3, generator=g, dtype=torch.float64).to(dtype)
    logits[0, 1] = float("inf")
    logits[1] = float("-inf")
    logits[2, 2] = float("-inf")
    logits[3] = 0.5
    logits[4, :2] = 2.0
    yield Sample("values", (logits, torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), 3, 0.0, 0.0))
    # gaps p_s - p_t a little inside and outside both band edges, never on them
    off = torch.tensor([2e-3, 2e-2], dtype=torch.float64)
    gaps = torch.cat([e + sgn * off for e in (-0.1, 0.1) for sgn in (-1, 1)])
    z = torch.atanh(gaps)  # softmax of (z, -z): p_0 - p_1 = tanh(z)
    logits = torch.stack([z, -z], 1).to(dtype)
    yield Sample("band-edges", (logits, torch.tensor([0, 1]), torch.tensor([1, 0]), 4, -0.1, 0.1))
    yield Sample(
        "one-class",
        (
            torch.randn(6, 1, generator=g, dtype=torch.float64).to(dtype),
            torch.tensor([0, 0]),
            torch.tensor([0, 0]),
            3,
            -1.0,
            1.0,
        ),
    )


# --------------------------------------------------------------------------------------------------
# linear_distances
# --------------------------------------------------------------------------------------------------


def linear_distances_samples(op: str, device, dtype) -> Iterator[Sample]:
    g = _gen(0)

    def randn(*shape, dt=dtype):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dt)

    def labels(n):
        return torch.randint(0, 2, (n,), generator=g)

    yield Sample("empty", (randn(0, 3), randn(3, dt=torch.float64), 0.0, labels(0)))
    yield Sample("one", (randn(1, 50), randn(50, dt=torch.float64), 0.3, labels(1)))
    yield Sample("typical", (randn(1000, 50), randn(50, dt=torch.float64), 0.3, labels(1000)))
    yield Sample(
        "noncontiguous",
        (_noncontig_cols(randn(30, 8)), _noncontig_1d(randn(8, dt=torch.float64)), -0.2, _noncontig_1d(labels(30))),
    )
    # all on the right side (the misclassified means are over nothing: NaN); points on the plane
    # (d = 0 counts as the negative side); denormal and large embeddings; a large bias
    h = torch.tensor([[3.0, 5.0], [0.0, 1.0], [1.0, -2.0], [1.0, 7.0]], dtype=dtype)
    w = torch.tensor([2.0, 0.0], dtype=torch.float64)
    yield Sample("all-correct", (h, w, -1.0, torch.tensor([1, 0, 0, 0])))
    tiny = torch.finfo(dtype).tiny
    h = torch.tensor([[tiny / 2, 0.0], [1e4, -1e4], [0.0, 0.0]], dtype=dtype)
    yield Sample("values", (h, torch.tensor([1.0, 3.0], dtype=torch.float64), 1e6, torch.tensor([1, 0, 1])))


# --------------------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------------------


def _pool_inputs(dtype) -> Iterator[tuple[str, Tensor, tuple]]:
    """(name, x, (kernel_size, stride, padding, dilation, ceil_mode)) of every max_pool2d sample."""
    g = _gen(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    cl = torch.channels_last
    yield "empty", randn(0, 3, 6, 6), ([2, 2], [2, 2], [0, 0], [1, 1], False)
    yield "one", randn(1, 1, 4, 4), ([2, 2], [2, 2], [0, 0], [1, 1], False)
    yield "typical", randn(4, 5, 13, 11), ([2, 2], [2, 2], [0, 0], [1, 1], False)
    # the ResNet stem's pool; 20 channels: a full block of 16 and a tail of 4 in the NHWC kernel
    yield "channels-last", randn(3, 20, 9, 9).contiguous(memory_format=cl), ([3, 3], [2, 2], [1, 1], [1, 1], False)
    yield "overlapping", randn(2, 3, 7, 8).contiguous(memory_format=cl), ([3, 2], [1, 1], [1, 1], [1, 1], False)
    yield "dilated-ceil", randn(2, 3, 10, 9), ([3, 3], [2, 3], [1, 1], [2, 1], True)
    yield "noncontiguous", randn(2, 6, 8, 8)[:, ::2], ([2, 2], [2, 1], [1, 0], [1, 1], True)
    # ties (a constant plane: the first position wins), -inf everywhere, +inf and NaNs (the last
    # NaN of a window wins), in both layouts
    v = randn(2, 4, 6, 6)
    v[0, 0] = 1.0
    v[0, 1] = float("-inf")
    v[0, 2, 1, 1] = float("inf")
    v[1, 0, 0, 0] = v[1, 0, 1, 1] = float("nan")
    v[1, 1, 2:4, 2:4] = 3.0
    yield "values", v, ([2, 2], [2, 2], [0, 0], [1, 1], False)
    yield "values-channels-last", v.contiguous(memory_format=cl), ([3, 3], [2, 2], [1, 1], [1, 1], True)


def max_pool2d_samples(op: str, device, dtype) -> Iterator[Sample]:
    g = _gen(1)
    for name, x, settings in _pool_inputs(dtype):
        if op == "max_pool2d":
            yield Sample(name, (x, *settings))
            continue
        out, indices = torch.nn.functional.max_pool2d(x, *settings, return_indices=True)
        grad = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype)
        if name == "channels-last":
            grad = grad.contiguous(memory_format=torch.channels_last)
        yield Sample(name, (grad, x, indices, *settings))
    if op == "max_pool2d_backward":
        # channels_last outputs' gradient given an NCHW x: comes back in NCHW planes (the training
        # copy's first pool, adversarial.accelerate.PoolGradToPlanes), scattered without a transposing copy
        cl = torch.channels_last
        x = torch.randn(3, 10, 13, 11, generator=g, dtype=torch.float64).to(dtype)
        out, indices = torch.nn.functional.max_pool2d(x.contiguous(memory_format=cl), 2, 2, return_indices=True)
        grad = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype).contiguous(memory_format=cl)
        yield Sample("into-planes", (grad, x, indices, [2, 2], [2, 2], [0, 0], [1, 1], False))


# --------------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------------


def conv2d_samples(op: str, device, dtype) -> Iterator[Sample]:
    """Empty batch, one input channel (the MNIST CNN's first layer, NCHW and channels_last strides),
    three channels with stride and padding, a wide layer, a non-contiguous input, no bias."""
    g = _gen(2)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    cl = torch.channels_last

    def nhwc_strides(t):  # channels_last strides even for one channel (.contiguous(cl) keeps NCHW's)
        n, c, h, w = t.shape
        return torch.empty_strided(t.shape, (h * w * c, 1, w * c, c), dtype=t.dtype).copy_(t)

    cases = [
        ("empty", randn(0, 1, 6, 6), randn(4, 1, 3, 3), randn(4), [1, 1], [0, 0]),
        ("one-channel", randn(3, 1, 12, 12), randn(10, 1, 3, 3), randn(10), [1, 1], [0, 0]),
        # 1-channel tensors with channels_last strides (also "contiguous"; ATen's unfold + GEMM
        # path would read them as channels_last, so the kernel re-strides them first)
        (
            "one-channel-cl",
            nhwc_strides(randn(3, 1, 12, 12)),
            nhwc_strides(randn(10, 1, 3, 3)),
            randn(10),
            [1, 1],
            [0, 0],
        ),
        ("rgb-stride-pad", randn(2, 3, 11, 9), randn(5, 3, 3, 5), randn(5), [2, 1], [1, 2]),
        (
            "wide-channels-last",
            randn(2, 12, 7, 7).contiguous(memory_format=cl),
            randn(16, 12, 3, 3).contiguous(memory_format=cl),
            randn(16),
            [1, 1],
            [1, 1],
        ),
        ("noncontiguous", randn(2, 4, 10, 10)[:, ::2, :, 1:], randn(3, 2, 2, 2), randn(3), [1, 2], [0, 1]),
        ("no-bias", randn(2, 2, 5, 5), randn(3, 2, 5, 5), None, [1, 1], [0, 0]),
    ]
    for name, x, w, b, stride, padding in cases:
        if op == "conv2d":
            yield Sample(name, (x, w, b, stride, padding))
            continue
        out = torch.nn.functional.conv2d(x, w, b, stride, padding)
        grad = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype)
        if name.endswith("cl") or "channels-last" in name:
            grad = grad.contiguous(memory_format=cl)
        yield Sample(name, (grad, x, w, stride, padding))


# --------------------------------------------------------------------------------------------------
# binary_cross_entropy
# --------------------------------------------------------------------------------------------------


def bce_samples(op: str, device, dtype) -> Iterator[Sample]:
    """Empty, one element, an MNIST batch's shape, a non-contiguous view, and the edges: inputs 0 and
    1 (logarithms clamped at -100), a tiny input (x * (1 - x) below the 1e-12 floor), targets 0 and 1."""
    g = _gen(3)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64).to(dtype)

    edge_x = torch.tensor([0.0, 1.0, 1e-30, 1 - 1e-7, 0.5, 0.25], dtype=torch.float64).to(dtype)
    edge_t = torch.tensor([0.3, 0.6, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64).to(dtype)
    cases = [
        ("empty", rand(0, 5), rand(0, 5)),
        ("one", rand(1), rand(1)),
        ("batch", rand(16, 1, 28, 28), rand(16, 1, 28, 28)),
        ("noncontiguous", rand(6, 12)[:, ::3], rand(6, 12)[:, 1::3]),
        (
            "probabilities",
            torch.softmax(torch.randn(8, 10, generator=g, dtype=torch.float64), 1).to(dtype),
            torch.eye(10, dtype=dtype)[:8],
        ),
    ]
    if op == "binary_cross_entropy":  # ATen's backward formula gives +-inf / NaN-free values here
        cases.append(("edges", edge_x, edge_t))
    for name, x, t in cases:
        if op == "binary_cross_entropy":
            yield Sample(name, (x, t))
        else:
            yield Sample(name, (torch.tensor(0.75, dtype=dtype), x, t))
    if op == "binary_cross_entropy_backward":
        yield Sample("edges", (torch.tensor(1.5, dtype=dtype), edge_x, edge_t))


# --------------------------------------------------------------------------------------------------
# running and comparing
# --------------------------------------------------------------------------------------------------


def run_op(fn, op: str, sample: Sample) -> tuple[Tensor, ...]:
    """Calls fn (a wrapper, raw op or reference function of `op`) on fresh copies of the sample's
    arguments; returns all its output tensors, plus the mutated state for bracket_update."""
    args = sample.fresh()
    out = fn(*args)
    if op == "bracket_update":
        return (out,) + tuple(args[7:12])  # codes, fstate, istate, points, probs, lam_out
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def ulp_tolerance(dtype) -> dict:
    """One unit in the last place of `dtype` (relative), and its smallest subnormal (absolute).

    Kernels and reference form 16-bit results the same way: in float64 from the exactly widened
    16-bit inputs, then one conversion to the 16-bit type. The C++ conversion goes double -> float
    -> half (c10::Half / c10::BFloat16 are constructed from float), and torch's .to() may round
    directly, so the two results can differ by a double-rounding step: at most one ulp."""
    fi = torch.finfo(dtype)
    return dict(rtol=fi.eps, atol=fi.tiny * fi.eps)


def _close(got, want, name, *, exact: bool, dtype=None, rtol=0.0, atol=0.0):
    if exact and dtype not in HALF_DTYPES:
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{name}: {m}")
    elif exact:
        torch.testing.assert_close(got, want, equal_nan=True, msg=lambda m: f"{name}: {m}", **ulp_tolerance(dtype))
    else:
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, equal_nan=True, msg=lambda m: f"{name}: {m}")


def assert_same(op: str, got: tuple, want: tuple, dtype, where: str = "") -> None:
    """The op's comparison rule (got and want as run_op returns them, on the same device).

    Discrete outputs (codes, indices, stall flags, counts, istate) must be equal. Floats that both
    sides compute with the same float64 operations in the same order (interpolated points, lam,
    bracket state) must be equal in float32/float64 and within one ulp in 16-bit (ulp_tolerance).
    Floats reduced in a different order or with a different exp (softmax probabilities, distances,
    dot products) get a float64 tolerance."""
    p = f"{op}[{where}] " if where else f"{op} "
    assert len(got) == len(want), f"{p}outputs: {len(got)} vs {len(want)}"
    for i, (u, v) in enumerate(zip(got, want)):
        assert u.shape == v.shape and u.dtype == v.dtype, f"{p}output {i}: {u.shape} {u.dtype} vs {v.shape} {v.dtype}"
    if op == "bracket_propose":
        _close(got[0], want[0], p + "x", exact=True, dtype=dtype)
        _close(got[1], want[1], p + "lam", exact=True)
        assert torch.equal(got[2], want[2]), f"{p}stalled: {got[2]} vs {want[2]}"
    elif op == "bracket_update":
        codes, fstate, istate, points, probs, lam_out = got
        assert torch.equal(codes, want[0]), f"{p}codes: {codes} vs {want[0]}"
        assert torch.equal(istate, want[2]), f"{p}istate: {istate} vs {want[2]}"
        _close(fstate, want[1], p + "fstate", exact=True)
        _close(points, want[3], p + "points", exact=True)  # copied rows of x
        _close(lam_out, want[5], p + "lam_out", exact=True)
        _close(probs, want[4], p + "probs", exact=False, rtol=1e-13, atol=1e-15)
    elif op == "nearest_neighbor":
        assert torch.equal(got[0], want[0]), f"{p}index: {got[0]} vs {want[0]}"
        # float64 squared distances summed in another order (kernel: sequential; reference: torch's
        # reduction) differ by a few float64 ulps; the result is then rounded once to dtype
        tol = ulp_tolerance(dtype) if dtype in HALF_DTYPES else dict(rtol=max(torch.finfo(dtype).eps, 1e-13), atol=0.0)
        _close(got[1], want[1], p + "distance", exact=False, **tol)
    elif op == "segment_points":
        _close(got[0], want[0], p + "points", exact=True, dtype=dtype)
    elif op == "trajectory_stats":
        assert torch.equal(got[0], want[0]), f"{p}stats: {got[0].tolist()} vs {want[0].tolist()}"
    elif op == "linear_distances":
        _close(got[0], want[0], p + "d", exact=False, rtol=1e-12, atol=1e-12)
        _close(got[1], want[1], p + "summary", exact=False, rtol=1e-10, atol=1e-12)
    elif op == "max_pool2d":  # copies of input values and their positions: equal
        _close(got[0], want[0], p + "out", exact=True, dtype=dtype)
        assert torch.equal(got[1], want[1]), f"{p}indices differ"
    elif op == "max_pool2d_backward":  # the same sums in the same order
        _close(got[0], want[0], p + "grad", exact=True, dtype=dtype)
    elif op in ("conv2d", "conv2d_grad_input"):
        # ATen's convolution on both sides, but the input gradient (and on a GPU everything) sums
        # in another order: float tolerance, scaled to the values' size
        eps = torch.finfo(dtype).eps
        scale = float(want[0].abs().max()) if want[0].numel() else 1.0
        _close(got[0], want[0], p + "out", exact=False, rtol=64 * eps, atol=64 * eps * max(scale, 1.0))
        assert got[0].is_contiguous() or op == "conv2d", f"{p}grad_input is not contiguous"
    elif op in ("binary_cross_entropy", "binary_cross_entropy_backward"):
        # the same terms; the loss summed in another order, the gradient's two scalings reordered
        eps = torch.finfo(dtype).eps
        _close(got[0], want[0], p + "out", exact=False, rtol=16 * eps, atol=16 * eps)
    else:
        raise KeyError(op)


# --------------------------------------------------------------------------------------------------
# the checks every stem's test module runs on its ops
# --------------------------------------------------------------------------------------------------


def wrapper(op: str):
    """The public Python wrapper of `op`: deepdig_fast.ops for the method's ops,
    deepdig_fast.train_ops for the training accelerator's."""
    from deepdig_fast import ops, train_ops

    return getattr(ops, op) if hasattr(ops, op) else getattr(train_ops, op)


def check_matches_reference(op: str, device, dtype) -> int:
    """The public wrapper against reference.py on every sample; returns the number of samples."""
    from deepdig_fast import reference as R

    n = 0
    for s in sample_inputs(op, device, dtype):
        assert_same(op, run_op(wrapper(op), op, s), run_op(getattr(R, op), op, s), dtype, s.name)
        n += 1
    assert n >= 5, f"{op}: only {n} samples"
    return n


def check_opcheck(op: str, device, dtype) -> None:
    """torch.library.opcheck (schema, fake kernel, autograd registration, AOT dispatch) on every sample."""
    raw = getattr(torch.ops.deepdig_fast, op).default
    all_utils = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    for s in sample_inputs(op, device, dtype):
        # opcheck compares eager and AOT-traced outputs with assert_close(equal_nan=False): a sample
        # whose outputs hold NaN (non-finite inputs) gets every check but that comparison
        nan_out = any(bool(t.isnan().any()) for t in run_op(raw, op, s) if t.is_floating_point())
        utils = all_utils[:3] if nan_out else all_utils
        try:
            torch.library.opcheck(raw, s.fresh(), test_utils=utils)
        except Exception as exc:
            raise AssertionError(f"opcheck {op}[{s.name}] ({dtype}, {device}): {exc}") from exc


def check_cuda_matches_cpu(op: str, dtype) -> None:
    """The CUDA kernel against the CPU kernel on every sample (the same comparison rule)."""
    fn = wrapper(op)
    for s in sample_inputs(op, "cpu", dtype):
        cpu = run_op(fn, op, s)
        gpu = run_op(fn, op, s.to("cuda"))
        assert all(t.device.type == "cuda" for t in gpu), f"{op}[{s.name}]: outputs not on the GPU"
        assert_same(op, tuple(t.cpu() for t in gpu), cpu, dtype, f"{s.name}, cuda vs cpu")


def stem_tests(ops: Sequence[str], dtypes: Sequence[torch.dtype], cuda: bool = True) -> tuple:
    """The three parametrized tests every stem's module runs on its ops, as pytest functions:
    every sample against reference.py (CPU, and CUDA where there is one), opcheck in float32 and
    float64, and the CUDA kernels against the CPU kernels. `dtypes` are those of the two parity
    tests (a stem whose kernels take 16-bit inputs adds HALF_DTYPES). A module binds them to its
    own names, which pytest then collects:

        test_samples_match_reference, test_opcheck, test_cuda_matches_cpu = stem_tests(OPS, DTYPES)

    cuda=False: a stem with CPU kernels only (train_ops.CPU_ONLY): its tests run on the CPU, and
    the third test checks that the op refuses CUDA inputs by name instead of comparing kernels.
    """
    import pytest
    from common_utils import cpu_and_cuda, needs_cuda

    ops, dtypes = list(ops), list(dtypes)
    devices = cpu_and_cuda() if cuda else (pytest.param("cpu", id="cpu"),)

    @pytest.mark.parametrize("device", devices)
    @pytest.mark.parametrize("dtype", dtypes)
    @pytest.mark.parametrize("op", ops)
    def test_samples_match_reference(op, dtype, device):
        """Every sample of the op (op_samples.sample_inputs) against its reference.py twin, with the
        op's comparison rule (op_samples.assert_same)."""
        check_matches_reference(op, device, dtype)

    @pytest.mark.parametrize("device", devices)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    @pytest.mark.parametrize("op", ops)
    def test_opcheck(op, dtype, device):
        check_opcheck(op, device, dtype)

    @needs_cuda
    @pytest.mark.cuda
    @pytest.mark.parametrize("dtype", dtypes)
    @pytest.mark.parametrize("op", ops)
    def test_cuda_matches_cpu(op, dtype):
        if cuda:
            check_cuda_matches_cpu(op, dtype)
            return
        sample = next(iter(sample_inputs(op, "cuda", dtype)))
        with pytest.raises(ValueError, match="CPU only"):
            run_op(wrapper(op), op, sample)

    return test_samples_match_reference, test_opcheck, test_cuda_matches_cpu
