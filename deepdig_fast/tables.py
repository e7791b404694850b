"""The paper's tables from finished run folders and atlases (`deepdig table DIR... --out OUT`).

Three tables, one row per model and class pair (and direction where the quantity has one):

- **borderline search**: success rate and mean attempts (over successes) of DeepDIG, RPBS and EPBS
  (the paper's Tables 2–3);
- **trajectory oscillation** of the DeepDIG borderline samples, per direction (§4.1);
- **embedding linearity**: m1 and the linear SVM's accuracy on the train, test and borderline sets
  (§4.2).

A *model* is one classifier (its weights' SHA-256) on one data set; every table states its
architecture, training recipe and regime (from the checkpoint metadata the run recorded). The
DeepDIG settings of a row (autoencoder training, β, step cap, search method, trajectory design,
atlas strategy) are named S1, S2, ... with a legend; when the rows of a table do not all share one,
the table is flagged. Atlases (`deepdig atlas`) run no baselines and fit no train/test SVM per pair
in the paper's way, so their cells for those columns read "n/a".

Written into OUT: tables.md, tables.tex (booktabs), borderline.csv, trajectory.csv, linearity.csv.
Every input is read and checked before anything is written; nothing is written into an input.

Inputs that cannot be used as given (not a folder, no results, the same folder twice, another kind
of folder) raise TableInputError. A results.json, atlas.json or manifest.json that is there but
damaged -- not JSON, nested too deep, holding a number no deepdig file holds, a field of the wrong
type -- raises readers.DamagedFileError (also a ValueError), one line naming the file and the
field: every file is read by readers.read_json against the shapes declared there.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdig_fast.columns import SWEEP_KIND
from deepdig_fast.document import num
from deepdig_fast.paths import PathConflictError, check_paths
from deepdig_fast.readers import ATLAS, MANIFEST, RUN_RESULTS, check, read_json, read_json_if_present
from deepdig_fast.rundir import ATLAS_KIND, RUN_KIND, check_same_run
from deepdig_fast.training import describe_training

__all__ = ["TableInputError", "TableSource", "read_sources", "build_tables", "write_tables"]


class TableInputError(ValueError):
    """An input folder (or the output folder) that cannot be used; the message names it."""


@dataclass
class TableSource:
    """One input folder: a run (results.json) or an atlas (atlas.json), with its manifest."""

    path: Path
    kind: str  # "run" or "atlas"
    results: dict
    manifest: dict
    model: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def _obj(d: Any, key: str) -> dict:
    """d[key] when d is a mapping and d[key] a mapping, else an empty dict."""
    v = d.get(key) if isinstance(d, Mapping) else None
    return dict(v) if isinstance(v, Mapping) else {}


def _model_of(results: Mapping, manifest: Mapping, kind: str) -> dict:
    clf = _obj(manifest, "classifier")
    if kind == "atlas" and isinstance(results.get("classifier"), Mapping):
        clf = {**clf, **results["classifier"]}
    meta = _obj(manifest, "classifier_meta")
    data = _obj(manifest, "data")
    dataset = manifest.get("dataset") or data.get("name")
    if dataset is None and kind == "atlas" and isinstance(results.get("dataset"), Mapping):
        dataset = results["dataset"].get("name")
    how = describe_training(meta)
    sha = str(clf.get("sha256") or "?")
    return {
        "name": model_name(manifest),
        "dataset": str(dataset or "?"),
        "class": str(clf.get("class") or "?"),
        "arch": str(meta.get("arch") or "?"),
        "sha256": sha,
        "accuracy": meta.get("accuracy"),
        "recipe": how["recipe"],
        "regime": how["regime"],
        "training": how["settings"],
    }


def model_name(manifest: Mapping) -> str:
    """The model's name as the user gave it (`--name`, a sweep's model name); else its --model spec
    and weights file, or its checkpoint's file name; "?" for a folder that records none."""
    if isinstance(manifest.get("name"), str) and manifest["name"]:
        return manifest["name"]
    meta = _obj(manifest, "classifier_meta")
    if isinstance(meta.get("model"), str):
        weights = meta.get("weights")
        return meta["model"] + (f" ({Path(weights).name})" if isinstance(weights, str) and weights else "")
    spec = _obj(manifest, "model_info").get("spec")
    if isinstance(spec, str) and spec:
        return Path(spec).stem
    return "?"


