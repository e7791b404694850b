"""The run report's figures, each drawn by Figures.draw on a matplotlib Figure (Agg, no pyplot):
a function returns None once it has drawn, or the reason it cannot (the report says it instead)."""

from __future__ import annotations

import math

import torch

from deepdig_fast.document import fmt_g, num, pct
from deepdig_fast.report.folder import METHOD_NAMES, METHODS, arrow

METHOD_COLORS = {"deepdig": "#1f77b4", "rpbs": "#ff7f0e", "epbs": "#2ca02c"}


def _as_image(x: torch.Tensor):
    """One sample -> (array for imshow, cmap) or None when it is not an image."""
    x = x.detach().float().cpu()
    if x.dim() == 3 and x.shape[0] == 1:
        return x[0].clamp(0, 1).numpy(), "gray"
    if x.dim() == 3 and x.shape[0] == 3:
        return x.permute(1, 2, 0).clamp(0, 1).numpy(), None
    if x.dim() == 3 and x.shape[-1] in (1, 3):
        return (x[..., 0].clamp(0, 1).numpy(), "gray") if x.shape[-1] == 1 else (x.clamp(0, 1).numpy(), None)
    if x.dim() == 2:
        return x.clamp(0, 1).numpy(), "gray"
    if x.dim() == 1:
        side = int(round(math.sqrt(x.numel())))
        if side * side == x.numel() and side >= 4:
            return x.view(side, side).clamp(0, 1).numpy(), "gray"
    return None


def spread(idx: torch.Tensor, k: int) -> torch.Tensor:
    """k entries of idx spread evenly over it (all when it has <= k)."""
    if idx.numel() <= k:
        return idx
    pos = torch.linspace(0, idx.numel() - 1, k).round().long()
    return idx[pos]


def fig_success(fig, directions: dict, labels: dict) -> str | None:
    keys = list(directions)
    if not keys:
        return "results.json lists no direction"
    fig.set_size_inches(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.26
    for mi, m in enumerate(METHODS):
        for di, key in enumerate(keys):
            info = (directions[key].get("methods") or {}).get(m)
            x = di + (mi - 1) * width
            if info is None:
                continue
            rate = num(info.get("success_rate"))
            if info.get("skipped") or rate is None:
                ax.text(
                    x,
                    0.02,
                    "skipped" if info.get("skipped") else "no pairs",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="0.4",
                )
                continue
            ax.bar(x, rate, width * 0.92, color=METHOD_COLORS[m], label=METHOD_NAMES[m] if di == 0 else None)
            ax.text(
                x, rate + 0.015, f"{100 * rate:.0f}%\nn={info.get('pairs', 0)}", ha="center", va="bottom", fontsize=8.5
            )
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([labels.get(k, arrow(k)) for k in keys])
    ax.set_ylim(0, 1.35)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("success rate (borderline found / pairs)")
    ax.set_title("Share of starting pairs that reached the decision boundary")
    ax.legend(loc="upper center", ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return None


def fig_attempts(fig, key: str, borderline: dict) -> str | None:
    from matplotlib.ticker import MaxNLocator

    methods = [m for m in METHODS if borderline.get(m) is not None]
    if not methods:
        return "no borderline file for this direction"
    fig.set_size_inches(4.0 * len(methods), 3.4)
    for k, m in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), k + 1)
        d = borderline[m]
        att, st = d["attempts"].long(), d["status"].long()
        if att.numel() == 0:
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
        else:
            top = int(att.max())
            bins = [b - 0.5 for b in range(1, top + 2)]
            ok = st == 0
            data = [att[ok].numpy(), att[~ok].numpy()]
            ax.hist(
                data,
                bins=bins,
                stacked=True,
                color=[METHOD_COLORS[m], "#d62728"],
                label=[f"success ({int(ok.sum())})", f"failure ({int((~ok).sum())})"],
            )
            ax.legend(frameon=False, fontsize=9)
        ax.set_title(f"{METHOD_NAMES[m]}, {arrow(key)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("attempts (points evaluated)")
        if k == 0:
            ax.set_ylabel("pairs")
        ax.grid(axis="y", alpha=0.3)
    return None


def _mosaic(points: torch.Tensor, cols: int, pad: int = 2):
    """Tile images into one array (gray padding between tiles): (array, cmap)."""
    imgs = [_as_image(x) for x in points]
    cmap = imgs[0][1]
    arrs = [torch.as_tensor(a) for a, _ in imgs]
    h, w = arrs[0].shape[:2]
    rows = -(-len(arrs) // cols)
    extra = arrs[0].shape[2:]
    out = torch.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *extra), 0.5, dtype=torch.float32)
    for k, a in enumerate(arrs):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = a
    return out.numpy(), cmap


