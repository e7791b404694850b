"""Per-model summaries of a sweep's results table: for each group of rows (by default one model under
one settings combination) the mean, spread and 95% interval of the mean of each metric over its
directions, how many directions it has and skipped, what its cells cost and the model's covariates.

    groups = summarize_rows(rows)                 # rows: the per-direction rows of results.csv
    g = groups[0]
    g["model"], g["settings"], g["directions"], g["skipped"], g["cell_seconds"], g["covariates"]
    g["metrics"]["success_rate"]  # {"n", "mean", "std", "ci_low", "ci_high", "min", "max"}

The interval is a t-interval over the directions: the directions of one model are the sample, so it
says how well the model's mean over *these* directions is pinned down, not how another seed would
move it. Pure Python and numpy (scipy's t quantiles when scipy is installed, a table otherwise), so
that summarising a results table never loads torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepdig_fast.columns import FIXED_COLUMNS

__all__ = [
    "METRICS",
    "SummaryMetric",
    "metric_spec",
    "row_value",
    "t_quantile",
    "interval",
    "summarize_values",
    "summarize_rows",
    "covariate_columns",
    "flatten_summary",
    "NON_COVARIATE_COLUMNS",
]


@dataclass(frozen=True)
class SummaryMetric:
    """One per-direction metric a sweep summarises.

    column: its column in the results table; label: its name in tables and figures.
    higher: "better" (success), "worse" (cost) or "neutral" (a property of the boundary itself, with
        no preferred side); reading: how to read a lower value, said neutrally where there is no
        preferred side.
    fmt: format spec of one value (`format(v, fmt)`); is_rate: a share 0..1 (differences are
        percentage points, colour scales are fixed at 0..1).
    """

    column: str
    label: str
    higher: str
    fmt: str
    reading: str
    is_rate: bool = False


#: the metrics summarised, in the order the report shows them
METRICS: tuple[SummaryMetric, ...] = (
    SummaryMetric(
        "success_rate",
        "Success rate",
        "better",
        ".1%",
        "higher is better: more of DeepDIG's pairs reached the boundary",
        True,
    ),
    SummaryMetric(
        "oscillation",
        "Trajectory oscillation",
        "neutral",
        ".3g",
        "lower = smoother: straight lines between borderline samples change label less often",
    ),
    SummaryMetric(
        "m1_borderline",
        "m1 of borderline samples",
        "neutral",
        ".3g",
        "lower = more linear: borderline samples lie closer to one hyperplane in embedding space",
    ),
    SummaryMetric(
        "margin_l2_mean",
        "Margin (L2)",
        "neutral",
        ".3g",
        "lower = closer: borderline samples lie nearer their source inputs",
    ),
    SummaryMetric(
        "mean_attempts",
        "Mean attempts",
        "worse",
        ".1f",
        "lower is cheaper: fewer classified points per successful bisection",
    ),
)


def metric_spec(column: str) -> SummaryMetric:
    """The SummaryMetric of `column` (KeyError naming the known ones otherwise)."""
    for m in METRICS:
        if m.column == column:
            return m
    raise KeyError(f"{column!r} is not a summarised metric; known: {', '.join(m.column for m in METRICS)}")


#: the columns of a results row that are not covariates (docs/SWEEPS.md: identity, model,
#: settings, direction, cost)
NON_COVARIATE_COLUMNS: frozenset[str] = FIXED_COLUMNS


def row_value(v: Any) -> float | None:
    """v as a finite float, or None (None, a bool, text, NaN or infinity count as no value)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


# two-sided 95% t quantiles t_{0.975, df} for df = 1..30; beyond 30 the expansion of _t_expansion
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def _t_expansion(df: int) -> float:
    """t_{0.975, df} by the Cornish-Fisher expansion around the normal 1.96: within 1e-4 of the
    exact quantile for df > 30, where the plain 1.96 would still be 4% short."""
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom: scipy's when installed; else
    a table to df = 30 and an expansion above."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    try:
        from scipy.stats import t as student_t
    except ImportError:
        return _T975[df - 1] if df <= len(_T975) else _t_expansion(df)
    return float(student_t.ppf(0.975, df))