def _settings_of(results: Mapping, kind: str) -> dict:
    """The settings a row's numbers depend on, beyond the model and the pair (the seed excluded)."""
    cfg = dict(results.get("config") or {})
    cfg.pop("seed", None)
    if isinstance(cfg.get("adversarial"), Mapping):
        adv = dict(cfg["adversarial"])
        for k in ("seed", "log_every", "infer_batch_size"):  # no effect on the numbers' meaning
            adv.pop(k, None)
        cfg["adversarial"] = adv
    for k in ("engine_batch_size", "threads"):
        cfg.pop(k, None)
    if kind == "atlas":
        cfg["strategy"] = results.get("strategy")
    return cfg


def _expand_sweeps(paths: Sequence[str | os.PathLike]) -> list[str | os.PathLike]:
    """Each sweep folder (`deepdig sweep`) stands for its finished cells, in folder order."""
    out: list[str | os.PathLike] = []
    for given in paths:
        p = Path(given)
        try:
            manifest = read_json_if_present(p / "manifest.json") if p.is_dir() else None
        except ValueError:
            manifest = None
        if isinstance(manifest, Mapping) and manifest.get("kind") == SWEEP_KIND:
            cells = sorted(
                c for c in (p / "cells").glob("*") if (c / "atlas.json").is_file() or (c / "results.json").is_file()
            )
            out.extend(cells)
        else:
            out.append(given)
    return out


def read_sources(paths: Sequence[str | os.PathLike], arg: str = "DIR") -> list[TableSource]:
    """Read and check every input folder; TableInputError naming the first bad one, DamagedFileError
    naming the first damaged file."""
    if not paths:
        raise TableInputError(f"{arg}: give at least one run folder or atlas folder")
    seen: dict[Path, str] = {}
    out = []
    for given in _expand_sweeps(paths):
        where = f"{arg} {given}"
        p = Path(given)
        if p.is_file() and p.name in ("results.json", "atlas.json"):
            p = p.parent
        if not p.is_dir():
            raise TableInputError(f"{where}: not a folder; expected a `deepdig run` or `deepdig atlas` folder")
        key = p.resolve()
        if key in seen:
            raise TableInputError(f"{where}: the same folder as {seen[key]}; give each folder once")
        seen[key] = str(given)
        if (p / "results.json").is_file():
            kind, name, want, spec = "run", "results.json", RUN_KIND, RUN_RESULTS
        elif (p / "atlas.json").is_file():
            kind, name, want, spec = "atlas", "atlas.json", ATLAS_KIND, ATLAS
        else:
            raise TableInputError(
                f"{where}: neither results.json (a finished `deepdig run`) nor atlas.json (a finished `deepdig atlas`) is there"
            )
        results = read_json(p / name, "")
        if results.get("kind") not in (None, want):  # another kind of folder: the wrong argument, not damage
            raise TableInputError(f"{where}: {name} is of kind {results.get('kind')!r}, expected {want!r}")
        check(spec, results, p / name)
        manifest = read_json_if_present(p / "manifest.json", spec=MANIFEST) or {}
        try:
            check_same_run(p, manifest, results, name)
        except ValueError as exc:
            raise TableInputError(f"{where}: {exc}") from None
        src = TableSource(p, kind, results, manifest)
        src.model = _model_of(results, manifest, kind)
        src.settings = _settings_of(results, kind)
        out.append(src)
    return out


# --------------------------------------------------------------------------------------------------
# building the rows
# --------------------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return num(v)  # None for NaN, ±inf and ints beyond a float


NA = "n/a"  # a column this kind of input does not measure

BORDERLINE_COLUMNS = [
    "model",
    "pair",
    "direction",
    "settings",
    "deepdig_pairs",
    "deepdig_success",
    "deepdig_attempts",
    "rpbs_pairs",
    "rpbs_success",
    "rpbs_attempts",
    "epbs_pairs",
    "epbs_success",
    "epbs_attempts",
    "source_folder",
]
TRAJECTORY_COLUMNS = [
    "model",
    "pair",
    "direction",
    "settings",
    "borderline_samples",
    "oscillation",
    "ci95_low",
    "ci95_high",
    "design",
    "source_folder",
]
LINEARITY_COLUMNS = [
    "model",
    "pair",
    "settings",
    "m1_train",
    "m1_test",
    "m1_borderline",
    "svm_accuracy_train",
    "svm_accuracy_test",
    "svm_accuracy_borderline",
    "source_folder",
]


