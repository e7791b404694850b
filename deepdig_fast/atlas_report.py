"""Report and compare DeepDIG atlases: the folders holding an atlas.json written by deepdig_fast.atlas.

    paths = write_atlas_report("atlases/mnist-cnn")    # {"atlas.md": Path, "atlas.html": Path, "figures/...": Path}
    result = compare_atlases("atlases/cnn", "atlases/fcn", "atlases/cnn-vs-fcn")
    print(format_compare_table(result))

Reads atlas.json ("kind": "deepdig-atlas", "schema": rundir.ATLAS_SCHEMA: the classes covered, the generators and one
row of numbers per direction s -> t) and, when present, manifest.json and timings.json beside it, all
through readers.read_json against the shapes declared there (readers.ATLAS, MANIFEST,
ATLAS_TIMINGS): a file that is not JSON, nests too deep, holds a number no deepdig file holds or has
a field of the wrong type is refused with one line naming the file and the field (DamagedFileError,
a ValueError). A damaged timings.json does not stop the atlas report: its section says so, and once
the report is written ReportIncompleteError (a ValueError) names the file.

write_atlas_report writes into the atlas folder figures/heatmap_<metric>.png (one K x K matrix per
entry of HEATMAP_METRICS: row = source class, column = target class), atlas.md and atlas.html (one
self-contained file, figures embedded). compare_atlases writes into its out_dir figures/diff_<metric>.png
(B - A), compare.json (every number; NaN as null), compare.md and compare.html. Every file is written
atomically; figures are drawn on matplotlib's Agg canvas without pyplot (no global state changes).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from deepdig_fast.document import Doc, Figures, finish_report, fmt_g, int_text, num, pct, secs
from deepdig_fast.paths import check_paths, refuse_linked_outputs
from deepdig_fast.readers import ATLAS, ATLAS_TIMINGS, MANIFEST, FolderFiles, check, read_json, read_json_if_present
from deepdig_fast.rundir import ATLAS_KIND, ATLAS_ROW_FIELDS, ATLAS_SCHEMA, check_same_run, ratio

__all__ = [
    "DIRECTION_COLUMNS",
    "HEATMAP_METRICS",
    "MetricSpec",
    "atlas_matrix",
    "compare_atlases",
    "format_compare_table",
    "load_atlas",
    "write_atlas_report",
]

COMPARE_KIND = "deepdig-atlas-compare"

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------


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

_DIFF_CMAPS = {"better": "PiYG", "worse": "PiYG_r", "neutral": "RdBu_r"}


def _valid_metrics() -> list[str]:
    return list(HEATMAP_METRICS) + [c for c in DIRECTION_COLUMNS if c not in HEATMAP_METRICS]


def _value(row: Mapping[str, Any], metric: str) -> float | None:
    spec = HEATMAP_METRICS.get(metric)
    if spec is not None and spec.derive is not None:
        return num(spec.derive(row))
    return num(row.get(metric))


def _show(metric: str, v, delta: bool = False) -> str:
    """One value (or a difference, signed) in the metric's format."""
    f = num(v)
    if f is None:
        return "–"
    spec = HEATMAP_METRICS.get(metric)
    fmt = spec.fmt if spec is not None else ".4g"
    return format(f, ("+" if delta else "") + fmt)


# --------------------------------------------------------------------------------------------------
# reading an atlas
# --------------------------------------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _structure(atlas, where: str) -> tuple[list[int], list[str], dict[Pair, dict]]:
    """(classes, class names, {(s, t): direction row}) of an atlas dict, checked against readers.ATLAS
    and for consistency; ValueError naming `where` and the field."""
    if not isinstance(atlas, Mapping):
        raise TypeError(f"{where} must be an atlas dict (the contents of atlas.json), got {type(atlas).__name__}")
    check(ATLAS, atlas, where)
    classes = [int(c) for c in atlas["classes"]]
    if len(set(classes)) != len(classes):
        raise ValueError(f'{where}: "classes" lists a class twice: {classes}')
    names = atlas.get("class_names")
    if names is None:
        names = [str(c) for c in classes]
    elif not (isinstance(names, list) and len(names) == len(classes)):
        raise ValueError(
            f'{where}: "class_names" must be a list of {len(classes)} names (one per class), got {names!r}'
        )
    known = set(classes)
    rows: dict[Pair, dict] = {}
    for k, row in enumerate(atlas["directions"]):
        s: Any = row["source"]
        t: Any = row["target"]
        if not (s in known and t in known and s != t):
            raise ValueError(
                f'{where}: directions[{k}] must have int "source" != "target" among the classes '
                f"{classes}, got source={s!r}, target={t!r}"
            )
        if (int(s), int(t)) in rows:
            raise ValueError(f'{where}: direction {s} -> {t} appears twice in "directions"')
        rows[(int(s), int(t))] = dict(row)
    return classes, [str(n) for n in names], rows