def interval(mean: float, std: float, n: int) -> tuple[float, float] | None:
    """The 95% t-interval of a mean of n values with sample standard deviation std; None when n < 2."""
    if n < 2:
        return None
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def summarize_values(values: Iterable[Any], bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """{"n", "mean", "std", "ci_low", "ci_high", "min", "max"} of the values that are numbers (others
    are left out and not counted). std is the sample standard deviation (ddof=1); std and the
    interval are None with fewer than two values, everything but n is None with none. `bounds`:
    the range the values can take (a rate: (0, 1)); the interval is clipped to it, as a mean
    outside it is impossible."""
    xs = np.array([f for f in (row_value(v) for v in values) if f is not None], dtype=np.float64)
    n = int(xs.size)
    out: dict[str, Any] = {"n": n, "mean": None, "std": None, "ci_low": None, "ci_high": None, "min": None, "max": None}
    if n == 0:
        return out
    mean = float(xs.mean())
    out.update(mean=mean, min=float(xs.min()), max=float(xs.max()))
    if n >= 2:
        std = float(xs.std(ddof=1))
        ci = interval(mean, std, n)
        assert ci is not None
        lo, hi = ci
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        out.update(std=std, ci_low=lo, ci_high=hi)
    return out


def covariate_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The covariate columns of `rows`, in first-appearance order: test_accuracy (every model has
    it) and each column the schema does not define (the spec's covariates; setting_<key> excluded)."""
    seen: dict[str, None] = {"test_accuracy": None} if rows else {}
    for r in rows:
        for k in r:
            if k not in NON_COVARIATE_COLUMNS and not k.startswith("setting_"):
                seen.setdefault(k, None)
    return list(seen)


def _first(values: Iterable[Any]) -> Any:
    """The first value that is not None (None when there is none)."""
    return next((v for v in values if v is not None), None)


def summarize_rows(
    rows: Sequence[Mapping[str, Any]],
    by: Sequence[str] = ("model", "settings"),
    covariates: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """One summary per group of rows with equal values of the columns `by`, in first-appearance order.

    Each summary holds the `by` columns' values; "cells" (the group's distinct cell ids, in order);
    "directions" (its rows) and "skipped" (those skipped: they add no metric value); "metrics":
    {column: summarize_values(...)} for every entry of METRICS, over the rows not skipped;
    "cell_seconds": the sum over the group's distinct cells of each cell's wall time (None when no
    cell records one: a cell's time appears on each of its rows, so summing rows would count it once
    per direction); "covariates": {name: the group's first value} for covariate_columns(rows) unless
    `covariates` names them.
    """
    cov_names = list(covariates) if covariates is not None else covariate_columns(rows)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in by), []).append(r)
    out = []
    for key, members in groups.items():
        used = [r for r in members if not r.get("skipped")]
        cell_time: dict[Any, float | None] = {}
        for r in members:
            t = row_value(r.get("cell_seconds"))
            if cell_time.get(r.get("cell")) is None:
                cell_time[r.get("cell")] = t
        known = [t for t in cell_time.values() if t is not None]
        summary: dict[str, Any] = dict(zip(by, key))
        summary.update(
            cells=list(cell_time),
            directions=len(members),
            skipped=len(members) - len(used),
            metrics={
                m.column: summarize_values((r.get(m.column) for r in used), (0.0, 1.0) if m.is_rate else None)
                for m in METRICS
            },
            cell_seconds=sum(known) if known else None,
            covariates={c: _first(r.get(c) for r in members) for c in cov_names},
        )
        out.append(summary)
    return out


def flatten_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """One summarize_rows summary as a flat record, for a table with one column per number: the
    group's columns, directions, skipped, cell_seconds, then `<metric>_<n|mean|std|ci_low|ci_high|
    min|max>` for each metric and each covariate under its own name (cells joined by ", ")."""
    skip = {"metrics", "covariates", "cells"}
    out: dict[str, Any] = {k: v for k, v in summary.items() if k not in skip}
    out["cells"] = ", ".join(str(c) for c in summary.get("cells", []))
    for column, stats in summary.get("metrics", {}).items():
        out.update({f"{column}_{k}": v for k, v in stats.items()})
    for name, v in summary.get("covariates", {}).items():
        out.setdefault(name, v)
    return out
