"""Public wrappers of the C++/CUDA operators, their fake (shape-only) kernels, and argument checks.

Each op has a plain-PyTorch twin in deepdig_fast/reference.py with the same signature; the tests
compare the two. Ops have fixed-shape outputs (per-row status codes, not "only the successes"), so
their fake kernels are trivial and they work under torch.compile; filtering happens in Python.

Stems (one per op family, the same name across csrc/cpu, csrc/cuda, tests and benchmarks):
  bracket           bracket_propose, bracket_update   (the borderline engine's step)
  nearest_neighbor  nearest_neighbor                  (EPBS pairs)
  trajectory        segment_points, trajectory_stats  (trajectory oscillation)
  linear_distances  linear_distances                  (embedding linearity)
  max_pool2d        max_pool2d, max_pool2d_backward   (the pools of the classifier copy the
                                                       autoencoder trainings run against)
  conv2d            conv2d, conv2d_grad_input         (its image convolutions: ATen's forward, the
                                                       input gradient by ATen's unfold + GEMM)
  binary_cross_entropy  binary_cross_entropy,         (the trainings' two BCE terms, vectorised)
                    binary_cross_entropy_backward
"""

from __future__ import annotations

import torch
from torch import Tensor

from deepdig_fast import _ext  # noqa: F401  (loads the extension: registers torch.ops.deepdig_fast)
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


# --------------------------------------------------------------------------------------------------
# max_pool2d
# --------------------------------------------------------------------------------------------------


def _pair(v, name: str, low: int) -> list[int]:
    vals = [v, v] if isinstance(v, int) and not isinstance(v, bool) else v
    if (
        not isinstance(vals, (tuple, list))
        or len(vals) != 2
        or not all(isinstance(u, int) and not isinstance(u, bool) and u >= low for u in vals)
    ):
        raise ValueError(f"{name} must be an int >= {low} or two of them (height, width), got {v!r}")
    return [int(u) for u in vals]


def _pool_args(x: Tensor, kernel_size, stride, padding, dilation, ceil_mode) -> tuple:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, C, H, W], got {_shape(x)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    k, s, p, d, ceil_mode = pool_settings(kernel_size, stride, padding, dilation, ceil_mode)
    out = [_pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2)]
    if x.shape[2] == 0 or x.shape[3] == 0 or min(out) < 1:
        raise ValueError(f"x's plane {tuple(x.shape[2:])} is too small for this pool (output {tuple(out)})")
    return (k, s, p, d, ceil_mode), [x.shape[0], x.shape[1], *out]


