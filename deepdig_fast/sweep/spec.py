"""A sweep's declaration: a TOML file read with the standard library's tomllib, checked whole before
any work, and expanded into cells (one model x one settings combination each).

    spec = read_spec("sweep.toml")
    for cell in spec.cells():      # model-major, settings combinations in declaration order
        cell.id, cell.options      # the folder name under SWEEP_DIR/cells/, the command's options

The schema (docs/SWEEPS.md):

    dataset = "mnist"                  # and data_root, image_size, channels: the data options
    classes = [0, 1, 2]                # or "all", or pairs = ["1-2", "4-9"]; pair = [3, 5]: pair runs
    reference = "cnn-a"                # the report's reference model (default: the first)
    retention = "results"              # or "all" (default): what a finished cell keeps
    track = ["tensorboard"]            # optional: tensorboard, mlflow, wandb

    [settings]                         # options of every cell (`deepdig atlas` / `deepdig run` names,
    steps = 100                        #   with _ for -: trajectory_segments = 100)
    [grid]                             # every combination of these lists
    seed = [0, 1]
    [zip]                              # these lists taken together, element by element
    steps = [100, 200]
    beta = [1e-3, 1e-4]

    [[models]]
    name = "cnn-a"                     # required, unique; names the model in every table
    classifier = "checkpoints/mnist-cnn.pt"    # or model = "...", weights = "...", any model option
    covariates = { robust_accuracy = 0.0, regime = "standard" }

This module checks the spec's structure and values it can judge alone (types, names, lengths); the
command's own parser then checks every cell's options as `deepdig atlas` would, and names the spec
key of any bad one. Nothing here imports torch or argparse.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepdig_fast.columns import FIXED_COLUMNS

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, released as tomli before it joined the standard library
    import tomli as tomllib

__all__ = ["Cell", "SpecError", "SweepSpec", "read_spec", "parse_spec", "RETENTION", "TRACKERS"]

#: what a finished cell keeps: everything, or its results, report and borderline samples only
RETENTION = ("all", "results")
#: where each cell's metrics may also be logged (each an optional dependency)
TRACKERS = ("tensorboard", "mlflow", "wandb")
#: top-level keys that are data options of every cell
DATA_KEYS = ("dataset", "data_root", "image_size", "channels")
#: top-level keys that choose what a cell covers
SCOPE_KEYS = ("classes", "pairs", "pair")
TOP_KEYS = (
    *DATA_KEYS,
    *SCOPE_KEYS,
    "title",
    "reference",
    "retention",
    "track",
    "settings",
    "grid",
    "zip",
    "models",
)
#: options a sweep sets itself, or that belong to the whole sweep, never to a settings table
RESERVED = frozenset(
    {"out", "name", "quiet", "distributed", "dist_timeout", "dist_init_timeout", "help", "threads", "device"}
    | set(DATA_KEYS)
    | set(SCOPE_KEYS)
)
#: the columns of the results table; a covariate may not take one of these names
ROW_COLUMNS = FIXED_COLUMNS
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_KEY = re.compile(r"[a-z][a-z0-9_]*")
_SAFE = re.compile(r"[^A-Za-z0-9.+-]+")


class SpecError(ValueError):
    """A spec that cannot be used; the message is one line naming the file, the key and what was
    expected."""


@dataclass(frozen=True)
class Cell:
    """One model under one settings combination: an atlas (or pair run) in SWEEP_DIR/cells/<id>.

    options: the command's options by name (dest, with _), the data and scope options, the
    settings, the combination and the model's own, later ones winning; sources: the spec key each
    option came from (for messages); values: the combination's values (swept keys only, or {})."""

    id: str
    model: str
    kind: str
    settings: str
    values: dict
    options: dict
    sources: dict
    covariates: dict
    index: int


