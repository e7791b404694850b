"""Public wrappers of the C++/CUDA operators, their fake (shape-only) kernels, and argument checks.

Each op has a plain-PyTorch twin in deepdig_fast/reference.py with the same signature; the tests
compare the two. Ops have fixed-shape outputs (per-row status codes, not "only the successes"), so
their fake kernels are trivial and they work under torch.compile; filtering happens in Python.

Stems (one per op family, the same name across csrc/cpu, csrc/cuda, tests and benchmarks):
  bracket           bracket_propose, bracket_update   (the borderline engine's step)
  nearest_neighbor  nearest_neighbor                  (EPBS pairs)
  trajectory        segment_points, trajectory_stats  (trajectory oscillation)
  linear_distances  linear_distances                  (embedding linearity)

The training accelerator's ops (max_pool2d, conv2d, binary_cross_entropy) are in
deepdig_fast/train_ops.py; build_info() describes them all.
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepdig_fast import _ext  # loads the extension: registers torch.ops.deepdig_fast
from deepdig_fast.validation import check_int

METHODS = {"bisect": 0, "illinois": 1}

_ops = torch.ops.deepdig_fast


def _shape(t: Tensor) -> list[int]:
    return list(t.shape)


def _check_2d_float(t: Tensor, name: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape [N, D], got {_shape(t)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


# --------------------------------------------------------------------------------------------------
# bracket
# --------------------------------------------------------------------------------------------------


def bracket_propose(a: Tensor, b: Tensor, idx: Tensor, fstate: Tensor, method: int) -> tuple[Tensor, Tensor, Tensor]:
    """Materialises the next point of every live pair.

    Args:
        a, b: [P, D] floating, the pairs' ends (x(0) = a, x(1) = b).
        idx: [M] int64, the live pairs (unique, in [0, P)), or -1 (status.EMPTY_ROW) for an empty
            slot of a fixed-size batch: its x row is zero, its lam NaN and it is not stalled.
        fstate: [P, 4] float64, per pair (lo, hi, g_lo, g_hi); see csrc/common/bracket.h.
        method: 0 bisection (midpoint of [lo, hi]) or 1 Illinois (false position on g).
    Returns:
        x: [M, D] (dtype of a), x[r] = a[idx[r]] + lam[r] * (b[idx[r]] - a[idx[r]]);
        lam: [M] float64; stalled: [M] bool, x[r] equals the point at lo or at hi in a's dtype.
    """
    _check_2d_float(a, "a")
    if b.shape != a.shape or b.dtype != a.dtype:
        raise ValueError(f"b must match a (shape {_shape(a)}, {a.dtype}), got {_shape(b)}, {b.dtype}")
    if idx.dim() != 1 or idx.dtype != torch.int64:
        raise ValueError(f"idx must be a 1-d int64 tensor, got shape {_shape(idx)} and {idx.dtype}")
    if fstate.shape != (a.shape[0], 4) or fstate.dtype != torch.float64:
        raise ValueError(f"fstate must be float64 of shape [{a.shape[0]}, 4], got {_shape(fstate)}, {fstate.dtype}")
    if method not in (0, 1):
        raise ValueError(f"method must be 0 (bisect) or 1 (illinois), got {method!r}")
    return _ops.bracket_propose(a, b, idx, fstate, method)


def bracket_update(
    logits: Tensor,
    x: Tensor,
    idx: Tensor,
    lam: Tensor,
    stalled: Tensor,
    source: Tensor,
    target: Tensor,
    fstate: Tensor,
    istate: Tensor,
    points: Tensor,
    probs: Tensor,
    lam_out: Tensor,
    beta: float,
    max_steps: int,
    method: int,
) -> Tensor:
    """Decides every evaluated point and updates the pairs' state in place.

    Args:
        logits: [M, C] the model's output at x; x: [M, D] the evaluated points; idx, lam, stalled:
        [M] as returned by bracket_propose (an idx of -1 is an empty row: it reads and writes no
        pair state and its code is -1); source, target: [P] int64 class ids.
        Mutated: fstate [P, 4] float64; istate [P, 4] int64 (attempts, status, intruder, side);
        points [P, D] (x's dtype), probs [P, C] float64, lam_out [P] float64 -- the rows of pairs
        that finish at this step receive their final point, softmax and lam.
        beta: success threshold on |p_source - p_target|; max_steps: cap on attempts;
        method: 0 bisect, 1 illinois.
    Returns:
        codes: [M] int64, the status of each row's pair after this step (-1 while it goes on).
    """
    _check_2d_float(logits, "logits")
    _check_2d_float(x, "x")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps!r}")
    return _ops.bracket_update(
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
        float(beta),
        int(max_steps),
        int(method),
    )


@torch.library.register_fake("deepdig_fast::bracket_propose")
def _bracket_propose_fake(a, b, idx, fstate, method):
    m = idx.shape[0]
    return (
        a.new_empty((m, a.shape[1])),
        fstate.new_empty((m,)),
        a.new_empty((m,), dtype=torch.bool),
    )


@torch.library.register_fake("deepdig_fast::bracket_update")
def _bracket_update_fake(
    logits, x, idx, lam, stalled, source, target, fstate, istate, points, probs, lam_out, beta, max_steps, method
):
    return idx.new_empty((logits.shape[0],))


# --------------------------------------------------------------------------------------------------
# nearest_neighbor
# --------------------------------------------------------------------------------------------------


def nearest_neighbor(queries: Tensor, refs: Tensor) -> tuple[Tensor, Tensor]:
    """For each query row, the nearest reference row (Euclidean) and its distance.

    Args:
        queries: [Q, E] floating; refs: [R, E] same dtype and device, R >= 1 unless Q == 0.
    Returns:
        index: [Q] int64 into refs (the lowest index among exact ties); distance: [Q] (dtype of
        queries). Memory O(Q + R): no [Q, R] matrix is formed.
    """
    _check_2d_float(queries, "queries")
    _check_2d_float(refs, "refs")
    if refs.shape[1] != queries.shape[1]:
        raise ValueError(f"refs must have {queries.shape[1]} columns like queries, got shape {_shape(refs)}")
    if refs.dtype != queries.dtype or refs.device != queries.device:
        raise ValueError(
            f"refs must have the dtype and device of queries ({queries.dtype}, {queries.device}), "
            f"got {refs.dtype}, {refs.device}"
        )
    if refs.shape[0] == 0 and queries.shape[0] > 0:
        raise ValueError("refs must have at least one row")
    for name, t in (("queries", queries), ("refs", refs)):
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf")
    return _ops.nearest_neighbor(queries, refs)


@torch.library.register_fake("deepdig_fast::nearest_neighbor")
def _nearest_neighbor_fake(queries, refs):
    q = queries.shape[0]
    return queries.new_empty((q,), dtype=torch.int64), queries.new_empty((q,))


# --------------------------------------------------------------------------------------------------
# trajectory
# --------------------------------------------------------------------------------------------------


def segment_points(x: Tensor, i_idx: Tensor, j_idx: Tensor, T: int) -> Tensor:
    """T points on each of S segments between rows of x, in one gather-and-interpolate pass.

    Args:
        x: [N, D] floating (the borderline samples, flattened); i_idx, j_idx: [S] int64 rows of x.
        T: points per segment.
    Returns:
        [S * T, D] (x's dtype): row s*T + k is tau_k * x[i_idx[s]] + (1 - tau_k) * x[j_idx[s]],
        tau_k = k / T (k = 0..T-1; the paper's trajectory, which stops one step short of x_i).
    """
    _check_2d_float(x, "x")
    for name, t in (("i_idx", i_idx), ("j_idx", j_idx)):
        if t.dim() != 1 or t.dtype != torch.int64:
            raise ValueError(f"{name} must be a 1-d int64 tensor, got shape {_shape(t)} and {t.dtype}")
    if i_idx.shape != j_idx.shape:
        raise ValueError(f"i_idx and j_idx must have the same shape, got {_shape(i_idx)} and {_shape(j_idx)}")
    check_int(T, "T", low=1)
    return _ops.segment_points(x, i_idx, j_idx, T)


def trajectory_stats(
    logits: Tensor, source: Tensor, target: Tensor, T: int, band_lo: float = -0.1, band_hi: float = 0.1
) -> Tensor:
    """Per-segment label statistics from the logits at segment_points' points.

    Args:
        logits: [S * T, C] (segment-major, as segment_points orders them); source, target: [S] int64
        (the classes of the segment's set); T: points per segment; [band_lo, band_hi]: interval of
        p_source - p_target that counts as inside the boundary band (Yang et al., 2020).
    Returns:
        [S, 4] int64: label changes #{k < T-1 : y_k != y_k+1} (oscillation = changes / T), distinct
        labels, changes where either label is a third class, points inside the band.
    """
    _check_2d_float(logits, "logits")
    check_int(T, "T", low=1)
    if source.dim() != 1 or target.shape != source.shape:
        raise ValueError(f"source and target must be 1-d of the same shape, got {_shape(source)} and {_shape(target)}")
    if logits.shape[0] != source.shape[0] * T:
        raise ValueError(f"logits must have S*T = {source.shape[0] * T} rows, got shape {_shape(logits)}")
    if not band_lo <= band_hi:
        raise ValueError(f"band_lo must be <= band_hi, got {band_lo} > {band_hi}")
    return _ops.trajectory_stats(logits, source, target, T, float(band_lo), float(band_hi))


@torch.library.register_fake("deepdig_fast::segment_points")
def _segment_points_fake(x, i_idx, j_idx, T):
    return x.new_empty((i_idx.shape[0] * T, x.shape[1]))


@torch.library.register_fake("deepdig_fast::trajectory_stats")
def _trajectory_stats_fake(logits, source, target, T, band_lo, band_hi):
    return source.new_empty((source.shape[0], 4))


# --------------------------------------------------------------------------------------------------
# linear_distances
# --------------------------------------------------------------------------------------------------

SUMMARY_FIELDS = ("mean_abs", "m1", "mean_abs_misclassified", "m2", "max", "mean", "min", "accuracy", "misclassified")


def linear_distances(h: Tensor, w: Tensor, bias: float, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Signed distances of embeddings to a hyperplane and the linearity summary, in one pass.

    Args:
        h: [N, E] floating embeddings; w: [E] float64 normal (e.g. LinearSVC.coef_[0]); bias: the
        intercept; labels: [N] int64, 1 for the side where h @ w + bias > 0, else 0.
    Returns:
        d: [N] float64, (h @ w + bias) / ||w||; summary: [9] float64 in SUMMARY_FIELDS order:
        mean|d|, m1 = mean|d| / (1 + mean|d|), mean|d| over misclassified, m2, max d, mean d, min d,
        accuracy, misclassified count (NaN where a mean is over nothing).
    """
    _check_2d_float(h, "h")
    if w.dim() != 1 or w.shape[0] != h.shape[1]:
        raise ValueError(f"w must have shape [{h.shape[1]}], got {_shape(w)}")
    if labels.dim() != 1 or labels.shape[0] != h.shape[0]:
        raise ValueError(f"labels must have shape [{h.shape[0]}], got {_shape(labels)}")
    return _ops.linear_distances(h, w.to(torch.float64), float(bias), labels.to(torch.int64))


@torch.library.register_fake("deepdig_fast::linear_distances")
def _linear_distances_fake(h, w, bias, labels):
    return h.new_empty((h.shape[0],), dtype=torch.float64), h.new_empty((9,), dtype=torch.float64)


def build_info() -> dict:
    """How the extension was built and which kernels are registered.

    Returns a dict: with_cuda (CUDA kernels compiled in), cuda_version (of the compiler, or None),
    torch_version (compiled against), torch_runtime (imported now), cplusplus (language level), and
    kernels: {op: [dispatch keys with a kernel]} read from the dispatcher.
    """
    info = dict(_ext.BUILT)
    info["torch_runtime"] = torch.__version__
    kernels = {}
    for op in _ext.OPS:
        name = f"{_ext.NAMESPACE}::{op}"
        kernels[op] = [
            key for key in ("CPU", "CUDA", "Meta") if torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
        ]
    info["kernels"] = kernels
    return info
