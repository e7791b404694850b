"""The figures of a sweep's report, drawn by Figures.draw on matplotlib's Agg canvas without pyplot:
small multiples of the atlas report's K x K heatmaps (one panel per cell, one colour scale shared by
all panels so that equal colours mean equal values) and, per numeric covariate, each metric's
per-model mean and 95% interval against the covariate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepdig_fast.atlas_report import metrics as atlas_metrics
from deepdig_fast.atlas_report.heatmaps import _fig_matrix
from deepdig_fast.document import Figures
from deepdig_fast.sweep.summary import SummaryMetric

__all__ = ["Panel", "Point", "MAX_PANELS", "draw_cell_heatmaps", "draw_covariate", "point", "shared_range"]

#: at most this many cells get a panel in one small-multiple figure (the rest are named in the page)
MAX_PANELS = 24


@dataclass(frozen=True)
class Panel:
    """One cell's K x K matrix of a metric (row = source class, column = target class)."""

    title: str
    matrix: np.ndarray
    names: list[str]


@dataclass(frozen=True)
class Point:
    """One group's mean of a metric at its covariate value x; lo/hi: its 95% interval (None: no interval)."""

    label: str
    series: str
    x: float
    mean: float
    lo: float | None
    hi: float | None


class _Subfigure:
    """A matplotlib SubFigure seen through the Figure methods _fig_matrix calls: it sizes the whole
    figure itself, which for one panel of a grid is the grid's business, so that call does nothing."""

    def __init__(self, sub):
        self._sub = sub

    def set_size_inches(self, *args, **kwargs) -> None:
        pass

    def __getattr__(self, name: str):
        return getattr(self._sub, name)


def shared_range(panels: Sequence[Panel], fixed: tuple[float, float] | None) -> tuple[float, float] | None:
    """The colour range of all panels together: `fixed` (rates: 0..1) or the data's range, widened
    when every value is the same; None when no panel has a value."""
    if fixed is not None:
        return fixed
    vals = np.concatenate([p.matrix[np.isfinite(p.matrix)] for p in panels]) if panels else np.array([])
    if vals.size == 0:
        return None
    lo, hi = float(vals.min()), float(vals.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        pad = 0.05 * abs(hi) or 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _fig_panels(fig, panels: Sequence[Panel], metric: str, vrange: tuple[float, float], ncols: int) -> str | None:
    """A grid of _fig_matrix heatmaps, one per panel, all on the colour range `vrange`."""
    spec = atlas_metrics.HEATMAP_METRICS[metric]
    nrows = math.ceil(len(panels) / ncols)
    k = max(p.matrix.shape[0] for p in panels)
    # a panel a little smaller than the atlas report's one heatmap: the grid is shrunk to the page's
    # width, and a smaller canvas keeps the values written in the cells readable there
    side = 0.8 * min(max(3.2, 0.62 * k), 16.0)
    fig.set_size_inches(ncols * (side + 1.8), nrows * (side + 1.4))
    subs = fig.subfigures(nrows, ncols, squeeze=False)
    for i, p in enumerate(panels):
        sub = subs[i // ncols][i % ncols]
        why = _fig_matrix(
            _Subfigure(sub), p.matrix, p.names, p.title, spec.fmt, spec.cmap, vrange, spec.title, spec.is_rate
        )
        if why is not None:
            sub.text(0.5, 0.5, f"{p.title}\n{why}", ha="center", va="center", wrap=True)
    return None


def draw_cell_heatmaps(figs: Figures, name: str, panels: Sequence[Panel], metric: str) -> tuple[str | None, str | None]:
    """figures/<name>: one heatmap of `metric` per panel (at most MAX_PANELS), on one colour scale."""
    panels = list(panels)[:MAX_PANELS]
    if not panels:
        return None, "no cell has results yet"
    spec = atlas_metrics.HEATMAP_METRICS[metric]
    vrange = shared_range(panels, spec.vrange)
    if vrange is None:
        return None, "no direction of any cell has a value for it"
    k = max(p.matrix.shape[0] for p in panels)
    ncols = min(len(panels), 3 if k <= 4 else 2 if k <= 12 else 1)
    return figs.draw(name, _fig_panels, panels, metric, vrange, ncols)


def _fig_covariate(fig, covariate: str, series: Mapping[str, Sequence[Point]], specs: Sequence[SummaryMetric]) -> None:
    """One panel per metric: each group's mean (dot), 95% interval (bar) and model name against x."""
    from matplotlib.ticker import PercentFormatter

    ncols = min(len(specs), 3)
    nrows = math.ceil(len(specs) / ncols)
    fig.set_size_inches(4.6 * ncols, 3.9 * nrows)
    colours = [f"C{i}" for i in range(10)]
    labels = list(dict.fromkeys(p.series for pts in series.values() for p in pts))
    # one x range for every panel (a model without a metric must not move the axis), and each name
    # written towards the middle so that none runs off the panel's right edge
    xs = [p.x for pts in series.values() for p in pts]
    x_lo, x_hi = min(xs), max(xs)
    pad = 0.12 * (x_hi - x_lo) or 0.5 * abs(x_hi) or 0.5
    x_mid = 0.5 * (x_lo + x_hi)
    # settings combinations of one model share its x: each series is shifted a little (dodged) so
    # that equal means do not hide one another, and each model is named once per panel
    dodge = 0.15 * pad
    for i, spec in enumerate(specs):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        pts = series.get(spec.column, [])
        named: set[str] = set()
        for j, label in enumerate(labels):
            mine = [p for p in pts if p.series == label]
            if not mine:
                continue
            shift = (j - 0.5 * (len(labels) - 1)) * dodge
            lows = [p.mean - p.lo if p.lo is not None else 0.0 for p in mine]
            highs = [p.hi - p.mean if p.hi is not None else 0.0 for p in mine]
            ax.errorbar(
                [p.x + shift for p in mine],
                [p.mean for p in mine],
                yerr=[lows, highs],
                fmt="o",
                color=colours[j % len(colours)],
                capsize=3,
                label=label,
            )
            for p in mine:
                if p.label in named:
                    continue
                named.add(p.label)
                right = p.x > x_mid
                ax.annotate(
                    p.label,
                    (p.x + shift, p.mean),
                    xytext=(-5 if right else 5, 4),
                    textcoords="offset points",
                    ha="right" if right else "left",
                    fontsize=8,
                )
        if not pts:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set_title(spec.label)
        ax.set_xlabel(covariate)
        ax.set_xlim(x_lo - pad, x_hi + pad)
        ax.margins(y=0.15)
        ax.grid(True, color="0.9")
        if spec.is_rate:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if len(labels) > 1 and i == 0:
            ax.legend(title="settings", fontsize=8)


def draw_covariate(
    figs: Figures, name: str, covariate: str, series: Mapping[str, Sequence[Point]], specs: Sequence[SummaryMetric]
) -> tuple[str | None, str | None]:
    """figures/<name>: every metric of `specs` against `covariate`; series: {metric column: points}."""
    if not any(series.values()):
        return None, f"no model has both {covariate} and a metric value"
    return figs.draw(name, _fig_covariate, covariate, series, specs)


def point(label: str, series: str, x: Any, stats: Mapping[str, Any]) -> Point | None:
    """The Point of one group's summary `stats` of a metric at x; None when it has no mean."""
    if stats.get("mean") is None:
        return None
    return Point(label, series, float(x), stats["mean"], stats.get("ci_low"), stats.get("ci_high"))
