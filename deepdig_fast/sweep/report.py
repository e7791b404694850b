"""write_sweep_report: a sweep's comparison report -- SWEEP_DIR/sweep.html (self-contained, figures
embedded), sweep.md and figures/*.png -- from the rows of its results table and its cells (the
schema of docs/SWEEPS.md), section by section:

    header        what the sweep covers: models, cells, settings combinations, directions, reference
    how to read   what a group, a mean and an interval are here; where the numbers come from
    rankings      per metric, the models (x settings) sorted by their mean over their directions
    heatmaps      small multiples of the K x K success-rate and oscillation matrices, one per cell
    covariates    each metric against each numeric covariate that varies over >= 2 models
    differences   per direction, metric(model) - metric(reference), the largest first
    cost          each cell's time, size and status; cells not complete have no rows

Every file is written together by finish_report (io.atomic_write_group), so a failure leaves the
previous report whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepdig_fast.atlas_report.folder import is_int, matrix
from deepdig_fast.document import Doc, Figures, finish_report, int_text, secs
from deepdig_fast.report.shared import direction_label, written_at
from deepdig_fast.sweep.report_figures import MAX_PANELS, Panel, Point, draw_cell_heatmaps, draw_covariate, point
from deepdig_fast.sweep.summary import METRICS, SummaryMetric, metric_spec, row_value, summarize_rows

__all__ = [
    "write_sweep_report",
    "differences",
    "ranked",
    "show",
    "show_delta",
    "TOP_DIFFERENCES",
    "DIFFERENCE_METRICS",
    "CELL_HEATMAP_METRICS",
]

#: how many per-direction differences from the reference each difference table lists
TOP_DIFFERENCES = 15
#: the metrics whose per-direction differences from the reference are listed
DIFFERENCE_METRICS = ("success_rate", "oscillation")
#: the metrics drawn as small-multiple heatmaps, one panel per cell
CELL_HEATMAP_METRICS = ("success_rate", "oscillation")

Row = Mapping[str, Any]


def write_sweep_report(
    sweep_dir: str | os.PathLike,
    rows: Sequence[Row],
    cells: Sequence[Row],
    reference: str | None = None,
    title: str | None = None,
) -> dict[str, Path]:
    """Write sweep.md, a self-contained sweep.html and figures/*.png into `sweep_dir`.

    Args:
        sweep_dir: the sweep folder (created when missing).
        rows: one dict per direction of every complete cell (the columns of results.csv).
        cells: one dict per cell, in spec order (cells.json), complete or not.
        reference: the model the differences are taken from; default the first cell's model.
        title: the page's title; default one naming how many models and settings it compares.
    Returns:
        {path relative to sweep_dir: absolute Path} of every file written.
    Raises:
        ValueError when `reference` names no model of the sweep.
    """
    root = Path(sweep_dir)
    rows, cells = list(rows), list(cells)
    models = _models(rows, cells)
    if reference is None:
        reference = models[0] if models else None
    elif reference not in models:
        raise ValueError(f"reference {reference!r} is not a model of this sweep; its models: {', '.join(models)}")
    settings = _settings_labels(rows, cells)
    title = title or _default_title(models, settings)
    doc, figs = Doc(), Figures(root)
    _header(doc, title, rows, cells, models, settings, reference)
    _how_to_read(doc)
    if not rows:
        doc.h(2, "Results")
        done = sum(1 for c in cells if c.get("status") == "complete")
        doc.note(
            f"There are no results yet: the results table has no rows ({done} of {len(cells)} cells complete). "
            "The sections comparing models appear once a complete cell has rows; the cost table below shows "
            "where each cell stands."
        )
    else:
        summaries = summarize_rows(rows)
        _rankings_section(doc, summaries, len(settings) > 1)
        _heatmaps_section(doc, figs, rows, cells, len(settings) > 1)
        _covariates_section(doc, figs, summaries, len(settings) > 1)
        _differences_section(doc, rows, reference, models)
    _cost_section(doc, rows, cells)
    return finish_report(doc, figs, root, "sweep", title)


# --------------------------------------------------------------------------------------------------
# what the sweep covers
# --------------------------------------------------------------------------------------------------


def _models(rows: Sequence[Row], cells: Sequence[Row]) -> list[str]:
    """The models in spec order (the cells'), then any only the rows name."""
    return list(dict.fromkeys([str(c.get("model")) for c in cells] + [str(r.get("model")) for r in rows]))


def _settings_labels(rows: Sequence[Row], cells: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys([str(c.get("settings")) for c in cells] + [str(r.get("settings")) for r in rows]))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _default_title(models: list[str], settings: list[str]) -> str:
    text = f"DeepDIG sweep: {_plural(len(models), 'model')}"
    if len(settings) > 1:
        text += f" × {_plural(len(settings), 'settings combination')}"
    return text


def _status_counts(cells: Sequence[Row]) -> str:
    counts: dict[str, int] = {}
    for c in cells:
        counts[str(c.get("status") or "missing")] = counts.get(str(c.get("status") or "missing"), 0) + 1
    return ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"


def _header(
    doc: Doc,
    title: str,
    rows: Sequence[Row],
    cells: Sequence[Row],
    models: list[str],
    settings: list[str],
    reference: str | None,
) -> None:
    doc.h(1, title)
    doc.p(f"Report written {written_at()}")
    skipped = sum(1 for r in rows if r.get("skipped"))
    with_rows = {str(r.get("model")) for r in rows}
    waiting = [m for m in models if m not in with_rows]
    model_text = f"{len(models)}: {', '.join(models)}" if models else "0"
    if waiting and rows:
        model_text += f" ({', '.join(waiting)}: no results yet)"
    datasets = list(dict.fromkeys(str(r.get("dataset")) for r in rows if r.get("dataset") is not None))
    doc.table(
        ["item", "value"],
        [
            ["models", model_text],
            ["cells", f"{len(cells)} ({_status_counts(cells)})"],
            ["settings combinations", f"{len(settings)}: {', '.join(f'`{s}`' for s in settings)}" if settings else "0"],
            ["directions (rows)", f"{len(rows)}, of which {skipped} skipped"],
            ["data sets", ", ".join(datasets) or "–"],
            ["reference model", f"{reference} (the differences below are taken from it)" if reference else "–"],
        ],
    )


def _how_to_read(doc: Doc) -> None:
    doc.h(2, "How to read this report")
    doc.p(
        "Each cell of the sweep is one model under one settings combination, and DeepDIG measures each of its "
        "directions (ordered pairs of classes *s* → *t*) on its own. A model's **mean** is taken over its "
        "directions that have a value (*n*; skipped directions and undefined values are left out), and its "
        "**95% interval** is a t-interval of that mean with the directions as the sample: it says how well the "
        "mean over these directions is pinned down, not how much another seed or training run would move it. "
        "Intervals that overlap do not show a difference; for a paired view see the differences from the "
        "reference model, taken direction by direction."
    )
    doc.p(
        "The numbers come from the sweep's results table, `results.csv` (the same rows as `results.parquet`): "
        "one row per direction of every complete cell, copied from the cell's `atlas.csv`. The cells' status, "
        "time and size come from `cells.json`. Times are measured wall time and vary from run to run; every "
        "other number is what the cell computed."
    )
    doc.ul([f"**{m.label}** (`{m.column}`): {m.reading}." for m in METRICS])


# --------------------------------------------------------------------------------------------------
# rankings
# --------------------------------------------------------------------------------------------------


def show(spec: SummaryMetric, v: Any) -> str:
    """One value in the metric's format ("–" when there is none)."""
    f = row_value(v)
    return "–" if f is None else format(f, spec.fmt)


def show_delta(spec: SummaryMetric, v: float) -> str:
    """A difference, signed: percentage points for rates, the metric's format otherwise."""
    if spec.is_rate:
        return f"{100 * v:+.1f} pp"
    return format(v, "+" + spec.fmt)


def _group_label(g: Mapping[str, Any], with_settings: bool) -> str:
    return f"{g['model']} · {g['settings']}" if with_settings else str(g["model"])


def ranked(summaries: Sequence[Mapping[str, Any]], spec: SummaryMetric) -> list[Mapping[str, Any]]:
    """The summaries sorted by their mean of `spec` (highest first when higher is better, lowest
    first otherwise); those without a mean last, in their order."""
    has = [g for g in summaries if g["metrics"][spec.column]["mean"] is not None]
    sign = -1.0 if spec.higher == "better" else 1.0
    has.sort(key=lambda g: sign * g["metrics"][spec.column]["mean"])
    return has + [g for g in summaries if g["metrics"][spec.column]["mean"] is None]


def _rankings_section(doc: Doc, summaries: Sequence[Mapping[str, Any]], with_settings: bool) -> None:
    doc.h(2, "Rankings")
    doc.p(
        "Per metric, each model"
        + (" under each settings combination" if with_settings else "")
        + " with its mean over its directions, the 95% interval of that mean, how many directions have a "
        "value (n) and the lowest and highest direction."
    )
    header = ["#", "model"] + (["settings"] if with_settings else []) + ["mean", "95% interval", "n", "min", "max"]
    for spec in METRICS:
        doc.h(3, spec.label)
        order = "highest first" if spec.higher == "better" else "lowest first"
        doc.p(f"`{spec.column}`, {order}; {spec.reading}.")
        table = []
        for i, g in enumerate(ranked(summaries, spec), 1):
            st = g["metrics"][spec.column]
            ci = f"[{show(spec, st['ci_low'])}, {show(spec, st['ci_high'])}]" if st["ci_low"] is not None else "–"
            table.append(
                [str(i) if st["mean"] is not None else "–", str(g["model"])]
                + ([f"`{g['settings']}`"] if with_settings else [])
                + [show(spec, st["mean"]), ci, str(st["n"]), show(spec, st["min"]), show(spec, st["max"])]
            )
        doc.table(header, table)


# --------------------------------------------------------------------------------------------------
# heatmaps, one panel per cell
# --------------------------------------------------------------------------------------------------


def _cell_classes(cell: Row | None, cell_rows: Sequence[Row]) -> tuple[list[int], list[str]]:
    """The cell's classes and their names (cells.json), or those its rows name."""
    if cell is not None and cell.get("classes"):
        classes = [int(c) for c in cell["classes"]]
        names = [str(n) for n in (cell.get("class_names") or [])]
        return classes, names if len(names) == len(classes) else [str(c) for c in classes]
    seen: dict[int, str] = {}
    for r in _directions(cell_rows):
        seen.setdefault(int(r["source"]), str(r.get("source_name") or r["source"]))
        seen.setdefault(int(r["target"]), str(r.get("target_name") or r["target"]))
    classes = sorted(seen)
    return classes, [seen[c] for c in classes]


def _class_id(v: Any) -> bool:
    """A class id: an int, or a whole float (a table read with pandas turns ints beside gaps into floats)."""
    return is_int(v) or (isinstance(v, float) and v.is_integer())


def _directions(cell_rows: Sequence[Row]) -> list[Row]:
    """The rows that name their direction by two class ids (others cannot be placed in a matrix)."""
    return [r for r in cell_rows if _class_id(r.get("source")) and _class_id(r.get("target"))]


def _by_cell(rows: Sequence[Row], cells: Sequence[Row]) -> list[tuple[Row | None, list[Row]]]:
    """(cell, its rows) of every cell that has rows, in spec order; a cell only the rows name: (None, rows)."""
    grouped: dict[str, list[Row]] = {}
    for r in rows:
        grouped.setdefault(str(r.get("cell")), []).append(r)
    known = {str(c.get("cell")): c for c in cells}
    order = list(dict.fromkeys([str(c.get("cell")) for c in cells] + list(grouped)))
    return [(known.get(cid), grouped[cid]) for cid in order if cid in grouped]


def _panels(rows: Sequence[Row], cells: Sequence[Row], metric: str, with_settings: bool) -> list[Panel]:
    out = []
    for cell, cell_rows in _by_cell(rows, cells):
        classes, names = _cell_classes(cell, cell_rows)
        pairs = {(int(r["source"]), int(r["target"])): r for r in _directions(cell_rows) if not r.get("skipped")}
        first = cell_rows[0]
        title = f"{first.get('model')} · {first.get('settings')}" if with_settings else str(first.get("model"))
        out.append(Panel(title, matrix(pairs, classes, metric), names))
    return out


def _heatmaps_section(doc: Doc, figs: Figures, rows: Sequence[Row], cells: Sequence[Row], with_settings: bool) -> None:
    doc.h(2, "Heatmaps per cell")
    doc.p(
        "One panel per cell: row = source class, column = target class, all panels on one colour scale so that "
        "equal colours mean equal values. Hatched grey cells have no value (the diagonal, skipped directions, "
        "directions the cell does not cover, undefined numbers)."
    )
    for metric in CELL_HEATMAP_METRICS:
        spec = metric_spec(metric)
        panels = _panels(rows, cells, metric, with_settings)
        rel, why = draw_cell_heatmaps(figs, f"cells_{metric}.png", panels, metric)
        doc.fig(rel, f"{spec.label} per direction, one panel per cell; {spec.reading}.", why)
        if len(panels) > MAX_PANELS:
            doc.note(f"Only the first {MAX_PANELS} of {len(panels)} cells are drawn.")


# --------------------------------------------------------------------------------------------------
# metrics against covariates
# --------------------------------------------------------------------------------------------------


def _numeric_covariates(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(covariates with numbers that differ between >= 2 models, the others)."""
    names = list(dict.fromkeys(c for g in summaries for c in g["covariates"]))
    varying, other = [], []
    for c in names:
        per_model: dict[str, float] = {}
        for g in summaries:
            x = row_value(g["covariates"].get(c))
            if x is not None:
                per_model.setdefault(str(g["model"]), x)
        if len(per_model) >= 2 and len(set(per_model.values())) >= 2:
            varying.append(c)
        else:
            other.append(c)
    return varying, other


def _covariates_section(doc: Doc, figs: Figures, summaries: Sequence[Mapping[str, Any]], with_settings: bool) -> None:
    doc.h(2, "Metrics against covariates")
    varying, other = _numeric_covariates(summaries)
    if not varying:
        doc.p(
            "No figure: no numeric covariate (test accuracy or one the spec gives the models) takes different "
            "values over at least two models."
        )
        return
    doc.p(
        "Each dot is a model's mean over its directions"
        + (
            " under one settings combination (colour; shifted a little sideways per combination)"
            if with_settings
            else ""
        )
        + ", its bar the 95% interval of that mean (none with a single direction), against a covariate of the model."
    )
    for c in varying:
        series: dict[str, list[Point]] = {}
        for spec in METRICS:
            pts = []
            for g in summaries:
                x = row_value(g["covariates"].get(c))
                p = point(str(g["model"]), str(g["settings"]), x, g["metrics"][spec.column]) if x is not None else None
                if p is not None:
                    pts.append(p)
            series[spec.column] = pts
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in c)
        rel, why = draw_covariate(figs, f"covariate_{safe}.png", c, series, METRICS)
        doc.fig(rel, f"Each metric against `{c}`: the models' means and 95% intervals.", why)
    if other:
        doc.p("Not drawn (not numeric, or the same for every model): " + ", ".join(f"`{c}`" for c in other) + ".")


# --------------------------------------------------------------------------------------------------
# differences from the reference
# --------------------------------------------------------------------------------------------------


def differences(rows: Sequence[Row], reference: str, metric: str) -> list[dict[str, Any]]:
    """Per direction of each other model, {"model", "settings", "source", "target", "names",
    "reference", "value", "difference"} = metric(model) - metric(reference) for the reference's row of
    the same settings label and direction; largest |difference| first (ties in row order)."""
    ref: dict[tuple, float] = {}
    for r in rows:
        v = row_value(r.get(metric))
        if str(r.get("model")) == reference and v is not None and not r.get("skipped"):
            ref.setdefault((str(r.get("settings")), r.get("source"), r.get("target")), v)
    out: list[dict[str, Any]] = []
    for r in rows:
        if str(r.get("model")) == reference or r.get("skipped"):
            continue
        v = row_value(r.get(metric))
        base = ref.get((str(r.get("settings")), r.get("source"), r.get("target")))
        if v is None or base is None:
            continue
        out.append(
            {
                "model": str(r.get("model")),
                "settings": str(r.get("settings")),
                "source": r.get("source"),
                "target": r.get("target"),
                "names": {r.get("source"): r.get("source_name"), r.get("target"): r.get("target_name")},
                "reference": base,
                "value": v,
                "difference": v - base,
            }
        )
    out.sort(key=lambda d: -abs(d["difference"]))
    return out


def _differences_section(doc: Doc, rows: Sequence[Row], reference: str | None, models: list[str]) -> None:
    doc.h(2, "Largest differences from the reference model")
    if reference is None or len(models) < 2:
        doc.p("No comparison: the sweep has a single model.")
        return
    if not any(str(r.get("model")) == reference for r in rows):
        doc.note(f"The reference model {reference} has no results yet, so no difference can be taken.")
        return
    doc.p(
        f"Per direction, metric(model) − metric({reference}), between cells with the same settings label; the "
        f"{TOP_DIFFERENCES} largest by absolute value. Rates differ in percentage points (pp)."
    )
    for metric in DIFFERENCE_METRICS:
        spec = metric_spec(metric)
        doc.h(3, spec.label)
        diffs = differences(rows, reference, metric)
        if not diffs:
            doc.p("No direction has a value in both the reference and another model.")
            continue
        doc.p(f"{len(diffs)} directions compared; {spec.reading}.")
        doc.table(
            ["model", "settings", "direction", reference, "model's value", "difference"],
            [
                [
                    d["model"],
                    f"`{d['settings']}`",
                    direction_label({k: v for k, v in d["names"].items() if v}, d["source"], d["target"]),
                    show(spec, d["reference"]),
                    show(spec, d["value"]),
                    show_delta(spec, d["difference"]),
                ]
                for d in diffs[:TOP_DIFFERENCES]
            ],
        )


# --------------------------------------------------------------------------------------------------
# cost
# --------------------------------------------------------------------------------------------------


def _mb(v: Any) -> str:
    """A size on disk: MB, or kB below 0.1 MB (where MB would read 0.0)."""
    f = row_value(v)
    if f is None:
        return "–"
    return f"{f / 1e6:,.1f} MB" if f >= 1e5 else f"{f / 1e3:.1f} kB"


def _sum(values) -> float | None:
    known = [f for f in (row_value(v) for v in values) if f is not None]
    return sum(known) if known else None


def _cost_section(doc: Doc, rows: Sequence[Row], cells: Sequence[Row]) -> None:
    doc.h(2, "Cost of each cell")
    if not cells:
        doc.p("cells.json lists no cell.")
        return
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("cell"))] = counts.get(str(r.get("cell")), 0) + 1
    table = [
        [
            f"`{c.get('cell')}`",
            str(c.get("model")),
            f"`{c.get('settings')}`",
            str(c.get("status") or "missing"),
            secs(c.get("seconds")),
            secs(c.get("generator_seconds")),
            secs(c.get("direction_seconds")),
            _mb(c.get("size_bytes")),
            int_text(counts.get(str(c.get("cell")), 0)),
        ]
        for c in cells
    ]
    table.append(
        [
            "**total**",
            "",
            "",
            _status_counts(cells),
            secs(_sum(c.get("seconds") for c in cells)),
            secs(_sum(c.get("generator_seconds") for c in cells)),
            secs(_sum(c.get("direction_seconds") for c in cells)),
            _mb(_sum(c.get("size_bytes") for c in cells)),
            int_text(len(rows)),
        ]
    )
    doc.p("Wall time of each cell (generator and direction phases), its folder's size on disk and its rows.")
    doc.table(
        ["cell", "model", "settings", "status", "wall time", "generators", "directions", "size on disk", "rows"],
        table,
    )
    unfinished = [c for c in cells if c.get("status") != "complete"]
    if unfinished:
        doc.note(
            f"{_plural(len(unfinished), 'cell')} not complete, so not in the results table: "
            + ", ".join(f"`{c.get('cell')}` ({c.get('status') or 'missing'})" for c in unfinished)
            + "."
        )
