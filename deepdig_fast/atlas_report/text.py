"""Short texts of an atlas's recorded settings and data set, for the atlas page and the comparison."""

from __future__ import annotations

import json
from collections.abc import Mapping


def short(v, limit: int = 60) -> str:
    """v as text (JSON unless a string), cut to `limit` characters with an ellipsis."""
    s = v if isinstance(v, str) else json.dumps(v, default=str)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def dataset_text(dataset) -> str:
    """The data set's name and (at most four of) the shapes its fingerprint records."""
    if not isinstance(dataset, Mapping):
        return short(dataset) if dataset is not None else "?"
    shapes = [f"{k} {short(v, 30)}" for k, v in dataset.items() if k != "name" and isinstance(v, list)]
    extra = shapes or [f"{k} {short(v, 30)}" for k, v in dataset.items() if k != "name"]
    extra = extra[:4]
    return str(dataset.get("name", "?")) + (f" ({', '.join(extra)})" if extra else "")
