"""The per-direction numbers an atlas report shows: how each is formatted, coloured and read.

The other modules of deepdig_fast.atlas_report read HEATMAP_METRICS through this module
(`metrics.HEATMAP_METRICS`) when they run, so one assignment to it here changes the set of
heatmaps, tables and comparisons everywhere at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from deepdig_fast.document import num
from deepdig_fast.rundir import ATLAS_ROW_FIELDS, ratio


@dataclass(frozen=True)
class MetricSpec:
    """How one per-direction number is shown.

    fmt: format spec of one value (`format(v, fmt)`), e.g. ".1%".
    higher: "better", "worse" or "neutral" -- whether a larger value means DeepDIG found the boundary
        more easily / more cheaply ("neutral": a measurement of the boundary itself, no preferred side).
    vrange: fixed colour range (rates: (0, 1)); None = the range of the data.
    derive: computes the value from a direction row; None = the row's entry of the same name.
    """

    title: str
    meaning: str
    fmt: str
    cmap: str
    higher: str
    vrange: tuple[float, float] | None
    derive: Callable[[Mapping[str, Any]], float | None] | None = None

    @property
    def is_rate(self) -> bool:
        return self.vrange is not None


def _third_class_share(row: Mapping[str, Any]) -> float | None:
    return ratio(num(row.get("third_class")), num(row.get("pairs")))


_RATE = (0.0, 1.0)

HEATMAP_METRICS: Mapping[str, MetricSpec] = MappingProxyType(
    {
        "success_rate": MetricSpec(
            "Success rate",
            "successes / pairs: share of DeepDIG's pairs whose bisection reached the boundary",
            ".1%",
            "viridis",
            "better",
            _RATE,
        ),
        "yield_rate": MetricSpec(
            "Yield",
            "successes / source inputs classified as the source: borderline samples per usable input",
            ".1%",
            "viridis",
            "better",
            _RATE,
        ),
        "adversarial_rate": MetricSpec(
            "Adversarial rate",
            "component I kept / source inputs classified as the source: inputs the generator "
            "turned into samples classified as the target",
            ".1%",
            "cividis",
            "better",
            _RATE,
        ),
        "pair_rate": MetricSpec(
            "Pair rate",
            "component II pairs / adversarial samples: adversarial samples mapped back to inputs "
            "classified as the source",
            ".1%",
            "cividis",
            "better",
            _RATE,
        ),
        "mean_attempts": MetricSpec(
            "Mean attempts",
            "points the bisection classified per successful pair (lower = cheaper)",
            ".1f",
            "magma_r",
            "worse",
            None,
        ),
        "third_class_share": MetricSpec(
            "Third-class share",
            "third_class / pairs: pairs lost because a third class won at a midpoint",
            ".1%",
            "Reds",
            "worse",
            _RATE,
            _third_class_share,
        ),
        "oscillation": MetricSpec(
            "Trajectory oscillation",
            "label changes per point on straight lines between borderline samples (0 = the lines stay in one class)",
            ".3g",
            "YlOrRd",
            "neutral",
            None,
        ),
        "m1_borderline": MetricSpec(
            "m1 of borderline samples",
            "mean|d| / (1 + mean|d|) of the borderline samples' distances d to a "
            "linear SVM's hyperplane in embedding space (small = near-linear boundary)",
            ".3g",
            "YlGnBu",
            "neutral",
            None,
        ),
        "margin_l2_mean": MetricSpec(
            "Margin (L2)",
            "mean input-space L2 distance from a borderline sample to its source input",
            ".3g",
            "PuBu",
            "neutral",
            None,
        ),
    }
)

# the numeric columns of a direction row (atlas_matrix accepts these too)
DIRECTION_COLUMNS: tuple[str, ...] = tuple(c for c in ATLAS_ROW_FIELDS if c not in ("source", "target", "skipped"))

# the colour maps of a difference heatmap, by MetricSpec.higher: green where B is better
DIFF_CMAPS = {"better": "PiYG", "worse": "PiYG_r", "neutral": "RdBu_r"}


def valid_metrics() -> list[str]:
    """Every metric atlas_matrix accepts: the heatmap metrics, then the other numeric columns."""
    return list(HEATMAP_METRICS) + [c for c in DIRECTION_COLUMNS if c not in HEATMAP_METRICS]


def metric_value(row: Mapping[str, Any], metric: str) -> float | None:
    """A direction row's value of `metric` (derived when its MetricSpec says how); None when undefined."""
    spec = HEATMAP_METRICS.get(metric)
    if spec is not None and spec.derive is not None:
        return num(spec.derive(row))
    return num(row.get(metric))


def show_value(metric: str, v, delta: bool = False) -> str:
    """One value (or a difference, signed) in the metric's format."""
    f = num(v)
    if f is None:
        return "–"
    spec = HEATMAP_METRICS.get(metric)
    fmt = spec.fmt if spec is not None else ".4g"
    return format(f, ("+" if delta else "") + fmt)


def higher_text(spec: MetricSpec) -> str:
    """How to read a larger value of the metric."""
    return {"better": "higher is better", "worse": "lower is better", "neutral": "no preferred direction"}[spec.higher]
