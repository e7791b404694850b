"""write_atlas_report: the atlas report of an atlas folder, section by section -- atlas.md, one
self-contained atlas.html (figures embedded) and figures/heatmap_<metric>.png, one K x K matrix per
entry of HEATMAP_METRICS. A damaged timings.json does not stop it: its section says so, and once
the report is written ReportIncompleteError (a ValueError) names the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepdig_fast.atlas_report import metrics
from deepdig_fast.atlas_report.folder import Pair, matrix, open_atlas, read_manifest, structure
from deepdig_fast.atlas_report.heatmaps import draw_heatmap
from deepdig_fast.atlas_report.metrics import higher_text, metric_value, show_value
from deepdig_fast.atlas_report.text import dataset_text, short
from deepdig_fast.document import Doc, Figures, finish_report, fmt_g, int_text, num, pct, secs
from deepdig_fast.readers import ATLAS_TIMINGS, FolderFiles
from deepdig_fast.report.shared import classifier_training, direction_label, short_sha, training_steps, written_at
from deepdig_fast.rundir import check_same_run, ratio
from deepdig_fast.tables import model_name

_STRATEGY_TEXT = {
    "per-target": "per-target (one generator per target class, shared by all its sources): deepdig_fast's "
    "design, not the paper's — the paper trains two autoencoders per ordered pair",
    "per-target-refine": "per-target-refine (one generator per target class, and per direction a "
    "component-II autoencoder started from the source's generator and trained a few hundred steps on "
    "the direction's adversarial samples): deepdig_fast's design, not the paper's",
    "pairwise": "pairwise (one generator per ordered pair, the paper's design)",
}

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
    root, atlas = open_atlas(atlas_dir, "atlas_dir")
    manifest = read_manifest(root)
    if manifest is not None:
        check_same_run(root, manifest, atlas, "atlas.json")
    parts = structure(atlas, str(root / "atlas.json"))
    classes, class_names, rows = parts
    files = FolderFiles(root, "the same `deepdig atlas` command")
    timings = files.json("timings.json", ATLAS_TIMINGS)
    names = dict(zip(classes, class_names))
    figs = Figures(root)
    doc = Doc()
    title = _header(doc, root, atlas, manifest, parts, files)
    _explanation(doc)
    _summary_section(doc, rows, names)
    _heatmaps_section(doc, figs, rows, classes, class_names)
    _generators_section(doc, atlas, names)
    _directions_section(doc, rows, names, classes)
    _timings_section(doc, timings, files)
    return finish_report(doc, figs, root, "atlas", title, files=files)


# --------------------------------------------------------------------------------------------------
# the header: what the atlas is of
# --------------------------------------------------------------------------------------------------


def _total(rows: Mapping[Pair, Mapping], key: str) -> float | None:
    vals = [v for v in (num(r.get(key)) for r in rows.values()) if v is not None]
    return sum(vals) if vals else None


def _skipped(rows: Mapping[Pair, Mapping]) -> dict[Pair, Any]:
    """{(s, t): why} of the directions DeepDIG skipped, in order."""
    return {p: r["skipped"] for p, r in sorted(rows.items()) if r.get("skipped")}


def _settings(config) -> str:
    if not isinstance(config, Mapping) or not config:
        return "not recorded"
    return "; ".join(f"{k} = {short(v, 50)}" for k, v in config.items())


def _header(doc: Doc, root: Path, atlas: dict, manifest: dict | None, parts, files: FolderFiles) -> str:
    """The title, the provenance line, what could not be read and the table of what the atlas is
    of; returns the title. parts: structure(atlas)."""
    classes, class_names, rows = parts
    K = len(classes)
    n_pairs = K * (K - 1)
    dataset = atlas.get("dataset")
    clf: Any = atlas.get("classifier") if isinstance(atlas.get("classifier"), Mapping) else {}
    ds_name = dataset.get("name", "?") if isinstance(dataset, Mapping) else "?"
    title = f"DeepDIG atlas: {ds_name}, {clf.get('class', '?')}, {K} classes"
    doc.h(1, title)
    doc.p(f"Atlas folder `{root.name}` · report written {written_at()}")
    unusable = files.summary()
    if unusable:
        doc.note(unusable)
    header = [
        ["model", model_name(manifest or {})],
        ["data set", dataset_text(dataset)],
        [
            "classifier",
            f"{clf.get('class', '?')}, weights SHA-256 {short_sha(clf.get('sha256'))}, "
            f"embedding layer `{clf.get('embedding_layer') or 'none'}`",
        ],
        ["classifier training", "{recipe}, regime {regime}; {settings}".format(**classifier_training(manifest))],
        ["strategy", _STRATEGY_TEXT.get(str(atlas.get("strategy")), str(atlas.get("strategy", "?")))],
        ["classes", f"K = {K}: {', '.join(class_names[:30])}{' …' if K > 30 else ''}"],
        [
            "directions",
            f"{len(rows)} of the {n_pairs} ordered pairs; {len(_skipped(rows))} skipped; "
            f"{n_pairs - len(rows)} not in the atlas",
        ],
        ["borderline samples found", int_text(_total(rows, "successes"))],
        ["classifier forwards (borderline search)", int_text(_total(rows, "forwards"))],
        ["settings", _settings(atlas.get("config"))],
    ]
    doc.table(["item", "value"], header)
    return title


def _explanation(doc: Doc) -> None:
    doc.h(2, "What the atlas shows")
    doc.p(
        "For every ordered pair of classes *s* → *t* (a **direction**) DeepDIG turns training inputs of class *s* "
        "into adversarial samples classified *t* (component I), maps those back to inputs classified *s* "
        "(component II) and bisects the segment between each such pair until the classifier cannot tell *s* "
        "from *t*: a **borderline sample** on the decision boundary. The heatmaps put one direction in each cell: row = source class *s*, column = "
        "target class *t*. Hatched grey cells have no value: the diagonal, directions not in the atlas, skipped "
        "directions and undefined numbers (a rate with nothing to divide by)."
    )
    doc.ul(
        [
            f"**{spec.title}** (`{m}`): {spec.meaning}; {higher_text(spec)}."
            for m, spec in metrics.HEATMAP_METRICS.items()
        ]
    )


# --------------------------------------------------------------------------------------------------
# summary and heatmaps
# --------------------------------------------------------------------------------------------------


def _summary_rows(rows: Mapping[Pair, Mapping], names: Mapping[int, str]) -> list[list[str]]:
    out = []
    for metric, spec in metrics.HEATMAP_METRICS.items():
        vals = {p: v for p, v in ((p, metric_value(r, metric)) for p, r in rows.items()) if v is not None}
        if not vals:
            out.append([spec.title, "–", "0", "–", "–", higher_text(spec)])
            continue
        lo, hi = min(vals, key=lambda p: vals[p]), max(vals, key=lambda p: vals[p])
        out.append(
            [
                spec.title,
                show_value(metric, sum(vals.values()) / len(vals)),
                str(len(vals)),
                f"{show_value(metric, vals[lo])} ({direction_label(names, *lo)})",
                f"{show_value(metric, vals[hi])} ({direction_label(names, *hi)})",
                higher_text(spec),
            ]
        )
    return out


def _summary_section(doc: Doc, rows: Mapping[Pair, Mapping], names: Mapping[int, str]) -> None:
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


def _heatmaps_section(
    doc: Doc, figs: Figures, rows: Mapping[Pair, Mapping], classes: list[int], class_names: list[str]
) -> None:
    doc.h(2, "Heatmaps")
    for metric, spec in metrics.HEATMAP_METRICS.items():
        M = matrix(rows, classes, metric)
        rel, why = draw_heatmap(figs, f"heatmap_{metric}.png", M, class_names, metric, False, spec.title)
        doc.fig(
            rel,
            f"{spec.title} per direction (row = source, column = target): {spec.meaning}; {higher_text(spec)}.",
            why,
        )


# --------------------------------------------------------------------------------------------------
# generators and directions
# --------------------------------------------------------------------------------------------------


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
                training_steps(g),
                fmt_g(g.get("final_loss"), 4),
                str(g.get("collapse") or ""),
            ]
        )
        if g.get("collapse"):
            collapsed.append(f"`{g.get('unit', '?')}`: {g['collapse']}")
    doc.table(
        ["unit", "target", "sources", "inputs", "classified as target", "training steps", "final loss", "collapse"],
        rows,
    )
    if collapsed:
        doc.note("Generators flagged as collapsed (see the skipped directions): " + "; ".join(collapsed))


def _direction_rows(rows: Mapping[Pair, Mapping], names: Mapping[int, str]) -> list[list[str]]:
    out = []
    for (s, t), r in sorted(rows.items()):
        osc = show_value("oscillation", r.get("oscillation"))
        if num(r.get("oscillation_ci_low")) is not None:
            osc += f" [{fmt_g(r.get('oscillation_ci_low'))}, {fmt_g(r.get('oscillation_ci_high'))}]"
        fails = " / ".join(
            int_text(r.get(k)) for k in ("third_class", "stalled", "max_steps", "invalid_bracket", "nonfinite")
        )
        out.append(
            [
                direction_label(names, s, t),
                f"{int_text(r.get('inputs_correct'))} / {int_text(r.get('inputs'))}",
                f"{int_text(r.get('adversarial'))} ({pct(r.get('adversarial_rate'))})",
                f"{int_text(r.get('pairs'))} ({pct(r.get('pair_rate'))})",
                int_text(r.get("successes")),
                pct(r.get("success_rate")),
                pct(r.get("yield_rate")),
                show_value("mean_attempts", r.get("mean_attempts")),
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


def _directions_section(doc: Doc, rows: Mapping[Pair, Mapping], names: Mapping[int, str], classes: list[int]) -> None:
    """The table of every direction, the skipped ones and why, and those the atlas does not have."""
    doc.h(2, "Directions")
    doc.table(_DIRECTION_HEADER, _direction_rows(rows, names))
    doc.h(2, "Skipped directions")
    skipped = _skipped(rows)
    if skipped:
        doc.ul([f"**{direction_label(names, s, t)}**: {why}" for (s, t), why in skipped.items()])
    else:
        doc.p("None: DeepDIG ran every direction in the atlas.")
    missing = [direction_label(names, s, t) for s in classes for t in classes if s != t and (s, t) not in rows]
    if missing:
        doc.note(
            f"Directions not in the atlas ({len(missing)}): {', '.join(missing[:40])}"
            f"{' …' if len(missing) > 40 else ''}."
        )


# --------------------------------------------------------------------------------------------------
# timings
# --------------------------------------------------------------------------------------------------


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