def fig_grid(fig, points: torch.Tensor, title: str, n_max: int = 64) -> str | None:
    if points.shape[0] == 0:
        return "no successful borderline sample"
    if _as_image(points[0]) is None:
        return f"samples of shape {list(points.shape[1:])} are not images"
    idx = spread(torch.arange(points.shape[0]), n_max)
    cols = min(8, idx.numel())
    img, cmap = _mosaic(points[idx], cols)
    aspect = img.shape[0] / img.shape[1]
    fig.set_size_inches(8.0, 8.0 * aspect + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return None


def fig_strips(fig, rows: list[dict], s: int, t: int, names: dict[int, str]) -> str | None:
    if not rows:
        return "no pair to show"
    if _as_image(rows[0]["a"]) is None:
        return "samples are not images"
    n = len(rows)
    fig.set_size_inches(6.6, 1.9 * n + 0.3)
    for k, r in enumerate(rows):
        panels = [
            (r["a"], f"end a: class {names[s]}"),
            (r["m"], f"borderline, λ={r['lam']:.3f}\np({names[s]})={r['ps']:.4f} p({names[t]})={r['pt']:.4f}"),
            (r["b"], f"end b: class {names[t]}"),
        ]
        for c, (x, label) in enumerate(panels):
            ax = fig.add_subplot(n, 3, 3 * k + c + 1)
            img, cmap = _as_image(x)
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel(METHOD_NAMES[r["method"]], fontsize=10)
    return None


def fig_oscillation(fig, stats: torch.Tensor, T: int, key: str, mean: float | None) -> str | None:
    if stats.shape[0] == 0:
        return "no segment was evaluated"
    fig.set_size_inches(9.5, 3.5)
    changes = stats[:, 0].long()
    ax = fig.add_subplot(1, 2, 1)
    top = int(changes.max())
    ax.hist((changes.double() / T).numpy(), bins=[(c - 0.5) / T for c in range(0, top + 2)], color="#1f77b4")
    if mean is not None:
        ax.axvline(mean, color="#d62728", linestyle="--", label=f"mean {mean:.4f}")
        ax.legend(frameon=False)
    ax.set_xlabel("oscillation of a segment (label changes / T)")
    ax.set_ylabel("segments")
    ax.set_title(f"Oscillation, {arrow(key)} (T = {T})")
    ax.grid(axis="y", alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    distinct = stats[:, 1].long()
    vals = torch.bincount(distinct)
    xs = [v for v in range(vals.numel()) if vals[v] > 0]
    ax2.bar(xs, [int(vals[v]) for v in xs], color="#9467bd")
    ax2.set_xticks(xs)
    ax2.set_xlabel("distinct labels on a segment")
    ax2.set_ylabel("segments")
    ax2.set_title("Labels met along a segment")
    ax2.grid(axis="y", alpha=0.3)
    return None


def fig_svm(fig, arrays: dict, sets: dict, names: dict[int, str]) -> str | None:
    dist = arrays.get("distances") or {}
    labels = arrays.get("labels") or {}
    present = [k for k in ("train", "test", "borderline") if k in dist]
    if not present:
        return "the linearity file holds no distances"
    fig.set_size_inches(4.2 * len(present), 3.5)
    s, t = arrays.get("source"), arrays.get("target")
    for k, name in enumerate(present):
        ax = fig.add_subplot(1, len(present), k + 1)
        d = dist[name].double()
        y = labels.get(name)
        if d.numel() == 0:
            ax.text(0.5, 0.5, "empty set", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = float(d.min()), float(d.max())
            if hi - lo < 1e-12:
                lo, hi = lo - 1e-6, hi + 1e-6
            bins = torch.linspace(lo, hi, 41).numpy()
            for c, color in ((s, "#1f77b4"), (t, "#ff7f0e")):
                if y is None or c is None:
                    continue
                sel = d[y == c]
                if sel.numel():
                    ax.hist(sel.numpy(), bins=bins, alpha=0.6, color=color, label=f"class {names[c]} ({sel.numel()})")
            if y is None:
                ax.hist(d.numpy(), bins=bins, color="0.5")
            ax.axvline(0.0, color="k", linewidth=1)
            ax.legend(frameon=False, fontsize=9)
        info = sets.get(name) or {}
        ax.set_title(f"{name}: m1 = {fmt_g(info.get('m1'))}, SVM acc. {pct(info.get('accuracy'))}", fontsize=11)
        ax.set_xlabel("signed distance to the SVM hyperplane")
        if k == 0:
            ax.set_ylabel("inputs")
        ax.grid(axis="y", alpha=0.3)
    return None
