"""One results table for sweeps, atlases and pair runs: a row per direction, with the model, its
covariates and the settings beside every atlas.csv column (schema: docs/SWEEPS.md).

    rows = results_rows("runs/atlas-cnn")               # list of dicts, no pandas needed
    df = load_results(["sweeps/zoo", "runs/pair-3-5"])   # pandas.DataFrame (the [analysis] extra)
    summarize_results(df)                                # per model and settings: mean, interval, ...

Every number comes from the folders' results files (atlas.json, results.json), read through the
same checks as `deepdig table`; only `direction_seconds` and `cell_seconds` are measured wall
times (timings.json) and vary from run to run. Summaries are derived from the rows, never stored
beside them.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from deepdig_fast.columns import (
    ATLAS_ROW_FIELDS,
    BASE_COLUMNS,
    COST_COLUMNS,
    DIRECTION_COLUMNS,
    RESOLVED_COLUMNS,
    SETTINGS_COLUMNS,
    SWEEP_KIND,
)
from deepdig_fast.io import atomic_write_bytes, atomic_write_text
from deepdig_fast.readers import read_json_if_present
from deepdig_fast.tables import TableSource, read_sources

__all__ = [
    "BASE_COLUMNS",
    "COST_COLUMNS",
    "columns_of",
    "load_results",
    "source_rows",
    "results_rows",
    "summarize_results",
    "sweep_rows",
    "write_results",
]


def _obj(d: Any, key: str) -> dict:
    v = d.get(key) if isinstance(d, Mapping) else None
    return dict(v) if isinstance(v, Mapping) else {}


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        return a / b
    return None


def _model_columns(src: TableSource) -> dict:
    m = src.model
    acc = m.get("accuracy")
    return {
        "dataset": m.get("dataset"),
        "arch": None if m.get("arch") in (None, "?") else m.get("arch"),
        "classifier_class": None if m.get("class") in (None, "?") else m.get("class"),
        "weights_sha256": None if m.get("sha256") in (None, "?") else m.get("sha256"),
        "test_accuracy": acc if isinstance(acc, (int, float)) and not isinstance(acc, bool) else None,
        "recipe": m.get("recipe"),
        "regime": m.get("regime"),
    }


def _resolved(results: Mapping, kind: str) -> dict:
    cfg = _obj(results, "config")
    adv = _obj(cfg, "adversarial")
    return {
        "strategy": results.get("strategy") if kind == "atlas" else "pair-run",
        "seed": cfg.get("seed"),
        "steps": adv.get("steps"),
        "ae_lr": adv.get("lr"),  # the rate "auto" resolved to for the cell's autoencoders
        "beta": cfg.get("beta"),
    }


def _timings(root: Path) -> dict:
    try:
        tm = read_json_if_present(root / "timings.json") or {}
    except ValueError:  # a damaged timings file costs the cost columns only
        return {}
    return tm if isinstance(tm, dict) else {}


def _cell_seconds(tm: Mapping) -> float | None:
    phases = _obj(tm, "phases")
    vals = [v for k, v in phases.items() if k in ("generators", "directions") and isinstance(v, (int, float))]
    if vals:
        return float(sum(vals))
    total = tm.get("total_seconds")
    return float(total) if isinstance(total, (int, float)) else None


def _atlas_direction_rows(src: TableSource) -> list[dict]:
    res = src.results
    names = res.get("class_names") or []
    classes = res.get("classes") or []
    name_of = {c: str(n) for c, n in zip(classes, names)}
    tm = _timings(src.path)
    units = _obj(tm, "units")
    out = []
    for r in res["directions"]:
        if not isinstance(r, Mapping):
            continue
        s, t = r.get("source"), r.get("target")
        unit = _obj(units, f"directions/{s}-{t}")
        secs = unit.get("seconds") if not unit.get("reused") else None
        row = {
            "source": s,
            "target": t,
            "source_name": name_of.get(s, str(s)),
            "target_name": name_of.get(t, str(t)),
            **{c: r.get(c) for c in ATLAS_ROW_FIELDS if c not in ("source", "target")},
            "rpbs_success_rate": None,
            "epbs_success_rate": None,
            "direction_seconds": secs if isinstance(secs, (int, float)) else None,
        }
        out.append(row)
    return out


def _run_direction_rows(src: TableSource) -> list[dict]:
    """A pair run's two directions in the atlas's columns (linearity is the pair's, measured once
    for both directions; a run records no margin)."""
    res = src.results
    names = {}
    for c, n in zip(res.get("pair") or [], res.get("class_names") or []):
        names[c] = str(n)
    sets = _obj(_obj(res, "linearity"), "sets")
    out = []
    for d in (res.get("directions") or {}).values():
        if not isinstance(d, Mapping):
            continue
        s, t = d.get("source"), d.get("target")
        c1 = _obj(_obj(d, "component_one"), "train")
        c2 = _obj(d, "component_two")
        methods = _obj(d, "methods")
        dd = _obj(methods, "deepdig")
        counts = _obj(dd, "counts")
        tr = _obj(d, "trajectory")
        ci: list = tr["ci95"] if isinstance(tr.get("ci95"), list) and len(tr["ci95"]) == 2 else [None, None]
        correct = c1.get("inputs_correct")
        row = {
            "source": s,
            "target": t,
            "source_name": names.get(s, str(s)),
            "target_name": names.get(t, str(t)),
            "inputs": c1.get("n_inputs"),
            "inputs_correct": correct,
            "adversarial": c1.get("kept"),
            "adversarial_rate": _ratio(c1.get("kept"), correct),
            "pairs": c2.get("pairs") if c2 else 0,
            "pair_rate": _ratio(c2.get("pairs"), c1.get("kept")) if c2 else None,
            "successes": dd.get("successes"),
            "success_rate": dd.get("success_rate"),
            "yield_rate": _ratio(dd.get("successes"), correct),
            "mean_attempts": dd.get("mean_attempts_success"),
            "mean_attempts_all": dd.get("mean_attempts_all"),
            "third_class": counts.get("THIRD_CLASS"),
            "stalled": counts.get("STALLED"),
            "max_steps": counts.get("MAX_STEPS"),
            "invalid_bracket": counts.get("INVALID_BRACKET"),
            "nonfinite": counts.get("NONFINITE"),
            "forwards": dd.get("forwards"),
            "oscillation": tr.get("oscillation"),
            "oscillation_ci_low": ci[0],
            "oscillation_ci_high": ci[1],
            "trajectory_segments": tr.get("n_segments"),
            "third_class_oscillation": tr.get("third_class_oscillation"),
            "m1_borderline": _obj(sets, "borderline").get("m1"),
            "m1_train": _obj(sets, "train").get("m1"),
            "svm_accuracy_borderline": _obj(sets, "borderline").get("accuracy"),
            "svm_accuracy_train": _obj(sets, "train").get("accuracy"),
            "margin_l2_mean": None,
            "margin_l2_median": None,
            "skipped": dd.get("skipped"),
            "rpbs_success_rate": _obj(methods, "rpbs").get("success_rate"),
            "epbs_success_rate": _obj(methods, "epbs").get("success_rate"),
            "direction_seconds": None,
        }
        out.append(row)
    return out


def source_rows(
    src: TableSource,
    *,
    cell: str | None = None,
    model: str | None = None,
    covariates: Mapping | None = None,
    settings: str = "default",
    settings_values: Mapping | None = None,
    folder: str | None = None,
) -> list[dict]:
    """The rows of one checked folder (tables.read_sources), with the identity, model, covariate and
    settings columns in front."""
    head = {
        "cell": cell if cell is not None else src.path.name,
        "model": model if model is not None else src.model.get("name", "?"),
        "kind": src.kind,
        "folder": folder if folder is not None else str(src.path),
        **_model_columns(src),
        **dict(covariates or {}),
        "settings": settings,
        **{f"setting_{k}": v for k, v in (settings_values or {}).items()},
        **_resolved(src.results, src.kind),
    }
    cell_secs = _cell_seconds(_timings(src.path))
    body = _atlas_direction_rows(src) if src.kind == "atlas" else _run_direction_rows(src)
    return [{**head, **r, "cell_seconds": cell_secs} for r in body]


def results_rows(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[dict]:
    """The rows of atlas folders, run folders and sweep folders (any mix); a sweep contributes the
    rows of its complete cells."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows: list[dict] = []
    plain: list[str | os.PathLike] = []
    for p in paths:
        if is_sweep_dir(Path(p)):
            rows.extend(sweep_rows(Path(p))[0])
        else:
            plain.append(p)
    for src in read_sources(plain, arg="path") if plain else []:
        rows.extend(source_rows(src))
    return rows


