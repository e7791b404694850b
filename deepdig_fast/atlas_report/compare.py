"""compare_atlases: two atlases (e.g. two models) on the directions they both cover. Writes into its
out_dir figures/diff_<metric>.png (B - A), compare.json (every number; NaN as null), compare.md and
compare.html, all as one group (document.finish_report)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepdig_fast.atlas_report import metrics
from deepdig_fast.atlas_report.compare_page import TOP_RULE, compare_document
from deepdig_fast.atlas_report.folder import Pair, is_int, matrix, open_atlas, read_manifest, structure
from deepdig_fast.atlas_report.heatmaps import draw_heatmap
from deepdig_fast.atlas_report.metrics import MetricSpec, metric_value
from deepdig_fast.atlas_report.text import dataset_text, short
from deepdig_fast.document import Figures, finish_report
from deepdig_fast.paths import check_paths, refuse_linked_outputs
from deepdig_fast.report.shared import classifier_training, direction_label, short_sha

COMPARE_KIND = "deepdig-atlas-compare"

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
    ra_root, atlas_a = open_atlas(a, "a")
    rb_root, atlas_b = open_atlas(b, "b")
    la, lb = _check_arguments(ra_root, rb_root, out_dir, top, labels)
    pa = structure(atlas_a, str(ra_root / "atlas.json"))
    pb = structure(atlas_b, str(rb_root / "atlas.json"))
    common = _common_directions(pa, pb, ra_root, rb_root)
    classes = [c for c in pa[0] if c in set(pb[0])]
    names = dict(zip(pa[0], pa[1]))
    notes = _compare_notes((atlas_a, atlas_b), (la, lb), (pa, pb))
    ta, tb = classifier_training(read_manifest(ra_root)), classifier_training(read_manifest(rb_root))
    if ta != tb:
        diff = [k for k in ("recipe", "regime", "settings") if ta[k] != tb[k]]
        notes.append(
            "The classifiers were trained differently ("
            + "; ".join(f"{k}: {la} {ta[k]}, {lb} {tb[k]}" for k in diff)
            + "): differences may come from the training as well as from the architecture."
        )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures(out)
    summaries, changes, per_dir, diff_figs = _compare_metrics(figs, (pa[2], pb[2]), common, classes, names, (la, lb))
    changes.sort(key=lambda c: (-c["size"], -abs(c["delta"]), c["_order"], c["source"], c["target"]))
    result = _clean(
        {
            "schema": 1,
            "kind": COMPARE_KIND,
            "labels": [la, lb],
            "a": _side(ra_root, atlas_a, la, pa, ta),
            "b": _side(rb_root, atlas_b, lb, pb, tb),
            "classes": classes,
            "class_names": [names[c] for c in classes],
            "common_directions": [list(p) for p in common],
            "only_a": [list(p) for p in sorted(set(pa[2]) - set(pb[2]))],
            "only_b": [list(p) for p in sorted(set(pb[2]) - set(pa[2]))],
            "notes": notes,
            "metrics": summaries,
            "top_rule": TOP_RULE,
            "top": [{k: v for k, v in c.items() if k != "_order"} for c in changes[:top]],
            "directions": [per_dir[p] for p in common],
        }
    )
    compare_json = (json.dumps(result, indent=2, allow_nan=False) + "\n").encode("utf-8")
    doc, title = compare_document(result, len(changes), diff_figs)
    paths = finish_report(doc, figs, out, "compare", title, extra={"compare.json": compare_json})
    return {**result, "paths": paths}


# --------------------------------------------------------------------------------------------------
# the arguments and the directions both atlases cover
# --------------------------------------------------------------------------------------------------


def _default_labels(ra: Path, rb: Path) -> tuple[str, str]:
    if ra.name != rb.name:
        return ra.name, rb.name
    la, lb = f"{ra.parent.name}/{ra.name}", f"{rb.parent.name}/{rb.name}"
    return (la, lb) if la != lb else ("A", "B")


def _check_arguments(ra_root: Path, rb_root: Path, out_dir, top, labels) -> tuple[str, str]:
    """Refuse an out_dir that is not a path, overlaps the atlases or holds links where the files go,
    a bad `top` or bad labels; returns the labels of A and B."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a path (str or Path), got {type(out_dir).__name__}")
    written = [Path(out_dir) / f for f in COMPARE_FILES]
    check_paths(reads={"a": ra_root, "b": rb_root}, writes={"out_dir": written})
    refuse_linked_outputs(written)
    if not is_int(top) or top < 0:
        raise ValueError(f"top must be an int >= 0 (how many changes to list), got {top!r}")
    if labels is None:
        return _default_labels(ra_root, rb_root)
    if not (isinstance(labels, (tuple, list)) and len(labels) == 2 and all(isinstance(x, str) and x for x in labels)):
        raise ValueError(f"labels must be two non-empty strings (names of A and B), got {labels!r}")
    return labels[0], labels[1]


