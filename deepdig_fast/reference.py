"""Plain-PyTorch versions of every operator in deepdig_fast.ops (same signatures, same results up
to float rounding), plus the per-pair bisection loop of the public DeepDIG code as an oracle.

Used by the tests, as documentation of what each kernel computes, and for debugging.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepdig_fast.status import EMPTY_ROW, F_G_HI, F_G_LO, F_HI, F_LO, I_ATTEMPTS, I_INTRUDER, I_SIDE, I_STATUS, Status

# Status codes as plain ints (deepdig_fast.status is their one source).
PENDING, SUCCESS, THIRD_CLASS, STALLED, MAX_STEPS, INVALID_BRACKET, NONFINITE = (
    int(Status.PENDING),
    int(Status.SUCCESS),
    int(Status.THIRD_CLASS),
    int(Status.STALLED),
    int(Status.MAX_STEPS),
    int(Status.INVALID_BRACKET),
    int(Status.NONFINITE),
)
LO, HI, GLO, GHI = F_LO, F_HI, F_G_LO, F_G_HI
ATTEMPTS, STATUS, INTRUDER, SIDE = I_ATTEMPTS, I_STATUS, I_INTRUDER, I_SIDE
BISECT, ILLINOIS = 0, 1


def propose_lambda(f: Tensor, method: int) -> Tensor:
    """f: [M, 4] float64 rows of fstate -> [M] float64, the next point's lam."""
    lo, hi, glo, ghi = f.unbind(1)
    mid = 0.5 * (lo + hi)
    if method != ILLINOIS:
        return mid
    lam = lo + glo * (hi - lo) / (glo - ghi)
    ok = torch.isfinite(lam) & (lam > lo) & (lam < hi)
    return torch.where(ok, lam, mid)


def bracket_propose(a: Tensor, b: Tensor, idx: Tensor, fstate: Tensor, method: int):
    """See deepdig_fast.ops.bracket_propose. Interpolates in float64, rounds once to a's dtype.
    Rows with idx == EMPTY_ROW (-1) get a zero point, lam NaN and stalled False."""
    empty = idx == EMPTY_ROW
    i = idx.clamp(min=0) if a.shape[0] else idx
    f = fstate[i]
    lam = propose_lambda(f, method)
    av = a[i].double()
    diff = b[i].double() - av
    x = (av + lam[:, None] * diff).to(a.dtype)
    x_lo = (av + f[:, LO, None] * diff).to(a.dtype)
    x_hi = (av + f[:, HI, None] * diff).to(a.dtype)
    stalled = ((x == x_lo).all(1) | (x == x_hi).all(1)) & ~empty
    x = x.masked_fill(empty[:, None], 0)
    lam = lam.masked_fill(empty, float("nan"))
    return x, lam, stalled


def softmax_defined(logits: Tensor) -> Tensor:
    """[N, C] -> [N] bool: softmax is defined on the row (csrc/common/bracket.h, softmax_defined):
    no NaN, no +inf, and not every entry -inf. Entries of -inf mask classes out (probability 0).
    The row maximum is finite exactly then (amax propagates NaN)."""
    return torch.isfinite(logits.amax(1))


def _softmax_parts(logits: Tensor):
    """Row max and the softmax denominator, summed in class order (as the kernels do)."""
    z = logits.double()
    zmax = z.max(1).values
    e = torch.exp(z - zmax[:, None])
    denom = torch.zeros_like(zmax)
    for c in range(z.shape[1]):
        denom = denom + e[:, c]
    return z, e, denom