@dataclass
class SweepSpec:
    """A checked spec. `cells()` expands it; `path` is the file it was read from (or None)."""

    path: Path | None
    kind: str
    data: dict
    scope: dict
    settings: dict
    grid: dict
    zipped: dict
    models: list[dict]
    title: str | None = None
    reference: str | None = None
    retention: str = "all"
    track: tuple[str, ...] = ()
    text: str = field(default="", repr=False)

    def combinations(self) -> list[dict]:
        """The settings combinations: every zip row crossed with every grid combination ([{}]
        when nothing is swept), zip keys first, each in declaration order."""
        zip_rows = [dict(zip(self.zipped, vals)) for vals in zip(*self.zipped.values())] if self.zipped else [{}]
        grid_rows = [dict(zip(self.grid, vals)) for vals in itertools.product(*self.grid.values())] or [{}]
        return [{**z, **g} for z in zip_rows for g in grid_rows]

    def cells(self) -> list[Cell]:
        combos = self.combinations()
        out: list[Cell] = []
        seen: dict[str, str] = {}
        for m in self.models:
            for values in combos:
                label = _label(values)
                cid = m["name"] if not values else f"{m['name']}__{_safe_label(values)}"
                where = f"models[{m['_index']}] ({m['name']}) with {label}"
                if cid.lower() in seen:  # case-insensitive file systems
                    raise SpecError(
                        f"{self._where()}: cells {seen[cid.lower()]} and {where} share the folder name {cid!r}"
                    )
                seen[cid.lower()] = where
                options: dict[str, Any] = {}
                sources: dict[str, str] = {}
                for table, prefix in (
                    (self.data, ""),
                    (self.scope, ""),
                    (self.settings, "settings."),
                    (values, "grid/zip."),
                    (m["options"], f"models[{m['_index']}]."),
                ):
                    for k, v in table.items():
                        options[k] = v
                        sources[k] = prefix + k
                out.append(
                    Cell(
                        id=cid,
                        model=m["name"],
                        kind=self.kind,
                        settings=label,
                        values=dict(values),
                        options=options,
                        sources=sources,
                        covariates=dict(m["covariates"]),
                        index=len(out),
                    )
                )
        return out

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "the sweep spec"


def _label(values: Mapping) -> str:
    """The settings label of a combination: 'default', or 'k=v,...' in the declared key order."""
    return ",".join(f"{k}={_text(v)}" for k, v in values.items()) or "default"


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "+".join(_text(x) for x in v)
    return str(v)


def _safe_label(values: Mapping) -> str:
    return "_".join(f"{k}-{_SAFE.sub('-', _text(v)).strip('-') or 'x'}" for k, v in values.items())


#: how a message names a TOML value's type (bool before int: a bool is an int in Python)
_KINDS = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (dict, "a table"),
)


def _kind_of(v: Any) -> str:
    return next((name for t, name in _KINDS if isinstance(v, t)), type(v).__name__)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str))