def is_sweep_dir(p: Path) -> bool:
    try:
        manifest = read_json_if_present(p / "manifest.json") if p.is_dir() else None
    except ValueError:
        return False
    return isinstance(manifest, dict) and manifest.get("kind") == SWEEP_KIND


def sweep_rows(root: Path) -> tuple[list[dict], list[dict]]:
    """(rows, cells) of a sweep folder, from its cells.json (written when the sweep collects)."""
    cells = read_json_if_present(root / "cells.json")
    if not isinstance(cells, dict) or not isinstance(cells.get("cells"), list):
        raise ValueError(
            f"{root}: a sweep folder without cells.json; run `deepdig sweep SPEC --out {root}` to finish or collect it"
        )
    rows: list[dict] = []
    done = [c for c in cells["cells"] if isinstance(c, dict) and c.get("status") == "complete"]
    folders = [root / "cells" / str(c["cell"]) for c in done]
    for c, src in zip(done, read_sources(folders, arg="cell") if folders else []):
        rows.extend(
            source_rows(
                src,
                folder=f"cells/{c['cell']}",  # relative: the table is the same wherever the sweep lies
                cell=str(c["cell"]),
                model=str(c["model"]),
                covariates=c.get("covariates") or {},
                settings=str(c.get("settings", "default")),
                settings_values=c.get("settings_values") or {},
            )
        )
    return _complete(rows), cells["cells"]