def bracket_update(
    logits,
    x,
    idx,
    lam,
    stalled,
    source,
    target,
    fstate,
    istate,
    points,
    probs,
    lam_out,
    beta: float,
    max_steps: int,
    method: int,
) -> Tensor:
    """See deepdig_fast.ops.bracket_update; mutates fstate, istate, points, probs, lam_out. Rows
    with idx == EMPTY_ROW (-1) touch no state and report PENDING."""
    empty = idx == EMPTY_ROW
    if bool(empty.any()):
        full = torch.full(idx.shape, PENDING, dtype=torch.int64, device=idx.device)
        keep = ~empty
        full[keep] = bracket_update(
            logits[keep], x[keep], idx[keep], lam[keep], stalled[keep], source, target, fstate, istate,
            points, probs, lam_out, beta, max_steps, method,
        )  # fmt: skip
        return full
    M = logits.shape[0]
    rows = torch.arange(M, device=logits.device)
    s, t = source[idx], target[idx]
    z, e, denom = _softmax_parts(logits)
    am = logits.argmax(1)
    finite = softmax_defined(logits)
    ps, pt = e[rows, s] / denom, e[rows, t] / denom
    ist = istate[idx]
    fs = fstate[idx]
    ist[:, ATTEMPTS] += 1
    status = torch.full((M,), PENDING, dtype=torch.int64, device=logits.device)
    third = (am != s) & (am != t)
    success = (ps - pt).abs() < beta
    maxed = ist[:, ATTEMPTS] >= max_steps
    # Highest precedence last, so it wins.
    status = torch.where(maxed, MAX_STEPS, status)
    status = torch.where(stalled, STALLED, status)
    status = torch.where(success, SUCCESS, status)
    status = torch.where(third, THIRD_CLASS, status)
    status = torch.where(~finite, NONFINITE, status)
    ist[:, INTRUDER] = torch.where(finite & third, am, ist[:, INTRUDER])
    ist[:, STATUS] = status
    go = status == PENDING
    g = z[rows, s] - z[rows, t]
    low = go & (am == s)
    high = go & (am != s)
    illinois = method == ILLINOIS
    fs[:, LO] = torch.where(low, lam, fs[:, LO])
    fs[:, GLO] = torch.where(low, g, fs[:, GLO])
    fs[:, HI] = torch.where(high, lam, fs[:, HI])
    fs[:, GHI] = torch.where(high, g, fs[:, GHI])
    if illinois:
        fs[:, GHI] = torch.where(low & (ist[:, SIDE] == 0), fs[:, GHI] * 0.5, fs[:, GHI])
        fs[:, GLO] = torch.where(high & (ist[:, SIDE] == 1), fs[:, GLO] * 0.5, fs[:, GLO])
    ist[:, SIDE] = torch.where(low, 0, torch.where(high, 1, ist[:, SIDE]))
    istate[idx] = ist
    fstate[idx] = fs
    done = ~go
    if bool(done.any()):
        p = idx[done]
        points[p] = x[done]
        probs[p] = e[done] / denom[done, None]
        lam_out[p] = lam[done]
    return status


def nearest_neighbor(queries: Tensor, refs: Tensor):
    """See deepdig_fast.ops.nearest_neighbor: a full float64 distance matrix and argmin."""
    if queries.shape[0] == 0:
        return queries.new_empty((0,), dtype=torch.int64), queries.new_empty((0,))
    d2 = ((queries.double()[:, None, :] - refs.double()[None, :, :]) ** 2).sum(-1)
    best, index = d2.min(1)  # min returns the first index of the minimum
    return index, best.sqrt().to(queries.dtype)


@torch.no_grad()
def bisect_pair_reference(model, x1: Tensor, x2: Tensor, c1: int, c2: int, beta: float = 1e-4, max_steps: int = 64):
    """The public code's Algorithm 1 for one pair: batch size 1, three forwards per step (x1, x2, m).

    Adds what the public loop lacks so that it terminates: the cap `max_steps` and the stall test
    (the midpoint equals an end in the working precision). Returns (status, point, attempts,
    intruder, forwards).
    """
    attempts, forwards = 0, 0

    def prob(v):
        nonlocal forwards
        forwards += 1
        return torch.softmax(model(v[None]), dim=1)[0]

    while True:
        m = (x1 + x2) / 2
        attempts += 1
        p1, pm = prob(x1), prob(m)
        prob(x2)  # the public loop also evaluates x2 at every step; kept for its cost
        pred_m, pred_1 = int(pm.argmax()), int(p1.argmax())
        if pred_m not in (c1, c2):
            return THIRD_CLASS, m, attempts, pred_m, forwards
        if abs(float(pm[c1]) - float(pm[c2])) < beta:
            return SUCCESS, m, attempts, -1, forwards
        if torch.equal(m, x1) or torch.equal(m, x2):
            return STALLED, m, attempts, -1, forwards
        if attempts >= max_steps:
            return MAX_STEPS, m, attempts, -1, forwards
        if pred_m == pred_1:
            x1 = m
        else:
            x2 = m


