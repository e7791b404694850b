"""The atlas heatmaps: one K x K matrix per metric (row = source class, column = target class),
of an atlas (write_atlas_report) or of the difference B - A of two atlases (compare_atlases), drawn
by Figures.draw on matplotlib's Agg canvas without pyplot."""

from __future__ import annotations

import numpy as np

from deepdig_fast.atlas_report import metrics
from deepdig_fast.atlas_report.metrics import DIFF_CMAPS
from deepdig_fast.document import Figures


def _fig_matrix(
    fig,
    M: np.ndarray,
    names: list[str],
    title: str,
    fmt: str,
    cmap: str,
    vrange: tuple[float, float] | None,
    cbar_label: str,
    percent: bool,
) -> str | None:
    """A K x K heatmap; NaN cells hatched grey; values written in the cells when K <= 12."""
    import matplotlib
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import PercentFormatter

    finite = np.isfinite(M)
    if not finite.any():
        return "no direction has a value for it"
    K = M.shape[0]
    if vrange is None:
        lo, hi = float(M[finite].min()), float(M[finite].max())
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            pad = 0.05 * abs(hi) or 0.5
            lo, hi = lo - pad, hi + pad
        vrange = (lo, hi)
    side = min(max(3.2, 0.62 * K), 16.0)
    fig.set_size_inches(side + 2.2, side + 1.3)
    ax = fig.add_subplot(1, 1, 1)
    cm = matplotlib.colormaps[cmap].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cm, vmin=vrange[0], vmax=vrange[1], interpolation="nearest")
    for i, j in zip(*np.nonzero(~finite)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.92", edgecolor="0.62", hatch="///", linewidth=0))
    if K <= 12:
        size = 9 if K <= 6 else 7.5
        for i, j in zip(*np.nonzero(finite)):
            r, g, b, _ = cm(im.norm(M[i, j]))
            ink = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"
            v = float(M[i, j])
            text = "0" if v == 0 and fmt.startswith("+") else format(v, fmt)  # an unchanged cell of a difference
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=ink)
    tick = 10 if K <= 20 else max(5, 10 - K // 12)
    long_names = K > 8 or max(len(n) for n in names) > 3
    ax.set_xticks(range(K))
    ax.set_xticklabels(names, rotation=90 if long_names else 0, fontsize=tick)
    ax.set_yticks(range(K))
    ax.set_yticklabels(names, fontsize=tick)
    ax.set_xlabel("target class")
    ax.set_ylabel("source class")
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, shrink=0.85, label=cbar_label)
    if percent:
        cb.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    return None


def draw_heatmap(
    figs: Figures, name: str, M: np.ndarray, names: list[str], metric: str, diff: bool, title: str
) -> tuple[str | None, str | None]:
    """figures/<name>: M in the metric's colours, or (diff) a difference on a scale centred at 0."""
    spec = metrics.HEATMAP_METRICS[metric]
    if diff:
        m = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 0.0
        m = m or 1.0
        label = "difference" + (" (percentage points)" if spec.is_rate else "")
        return figs.draw(
            name, _fig_matrix, M, names, title, "+" + spec.fmt, DIFF_CMAPS[spec.higher], (-m, m), label, spec.is_rate
        )
    return figs.draw(name, _fig_matrix, M, names, title, spec.fmt, spec.cmap, spec.vrange, spec.title, spec.is_rate)