def columns_of(rows: Iterable[Mapping]) -> list[str]:
    """The table's columns in schema order: identity and model, covariates (first appearance),
    settings and setting_*, resolved settings, direction, cost."""
    rows = list(rows)
    fixed = (
        set(BASE_COLUMNS) | set(SETTINGS_COLUMNS) | set(RESOLVED_COLUMNS) | set(DIRECTION_COLUMNS) | set(COST_COLUMNS)
    )
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in fixed))
    covs = [k for k in extra if not k.startswith("setting_")]
    sets = [k for k in extra if k.startswith("setting_")]
    return [*BASE_COLUMNS, *covs, *SETTINGS_COLUMNS, *sets, *RESOLVED_COLUMNS, *DIRECTION_COLUMNS, *COST_COLUMNS]


def _complete(rows: list[dict]) -> list[dict]:
    """Every row with every column (None where a row has no value)."""
    cols = columns_of(rows)
    return [{c: r.get(c) for c in cols} for r in rows]


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return v


def write_results(root: Path, rows: list[dict]) -> dict[str, Path]:
    """results.csv, and results.parquet when pyarrow is installed (the [analysis] extra), each
    written atomically; returns the files written."""
    rows = _complete(rows)
    cols = columns_of(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_value(r[c]) for c in cols])
    paths = {"results.csv": atomic_write_text(root / "results.csv", buf.getvalue())}
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return paths
    table = pa.table({c: _arrow_column([r[c] for r in rows]) for c in cols})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    paths["results.parquet"] = atomic_write_bytes(root / "results.parquet", sink.getvalue().to_pybytes())
    return paths


def _arrow_column(values: list) -> Any:
    """One typed column: numbers stay numbers (ints with a None become floats with NaN-free nulls),
    anything mixed becomes text."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.bool_())
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.array(values, type=pa.int64())
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    return pa.array(
        [None if v is None else (v if isinstance(v, str) else _csv_value(v)) for v in values], type=pa.string()
    )


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "load_results needs pandas: pip install 'deepdig_fast[analysis]' (pandas and pyarrow)"
        ) from None
    return pd


def load_results(paths: str | os.PathLike | Sequence[str | os.PathLike]):
    """A pandas DataFrame with a row per direction of the given sweep, atlas and run folders (any
    mix), in the columns of docs/SWEEPS.md."""
    pd = _pandas()
    rows = _complete(results_rows(paths))
    return pd.DataFrame(rows, columns=columns_of(rows))


def summarize_results(df, by: Sequence[str] = ("model", "settings")):
    """Per model and settings (or `by`): for each metric, `<metric>_n`, `_mean`, `_std`, `_ci_low`,
    `_ci_high` (95% interval of the mean over directions), `_min`, `_max`; the directions, skipped
    ones, cells, their wall time and the covariates (deepdig_fast.sweep.summary.summarize_rows),
    as a DataFrame derived from the rows."""
    from deepdig_fast.sweep.summary import flatten_summary, summarize_rows

    pd = _pandas()
    records = df.astype(object).where(df.notna(), None).to_dict("records")
    return pd.DataFrame([flatten_summary(s) for s in summarize_rows(records, by=tuple(by))])