@torch.no_grad()
def bisect_batched_torch(
    model, a: Tensor, b: Tensor, source: int, target: int, beta: float = 1e-4, max_steps: int = 64
):
    """Algorithm 1 for all pairs at once in plain torch: boolean masks, no custom ops, no batch cap.

    What a user would write without deepdig_fast (the benchmark's baseline (b)). Returns
    (status [P], points [P, ...], attempts [P], forwards).
    """
    P = a.shape[0]
    x1, x2 = a.clone(), b.clone()
    status = torch.full((P,), PENDING, dtype=torch.int64, device=a.device)
    attempts = torch.zeros(P, dtype=torch.int64, device=a.device)
    points = torch.full_like(a, float("nan"))
    forwards = 0
    active = torch.ones(P, dtype=torch.bool, device=a.device)
    while bool(active.any()):
        ia = active.nonzero().flatten()
        m = (x1[ia] + x2[ia]) / 2
        p = torch.softmax(model(m), dim=1)
        forwards += ia.numel()
        attempts[ia] += 1
        pred = p.argmax(1)
        third = (pred != source) & (pred != target)
        success = ~third & ((p[:, source] - p[:, target]).abs() < beta)
        flat_m = m.reshape(m.shape[0], -1)
        stalled = (
            ~third
            & ~success
            & ((flat_m == x1[ia].reshape(m.shape[0], -1)).all(1) | (flat_m == x2[ia].reshape(m.shape[0], -1)).all(1))
        )
        capped = ~third & ~success & ~stalled & (attempts[ia] >= max_steps)
        st = torch.full_like(pred, PENDING)
        st[capped] = MAX_STEPS
        st[stalled] = STALLED
        st[success] = SUCCESS
        st[third] = THIRD_CLASS
        done = st != PENDING
        status[ia] = st
        points[ia[done]] = m[done]
        go = ~done
        low = go & (pred == source)
        high = go & (pred != source)
        x1[ia[low]] = m[low]
        x2[ia[high]] = m[high]
        active[ia[done]] = False
    return status, points, attempts, forwards


def segment_points(x: Tensor, i_idx: Tensor, j_idx: Tensor, T: int) -> Tensor:
    """See deepdig_fast.ops.segment_points: row s*T + k is x[j] + (k/T) * (x[i] - x[j]), i.e.
    tau_k * x[i] + (1 - tau_k) * x[j] with tau_k = k / T, computed in float64, rounded once."""
    S = i_idx.shape[0]
    xi = x[i_idx].double()
    xj = x[j_idx].double()
    tau = torch.arange(T, dtype=torch.float64, device=x.device) / T
    pts = xj[:, None, :] + tau[None, :, None] * (xi - xj)[:, None, :]
    return pts.reshape(S * T, x.shape[1]).to(x.dtype)