def _design(tr: Mapping) -> str:
    if tr.get("mode") == "exact":
        return f"exact (K {tr.get('K')}, T {tr.get('T')})"
    return f"estimate ({tr.get('n_segments')} segments, T {tr.get('T')})"


def _run_rows(src: TableSource, model: str, settings: str) -> tuple[list[dict], list[dict], list[dict]]:
    res = src.results
    pair = "–".join(str(c) for c in (res.get("pair") or ["?", "?"]))
    b_rows, t_rows = [], []
    for key, d in res["directions"].items():
        if not isinstance(d, Mapping):
            continue
        methods = d.get("methods") or {}
        row: dict[str, Any] = {"model": model, "pair": pair, "direction": key.replace("->", "→"), "settings": settings}
        for m in ("deepdig", "rpbs", "epbs"):
            info = _obj(methods, m)
            if not info:
                row.update({f"{m}_pairs": None, f"{m}_success": None, f"{m}_attempts": None})
                continue
            row[f"{m}_pairs"] = info.get("pairs")
            row[f"{m}_success"] = _num(info.get("success_rate"))
            row[f"{m}_attempts"] = _num(info.get("mean_attempts_success"))
        row["source_folder"] = str(src.path)
        b_rows.append(row)
        tr = _obj(d, "trajectory")
        ci = tr["ci95"] if isinstance(tr.get("ci95"), list) and len(tr["ci95"]) == 2 else [None, None]
        t_rows.append(
            {
                "model": model,
                "pair": pair,
                "direction": key.replace("->", "→"),
                "settings": settings,
                "borderline_samples": tr.get("n_samples"),
                "oscillation": _num(tr.get("oscillation")),
                "ci95_low": _num(ci[0]),
                "ci95_high": _num(ci[1]),
                "design": _design(tr) if tr.get("mode") else (tr.get("skipped") or "not measured"),
                "source_folder": str(src.path),
            }
        )
    lin = _obj(res, "linearity")
    sets = _obj(lin, "sets")
    l_row: dict[str, Any] = {"model": model, "pair": pair, "settings": settings}
    for s in ("train", "test", "borderline"):
        info = _obj(sets, s)
        l_row[f"m1_{s}"] = _num(info.get("m1"))
        l_row[f"svm_accuracy_{s}"] = _num(info.get("accuracy"))
    l_row["source_folder"] = str(src.path)
    return b_rows, t_rows, [l_row]


def _atlas_rows(src: TableSource, model: str, settings: str) -> tuple[list[dict], list[dict], list[dict]]:
    b_rows, t_rows, l_rows = [], [], []
    for r in src.results["directions"]:
        if not isinstance(r, Mapping):
            continue
        s, t = r.get("source"), r.get("target")
        if not (isinstance(s, int) and isinstance(t, int)):
            continue
        pair, direction = f"{min(s, t)}–{max(s, t)}", f"{s}→{t}"
        base = {"model": model, "pair": pair, "direction": direction, "settings": settings}
        b_rows.append(
            {
                **base,
                "deepdig_pairs": r.get("pairs"),
                "deepdig_success": _num(r.get("success_rate")),
                "deepdig_attempts": _num(r.get("mean_attempts")),
                **{f"{m}_{c}": NA for m in ("rpbs", "epbs") for c in ("pairs", "success", "attempts")},
                "source_folder": str(src.path),
            }
        )
        t_rows.append(
            {
                **base,
                "borderline_samples": r.get("successes"),
                "oscillation": _num(r.get("oscillation")),
                "ci95_low": _num(r.get("oscillation_ci_low")),
                "ci95_high": _num(r.get("oscillation_ci_high")),
                "design": f"atlas estimate ({r.get('trajectory_segments')} segments)"
                if r.get("trajectory_segments")
                else "not measured",
                "source_folder": str(src.path),
            }
        )
        l_rows.append(
            {
                "model": model,
                "pair": f"{direction} (direction)",
                "settings": settings,
                "m1_train": _num(r.get("m1_train")),
                "m1_test": NA,
                "m1_borderline": _num(r.get("m1_borderline")),
                "svm_accuracy_train": _num(r.get("svm_accuracy_train")),
                "svm_accuracy_test": NA,
                "svm_accuracy_borderline": _num(r.get("svm_accuracy_borderline")),
                "source_folder": str(src.path),
            }
        )
    return b_rows, t_rows, l_rows


