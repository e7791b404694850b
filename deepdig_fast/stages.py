"""The method's stages for one direction s -> t, each defined here once: settings are dataclasses,
every stage returns the result dataclass of the function behind it.

    component I      adversarial.component_one    -> ComponentOneResult   (A(s->t))
    component II     adversarial.component_two    -> ComponentTwoResult   (pairs (a'', a))
    component III    EngineSettings.refine        -> BorderlineResult     (borderline samples)
    baselines        baseline_borderline          -> (BorderlineResult, PairSet)   (RPBS, EPBS)
    characterize     trajectory                   -> TrajectoryResult | None
                     pair_linearity               -> LinearityResult
                     margin_l2                    -> Tensor (distance to the input a sample came from)

run_pair (pipeline.py) and run_atlas (atlas.py) compose these stages and store their outputs each
its own way (a stage per file, or one unit per direction); neither computes a stage itself. A new
runner (a sweep cell, a new generator strategy) composes the same functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor

from deepdig_fast.baselines import PairSet, embedding_nearest_pairs, random_pairs
from deepdig_fast.engine import BorderlineResult, refine_borderline
from deepdig_fast.hooks import model_device

if TYPE_CHECKING:
    from deepdig_fast.characterize import LinearityResult, TrajectoryResult
    from deepdig_fast.data import ClassificationData

BASELINES = ("rpbs", "epbs")


@dataclass(frozen=True)
class EngineSettings:
    """Component III's settings (refine_borderline): tolerance, step cap, method, live batch and
    loop. All of them enter the key of every borderline stage: batched forwards round differently
    at another batch size or loop."""

    beta: float
    max_steps: int
    method: str
    batch_size: int
    loop: str

    def key(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def refine(
        self, classifier: Any, a: Tensor, b: Tensor, s: int, t: int, embedding_layer: str | None = None
    ) -> BorderlineResult:
        """Component III: bisect each pair (a[i] of class s, b[i] of class t) to the s|t boundary."""
        return refine_borderline(
            classifier,
            a,
            b,
            s,
            t,
            beta=self.beta,
            max_steps=self.max_steps,
            method=self.method,
            embedding_layer=embedding_layer,
            batch_size=self.batch_size,
            loop=self.loop,
        )


@dataclass(frozen=True)
class TrajectorySettings:
    """Trajectory oscillation's settings (characterize.trajectory_oscillation): K partners and T
    points per segment, sampled segments (None: the paper's exact design), the in-band interval."""

    K: int
    T: int
    segments: int | None
    band: tuple

    def key(self) -> dict[str, Any]:
        return {"K": self.K, "T": self.T, "segments": self.segments, "band": list(self.band)}


def baseline_borderline(
    kind: str,
    classifier: Any,
    data: ClassificationData,
    s: int,
    t: int,
    engine: EngineSettings,
    *,
    seed: int,
    embedding_layer: str | None,
) -> tuple[BorderlineResult, PairSet]:
    """A baseline of s -> t refined by component III: "rpbs" random correctly classified training
    pairs (drawn with `seed`), "epbs" embedding-nearest ones (needs `embedding_layer`). With an
    embedding layer the borderline samples' embeddings are recorded too."""
    device = model_device(classifier)
    x, y = data.x_train.to(device), data.y_train.to(device)
    if kind == "rpbs":
        pairs = random_pairs(classifier, x, y, s, t, seed=seed)
    elif kind == "epbs":
        if embedding_layer is None:
            raise ValueError("the EPBS baseline needs an embedding layer")
        pairs = embedding_nearest_pairs(classifier, x, y, s, t, embedding_layer)
    else:
        raise ValueError(f"kind must be one of {', '.join(BASELINES)}, got {kind!r}")
    return engine.refine(classifier, pairs.a, pairs.b, s, t, embedding_layer=embedding_layer), pairs


def trajectory(
    classifier: Any, points: Tensor, s: int, t: int, settings: TrajectorySettings, *, seed: int
) -> TrajectoryResult | None:
    """Prediction oscillation along straight lines between the borderline samples `points` of
    s -> t (None with fewer than 2 samples: no segment to sample)."""
    from deepdig_fast.characterize import trajectory_oscillation

    if points.shape[0] < 2:
        return None
    return trajectory_oscillation(
        classifier,
        points.to(model_device(classifier)),
        s,
        t,
        K=settings.K,
        T=settings.T,
        segments=settings.segments,
        seed=seed,
        band=settings.band,
    )


def pair_linearity(
    classifier: Any,
    data: ClassificationData,
    embedding_layer: str,
    s: int,
    t: int,
    borderline_st: Tensor | None,
    borderline_ts: Tensor | None = None,
    *,
    seed: int,
) -> LinearityResult:
    """The s|t linear SVM on embeddings of the pair's training inputs, with hyperplane distances
    and accuracy for train, test and the borderline samples of s -> t and t -> s (None: none)."""
    from deepdig_fast.characterize import linearity

    device = model_device(classifier)
    empty = data.probe_inputs(0)
    x_tr, y_tr = data.inputs("train", (s, t))  # only the pair's rows are materialised
    x_te, y_te = data.inputs("test", (s, t))  # (linearity selects the same rows, in order)
    return linearity(
        classifier,
        embedding_layer,
        x_tr.to(device),
        y_tr.to(device),
        x_te.to(device),
        y_te.to(device),
        s,
        t,
        (empty if borderline_st is None else borderline_st).to(device),
        (empty if borderline_ts is None else borderline_ts).to(device),
        seed=seed,
    )


def margin_l2(points: Tensor, origins: Tensor) -> Tensor:
    """L2 distance (float64, on the CPU) from each borderline sample to the input it came from: a
    margin estimate, [N]."""
    return (points.to(origins.device) - origins).flatten(1).double().norm(dim=1).cpu()
