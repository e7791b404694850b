"""Characterization of a decision boundary from its borderline samples (docs/METHOD-NOTES.md, "Characterization").

Two metric families, each on the successful borderline instances of one class pair:

trajectory_oscillation (paper §4.1)
    For a borderline sample x_i and another sample x_j of the same direction, the segment
    x(tau_k) = tau_k x_i + (1 - tau_k) x_j, tau_k = k / T, k = 0..T-1, is classified point by point;
    osc(i, j) = #{k < T-1 : y_k != y_k+1} / T (the paper divides by T, not T - 1). The paper's value
    is the mean of osc over K partners j per sample i (all other samples when there are <= K).
    Besides the oscillation, every segment yields, from the same forward pass: the number of
    distinct labels on it, the label changes that involve a class other than source and target, and
    the points whose p_source - p_target lies inside a band (boundary thickness, Yang et al. 2020).
    Points are generated chunk by chunk on the model's device by the fused op
    ops.segment_points and reduced by ops.trajectory_stats, so memory is bounded by the chunk size,
    not by |B| * K * T.

    "exact" mode evaluates the paper's design. "estimate" mode samples `segments` segments (i
    uniform over samples, j uniform over the others; T unchanged, since the value depends on T)
    and reports a 95% confidence interval; both modes estimate the same quantity, the mean of
    osc(i, j) over ordered pairs i != j with every i weighted equally.

linearity (paper §4.2)
    A linear SVM (LinearSVC, C = 1, max_iter = 10000) fitted on the embeddings h of all training
    inputs of the two classes; the signed distance d(x) = (w . h(x) + b) / ||w|| of train, test and
    borderline inputs; per set m1 = mean|d| / (1 + mean|d|), m2 (the same over the members the
    SVM misclassifies), max d, mean d, min d and the SVM's accuracy (fused op ops.linear_distances).

Files the pipeline writes from these results (read by deepdig_fast.report):
    characterize/trajectory_S-T.pt   TrajectoryResult.tensors(): {"stats", "i", "j", "T", "columns",
                                     "source", "target"}
    characterize/linearity_S-T.pt    linearity(...).tensors(): {"distances", "labels",
                                     "positive_class", "source", "target"}
    results.json                     directions["S->T"]["trajectory"] = TrajectoryResult.to_dict(),
                                     linearity = linearity(...).to_dict()
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from deepdig_fast import ops
from deepdig_fast.budget import FORWARD_ELEMENTS, TRAJECTORY_ELEMENTS, fit_batch
from deepdig_fast.fast import inference_mode, prepared_for
from deepdig_fast.hooks import eval_mode, model_device
from deepdig_fast.precision import full_fp32
from deepdig_fast.validation import (
    Int,
    Optional,
    check_band,
    check_class_id,
    check_input_dtype,
    check_int,
    check_number,
)

STAT_COLUMNS = ("changes", "distinct_labels", "third_class_changes", "in_band")
#: points generated and classified at once: a CPU chunk stays under 32 MiB for MNIST-size inputs,
#: which glibc serves from its heap after the first chunk (larger buffers are fresh mmaps that
#: page-fault on every chunk; benchmarks/RESULTS.md, "Trajectory stage"); an accelerator keeps
#: larger chunks for its large batches.
DEFAULT_CHUNK_POINTS = {"cpu": 8192, "other": 65536}
DEFAULT_BATCH_SIZE = {"cpu": 512, "other": 16384}  # images per forward; small batches stay in CPU caches
_Z95 = 1.959963984540054  # two-sided 95% quantile of the standard normal
_DESIGN_KEYS = 1 << 22  # random keys drawn at once when choosing K partners per sample


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _check_samples(x, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [N, *sample_shape], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape [N, *sample_shape] (at least 2 dims), got {list(x.shape)}")
    check_input_dtype(x, name)


def _forward(model, x: Tensor) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model must return logits of shape [{x.shape[0]}, C] for a batch of {x.shape[0]}, got {got}")
    if not out.is_floating_point():
        raise TypeError(f"model must return floating-point logits, got {out.dtype}")
    return out


def _float(v) -> float:
    return float(v) if v is not None else float("nan")


# --------------------------------------------------------------------------------------------------
# trajectory oscillation
# --------------------------------------------------------------------------------------------------


@dataclass
class TrajectoryResult:
    """Trajectory statistics of one direction source -> target.

    mode: "exact" (the paper's design: K partners per sample, all others when N - 1 <= K) or
        "estimate" (`n_segments` sampled segments). stats: [S, 4] int64 on the CPU, per segment
        (columns STAT_COLUMNS): label changes, distinct labels, changes involving a third class,
        points with p_source - p_target inside `band`. i, j: [S] int64, the segment x_j -> x_i.
    oscillation: mean over segments of changes / T (the paper's value). ci95: (lo, hi), normal
        approximation mean +- 1.96 std / sqrt(S), in estimate mode only (None in exact mode).
    oscillation_std: sample std of the per-segment oscillation. mean_distinct_labels: mean of
        distinct labels per segment. third_class_oscillation: mean of third-class changes / T.
        third_class_change_share: third-class changes / all changes (NaN with no change).
        band_share: share of all evaluated points inside the band.
    forwards: images passed through the model (S * T). seconds: wall time of the call.
    reason: why nothing was computed (fewer than 2 samples), else None. inference: how the
        classifier's forwards ran ("torchscript", "inductor" or "eager").
    """

    mode: str
    source: int
    target: int
    K: int
    T: int
    n_samples: int
    n_segments: int
    stats: Tensor
    i: Tensor
    j: Tensor
    oscillation: float
    ci95: tuple[float, float] | None
    oscillation_std: float
    mean_distinct_labels: float
    third_class_oscillation: float
    third_class_change_share: float
    band: tuple[float, float]
    band_share: float
    forwards: int
    seconds: float
    seed: int
    chunk_segments: int
    batch_size: int | None
    reason: str | None = None
    inference: str = "eager"

    @property
    def per_segment_oscillation(self) -> Tensor:
        """[S] float64: changes / T of every segment."""
        return self.stats[:, 0].double() / self.T

    def to_dict(self) -> dict:
        """JSON-able summary (no per-segment tensors; NaN where undefined)."""
        return {
            "mode": self.mode,
            "source": self.source,
            "target": self.target,
            "K": self.K,
            "T": self.T,
            "n_samples": self.n_samples,
            "n_segments": self.n_segments,
            "oscillation": self.oscillation,
            "ci95": None if self.ci95 is None else [self.ci95[0], self.ci95[1]],
            "oscillation_std": self.oscillation_std,
            "mean_distinct_labels": self.mean_distinct_labels,
            "third_class_oscillation": self.third_class_oscillation,
            "third_class_change_share": self.third_class_change_share,
            "band": [self.band[0], self.band[1]],
            "band_share": self.band_share,
            "forwards": self.forwards,
            "seconds": self.seconds,
            "seed": self.seed,
            "chunk_segments": self.chunk_segments,
            "batch_size": self.batch_size,
            "reason": self.reason,
        }

    def tensors(self) -> dict:
        """What characterize/trajectory_S-T.pt holds (torch.load(weights_only=True)-safe)."""
        return {
            "stats": self.stats,
            "i": self.i,
            "j": self.j,
            "T": self.T,
            "columns": list(STAT_COLUMNS),
            "source": self.source,
            "target": self.target,
        }


def _exact_design(N: int, K: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """For each i, min(K, N-1) partners j != i without replacement (all others, ascending, if N-1 <= K).

    Small sets: the K smallest of N-1 uniform keys per row. Large sets (N-1 >= 2 K^2, where a
    with-replacement draw rarely repeats itself): K uniform draws per row, rows with a repeat drawn
    again. Both give uniform K-subsets of the others; the partners of a row are sorted."""
    i_all = torch.arange(N, dtype=torch.int64)
    if N - 1 <= K:
        others = torch.arange(N - 1, dtype=torch.int64).expand(N, N - 1)
        j = others + (others >= i_all[:, None]).long()
        return i_all.repeat_interleave(N - 1), j.reshape(-1)
    if N - 1 < 2 * K * K:
        rows = max(1, _DESIGN_KEYS // (N - 1))
        js = []
        for start in range(0, N, rows):
            keys = torch.rand((min(rows, N - start), N - 1), generator=gen)
            js.append(keys.topk(K, dim=1, largest=False, sorted=False).indices)
        pick = torch.cat(js)
    else:
        pick = torch.randint(0, N - 1, (N, K), generator=gen)
        while True:
            pick, _ = pick.sort(dim=1)
            bad = (pick[:, 1:] == pick[:, :-1]).any(1).nonzero().flatten()
            if bad.numel() == 0:
                break
            pick[bad] = torch.randint(0, N - 1, (bad.numel(), K), generator=gen)
    pick, _ = pick.sort(dim=1)
    return i_all.repeat_interleave(K), (pick + (pick >= i_all[:, None]).long()).reshape(-1)


def _estimate_design(N: int, S: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    i = torch.randint(0, N, (S,), generator=gen)
    j = torch.randint(0, N - 1, (S,), generator=gen)
    return i, j + (j >= i).long()


@torch.no_grad()
@full_fp32()
def trajectory_oscillation(
    model: Callable[[Tensor], Tensor],
    points: Tensor,
    source: int,
    target: int,
    *,
    K: int = 50,
    T: int = 50,
    segments: int | None = None,
    seed: int = 0,
    chunk_segments: int | None = None,
    band: tuple[float, float] = (-0.1, 0.1),
    batch_size: int | None = None,
    compile: bool | str = True,
) -> TrajectoryResult:
    """Trajectory oscillation and per-segment label statistics of one borderline set.

    Args:
        model: the classifier (nn.Module or callable) mapping [n, *sample_shape] to logits [n, C];
            nn.Module submodules are put in eval mode for the call and restored after. Runs on the
            model's device (its first parameter's; the points' device for a parameterless model).
        points: [N, *sample_shape] floating, the successful borderline samples of one direction.
        source, target: the direction's classes (distinct non-negative ints); the band is on
            p_source - p_target and a "third class" is any other class.
        K: partners per sample in exact mode (paper: 50); all others when N - 1 <= K.
        T: points per segment (paper: 50); tau_k = k / T, k = 0..T-1.
        segments: None for the exact design; an int samples that many segments (i uniform over the
            samples, j uniform over the others, with replacement) and reports a 95% CI.
        seed: seed of the design (partners or sampled segments); the result does not depend on the
            chunk or batch size.
        chunk_segments: segments generated and classified at once (default: 8192 // T segments on
            a CPU, 65536 // T on an accelerator, fewer for large inputs); bounds the call's memory.
        band: (lo, hi), the interval of p_source - p_target counted as inside the boundary band.
        batch_size: images per model forward (default 512 on a CPU, 16384 on an accelerator,
            at most one chunk's points).
        compile: True (default) prepares a plain nn.Module for the device's inference backend,
            guarded against eager on the points (deepdig_fast.fast.prepared_for); False runs it as
            it is. `result.inference` says which ran.
    Returns:
        TrajectoryResult (oscillation NaN and `reason` set when N < 2).
    """
    t0 = time.perf_counter()
    _check_samples(points, "points")
    check_class_id(source, "source")
    check_class_id(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} and {target}")
    check_int(K, "K", low=1)
    check_int(T, "T", low=1)
    Optional(Int(1)).check(segments, "segments")
    check_int(seed, "seed", low=0)
    Optional(Int(1)).check(chunk_segments, "chunk_segments")
    Optional(Int(1)).check(batch_size, "batch_size")
    band = check_band(band, "band")
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a callable returning logits, got {type(model).__name__}")
    band = (float(band[0]), float(band[1]))
    model = prepared_for(model, points[:32].detach(), compile=compile)
    mode = "exact" if segments is None else "estimate"
    device = model_device(model, points.device)
    kind = "cpu" if device.type == "cpu" else "other"
    # 8k points per chunk on a CPU, 64k on an accelerator, fewer for large inputs (budget: at most
    # 2^26 input elements)
    chunk = chunk_segments or max(1, fit_batch(DEFAULT_CHUNK_POINTS[kind], points.shape[1:], TRAJECTORY_ELEMENTS) // T)
    bs = batch_size  # resolved once the device is known
    N = int(points.shape[0])
    sample_shape = tuple(points.shape[1:])
    nan = float("nan")

    def result(stats, i, j, reason=None) -> TrajectoryResult:
        S = int(stats.shape[0])
        if S == 0:
            summary: dict[str, Any] = dict(
                oscillation=nan,
                ci95=None,
                oscillation_std=nan,
                mean_distinct_labels=nan,
                third_class_oscillation=nan,
                third_class_change_share=nan,
                band_share=nan,
            )
        else:
            st = stats.double()
            osc = st[:, 0] / T
            std = float(osc.std()) if S > 1 else nan
            mean = float(osc.mean())
            ci = None
            if mode == "estimate":
                half = _Z95 * std / math.sqrt(S)
                ci = (mean - half, mean + half)
            changes = float(st[:, 0].sum())
            summary = dict(
                oscillation=mean,
                ci95=ci,
                oscillation_std=std,
                mean_distinct_labels=float(st[:, 1].mean()),
                third_class_oscillation=float((st[:, 2] / T).mean()),
                third_class_change_share=float(st[:, 2].sum()) / changes if changes else nan,
                band_share=float(st[:, 3].sum()) / (S * T),
            )
        return TrajectoryResult(
            mode=mode,
            source=source,
            target=target,
            K=K,
            T=T,
            n_samples=N,
            n_segments=S,
            stats=stats,
            i=i,
            j=j,
            band=band,
            forwards=S * T,
            seconds=time.perf_counter() - t0,
            seed=seed,
            chunk_segments=chunk,
            batch_size=bs,
            reason=reason,
            inference=inference_mode(model),
            **summary,
        )

    empty = torch.empty(0, dtype=torch.int64)
    if N < 2:
        return result(
            torch.empty((0, 4), dtype=torch.int64), empty, empty, reason=f"needs at least 2 borderline samples, got {N}"
        )

    gen = torch.Generator().manual_seed(seed)
    i_idx, j_idx = _exact_design(N, K, gen) if segments is None else _estimate_design(N, segments, gen)
    S = int(i_idx.shape[0])

    bs = batch_size or min(
        fit_batch(DEFAULT_BATCH_SIZE[kind], sample_shape, FORWARD_ELEMENTS),
        chunk * T,
    )
    x = points.detach().to(device).reshape(N, -1).contiguous()
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("points contains NaN or Inf; pass only successful borderline samples")
    i_dev, j_dev = i_idx.to(device), j_idx.to(device)
    out = torch.empty((S, 4), dtype=torch.int64)
    with eval_mode(model):
        for start in range(0, S, chunk):
            stop = min(S, start + chunk)
            pts = ops.segment_points(x, i_dev[start:stop], j_dev[start:stop], T).view(-1, *sample_shape)
            n_pts = pts.shape[0]
            logits = None
            for b in range(0, n_pts, bs):
                lb = _forward(model, pts[b : b + bs])
                if logits is None:
                    logits = torch.empty((n_pts, lb.shape[1]), dtype=lb.dtype, device=lb.device)
                    C = lb.shape[1]
                    for name, c in (("source", source), ("target", target)):
                        if c >= C:
                            raise ValueError(f"{name} must be a class id in [0, {C}) for this model, got {c}")
                logits[b : b + lb.shape[0]] = lb
            del pts
            assert logits is not None
            s_t = torch.full((stop - start,), source, dtype=torch.int64, device=logits.device)
            t_t = torch.full((stop - start,), target, dtype=torch.int64, device=logits.device)
            out[start:stop] = ops.trajectory_stats(logits, s_t, t_t, T, band[0], band[1]).cpu()
            del logits
    return result(out, i_idx, j_idx)


# --------------------------------------------------------------------------------------------------
# embedding linearity
# --------------------------------------------------------------------------------------------------

SET_NAMES = ("train", "test", "borderline")
_SUMMARY_NAMES = {  # ops.SUMMARY_FIELDS -> names in the report
    "mean_abs": "mean_abs",
    "m1": "m1",
    "mean_abs_misclassified": "mean_abs_misclassified",
    "m2": "m2",
    "max": "max",
    "mean": "mean",
    "min": "min",
    "accuracy": "accuracy",
    "misclassified": "misclassified",
}


def _class_rows(x: Tensor, y: Tensor, classes: tuple[int, int], xname: str, yname: str) -> tuple[Tensor, Tensor]:
    _check_samples(x, xname)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0]:
        got = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(
            f"{yname} must be a 1-d label tensor of length {x.shape[0]} (one per row of {xname}), got {got}"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{yname} must hold integer class labels, got {y.dtype}")
    y = y.cpu()
    keep = (y == classes[0]) | (y == classes[1])
    idx = keep.nonzero().flatten()
    return x.index_select(0, idx.to(x.device)), y[idx].to(torch.int64)


@dataclass
class LinearityResult:
    """What linearity() returns.

    svm: the fit (C, max_iter, seed, dual, n_iter, converged, classes, positive_class, w_norm,
    bias, embedding_dim). sets: {"train" | "test" | "borderline": summary (see linearity)}.
    distances: {set: [n] float64 signed distances}; labels: {set: [n] int64 true classes}.
    positive_class: the SVM's classes_[1] (positive distances are on its side).
    """

    source: int
    target: int
    embedding_layer: str
    svm: dict
    sets: dict
    distances: dict
    labels: dict
    positive_class: int

    def to_dict(self) -> dict:
        """The JSON-able part (results.json["linearity"]; NaN where undefined)."""
        return {
            "source": self.source,
            "target": self.target,
            "embedding_layer": self.embedding_layer,
            "svm": dict(self.svm),
            "sets": {k: dict(v) for k, v in self.sets.items()},
        }

    def tensors(self) -> dict:
        """What characterize/linearity_S-T.pt holds (torch.load(weights_only=True)-safe)."""
        return {
            "distances": dict(self.distances),
            "labels": dict(self.labels),
            "positive_class": self.positive_class,
            "source": self.source,
            "target": self.target,
        }


@torch.no_grad()
@full_fp32()
def linearity(
    model: nn.Module,
    embedding_layer: str,
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    source: int,
    target: int,
    borderline_st: Tensor,
    borderline_ts: Tensor,
    *,
    C: float = 1.0,
    max_iter: int = 10000,
    seed: int = 0,
) -> LinearityResult:
    """How linear the s|t decision boundary is in embedding space (paper §4.2).

    A LinearSVC(C, max_iter, random_state=seed) is fitted on the embeddings (hooks.embed at
    `embedding_layer`) of all training inputs of classes source and target, with their true
    labels. For each set -- "train" (those inputs), "test" (the test inputs of the two classes),
    "borderline" (borderline_st labelled source, then borderline_ts labelled target) -- one call of
    ops.linear_distances gives the signed distances d = (w . h + b) / ||w|| (positive on the side of
    the SVM's positive class classes_[1] = max(source, target)) and the summary:

        n             members of the set
        mean_abs      mean |d|
        m1            mean|d| / (1 + mean|d|) (paper)
        mean_abs_misclassified, m2   the same over the members the SVM misclassifies (NaN if none)
        max           max d
        mean          mean d -- the public DeepDIG code reports this value under the name "min"
        min           the true min d
        accuracy      the SVM's accuracy on the set (true class vs side of the hyperplane)
        misclassified count of misclassified members

    Reading (paper): when the classifier's s|t boundary is close to a hyperplane in embedding
    space, the borderline samples lie on or near the SVM's hyperplane -- borderline m1 much smaller
    than train/test m1 -- and the SVM classifies them near chance (accuracy ~ 0.5).

    Args:
        model: the classifier (nn.Module; eval mode for the call, restored after); inputs are moved
            to its device.
        embedding_layer: submodule holding the embedding ("NAME" or "NAME:input", see hooks).
        x_train, y_train: training inputs [N, *sample_shape] and labels [N] (all classes; the two
            classes are selected here). x_test, y_test: the same for the test split (may hold no
            member of the two classes).
        source, target: the pair's classes. borderline_st, borderline_ts: [n, *sample_shape]
            successful borderline samples of each direction (either may be empty).
        C, max_iter, seed: LinearSVC settings (paper: C = 1, max_iter = 10000).
    Returns:
        LinearityResult: svm (fit info), sets ({name: summary}), distances / labels ({name: [n]
        CPU tensors}); `to_dict()` is the JSON part (NaN where undefined), `tensors()` what
        characterize/linearity_S-T.pt holds.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    from deepdig_fast.fast import PreparedClassifier
    from deepdig_fast.forward import embed

    if not isinstance(model, (nn.Module, PreparedClassifier)):
        raise TypeError(
            f"model must be an nn.Module or a PreparedClassifier (the embedding is read by name), got {type(model).__name__}"
        )
    if not isinstance(embedding_layer, str) or not embedding_layer:
        raise ValueError(f"embedding_layer must be a submodule name like 'embedding', got {embedding_layer!r}")
    check_class_id(source, "source")
    check_class_id(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} and {target}")
    check_number(C, "C", low=0, closed="neither")
    check_int(max_iter, "max_iter", low=1)
    check_int(seed, "seed", low=0)
    pair = (source, target)
    xtr, ytr = _class_rows(x_train, y_train, pair, "x_train", "y_train")
    xte, yte = _class_rows(x_test, y_test, pair, "x_test", "y_test")
    for c in pair:
        if not bool((ytr == c).any()):
            raise ValueError(f"y_train has no training input of class {c}; the SVM needs both classes {pair}")
    _check_samples(borderline_st, "borderline_st")
    _check_samples(borderline_ts, "borderline_ts")
    shape = tuple(xtr.shape[1:])
    for name, b in (("x_test", xte), ("borderline_st", borderline_st), ("borderline_ts", borderline_ts)):
        if b.shape[0] and tuple(b.shape[1:]) != shape:
            raise ValueError(f"{name} must have sample shape {list(shape)} like x_train, got {list(b.shape[1:])}")

    device = model_device(model, xtr.device)
    with eval_mode(model):

        def h_of(x: Tensor) -> Tensor | None:
            if x.shape[0] == 0:
                return None
            return embed(model, x.to(device), embedding_layer)[1]

        h_train = h_of(xtr)
        assert h_train is not None  # both classes have training inputs (checked above)
        E = h_train.shape[1]
        h_sets = {
            "train": (h_train, ytr),
            "test": (h_of(xte), yte),
            "borderline": (
                h_of(torch.cat([borderline_st.to(device), borderline_ts.to(device)])),
                torch.cat(
                    [
                        torch.full((borderline_st.shape[0],), source, dtype=torch.int64),
                        torch.full((borderline_ts.shape[0],), target, dtype=torch.int64),
                    ]
                ),
            ),
        }

    svm = LinearSVC(C=float(C), max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(h_train.double().cpu().numpy(), ytr.numpy())
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    n_iter = int(svm.n_iter_)
    w = torch.as_tensor(svm.coef_[0], dtype=torch.float64)
    bias = float(svm.intercept_[0])
    positive = int(svm.classes_[1])

    sets, distances, labels = {}, {}, {}
    for name in SET_NAMES:
        h, y = h_sets[name]
        if h is None:
            h = torch.empty((0, E), dtype=h_train.dtype, device=h_train.device)
        lab = (y == positive).to(torch.int64).to(h.device)
        d, summary = ops.linear_distances(h, w.to(h.device), bias, lab)
        vals = dict(zip(ops.SUMMARY_FIELDS, summary.cpu().tolist()))
        entry: dict[str, Any] = {"n": int(h.shape[0])}
        for k, v in vals.items():
            entry[_SUMMARY_NAMES[k]] = int(v) if k == "misclassified" else float(v)
        if name == "borderline":
            entry["n_source_to_target"] = int(borderline_st.shape[0])
            entry["n_target_to_source"] = int(borderline_ts.shape[0])
        sets[name] = entry
        distances[name] = d.cpu()
        labels[name] = y.cpu()

    return LinearityResult(
        source=source,
        target=target,
        embedding_layer=embedding_layer,
        svm={
            "C": float(C),
            "max_iter": max_iter,
            "seed": seed,
            "dual": str(svm.dual),
            "n_iter": n_iter,
            "converged": bool(not warned and n_iter < max_iter),
            "classes": [int(c) for c in svm.classes_],
            "positive_class": positive,
            "w_norm": float(torch.linalg.vector_norm(w)),
            "bias": bias,
            "embedding_dim": int(E),
        },
        sets=sets,
        distances=distances,
        labels=labels,
        positive_class=positive,
    )