def _open(path, arg: str) -> tuple[Path, dict]:
    """(atlas folder, atlas dict) for an atlas folder or its atlas.json; errors name `arg` and the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{arg} must be a path (str or Path) to an atlas folder or its atlas.json, got {type(path).__name__}"
        )
    p = Path(path)
    file = p / "atlas.json" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"{arg}: {p} does not exist (expected an atlas folder or its atlas.json)")
    if not file.is_file():
        raise FileNotFoundError(f"{arg}: {p} holds no atlas.json (is the atlas finished?)")
    atlas = read_json(file, "the atlas")
    if atlas.get("kind") != ATLAS_KIND:
        raise ValueError(
            f'{arg}: {file} is not a DeepDIG atlas (expected "kind": "{ATLAS_KIND}", got {atlas.get("kind")!r})'
        )
    if atlas.get("schema") not in (1, ATLAS_SCHEMA):
        raise ValueError(
            f'{arg}: {file} has "schema": {atlas.get("schema")!r}; this reader understands schemas 1 and {ATLAS_SCHEMA}'
        )
    _structure(atlas, str(file))
    return file.parent, atlas


def _manifest(root: Path) -> dict | None:
    """root/manifest.json (None when absent), checked like every file an atlas reader reads."""
    return read_json_if_present(root / "manifest.json", spec=MANIFEST)


def load_atlas(path: str | os.PathLike) -> dict:
    """The checked contents of an atlas folder's atlas.json (path: the folder or the file itself).

    Raises FileNotFoundError when the path or its atlas.json is missing, ValueError when the file is not
    JSON, not `"kind": "deepdig-atlas"` with the current schema, or its classes/directions are malformed.
    """
    return _open(path, "path")[1]


def _matrix(rows: Mapping[Pair, Mapping], classes: list[int], metric: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    M = np.full((len(classes), len(classes)), np.nan, dtype=np.float64)
    for (s, t), row in rows.items():
        if s in index and t in index:
            v = _value(row, metric)
            if v is not None:
                M[index[s], index[t]] = v
    return M


def atlas_matrix(atlas: Mapping[str, Any], metric: str) -> tuple[list[int], np.ndarray]:
    """(classes, M): M[i, j] = `metric` of the direction classes[i] -> classes[j] (float64, K x K).

    metric: a key of HEATMAP_METRICS (derived ones included) or a numeric direction column
    (DIRECTION_COLUMNS). NaN on the diagonal, for directions absent from the atlas and for null values.
    """
    if metric not in HEATMAP_METRICS and metric not in DIRECTION_COLUMNS:
        raise ValueError(f"metric must be one of {', '.join(_valid_metrics())}; got {metric!r}")
    classes, _, rows = _structure(atlas, "atlas")
    return classes, _matrix(rows, classes, metric)


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------


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


def _draw_heatmap(
    figs: Figures, name: str, M: np.ndarray, names: list[str], metric: str, diff: bool, title: str
) -> tuple[str | None, str | None]:
    spec = HEATMAP_METRICS[metric]
    if diff:
        m = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 0.0
        m = m or 1.0
        label = "difference" + (" (percentage points)" if spec.is_rate else "")
        return figs.draw(
            name, _fig_matrix, M, names, title, "+" + spec.fmt, _DIFF_CMAPS[spec.higher], (-m, m), label, spec.is_rate
        )
    return figs.draw(name, _fig_matrix, M, names, title, spec.fmt, spec.cmap, spec.vrange, spec.title, spec.is_rate)


# --------------------------------------------------------------------------------------------------
# small text helpers
# --------------------------------------------------------------------------------------------------


def _short(v, limit: int = 60) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _label(names: Mapping[int, str], s: int, t: int) -> str:
    return f"{names.get(s, s)} → {names.get(t, t)}"


def _higher_text(spec: MetricSpec) -> str:
    return {"better": "higher is better", "worse": "lower is better", "neutral": "no preferred direction"}[spec.higher]


def _total(rows: Mapping[Pair, Mapping], key: str) -> float | None:
    vals = [v for v in (num(r.get(key)) for r in rows.values()) if v is not None]
    return sum(vals) if vals else None


def _settings(config) -> str:
    if not isinstance(config, Mapping) or not config:
        return "not recorded"
    return "; ".join(f"{k} = {_short(v, 50)}" for k, v in config.items())


def _dataset_text(dataset) -> str:
    if not isinstance(dataset, Mapping):
        return _short(dataset) if dataset is not None else "?"
    shapes = [f"{k} {_short(v, 30)}" for k, v in dataset.items() if k != "name" and isinstance(v, list)]
    extra = shapes or [f"{k} {_short(v, 30)}" for k, v in dataset.items() if k != "name"]
    extra = extra[:4]
    return str(dataset.get("name", "?")) + (f" ({', '.join(extra)})" if extra else "")


# --------------------------------------------------------------------------------------------------
# the atlas report
# --------------------------------------------------------------------------------------------------

_STRATEGY_TEXT = {
    "per-target": "per-target (one generator per target class, shared by all its sources): deepdig_fast's "
    "design, not the paper's — the paper trains two autoencoders per ordered pair",
    "pairwise": "pairwise (one generator per ordered pair, the paper's design)",
}


def _training(manifest: Mapping | None) -> dict[str, str]:
    """describe_training of the classifier an atlas folder's manifest records."""
    from .training import describe_training

    meta = manifest.get("classifier_meta") if isinstance(manifest, Mapping) else None
    return describe_training(meta if isinstance(meta, Mapping) else None)