def trajectory_stats(logits: Tensor, source: Tensor, target: Tensor, T: int, band_lo: float, band_hi: float) -> Tensor:
    """See deepdig_fast.ops.trajectory_stats. logits [S*T, C] -> [S, 4] int64 per segment:
    label changes, distinct labels, changes involving a third class, points in the band."""
    S = source.shape[0]
    C = logits.shape[1]
    y = logits.argmax(1).view(S, T)
    z, e, denom = _softmax_parts(logits)
    rows = torch.arange(S * T, device=logits.device)
    s_rep = source.repeat_interleave(T)
    t_rep = target.repeat_interleave(T)
    gap = ((e[rows, s_rep] - e[rows, t_rep]) / denom).view(S, T)
    change = y[:, 1:] != y[:, :-1]
    third = lambda v: (v != source[:, None]) & (v != target[:, None])  # noqa: E731
    third_change = change & (third(y[:, 1:]) | third(y[:, :-1]))
    distinct = torch.zeros(S, C, dtype=torch.bool, device=logits.device)
    distinct.scatter_(1, y, True)
    band = (gap >= band_lo) & (gap <= band_hi)
    return torch.stack([change.sum(1), distinct.sum(1), third_change.sum(1), band.sum(1)], 1).to(torch.int64)


def linear_distances(h: Tensor, w: Tensor, bias: float, labels: Tensor):
    """See deepdig_fast.ops.linear_distances. Signed distances d = (h @ w + bias) / ||w|| (float64)
    and a summary [9] float64: mean|d|, m1 = mean|d| / (1 + mean|d|), mean|d| over misclassified,
    m2 (the same on those), max d, mean d, min d, accuracy, misclassified count. labels: 1 for the
    positive side (decision > 0), 0 for the negative side."""
    nan = float("nan")
    d = (h.double() @ w.double() + bias) / torch.linalg.vector_norm(w.double())
    n = d.shape[0]
    if n == 0:
        return d, torch.tensor([nan] * 7 + [nan, 0.0], dtype=torch.float64, device=h.device)
    wrong = (d > 0) != (labels == 1)
    a = d.abs().mean()
    aw = d.abs()[wrong].mean() if bool(wrong.any()) else torch.tensor(nan, dtype=torch.float64)
    summary = torch.stack(
        [
            a,
            a / (1 + a),
            aw.to(d.device),
            (aw / (1 + aw)).to(d.device),
            d.max(),
            d.mean(),
            d.min(),
            1 - wrong.double().mean(),
            wrong.double().sum(),
        ]
    )
    return d, summary


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    """Plain-torch twin of train_ops.max_pool2d: torch's own max pool with indices."""
    return torch.nn.functional.max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)


def max_pool2d_backward(
    grad: Tensor, x: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False
) -> Tensor:
    """Plain-torch twin of train_ops.max_pool2d_backward: each plane's output gradients scatter-added
    to their winners (in output order), in x's layout."""
    n, c, h, w = x.shape
    gi = torch.zeros(n, c, h * w, dtype=x.dtype, device=x.device)
    plane = indices.shape[2] * indices.shape[3]
    gi.scatter_add_(2, indices.reshape(n, c, plane), grad.reshape(n, c, plane))
    nhwc = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return gi.view(n, c, h, w).contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """Plain-torch twin of train_ops.conv2d: torch's own convolution."""
    return torch.nn.functional.conv2d(x, weight, bias, stride, padding)


def conv2d_grad_input(grad: Tensor, x: Tensor, weight: Tensor, stride=1, padding=0) -> Tensor:
    """Plain-torch twin of train_ops.conv2d_grad_input: F.conv2d's input gradient through autograd, NCHW."""
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        out = torch.nn.functional.conv2d(xr, weight.detach(), None, stride, padding)
        (g,) = torch.autograd.grad(out, xr, grad)
    return g.contiguous()


def binary_cross_entropy(input: Tensor, target: Tensor) -> Tensor:
    """Plain-torch twin of train_ops.binary_cross_entropy: torch's own (mean) BCE."""
    return torch.nn.functional.binary_cross_entropy(input, target)


def binary_cross_entropy_backward(grad: Tensor, input: Tensor, target: Tensor) -> Tensor:
    """Plain-torch twin of train_ops.binary_cross_entropy_backward: ATen's BCE backward (reduction mean)."""
    return torch.ops.aten.binary_cross_entropy_backward(grad.reshape(()), input, target, None, 1).contiguous()