def read_spec(path: str | Path) -> SweepSpec:
    """Read and check the spec file at `path` (SpecError naming the file and the key)."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"SPEC {path}: no such file; expected a sweep spec in TOML (docs/SWEEPS.md)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"SPEC {path}: cannot be read ({exc})") from None
    return parse_spec(text, p)


def parse_spec(text: str, path: Path | None = None) -> SweepSpec:
    """Check a spec given as TOML text (path: for messages and relative paths)."""
    where = str(path) if path is not None else "the sweep spec"
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{where}: not valid TOML ({exc})") from None

    def fail(key: str, expected: str, got: Any = ..., *, said: str | None = None) -> SpecError:
        if said is not None:
            return SpecError(f"{where}: {key}: {said}")
        shown = "" if got is ... else f", got {_kind_of(got)}" + (f" {got!r}" if _is_scalar(got) else "")
        return SpecError(f"{where}: {key}: expected {expected}{shown}")

    for k in doc:
        if k not in TOP_KEYS:
            raise SpecError(
                f"{where}: unknown top-level key {k!r}; expected one of {', '.join(TOP_KEYS)} "
                "(cell options go in [settings], [grid], [zip] or a [[models]] table)"
            )
    data = {}
    for k in DATA_KEYS:
        if k in doc:
            v = doc[k]
            if k == "image_size" and isinstance(v, int) and not isinstance(v, bool):
                v = str(v)
            if k == "channels":
                if isinstance(v, bool) or v not in (1, 3):
                    raise fail(k, "1 or 3", v)
            elif not isinstance(v, str) or not v:
                raise fail(k, "a non-empty string", v)
            data[k] = v
    data.setdefault("dataset", "mnist")

    scope, kind = _scope(doc, fail)
    settings = _settings_table(doc.get("settings", {}), "settings", fail)
    grid = _swept(doc.get("grid", {}), "grid", fail)
    zipped = _swept(doc.get("zip", {}), "zip", fail)
    lengths = {k: len(v) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise SpecError(
            f"{where}: zip: every list must have the same length, got "
            + ", ".join(f"{k} {n}" for k, n in lengths.items())
        )
    for k in grid:
        if k in zipped:
            raise SpecError(f"{where}: grid.{k} and zip.{k}: a setting is swept by the grid or the zip, not both")
    for k in list(grid) + list(zipped):
        if k in settings:
            raise SpecError(f"{where}: settings.{k} is also swept (grid/zip.{k}); give it in one place")

    models = _models(doc, fail, set(grid) | set(zipped))
    names = [m["name"] for m in models]

    reference = doc.get("reference")
    if reference is not None and reference not in names:
        raise fail("reference", f"the name of one of the models ({', '.join(names)})", reference)
    retention = doc.get("retention", "all")
    if retention not in RETENTION:
        raise fail("retention", " or ".join(repr(r) for r in RETENTION), retention)
    track = doc.get("track", [])
    if isinstance(track, str):
        track = [track]
    if not isinstance(track, list) or not all(isinstance(t, str) and t in TRACKERS for t in track):
        raise fail("track", f"a list of {', '.join(TRACKERS)}", track)
    title = doc.get("title")
    if title is not None and not isinstance(title, str):
        raise fail("title", "a string", title)
    spec = SweepSpec(
        path=path,
        kind=kind,
        data=data,
        scope=scope,
        settings=settings,
        grid=grid,
        zipped=zipped,
        models=models,
        title=title,
        reference=reference,
        retention=retention,
        track=tuple(dict.fromkeys(track)),
        text=text,
    )
    spec.cells()  # folder names collide?
    return spec


def _scope(doc: Mapping, fail) -> tuple[dict, str]:
    given = [k for k in SCOPE_KEYS if k in doc]
    if len(given) > 1:
        raise fail(" and ".join(given), "one of classes, pairs (atlas cells) or pair (pair-run cells)")
    if not given:
        return {}, "atlas"  # every class of the data set
    k = given[0]
    v = doc[k]
    if k == "classes":
        if v == "all":
            return {}, "atlas"
        if not isinstance(v, list) or len(v) < 2 or not all(_class_ok(c) for c in v):
            raise fail("classes", '"all" or a list of two or more class ids or names', v)
        if len({str(c) for c in v}) != len(v):
            raise fail("classes", "different classes", v)
        return {"classes": ",".join(str(c) for c in v)}, "atlas"
    if k == "pairs":
        if not isinstance(v, list) or not v:
            raise fail("pairs", 'a list of pairs like ["1-2", "4-9"] or [[1, 2], [4, 9]]', v)
        parts = []
        for i, p in enumerate(v):
            parts.append(_pair_text(p, f"pairs[{i}]", fail))
        return {"pairs": ",".join(parts)}, "atlas"
    return {"pair": _pair_text(v, "pair", fail).replace("-", ",", 1)}, "run"


def _class_ok(c: Any) -> bool:
    return (isinstance(c, int) and not isinstance(c, bool) and c >= 0) or (isinstance(c, str) and bool(c.strip()))


def _pair_text(p: Any, key: str, fail) -> str:
    if isinstance(p, str) and p.count("-") == 1:
        a, b = p.split("-")
        p = [int(x) if x.strip().isdigit() else x.strip() for x in (a, b)]
    if not isinstance(p, list) or len(p) != 2 or not all(_class_ok(c) for c in p) or str(p[0]) == str(p[1]):
        raise fail(key, 'two different classes, like [1, 2] or "1-2"', p)
    return f"{p[0]}-{p[1]}"


def _option_value(v: Any, key: str, fail) -> Any:
    """A cell option's value: a string, number or boolean (a list only for the few list-valued
    options, which the command's parser then checks)."""
    if _is_scalar(v):
        return v
    if isinstance(v, list) and v and all(_is_scalar(x) and not isinstance(x, bool) for x in v):
        return v
    raise fail(key, "a string, number or boolean", v)