def _summary_rows(rows: Mapping[Pair, Mapping], names: Mapping[int, str]) -> list[list[str]]:
    out = []
    for metric, spec in HEATMAP_METRICS.items():
        vals = {p: v for p, v in ((p, _value(r, metric)) for p, r in rows.items()) if v is not None}
        if not vals:
            out.append([spec.title, "–", "0", "–", "–", _higher_text(spec)])
            continue
        lo, hi = min(vals, key=lambda p: vals[p]), max(vals, key=lambda p: vals[p])
        out.append(
            [
                spec.title,
                _show(metric, sum(vals.values()) / len(vals)),
                str(len(vals)),
                f"{_show(metric, vals[lo])} ({_label(names, *lo)})",
                f"{_show(metric, vals[hi])} ({_label(names, *hi)})",
                _higher_text(spec),
            ]
        )
    return out


def _direction_rows(rows: Mapping[Pair, Mapping], names: Mapping[int, str]) -> list[list[str]]:
    out = []
    for (s, t), r in sorted(rows.items()):
        osc = _show("oscillation", r.get("oscillation"))
        if num(r.get("oscillation_ci_low")) is not None:
            osc += f" [{fmt_g(r.get('oscillation_ci_low'))}, {fmt_g(r.get('oscillation_ci_high'))}]"
        fails = " / ".join(
            int_text(r.get(k)) for k in ("third_class", "stalled", "max_steps", "invalid_bracket", "nonfinite")
        )
        out.append(
            [
                _label(names, s, t),
                f"{int_text(r.get('inputs_correct'))} / {int_text(r.get('inputs'))}",
                f"{int_text(r.get('adversarial'))} ({pct(r.get('adversarial_rate'))})",
                f"{int_text(r.get('pairs'))} ({pct(r.get('pair_rate'))})",
                int_text(r.get("successes")),
                pct(r.get("success_rate")),
                pct(r.get("yield_rate")),
                _show("mean_attempts", r.get("mean_attempts")),
                fails,
                osc,
                f"{fmt_g(r.get('m1_borderline'))} / {fmt_g(r.get('m1_train'))}",
                pct(r.get("svm_accuracy_borderline")),
                f"{fmt_g(r.get('margin_l2_mean'))} / {fmt_g(r.get('margin_l2_median'))}",
                int_text(r.get("forwards")),
                f"skipped: {r['skipped']}" if r.get("skipped") else "",
            ]
        )
    return out


_DIRECTION_HEADER = [
    "direction",
    "inputs classified s / used",
    "adversarial (rate)",
    "pairs (rate)",
    "successes",
    "success rate",
    "yield",
    "mean attempts",
    "failures: third class / stalled / step cap / bad bracket / NaN",
    "oscillation [95% CI]",
    "m1 borderline / train",
    "SVM accuracy (borderline)",
    "margin L2 mean / median",
    "forwards",
    "status",
]


def _generators_section(doc: Doc, atlas: Mapping, names: Mapping[int, str]) -> None:
    gens = atlas.get("generators") or []
    doc.h(2, "Generators")
    if not isinstance(gens, list) or not gens:
        doc.note("atlas.json lists no generator.")
        return
    doc.p(
        "Each generator is an autoencoder trained to turn inputs of its source classes into samples the "
        "classifier assigns to its target (DeepDIG's component I). *Classified as target* = how many of its "
        "outputs the classifier assigns to the target."
    )
    rows, collapsed = [], []
    for g in gens:
        if not isinstance(g, Mapping):
            continue
        tgt: Any = g.get("target")
        srcs = g.get("sources")
        src_text = ", ".join(str(names.get(c, c)) for c in srcs) if isinstance(srcs, list) else "?"
        share = ratio(num(g.get("outputs_target")), num(g.get("inputs")))
        rows.append(
            [
                f"`{g.get('unit', '?')}`",
                str(names.get(tgt, tgt)),
                src_text,
                int_text(g.get("inputs")),
                f"{int_text(g.get('outputs_target'))} ({pct(share)})",
                fmt_g(g.get("final_loss"), 4),
                str(g.get("collapse") or ""),
            ]
        )
        if g.get("collapse"):
            collapsed.append(f"`{g.get('unit', '?')}`: {g['collapse']}")
    doc.table(["unit", "target", "sources", "inputs", "classified as target", "final loss", "collapse"], rows)
    if collapsed:
        doc.note("Generators flagged as collapsed (see the skipped directions): " + "; ".join(collapsed))


