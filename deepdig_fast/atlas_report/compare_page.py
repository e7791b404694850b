"""The texts of a comparison of two atlases: the compare.md / compare.html document, section by
section, from the result compare_atlases also writes to compare.json, and the plain-text table of
its largest changes for a terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepdig_fast.atlas_report import metrics
from deepdig_fast.atlas_report.folder import is_int
from deepdig_fast.atlas_report.metrics import higher_text, show_value
from deepdig_fast.atlas_report.text import dataset_text
from deepdig_fast.document import Doc
from deepdig_fast.report.shared import short_sha, written_at

TOP_RULE = (
    "changes ranked by size: |B − A| for rates (0..1), |B − A| / max(|A|, |B|) (relative change) for the other metrics"
)


def compare_document(result: Mapping[str, Any], n_changes: int, diff_figs) -> tuple[Doc, str]:
    """(the document, its title) of a compare_atlases result (before "paths" is added).
    n_changes: how many changes there are in all; diff_figs: [(metric, figure path or None, why not)]."""
    la, lb = result["labels"]
    title = f"DeepDIG atlas comparison: {la} vs {lb}"
    doc = Doc()
    doc.h(1, title)
    doc.p(
        f"Δ = {lb} − {la}, over the {len(result['common_directions'])} directions both atlases cover · written "
        f"{written_at()}"
    )
    _sides_table(doc, result)
    for note in result["notes"]:
        doc.note(note)
    _means_section(doc, result)
    _changes_section(doc, result, n_changes)
    doc.h(2, "Difference heatmaps")
    doc.p(
        f"Each cell is {lb} − {la} for one direction (row = source, column = target), on a colour scale centred "
        "at 0. For metrics with a preferred direction green means "
        f"{lb} is better; otherwise red means {lb} is higher. Hatched grey: no value in one of the atlases."
    )
    for metric, rel, why in diff_figs:
        spec = metrics.HEATMAP_METRICS[metric]
        doc.fig(rel, f"{spec.title}, {lb} − {la}: {spec.meaning}; {higher_text(spec)}.", why)
    return doc, title


def _sides_table(doc: Doc, result: Mapping[str, Any]) -> None:
    """What each atlas is of: folder, data, classifier, its training, strategy, classes, directions."""
    la, lb = result["labels"]
    sa, sb = result["a"], result["b"]
    doc.table(
        ["", la, lb],
        [
            ["folder", f"`{sa['path']}`", f"`{sb['path']}`"],
            ["data set", dataset_text(sa["dataset"]), dataset_text(sb["dataset"])],
            [
                "classifier",
                f"{sa['classifier_class']}, SHA-256 {short_sha(sa['classifier_sha256'])}",
                f"{sb['classifier_class']}, SHA-256 {short_sha(sb['classifier_sha256'])}",
            ],
            ["training recipe", str(sa["recipe"]), str(sb["recipe"])],
            ["training regime", str(sa["regime"]), str(sb["regime"])],
            ["training settings", str(sa["training"]), str(sb["training"])],
            ["strategy", str(sa["strategy"]), str(sb["strategy"])],
            ["classes", str(len(sa["classes"])), str(len(sb["classes"]))],
            ["directions (skipped)", f"{sa['directions']} ({sa['skipped']})", f"{sb['directions']} ({sb['skipped']})"],
        ],
    )


def _means_section(doc: Doc, result: Mapping[str, Any]) -> None:
    la, lb = result["labels"]
    doc.h(2, "Means over the common directions")
    doc.p(
        "Each mean is taken over the directions where both atlases have a value (column *n*). "
        "Differences of rates are in percentage points."
    )
    doc.table(
        ["metric", la, lb, "mean Δ", "n", "reading"],
        [
            [
                metrics.HEATMAP_METRICS[m].title,
                show_value(m, v["mean_a"]),
                show_value(m, v["mean_b"]),
                show_value(m, v["mean_delta"], delta=True),
                str(v["n"]),
                higher_text(metrics.HEATMAP_METRICS[m]),
            ]
            for m, v in result["metrics"].items()
        ],
    )


def _changes_section(doc: Doc, result: Mapping[str, Any], n_changes: int) -> None:
    la, lb = result["labels"]
    top = result["top"]
    doc.h(2, "Largest changes")
    doc.p(f"The {len(top)} largest of {n_changes} changes; {TOP_RULE}.")
    if not top:
        doc.note("No metric changed between the two atlases.")
        return
    doc.table(
        ["direction", "metric", la, lb, "Δ", "size"],
        [
            [
                c["direction"],
                metrics.HEATMAP_METRICS[c["metric"]].title,
                show_value(c["metric"], c["a"]),
                show_value(c["metric"], c["b"]),
                show_value(c["metric"], c["delta"], delta=True),
                f"{c['size']:.3g}",
            ]
            for c in top
        ],
    )


def format_compare_table(result: Mapping[str, Any], n: int = 10) -> str:
    """The n largest changes of a compare_atlases result as a plain-text table for a terminal."""
    if not isinstance(result, Mapping) or not isinstance(result.get("top"), list):
        raise ValueError(
            'result must be the dict returned by compare_atlases (or read from compare.json), with a "top" list'
        )
    if not is_int(n) or n < 0:
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
            show_value(c.get("metric"), c.get("a")),
            show_value(c.get("metric"), c.get("b")),
            show_value(c.get("metric"), c.get("delta"), delta=True),
        ]
        for c in top
    ]
    widths = [max(len(r[i]) for r in [cols, *body]) for i in range(len(cols))]

    def line(r: list[str]) -> str:
        return "  ".join(x.ljust(w) if i < 2 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))).rstrip()

    return "\n".join([head, line(cols), line(["-" * w for w in widths]), *map(line, body)]) + "\n"