def _option_key(k: str, table: str, fail) -> None:
    if not _KEY.fullmatch(k):
        raise fail(f"{table}.{k}", "an option name in lower case with _ for - (like trajectory_segments)")
    if k in RESERVED:
        raise fail(f"{table}.{k}", "", said="set by the sweep itself or at the top level of the spec, not here")


def _settings_table(t: Any, table: str, fail) -> dict:
    if not isinstance(t, dict):
        raise fail(table, "a table of options", t)
    out = {}
    for k, v in t.items():
        _option_key(k, table, fail)
        out[k] = _option_value(v, f"{table}.{k}", fail)
    return out


def _swept(t: Any, table: str, fail) -> dict:
    if not isinstance(t, dict):
        raise fail(table, "a table of option = [values]", t)
    out = {}
    for k, v in t.items():
        _option_key(k, table, fail)
        if not isinstance(v, list) or not v:
            raise fail(f"{table}.{k}", "a non-empty list of values", v)
        vals = [_option_value(x, f"{table}.{k}[{i}]", fail) for i, x in enumerate(v)]
        if len({repr(x) for x in vals}) != len(vals):
            raise fail(f"{table}.{k}", "different values", v)
        out[k] = vals
    return out


def _models(doc: Mapping, fail, swept: set[str]) -> list[dict]:
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        raise fail("models", "one or more [[models]] tables (each with a name and a classifier or model)", models)
    out = []
    names: dict[str, int] = {}
    for i, m in enumerate(models):
        key = f"models[{i}]"
        if not isinstance(m, dict):
            raise fail(key, "a table", m)
        name = m.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise fail(
                f"{key}.name",
                "a name of letters, digits, '.', '_', '+' or '-' (at most 64, not starting with a mark)",
                name,
            )
        if name.lower() in names:
            raise fail(f"{key}.name", f"a name not used by models[{names[name.lower()]}]", name)
        names[name.lower()] = i
        cov = m.get("covariates", {})
        if not isinstance(cov, dict):
            raise fail(f"{key}.covariates", "a table of name = number or string", cov)
        for c, v in cov.items():
            if not _KEY.fullmatch(c):
                raise fail(f"{key}.covariates.{c}", "a covariate name in lower case (letters, digits, _)")
            if c in ROW_COLUMNS or c.startswith("setting_"):
                raise fail(f"{key}.covariates.{c}", "a name that is not a column of the results table")
            if not _is_scalar(v):
                raise fail(f"{key}.covariates.{c}", "a number, string or boolean", v)
        options = {}
        for k, v in m.items():
            if k in ("name", "covariates"):
                continue
            _option_key(k, key, fail)
            if k in swept:
                raise fail(f"{key}.{k}", "", said=f"also swept by grid/zip.{k}; give it in one place")
            options[k] = _option_value(v, f"{key}.{k}", fail)
        if not any(k in options for k in ("classifier", "model", "arch")):
            raise fail(key, f"a classifier (a checkpoint) or a model (with weights) for {name!r}")
        out.append({"name": name, "covariates": dict(cov), "options": options, "_index": i})
    return out


def iter_options(cell: Cell) -> Iterator[tuple[str, Any, str]]:
    """(option, value, spec key) for every option of a cell."""
    for k, v in cell.options.items():
        yield k, v, cell.sources.get(k, k)