def _timing_table(doc: Doc, part, wall: float | None, limit: int = 30) -> None:
    items = [(str(k), num(v)) for k, v in part.items()]
    items.sort(key=lambda kv: -(kv[1] or 0.0))
    rows = [[f"`{k}`", secs(v), pct(v / wall) if v is not None and wall else "–"] for k, v in items[:limit]]
    if len(items) > limit:
        rows.append([f"… {len(items) - limit} more", secs(sum(v or 0.0 for _, v in items[limit:])), ""])
    doc.table(["name", "time", "share of wall time"], rows)


def _timings_section(doc: Doc, tm: dict | None, files: FolderFiles) -> float | None:
    """Append the timings of timings.json (when present); returns its wall time."""
    problem = files.problem("timings.json")
    if tm is None and problem is None:
        return None
    doc.h(2, "Timings")
    if tm is None:
        doc.note(f"timings.json could not be read: {problem}.")
        return None
    wall = num(tm.get("wall_seconds"))
    units: Any = tm.get("units") if isinstance(tm.get("units"), Mapping) else {}
    done = [u for u in units.values() if isinstance(u, Mapping)]
    reused = sum(1 for u in done if u.get("reused"))
    doc.p(
        f"Wall time {secs(wall)} on {tm.get('world_size', '?')} process(es); {len(done)} units "
        f"({reused} reused from an earlier run), {secs(sum(num(u.get('seconds')) or 0.0 for u in done))} of unit time."
    )
    fw = tm.get("forwards")
    if isinstance(fw, Mapping) and fw:
        doc.p("Classifier forward passes: " + "; ".join(f"{k} {int_text(v)}" for k, v in fw.items()) + ".")
    for key, what in (("phases", "Phases"), ("stages", "Stages")):
        part = tm.get(key)
        if isinstance(part, Mapping) and part:
            doc.h(3, what)
            _timing_table(doc, part, wall)
    return wall