def _model_text(m: Mapping) -> str:
    acc = _num(m.get("accuracy"))
    trained = (
        "training not recorded in the checkpoint"
        if m["recipe"] == "unrecorded"
        else f"recipe {m['recipe']} · regime {m['regime']} · {m['training']}"
    )
    return (
        f"{m['name']}: {m['dataset']} · {m['class']} (arch {m['arch']}) · {trained}"
        + (f" · test accuracy {100 * acc:.2f}%" if acc is not None else "")
        + f" · weights {m['sha256'][:12]}"
    )


def _settings_text(cfg: Mapping) -> str:
    adv = _obj(cfg, "adversarial")
    parts = []
    if cfg.get("strategy"):
        parts.append(f"atlas strategy {cfg['strategy']}")
    if adv:
        parts.append(
            f"autoencoders {adv.get('steps')} steps, α {adv.get('alpha')}, Adam lr {adv.get('lr')}, "
            f"StepLR({adv.get('step_size')}, {adv.get('gamma')}), batch {adv.get('batch_size')}"
        )
    parts.append(f"search {cfg.get('method')}, β {cfg.get('beta')}, at most {cfg.get('max_steps')} attempts")
    if "trajectory_segments" in cfg:
        seg = cfg.get("trajectory_segments")
        parts.append(
            f"trajectory K {cfg.get('trajectory_K', 50)}, T {cfg.get('trajectory_T', 50)}, "
            + ("exact" if seg is None else f"estimate from {seg} segments")
        )
    if cfg.get("baselines") is False:
        parts.append("no baselines")
    return "; ".join(parts)