def pool_settings(kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> tuple:
    """(kernel_size, stride, padding, dilation, ceil_mode) as the raw ops take them ([h, w] lists;
    stride None is kernel_size), checked as max_pool2d checks them, for callers that pool many
    inputs with the same settings and call ``torch.ops.deepdig_fast.max_pool2d`` directly."""
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    d = _pair(dilation, "dilation", 1)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding must be at most half of kernel_size {tuple(k)}, got {tuple(p)}")
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {type(ceil_mode).__name__}")
    return k, s, p, d, ceil_mode


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length along one dimension (ATen's pooling_output_shape; csrc/common/max_pool2d.h)."""
    span = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = span // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _nhwc(x: Tensor) -> bool:
    """The kernels' layout rule: channels_last when x is channels_last and not also contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def max_pool2d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    """``F.max_pool2d(x, ..., return_indices=True)`` bit for bit, differentiable in x.

    Args:
        x: [N, C, H, W] float32 / float64; NCHW or channels_last (the outputs follow its layout).
        kernel_size, stride (default kernel_size), padding, dilation: an int or (height, width);
        padding at most half the kernel; ceil_mode: as in torch.nn.MaxPool2d.
    Returns:
        out: [N, C, OH, OW] the window maxima (the first maximum wins among equal values, a NaN
        always); indices: [N, C, OH, OW] int64, the winners' positions ih * W + iw in their plane.
    The gradient (max_pool2d_backward) adds each output's gradient to its winner, in output order,
    as ATen's does, so it is bit for bit ATen's too.
    """
    settings, _ = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _ops.max_pool2d(x, *settings)


def max_pool2d_backward(
    grad: Tensor, x: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False
) -> Tensor:
    """The gradient of :func:`max_pool2d` with respect to x: [N, C, H, W] in x's layout, each element
    the sum of the gradients of the outputs it won (0 for none), added in output order.

    Args:
        grad, indices: [N, C, OH, OW], the gradient of max_pool2d's ``out`` and its ``indices``
        (int64 in [0, H * W)); x: the forward's input (its shape, dtype and layout are used); the
        pool's settings as given to max_pool2d.
    """
    settings, want = _pool_args(x, kernel_size, stride, padding, dilation, ceil_mode)
    if not isinstance(grad, Tensor) or not isinstance(indices, Tensor):
        raise TypeError("grad and indices must be torch.Tensors")
    if _shape(grad) != want or _shape(indices) != want:
        raise ValueError(
            f"grad and indices must have the pool's output shape {want}, got {_shape(grad)}, {_shape(indices)}"
        )
    if grad.dtype != x.dtype or indices.dtype != torch.int64:
        raise TypeError(f"grad must be {x.dtype} and indices int64, got {grad.dtype} and {indices.dtype}")
    return _ops.max_pool2d_backward(grad, x, indices, *settings)


@torch.library.register_fake("deepdig_fast::max_pool2d")
def _max_pool2d_fake(x, kernel_size, stride, padding, dilation, ceil_mode):
    shape = [x.shape[0], x.shape[1]] + [
        _pool_out(x.shape[2 + i], kernel_size[i], stride[i], padding[i], dilation[i], ceil_mode) for i in range(2)
    ]
    fmt = torch.channels_last if _nhwc(x) else torch.contiguous_format
    out = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    return out, torch.empty(shape, dtype=torch.int64, device=x.device, memory_format=fmt)


@torch.library.register_fake("deepdig_fast::max_pool2d_backward")
def _max_pool2d_backward_fake(grad, x, indices, kernel_size, stride, padding, dilation, ceil_mode):
    fmt = torch.channels_last if _nhwc(x) else torch.contiguous_format
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)


# The autograd kernel of max_pool2d is C++ (csrc/autograd.cpp): no Python runs in a backward.


# --------------------------------------------------------------------------------------------------
# conv2d
# --------------------------------------------------------------------------------------------------


def _conv_args(x: Tensor, weight: Tensor, stride, padding) -> tuple[list[int], list[int], list[int]]:
    """(stride, padding, output shape) after checking x, weight and the settings as the kernel does."""
    for t, name, shape in ((x, "x", "[N, C, H, W]"), (weight, "weight", "[O, C, KH, KW]")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape {shape}, got {_shape(t)}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if weight.dtype != x.dtype or weight.device != x.device:
        raise TypeError(f"weight must be {x.dtype} on {x.device}, got {weight.dtype} on {weight.device}")
    if weight.shape[1] != x.shape[1] or min(weight.shape) < 1:
        raise ValueError(
            f"weight must have x's {x.shape[1]} input channels in dim 1 (and no empty dim), got {_shape(weight)}"
        )
    s, p = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    out = [(x.shape[2 + i] + 2 * p[i] - weight.shape[2 + i]) // s[i] + 1 for i in range(2)]
    if x.shape[2] == 0 or x.shape[3] == 0 or any(x.shape[2 + i] + 2 * p[i] < weight.shape[2 + i] for i in range(2)):
        raise ValueError(
            f"x's plane {tuple(x.shape[2:])} padded by {tuple(p)} is smaller than the kernel {tuple(weight.shape[2:])}"
        )
    return s, p, [x.shape[0], weight.shape[0], *out]


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)`` (groups 1, dilation 1, zero padding): the same
    forward bit for bit (ATen's own convolution), differentiable in x, weight and bias, with the
    input gradient from :func:`conv2d_grad_input`.

    Args:
        x: [N, C, H, W] float32 / float64; weight: [O, C, KH, KW]; bias: [O] or None;
        stride (>= 1), padding (>= 0): an int or (height, width).
    Returns:
        [N, O, OH, OW], laid out as F.conv2d lays it out.
    """
    s, p, _ = _conv_args(x, weight, stride, padding)
    if bias is not None and (
        not isinstance(bias, Tensor) or _shape(bias) != [weight.shape[0]] or bias.dtype != x.dtype
    ):
        got = f"{_shape(bias)} {bias.dtype}" if isinstance(bias, Tensor) else type(bias).__name__
        raise ValueError(f"bias must be None or a {x.dtype} tensor of shape [{weight.shape[0]}], got {got}")
    return _ops.conv2d(x, weight, bias, s, p)


def conv2d_grad_input(grad: Tensor, x: Tensor, weight: Tensor, stride=1, padding=0) -> Tensor:
    """The gradient of :func:`conv2d` with respect to x: [N, C, H, W], contiguous. On a CPU ATen's
    unfold + GEMM path on NCHW operands (for one input channel 1.8-4.9x faster than oneDNN's
    data-gradient kernel, which F.conv2d's backward uses); on a GPU cuDNN's. Equal to F.conv2d's input
    gradient up to the order of float sums.

    Args:
        grad: [N, O, OH, OW], the gradient of conv2d's output; x, weight, stride, padding: the forward's.
    """
    s, p, want = _conv_args(x, weight, stride, padding)
    if not isinstance(grad, Tensor) or _shape(grad) != want or grad.dtype != x.dtype:
        got = f"{_shape(grad)} {grad.dtype}" if isinstance(grad, Tensor) else type(grad).__name__
        raise ValueError(f"grad must be a {x.dtype} tensor of the forward's output shape {want}, got {got}")
    return _ops.conv2d_grad_input(grad, x, weight, s, p)


@torch.library.register_fake("deepdig_fast::conv2d")
def _conv2d_fake(x, weight, bias, stride, padding):
    return torch.nn.functional.conv2d(x, weight, bias, stride, padding)  # ATen's own shape and layout


@torch.library.register_fake("deepdig_fast::conv2d_grad_input")
def _conv2d_grad_input_fake(grad, x, weight, stride, padding):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


# --------------------------------------------------------------------------------------------------
# binary_cross_entropy
# --------------------------------------------------------------------------------------------------


def _bce_args(input: Tensor, target: Tensor) -> None:
    for t, name in ((input, "input"), (target, "target")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if input.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"input must be float32 or float64, got {input.dtype}")
    if target.shape != input.shape or target.dtype != input.dtype:
        raise ValueError(
            f"target must match input (shape {_shape(input)}, {input.dtype}), got {_shape(target)}, {target.dtype}"
        )


def binary_cross_entropy(input: Tensor, target: Tensor) -> Tensor:
    """``F.binary_cross_entropy(input, target)`` (mean, no weight): the mean over all elements of
    -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100)), a 0-dim tensor, differentiable in both
    (the target's gradient is that of the clamped logarithms). ATen's value up to float rounding; its
    CPU kernel takes two scalar logarithms per element, this op ATen's vectorised ones.

    Args:
        input: probabilities in [0, 1] (checked on a CPU; elsewhere values outside give NaN), float32 /
        float64, any shape; target: the same shape and dtype. An empty input gives NaN, as in ATen.
    """
    _bce_args(input, target)
    return _ops.binary_cross_entropy(input, target)


def binary_cross_entropy_backward(grad: Tensor, input: Tensor, target: Tensor) -> Tensor:
    """The gradient of :func:`binary_cross_entropy` with respect to input, ATen's formula
    grad * (x - t) / max(x * (1 - x), 1e-12) / numel; contiguous, input's shape.

    Args:
        grad: the loss's gradient (one value); input, target: the forward's.
    """
    _bce_args(input, target)
    if not isinstance(grad, Tensor) or grad.numel() != 1 or grad.dtype != input.dtype:
        got = f"{_shape(grad)} {grad.dtype}" if isinstance(grad, Tensor) else type(grad).__name__
        raise ValueError(f"grad must be a {input.dtype} tensor of one value, got {got}")
    return _ops.binary_cross_entropy_backward(grad, input, target)


@torch.library.register_fake("deepdig_fast::binary_cross_entropy")
def _bce_fake(input, target):
    return torch.empty((), dtype=input.dtype, device=input.device)


@torch.library.register_fake("deepdig_fast::binary_cross_entropy_backward")
def _bce_backward_fake(grad, input, target):
    return torch.empty(input.shape, dtype=input.dtype, device=input.device)


# The autograd kernels of conv2d and binary_cross_entropy are C++ too (csrc/autograd.cpp).