def write_atlas_report(atlas_dir: str | os.PathLike) -> dict[str, Path]:
    """Write figures/heatmap_<metric>.png, atlas.md and a self-contained atlas.html into an atlas folder.

    Args:
        atlas_dir: an atlas folder (or its atlas.json); timings.json beside it is shown when present.
    Returns:
        {path relative to the atlas folder: absolute Path} of every file written.
    Raises:
        FileNotFoundError / ValueError (DamagedFileError naming the file and the field) when atlas.json
        or manifest.json cannot be used; nothing is written then.
        ReportIncompleteError (a ValueError; `paths`: the files written) when the report was written
        without the timings because timings.json is damaged.
    """
    root, atlas = _open(atlas_dir, "atlas_dir")
    manifest = _manifest(root)
    if manifest is not None:
        check_same_run(root, manifest, atlas, "atlas.json")
    classes, class_names, rows = _structure(atlas, str(root / "atlas.json"))
    files = FolderFiles(root, "the same `deepdig atlas` command")
    timings = files.json("timings.json", ATLAS_TIMINGS)
    names = dict(zip(classes, class_names))
    K = len(classes)
    figs = Figures(root)
    doc = Doc()
    dataset = atlas.get("dataset")
    clf: Any = atlas.get("classifier") if isinstance(atlas.get("classifier"), Mapping) else {}
    skipped = {p: r["skipped"] for p, r in sorted(rows.items()) if r.get("skipped")}
    n_pairs = K * (K - 1)

    ds_name = dataset.get("name", "?") if isinstance(dataset, Mapping) else "?"
    title = f"DeepDIG atlas: {ds_name}, {clf.get('class', '?')}, {K} classes"
    doc.h(1, title)
    doc.p(f"Atlas folder `{root.name}` · report written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    unusable = files.summary()
    if unusable:
        doc.note(unusable)
    header = [
        ["data set", _dataset_text(dataset)],
        [
            "classifier",
            f"{clf.get('class', '?')}, weights SHA-256 {str(clf.get('sha256') or '?')[:12]}…, "
            f"embedding layer `{clf.get('embedding_layer') or 'none'}`",
        ],
        ["classifier training", "{recipe}, regime {regime}; {settings}".format(**_training(manifest))],
        ["strategy", _STRATEGY_TEXT.get(str(atlas.get("strategy")), str(atlas.get("strategy", "?")))],
        ["classes", f"K = {K}: {', '.join(class_names[:30])}{' …' if K > 30 else ''}"],
        [
            "directions",
            f"{len(rows)} of the {n_pairs} ordered pairs; {len(skipped)} skipped; "
            f"{n_pairs - len(rows)} not in the atlas",
        ],
        ["borderline samples found", int_text(_total(rows, "successes"))],
        ["classifier forwards (borderline search)", int_text(_total(rows, "forwards"))],
        ["settings", _settings(atlas.get("config"))],
    ]
    doc.table(["item", "value"], header)

    doc.h(2, "What the atlas shows")
    doc.p(
        "For every ordered pair of classes *s* → *t* (a **direction**) DeepDIG turns training inputs of class *s* "
        "into adversarial samples classified *t* (component I), maps those back to inputs classified *s* "
        "(component II) and bisects the segment between each such pair until the classifier cannot tell *s* "
        "from *t*: a **borderline sample** on the decision boundary. The heatmaps put one direction in each cell: row = source class *s*, column = "
        "target class *t*. Hatched grey cells have no value: the diagonal, directions not in the atlas, skipped "
        "directions and undefined numbers (a rate with nothing to divide by)."
    )
    doc.ul([f"**{spec.title}** (`{m}`): {spec.meaning}; {_higher_text(spec)}." for m, spec in HEATMAP_METRICS.items()])

    doc.h(2, "Summary")
    doc.p("Mean over the directions that have a value, with the lowest and highest direction.")
    doc.table(["metric", "mean", "directions", "lowest", "highest", "reading"], _summary_rows(rows, names))
    doc.table(
        ["total over directions", "value"],
        [
            ["inputs classified as their source", int_text(_total(rows, "inputs_correct"))],
            ["adversarial samples (component I)", int_text(_total(rows, "adversarial"))],
            ["pairs (component II)", int_text(_total(rows, "pairs"))],
            ["borderline samples (successes)", int_text(_total(rows, "successes"))],
            ["classifier forwards of the borderline search", int_text(_total(rows, "forwards"))],
        ],
    )

    doc.h(2, "Heatmaps")
    for metric, spec in HEATMAP_METRICS.items():
        M = _matrix(rows, classes, metric)
        rel, why = _draw_heatmap(figs, f"heatmap_{metric}.png", M, class_names, metric, False, spec.title)
        doc.fig(
            rel,
            f"{spec.title} per direction (row = source, column = target): {spec.meaning}; {_higher_text(spec)}.",
            why,
        )

    _generators_section(doc, atlas, names)

    doc.h(2, "Directions")
    doc.table(_DIRECTION_HEADER, _direction_rows(rows, names))
    doc.h(2, "Skipped directions")
    if skipped:
        doc.ul([f"**{_label(names, s, t)}**: {why}" for (s, t), why in skipped.items()])
    else:
        doc.p("None: DeepDIG ran every direction in the atlas.")
    missing = [_label(names, s, t) for s in classes for t in classes if s != t and (s, t) not in rows]
    if missing:
        doc.note(
            f"Directions not in the atlas ({len(missing)}): {', '.join(missing[:40])}"
            f"{' …' if len(missing) > 40 else ''}."
        )

    _timings_section(doc, timings, files)
    return finish_report(doc, figs, root, "atlas", title, files=files)


# --------------------------------------------------------------------------------------------------
# comparing two atlases
# --------------------------------------------------------------------------------------------------


def _clean(obj):
    """JSON-ready copy: NaN/Inf -> None, numpy scalars -> Python, tuples -> lists, Paths -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _default_labels(ra: Path, rb: Path) -> tuple[str, str]:
    if ra.name != rb.name:
        return ra.name, rb.name
    la, lb = f"{ra.parent.name}/{ra.name}", f"{rb.parent.name}/{rb.name}"
    return (la, lb) if la != lb else ("A", "B")


def _change_size(spec: MetricSpec, a: float, b: float) -> float:
    """|B − A| for rates; |B − A| / max(|A|, |B|) (relative change) for unbounded metrics."""
    d = abs(b - a)
    if spec.is_rate:
        return d
    scale = max(abs(a), abs(b))
    return d / scale if scale > 0 else 0.0


TOP_RULE = (
    "changes ranked by size: |B − A| for rates (0..1), |B − A| / max(|A|, |B|) (relative change) for the other metrics"
)


def _compare_notes(atl: tuple[dict, dict], lab: tuple[str, str], parts) -> list[str]:
    (a, b), (la, lb) = atl, lab
    (ca, na, ra), (cb, nb, rb) = parts
    notes = []
    if a.get("dataset") != b.get("dataset"):
        da: Any = a.get("dataset")
        db: Any = b.get("dataset")
        keys = sorted(set(da) | set(db), key=str) if isinstance(da, Mapping) and isinstance(db, Mapping) else []
        diff = [k for k in keys if da.get(k) != db.get(k)]
        notes.append(
            f"The data sets' fingerprints differ ({', '.join(map(str, diff)) or 'format'}): {la} used "
            f"{_dataset_text(da)}, {lb} used {_dataset_text(db)}. Differences may come from the data."
        )
    if ca != cb:
        notes.append(f"The class sets differ: {la} covers {ca}, {lb} covers {cb}; only the classes of both are shown.")
    renamed = [c for c in set(ca) & set(cb) if dict(zip(ca, na))[c] != dict(zip(cb, nb))[c]]
    if renamed:
        notes.append(f"Classes {sorted(renamed)} have different names in the two atlases; {la}'s names are used.")
    clf_a: Any = a.get("classifier") if isinstance(a.get("classifier"), Mapping) else {}
    clf_b: Any = b.get("classifier") if isinstance(b.get("classifier"), Mapping) else {}
    sha_a, sha_b = clf_a.get("sha256"), clf_b.get("sha256")
    if sha_a and sha_a == sha_b:
        if clf_a.get("structure") != clf_b.get("structure"):
            notes.append(
                f"Both atlases use the same classifier weights (SHA-256 {str(sha_a)[:12]}…) in models of a "
                "different structure or code (an activation, a layer setting or a forward changed)."
            )
        else:
            notes.append(
                f"Both atlases use the same classifier weights (SHA-256 {str(sha_a)[:12]}…) in the same structure: "
                "the differences come from the settings or the randomness of the runs, not from the model."
            )
    if a.get("strategy") != b.get("strategy"):
        notes.append(f"The strategies differ: {la} is {a.get('strategy')!r}, {lb} is {b.get('strategy')!r}.")
    cfa, cfb = a.get("config"), b.get("config")
    if isinstance(cfa, Mapping) and isinstance(cfb, Mapping):
        keys = [k for k in dict.fromkeys([*cfa, *cfb]) if cfa.get(k) != cfb.get(k)]
        if keys:
            notes.append(
                "Settings that differ: "
                + "; ".join(f"{k} ({la}: {_short(cfa.get(k), 30)}, {lb}: {_short(cfb.get(k), 30)})" for k in keys[:8])
                + (f"; and {len(keys) - 8} more" if len(keys) > 8 else "")
                + "."
            )
    only_a, only_b = sorted(set(ra) - set(rb)), sorted(set(rb) - set(ra))
    if only_a or only_b:
        notes.append(f"{len(only_a)} directions are only in {la} and {len(only_b)} only in {lb}; they are left out.")
    return notes


#: what compare_atlases writes into its folder (figures/ holds the difference heatmaps)
COMPARE_FILES = ("compare.json", "compare.md", "compare.html", "figures")


def compare_atlases(
    a: str | os.PathLike,
    b: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    top: int = 15,
    labels: tuple[str, str] | None = None,
) -> dict:
    """Compare two atlases (e.g. two models) on the directions they both cover.

    Writes into out_dir (created): figures/diff_<metric>.png (B − A per direction), compare.json (every
    number below, NaN as null), compare.md and a self-contained compare.html.

    Args:
        a, b: atlas folders (or their atlas.json).
        out_dir: the folder to write into.
        top: how many of the largest changes to list (see TOP_RULE for how they are ranked).
        labels: names of A and B in the texts; default: the folders' names.
    Returns:
        the contents of compare.json plus "paths": {path relative to out_dir: absolute Path}.
    Raises:
        ValueError when the two atlases have no direction in common.
    """
    ra_root, atlas_a = _open(a, "a")
    rb_root, atlas_b = _open(b, "b")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path (str or Path), got {type(out_dir).__name__}")
    written = [Path(out_dir) / f for f in COMPARE_FILES]
    check_paths(reads={"a": ra_root, "b": rb_root}, writes={"out_dir": written})
    refuse_linked_outputs(written)
    if not _is_int(top) or top < 0:
        raise ValueError(f"top must be an int >= 0 (how many changes to list), got {top!r}")
    if labels is None:
        labels = _default_labels(ra_root, rb_root)
    elif not (isinstance(labels, (tuple, list)) and len(labels) == 2 and all(isinstance(x, str) and x for x in labels)):
        raise ValueError(f"labels must be two non-empty strings (names of A and B), got {labels!r}")
    la, lb = labels
    pa = _structure(atlas_a, str(ra_root / "atlas.json"))
    pb = _structure(atlas_b, str(rb_root / "atlas.json"))
    rows_a, rows_b = pa[2], pb[2]
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        raise ValueError(
            f"atlases a ({ra_root}) and b ({rb_root}) have no direction in common "
            f"(a covers {len(rows_a)} directions of classes {pa[0]}, b {len(rows_b)} of classes {pb[0]})"
        )
    classes = [c for c in pa[0] if c in set(pb[0])]
    names = dict(zip(pa[0], pa[1]))
    class_names = [names[c] for c in classes]
    notes = _compare_notes((atlas_a, atlas_b), (la, lb), (pa, pb))
    manifests = {ra_root: _manifest(ra_root), rb_root: _manifest(rb_root)}
    ta, tb = _training(manifests[ra_root]), _training(manifests[rb_root])
    if ta != tb:
        diff = [k for k in ("recipe", "regime", "settings") if ta[k] != tb[k]]
        notes.append(
            "The classifiers were trained differently ("
            + "; ".join(f"{k}: {la} {ta[k]}, {lb} {tb[k]}" for k in diff)
            + "): differences may come from the training as well as from the architecture."
        )
    com_a = {p: rows_a[p] for p in common}
    com_b = {p: rows_b[p] for p in common}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures(out)
    metrics: dict[str, dict] = {}
    changes: list[dict] = []
    per_dir: dict[Pair, dict[str, Any]] = {
        p: {
            "source": p[0],
            "target": p[1],
            "direction": _label(names, *p),
            "skipped_a": rows_a[p].get("skipped"),
            "skipped_b": rows_b[p].get("skipped"),
            "metrics": {},
        }
        for p in common
    }
    diff_figs: list[tuple[str, str | None, str | None]] = []
    for order, (metric, spec) in enumerate(HEATMAP_METRICS.items()):
        MA, MB = _matrix(com_a, classes, metric), _matrix(com_b, classes, metric)
        both = np.isfinite(MA) & np.isfinite(MB)
        n = int(both.sum())
        metrics[metric] = {
            "title": spec.title,
            "higher": spec.higher,
            "n": n,
            "mean_a": float(MA[both].mean()) if n else None,
            "mean_b": float(MB[both].mean()) if n else None,
            "mean_delta": float((MB - MA)[both].mean()) if n else None,
        }
        for p in common:
            va, vb = _value(rows_a[p], metric), _value(rows_b[p], metric)
            delta = vb - va if va is not None and vb is not None else None
            per_dir[p]["metrics"][metric] = {"a": va, "b": vb, "delta": delta}
            if va is not None and vb is not None and delta:
                changes.append(
                    {
                        "source": p[0],
                        "target": p[1],
                        "direction": _label(names, *p),
                        "metric": metric,
                        "a": va,
                        "b": vb,
                        "delta": delta,
                        "size": _change_size(spec, va, vb),
                        "_order": order,
                    }
                )
        rel, why = _draw_heatmap(
            figs, f"diff_{metric}.png", MB - MA, class_names, metric, True, f"{spec.title}: {lb} − {la}"
        )
        diff_figs.append((metric, rel, why))
    changes.sort(key=lambda c: (-c["size"], -abs(c["delta"]), c["_order"], c["source"], c["target"]))
    top_list = [{k: v for k, v in c.items() if k != "_order"} for c in changes[:top]]

    def side(root: Path, atlas: dict, label: str, parts) -> dict:
        clf: Any = atlas.get("classifier") if isinstance(atlas.get("classifier"), Mapping) else {}
        how = _training(manifests[root])
        return {
            "recipe": how["recipe"],
            "regime": how["regime"],
            "training": how["settings"],
            "path": str(root),
            "label": label,
            "dataset": atlas.get("dataset"),
            "strategy": atlas.get("strategy"),
            "classifier_class": clf.get("class"),
            "classifier_sha256": clf.get("sha256"),
            "classes": parts[0],
            "directions": len(parts[2]),
            "skipped": sum(1 for r in parts[2].values() if r.get("skipped")),
        }

    result = _clean(
        {
            "schema": 1,
            "kind": COMPARE_KIND,
            "labels": [la, lb],
            "a": side(ra_root, atlas_a, la, pa),
            "b": side(rb_root, atlas_b, lb, pb),
            "classes": classes,
            "class_names": class_names,
            "common_directions": [list(p) for p in common],
            "only_a": [list(p) for p in sorted(set(rows_a) - set(rows_b))],
            "only_b": [list(p) for p in sorted(set(rows_b) - set(rows_a))],
            "notes": notes,
            "metrics": metrics,
            "top_rule": TOP_RULE,
            "top": top_list,
            "directions": [per_dir[p] for p in common],
        }
    )
    compare_json = (json.dumps(result, indent=2, allow_nan=False) + "\n").encode("utf-8")

    title = f"DeepDIG atlas comparison: {la} vs {lb}"
    doc = Doc()
    doc.h(1, title)
    doc.p(
        f"Δ = {lb} − {la}, over the {len(common)} directions both atlases cover · written "
        f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
    sa, sb = result["a"], result["b"]
    doc.table(
        ["", la, lb],
        [
            ["folder", f"`{ra_root}`", f"`{rb_root}`"],
            ["data set", _dataset_text(sa["dataset"]), _dataset_text(sb["dataset"])],
            [
                "classifier",
                f"{sa['classifier_class']}, SHA-256 {str(sa['classifier_sha256'] or '?')[:12]}…",
                f"{sb['classifier_class']}, SHA-256 {str(sb['classifier_sha256'] or '?')[:12]}…",
            ],
            ["training recipe", str(sa["recipe"]), str(sb["recipe"])],
            ["training regime", str(sa["regime"]), str(sb["regime"])],
            ["training settings", str(sa["training"]), str(sb["training"])],
            ["strategy", str(sa["strategy"]), str(sb["strategy"])],
            ["classes", str(len(sa["classes"])), str(len(sb["classes"]))],
            ["directions (skipped)", f"{sa['directions']} ({sa['skipped']})", f"{sb['directions']} ({sb['skipped']})"],
        ],
    )
    for note in notes:
        doc.note(note)
    doc.h(2, "Means over the common directions")
    doc.p(
        "Each mean is taken over the directions where both atlases have a value (column *n*). "
        "Differences of rates are in percentage points."
    )
    doc.table(
        ["metric", la, lb, "mean Δ", "n", "reading"],
        [
            [
                HEATMAP_METRICS[m].title,
                _show(m, v["mean_a"]),
                _show(m, v["mean_b"]),
                _show(m, v["mean_delta"], delta=True),
                str(v["n"]),
                _higher_text(HEATMAP_METRICS[m]),
            ]
            for m, v in result["metrics"].items()
        ],
    )
    doc.h(2, "Largest changes")
    doc.p(f"The {len(top_list)} largest of {len(changes)} changes; {TOP_RULE}.")
    if top_list:
        doc.table(
            ["direction", "metric", la, lb, "Δ", "size"],
            [
                [
                    c["direction"],
                    HEATMAP_METRICS[c["metric"]].title,
                    _show(c["metric"], c["a"]),
                    _show(c["metric"], c["b"]),
                    _show(c["metric"], c["delta"], delta=True),
                    f"{c['size']:.3g}",
                ]
                for c in result["top"]
            ],
        )
    else:
        doc.note("No metric changed between the two atlases.")
    doc.h(2, "Difference heatmaps")
    doc.p(
        f"Each cell is {lb} − {la} for one direction (row = source, column = target), on a colour scale centred "
        "at 0. For metrics with a preferred direction green means "
        f"{lb} is better; otherwise red means {lb} is higher. Hatched grey: no value in one of the atlases."
    )
    for metric, rel, why in diff_figs:
        spec = HEATMAP_METRICS[metric]
        doc.fig(rel, f"{spec.title}, {lb} − {la}: {spec.meaning}; {_higher_text(spec)}.", why)
    paths = finish_report(doc, figs, out, "compare", title, extra={"compare.json": compare_json})
    return {**result, "paths": paths}


def format_compare_table(result: Mapping[str, Any], n: int = 10) -> str:
    """The n largest changes of a compare_atlases result as a plain-text table for a terminal."""
    if not isinstance(result, Mapping) or not isinstance(result.get("top"), list):
        raise ValueError(
            'result must be the dict returned by compare_atlases (or read from compare.json), with a "top" list'
        )
    if not _is_int(n) or n < 0:
        raise ValueError(f"n must be an int >= 0 (rows to show), got {n!r}")
    la, lb = (list(result.get("labels") or []) + ["A", "B"])[:2]
    head = f"Largest changes, {la} -> {lb} (delta = B - A; {result.get('top_rule', TOP_RULE)})"
    sides: list[Mapping[str, Any]] = [result[k] if isinstance(result.get(k), Mapping) else {} for k in ("a", "b")]
    if any(x.get("recipe", "unrecorded") != "unrecorded" for x in sides):
        head = (
            "\n".join(
                f"{lab}: recipe {x.get('recipe', '?')}, regime {x.get('regime', '?')}"
                for lab, x in zip((la, lb), sides)
            )
            + "\n"
            + head
        )
    top = result["top"][:n]
    if not top:
        return head + "\n  no metric changed\n"
    cols = ["direction", "metric", la, lb, "delta"]
    body = [
        [
            str(c.get("direction", f"{c.get('source')} → {c.get('target')}")),
            str(c.get("metric")),
            _show(c.get("metric"), c.get("a")),
            _show(c.get("metric"), c.get("b")),
            _show(c.get("metric"), c.get("delta"), delta=True),
        ]
        for c in top
    ]
    widths = [max(len(r[i]) for r in [cols, *body]) for i in range(len(cols))]

    def line(r: list[str]) -> str:
        return "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([head, line(cols), line(["-" * w for w in widths]), *map(line, body)]) + "\n"