def _flat(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def build_tables(sources: Sequence[TableSource]) -> dict[str, Any]:
    """The rows of the three tables and their legends (models M1.., settings S1..), plus warnings
    for mixed settings. Rows are ordered by model, then pair, then direction."""
    models: dict[str, dict] = {}
    settings: dict[str, dict] = {}
    model_ids: dict[tuple, str] = {}
    settings_ids: dict[str, str] = {}
    tables: dict[str, list[dict]] = {"borderline": [], "trajectory": [], "linearity": []}
    for src in sources:
        mkey = (src.model["name"], src.model["dataset"], src.model["sha256"], src.model["class"])
        if mkey not in model_ids:
            model_ids[mkey] = f"M{len(model_ids) + 1}"
            models[model_ids[mkey]] = src.model
        skey = json.dumps(src.settings, sort_keys=True)
        if skey not in settings_ids:
            settings_ids[skey] = f"S{len(settings_ids) + 1}"
            settings[settings_ids[skey]] = src.settings
        parts = (_run_rows if src.kind == "run" else _atlas_rows)(src, model_ids[mkey], settings_ids[skey])
        for name, part in zip(tables, parts):
            tables[name].extend(part)

    def order(r: dict) -> tuple:
        return (int(r["model"][1:]), str(r["pair"]), str(r.get("direction", "")))

    for table in tables.values():
        table.sort(key=order)
    warnings = []
    for name, table in tables.items():
        used = sorted({r["settings"] for r in table}, key=lambda s: int(s[1:]))
        if len(used) > 1:
            flat = [_flat(settings[s]) for s in used]
            keys = sorted({k for f in flat for k in f if len({json.dumps(g.get(k)) for g in flat}) > 1})
            warnings.append(
                f"Mixed settings in the {name} table: rows use {', '.join(used)}, which differ in "
                f"{', '.join(keys) or 'their kind'}; compare rows of one settings column only."
            )
    return {"models": models, "settings": settings, "tables": tables, "warnings": warnings}


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------

_TITLES = {
    "borderline": "Borderline search: success rate and mean attempts (over successes) per method",
    "trajectory": "Trajectory oscillation of the DeepDIG borderline samples (label changes / T per segment)",
    "linearity": "Embedding linearity: m1 = mean|d| / (1 + mean|d|) and linear-SVM accuracy per set",
}
_HEADERS = {
    "borderline": [
        ("model", "model"),
        ("pair", "pair"),
        ("direction", "direction"),
        ("settings", "settings"),
        ("deepdig_success", "DeepDIG success"),
        ("deepdig_attempts", "DeepDIG attempts"),
        ("rpbs_success", "RPBS success"),
        ("rpbs_attempts", "RPBS attempts"),
        ("epbs_success", "EPBS success"),
        ("epbs_attempts", "EPBS attempts"),
    ],
    "trajectory": [
        ("model", "model"),
        ("pair", "pair"),
        ("direction", "direction"),
        ("settings", "settings"),
        ("borderline_samples", "borderline samples"),
        ("oscillation", "oscillation"),
        ("ci95", "95% CI"),
        ("design", "design"),
    ],
    "linearity": [
        ("model", "model"),
        ("pair", "pair"),
        ("settings", "settings"),
        ("m1_train", "m1 train"),
        ("m1_test", "m1 test"),
        ("m1_borderline", "m1 borderline"),
        ("svm_accuracy_train", "SVM acc. train"),
        ("svm_accuracy_test", "SVM acc. test"),
        ("svm_accuracy_borderline", "SVM acc. borderline"),
    ],
}
_PERCENT = {"deepdig_success", "rpbs_success", "epbs_success"} | {
    f"svm_accuracy_{s}" for s in ("train", "test", "borderline")
}


def _cell(row: Mapping, key: str, models: Mapping, percent_sign: str = "%") -> str:
    if key == "model":
        m = models[row["model"]]
        regime = str(m["regime"]).split(" (")[0]
        label = row["model"] if m["name"] == "?" else f"{row['model']} {m['name']}"
        if m["recipe"] == "unrecorded":
            return f"{label} ({m['dataset']} {m['class']})"
        return f"{label} ({m['dataset']} {m['arch']}, {m['recipe']}, {regime})"
    if key == "ci95":
        lo, hi = row.get("ci95_low"), row.get("ci95_high")
        return f"[{lo:.4f}, {hi:.4f}]" if isinstance(lo, float) and isinstance(hi, float) else "–"
    v = row.get(key)
    if v is None:
        return "–"
    if isinstance(v, float):
        if key in _PERCENT:
            return f"{100 * v:.1f}{percent_sign}"
        if key == "oscillation":
            return f"{v:.4f}"
        return f"{v:.3f}" if key.startswith("m1") else f"{v:.2f}"
    return str(v)


def _markdown(built: Mapping) -> str:
    out = io.StringIO()
    out.write("# DeepDIG tables\n\n")
    out.write(
        "Written by `deepdig table`. Models (M) and DeepDIG settings (S) are listed below the tables; "
        "`–` = no value (nothing to average, or skipped), `n/a` = not measured by this kind of input "
        "(atlases run no baselines and fit one SVM per direction).\n\n"
    )
    for w in built["warnings"]:
        out.write(f"> **Warning.** {w}\n\n")
    for name, rows in built["tables"].items():
        out.write(f"## {_TITLES[name]}\n\n")
        cols = _HEADERS[name]
        out.write("| " + " | ".join(h for _, h in cols) + " |\n")
        out.write("|" + "|".join("---" for _ in cols) + "|\n")
        for r in rows:
            out.write("| " + " | ".join(_cell(r, k, built["models"]) for k, _ in cols) + " |\n")
        if not rows:
            out.write("| " + " | ".join("" for _ in cols) + " |\n")
        out.write("\n")
    out.write("## Models\n\n")
    for mid, m in built["models"].items():
        out.write(f"- **{mid}**: {_model_text(m)}\n")
    out.write("\n## DeepDIG settings\n\n")
    for sid, s in built["settings"].items():
        out.write(f"- **{sid}**: {_settings_text(s)}\n")
    return out.getvalue()


_TEX_ESCAPE = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "→": r"$\to$",
    "–": "--",
    "α": r"$\alpha$",
    "β": r"$\beta$",
    "ε": r"$\varepsilon$",
    "·": r"$\cdot$",
    "≤": r"$\le$",
}


