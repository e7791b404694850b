"""Reading an atlas folder: atlas.json ("kind": "deepdig-atlas", "schema": rundir.ATLAS_SCHEMA: the
classes covered, the generators and one row of numbers per direction s -> t) and, when present,
manifest.json beside it, both through readers.read_json against the shapes declared there
(readers.ATLAS, MANIFEST): a file that is not JSON, nests too deep, holds a number no deepdig file
holds or has a field of the wrong type is refused with one line naming the file and the field
(DamagedFileError, a ValueError). Also the K x K matrix of one metric over an atlas's directions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepdig_fast.atlas_report import metrics
from deepdig_fast.atlas_report.metrics import DIRECTION_COLUMNS, metric_value, valid_metrics
from deepdig_fast.readers import ATLAS, MANIFEST, check, read_json, read_json_if_present
from deepdig_fast.rundir import ATLAS_KIND, ATLAS_SCHEMA

Pair = tuple[int, int]


def is_int(v) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def structure(atlas, where: str) -> tuple[list[int], list[str], dict[Pair, dict]]:
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


def open_atlas(path, arg: str) -> tuple[Path, dict]:
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
    structure(atlas, str(file))
    return file.parent, atlas


def read_manifest(root: Path) -> dict | None:
    """root/manifest.json (None when absent), checked like every file an atlas reader reads."""
    return read_json_if_present(root / "manifest.json", spec=MANIFEST)


def load_atlas(path: str | os.PathLike) -> dict:
    """The checked contents of an atlas folder's atlas.json (path: the folder or the file itself).

    Raises FileNotFoundError when the path or its atlas.json is missing, ValueError when the file is not
    JSON, not `"kind": "deepdig-atlas"` with the current schema, or its classes/directions are malformed.
    """
    return open_atlas(path, "path")[1]


def matrix(rows: Mapping[Pair, Mapping], classes: list[int], metric: str) -> np.ndarray:
    """M[i, j] = `metric` of the direction classes[i] -> classes[j] among `rows`; NaN where it has none."""
    index = {c: i for i, c in enumerate(classes)}
    M = np.full((len(classes), len(classes)), np.nan, dtype=np.float64)
    for (s, t), row in rows.items():
        if s in index and t in index:
            v = metric_value(row, metric)
            if v is not None:
                M[index[s], index[t]] = v
    return M


def atlas_matrix(atlas: Mapping[str, Any], metric: str) -> tuple[list[int], np.ndarray]:
    """(classes, M): M[i, j] = `metric` of the direction classes[i] -> classes[j] (float64, K x K).

    metric: a key of HEATMAP_METRICS (derived ones included) or a numeric direction column
    (DIRECTION_COLUMNS). NaN on the diagonal, for directions absent from the atlas and for null values.
    """
    if metric not in metrics.HEATMAP_METRICS and metric not in DIRECTION_COLUMNS:
        raise ValueError(f"metric must be one of {', '.join(valid_metrics())}; got {metric!r}")
    classes, _, rows = structure(atlas, "atlas")
    return classes, matrix(rows, classes, metric)