def _common_directions(pa, pb, ra_root: Path, rb_root: Path) -> list[Pair]:
    """The directions of both atlases, in order; ValueError when there is none. pa, pb: structure(atlas)."""
    common = sorted(set(pa[2]) & set(pb[2]))
    if not common:
        raise ValueError(
            f"atlases a ({ra_root}) and b ({rb_root}) have no direction in common "
            f"(a covers {len(pa[2])} directions of classes {pa[0]}, b {len(pb[2])} of classes {pb[0]})"
        )
    return common


def _compare_notes(atl: tuple[dict, dict], lab: tuple[str, str], parts) -> list[str]:
    """What differs between the two atlases besides the numbers: data, classes, weights, settings."""
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
            f"{dataset_text(da)}, {lb} used {dataset_text(db)}. Differences may come from the data."
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
                f"Both atlases use the same classifier weights (SHA-256 {short_sha(sha_a)}) in models of a "
                "different structure or code (an activation, a layer setting or a forward changed)."
            )
        else:
            notes.append(
                f"Both atlases use the same classifier weights (SHA-256 {short_sha(sha_a)}) in the same structure: "
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
                + "; ".join(f"{k} ({la}: {short(cfa.get(k), 30)}, {lb}: {short(cfb.get(k), 30)})" for k in keys[:8])
                + (f"; and {len(keys) - 8} more" if len(keys) > 8 else "")
                + "."
            )
    only_a, only_b = sorted(set(ra) - set(rb)), sorted(set(rb) - set(ra))
    if only_a or only_b:
        notes.append(f"{len(only_a)} directions are only in {la} and {len(only_b)} only in {lb}; they are left out.")
    return notes


# --------------------------------------------------------------------------------------------------
# the numbers
# --------------------------------------------------------------------------------------------------


def _change_size(spec: MetricSpec, a: float, b: float) -> float:
    """|B − A| for rates; |B − A| / max(|A|, |B|) (relative change) for unbounded metrics."""
    d = abs(b - a)
    if spec.is_rate:
        return d
    scale = max(abs(a), abs(b))
    return d / scale if scale > 0 else 0.0


def _compare_metrics(
    figs: Figures,
    rows: tuple[dict, dict],
    common: list[Pair],
    classes: list[int],
    names: dict[int, str],
    labels: tuple[str, str],
) -> tuple[dict[str, dict], list[dict], dict[Pair, dict[str, Any]], list[tuple[str, str | None, str | None]]]:
    """Per metric its means over the common directions, every direction's change and the difference
    heatmap: (summaries by metric, changes (unsorted, "_order" = the metric's place), per-direction
    entries by (s, t), [(metric, figure path or None, why not)]). rows: the two atlases' direction rows."""
    rows_a, rows_b = rows
    la, lb = labels
    class_names = [names[c] for c in classes]
    com_a = {p: rows_a[p] for p in common}
    com_b = {p: rows_b[p] for p in common}
    summaries: dict[str, dict] = {}
    changes: list[dict] = []
    per_dir: dict[Pair, dict[str, Any]] = {
        p: {
            "source": p[0],
            "target": p[1],
            "direction": direction_label(names, *p),
            "skipped_a": rows_a[p].get("skipped"),
            "skipped_b": rows_b[p].get("skipped"),
            "metrics": {},
        }
        for p in common
    }
    diff_figs: list[tuple[str, str | None, str | None]] = []
    for order, (metric, spec) in enumerate(metrics.HEATMAP_METRICS.items()):
        MA, MB = matrix(com_a, classes, metric), matrix(com_b, classes, metric)
        both = np.isfinite(MA) & np.isfinite(MB)
        n = int(both.sum())
        summaries[metric] = {
            "title": spec.title,
            "higher": spec.higher,
            "n": n,
            "mean_a": float(MA[both].mean()) if n else None,
            "mean_b": float(MB[both].mean()) if n else None,
            "mean_delta": float((MB - MA)[both].mean()) if n else None,
        }
        for p in common:
            va, vb = metric_value(rows_a[p], metric), metric_value(rows_b[p], metric)
            delta = vb - va if va is not None and vb is not None else None
            per_dir[p]["metrics"][metric] = {"a": va, "b": vb, "delta": delta}
            if va is not None and vb is not None and delta:
                changes.append(
                    {
                        "source": p[0],
                        "target": p[1],
                        "direction": direction_label(names, *p),
                        "metric": metric,
                        "a": va,
                        "b": vb,
                        "delta": delta,
                        "size": _change_size(spec, va, vb),
                        "_order": order,
                    }
                )
        rel, why = draw_heatmap(
            figs, f"diff_{metric}.png", MB - MA, class_names, metric, True, f"{spec.title}: {lb} − {la}"
        )
        diff_figs.append((metric, rel, why))
    return summaries, changes, per_dir, diff_figs


def _side(root: Path, atlas: dict, label: str, parts, how: dict[str, str]) -> dict:
    """What compare.json records of one atlas. parts: structure(atlas); how: classifier_training."""
    clf: Any = atlas.get("classifier") if isinstance(atlas.get("classifier"), Mapping) else {}
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