def tex_escape(text: str) -> str:
    """Text made safe for LaTeX (special characters escaped, a few symbols in math mode)."""
    return "".join(_TEX_ESCAPE.get(c, c) for c in str(text))


def _latex(built: Mapping) -> str:
    out = io.StringIO()
    out.write("% Written by `deepdig table`; needs \\usepackage{booktabs}.\n")
    for w in built["warnings"]:
        out.write(f"% WARNING: {w}\n")
    for name, rows in built["tables"].items():
        cols = _HEADERS[name]
        out.write("\\begin{table}[t]\n\\centering\\small\n")
        out.write(f"\\caption{{{tex_escape(_TITLES[name])}}}\n")
        out.write("\\begin{tabular}{" + "l" * 4 + "r" * (len(cols) - 4) + "}\n\\toprule\n")
        out.write(" & ".join(tex_escape(h) for _, h in cols) + " \\\\\n\\midrule\n")
        for r in rows:
            out.write(" & ".join(tex_escape(_cell(r, k, built["models"])) for k, _ in cols) + " \\\\\n")
        out.write("\\bottomrule\n\\end{tabular}\n")
        notes = [f"{mid}: {_model_text(m)}" for mid, m in built["models"].items()]
        notes += [f"{sid}: {_settings_text(s)}" for sid, s in built["settings"].items()]
        notes += [f"Warning: {w}" for w in built["warnings"] if f" {name} table" in w]
        out.write("\\par\\footnotesize " + " \\\\\n".join(tex_escape(n) for n in notes) + "\n")
        out.write("\\end{table}\n\n")
    return out.getvalue()


def _csv(rows: list[dict], columns: list[str], built: Mapping) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = ["dataset", "arch", "recipe", "regime", "training", "weights_sha256", "settings_description"]
    w.writerow(columns + extra)
    for r in rows:
        vals = ["" if r.get(c) is None else r.get(c) for c in columns]
        m = built["models"][r["model"]]
        w.writerow(vals + [m[k] for k in extra[:-2]] + [m["sha256"], _settings_text(built["settings"][r["settings"]])])
    return buf.getvalue()


#: the files write_tables writes into its folder
TABLE_FILES = ("tables.md", "tables.tex", "borderline.csv", "trajectory.csv", "linearity.csv")


def check_out_dir(out_dir: str | os.PathLike, sources: Sequence[TableSource], arg: str = "--out") -> Path:
    """No file the tables are written to may be or lie in an input folder (paths.check_paths); a
    folder above the inputs is fine: the tables land beside the run folders, not in them."""
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise TableInputError(f"{arg} {out_dir}: a file, expected a folder")
    try:
        check_paths(reads={"DIR": [src.path for src in sources]}, writes={arg: [out / f for f in TABLE_FILES]})
    except PathConflictError as exc:
        raise TableInputError(str(exc)) from None
    return out


def write_tables(
    paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, arg: str = "DIR"
) -> dict[str, Path]:
    """Read the run / atlas folders `paths`, check them and `out_dir`, then write tables.md,
    tables.tex and borderline.csv, trajectory.csv, linearity.csv into out_dir (created).

    Returns {file name: Path}. Raises TableInputError (naming the argument) before writing anything
    when an input or out_dir cannot be used.
    """
    from deepdig_fast.io import atomic_write_text

    sources = read_sources(paths, arg)
    out = check_out_dir(out_dir, sources)
    built = build_tables(sources)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "tables.md": _markdown(built),
        "tables.tex": _latex(built),
        "borderline.csv": _csv(built["tables"]["borderline"], BORDERLINE_COLUMNS, built),
        "trajectory.csv": _csv(built["tables"]["trajectory"], TRAJECTORY_COLUMNS, built),
        "linearity.csv": _csv(built["tables"]["linearity"], LINEARITY_COLUMNS, built),
    }
    assert tuple(files) == TABLE_FILES  # what check_out_dir checked is what is written
    written = {}
    for name, text in files.items():
        atomic_write_text(out / name, text)
        written[name] = out / name
    return written
