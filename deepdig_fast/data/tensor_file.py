"""A data set saved as tensors in one file: a `.pt` dict (read with weights_only=True) or an `.npz`
archive (read without pickle)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.selection import (
    cap_positions,
    check_fraction,
    class_rng,
    resolve_only,
    select_rows,
    split_positions,
)
from deepdig_fast.data.tensors import as_labels, from_tensors
from deepdig_fast.io import PathLike, load_failure, torch_load
from deepdig_fast.validation import Int, Optional

__all__ = ["load_tensor_file"]


def _read_tensor_file(p: Path) -> dict[str, Any]:
    suffix = p.suffix.lower()
    if suffix in (".pt", ".pth"):
        try:
            obj = torch_load(p)
        except Exception as e:
            raise ValueError(f"{p} is not a file torch.load(weights_only=True) can read ({load_failure(e)})") from None
    elif suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                obj = {k: z[k] for k in z.files}
        except Exception as e:
            raise ValueError(
                f"{p} is not a readable .npz file without pickled objects ({type(e).__name__}: {e})"
            ) from None
    else:
        raise ValueError(
            f"{p}: expected a .pt (torch.save of a dict) or .npz (numpy.savez) file, got suffix {p.suffix!r}"
        )
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"{p} must hold a dict with 'x' and 'y' (optionally 'x_test', 'y_test', 'classes'), "
            f"got {type(obj).__name__}"
        )
    return dict(obj)


def load_tensor_file(
    path: PathLike,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    only: Iterable[int | str] | None = None,
    max_per_class: int | None = None,
    name: str | None = None,
) -> ClassificationData:
    """A data set saved as tensors: a `.pt` file (a dict saved with torch.save, read with
    weights_only=True) or an `.npz` file (numpy.savez, read without pickle).

    Keys: "x" [N, C, H, W] (or [N, H, W], taken as one channel, or [N, D] vectors) as uint8 in
    [0, 255] or floating point in [0, 1]; "y" [N] integer labels; optionally "x_test" and "y_test"
    (both or neither) and "classes" (the class names; default "0" .. the largest label). Without a
    test split, `test_fraction` of each class becomes one (drawn with `seed`, as for image folders).
    `only` and `max_per_class` select classes and samples as in `load_image_folder`, before the
    inputs are converted to float32. `name` defaults to "tensors:<file stem>".
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"tensor file {str(path)!r} does not exist")
    frac = check_fraction(test_fraction)
    Optional(Int(1)).check(max_per_class, "max_per_class")
    obj = _read_tensor_file(p)
    missing = [k for k in ("x", "y") if k not in obj]
    if missing:
        raise ValueError(
            f"{p} must hold 'x' and 'y' (optionally 'x_test', 'y_test', 'classes'); missing "
            f"{missing}, found keys {sorted(map(str, obj))}"
        )
    if ("x_test" in obj) != ("y_test" in obj):
        raise ValueError(f"{p} holds only one of 'x_test' and 'y_test'; give both or neither")

    def arr(key: str) -> torch.Tensor:
        t = torch.as_tensor(obj[key])
        if key.startswith("x") and t.dim() == 3:
            t = t.unsqueeze(1)
        return t

    x, y = arr("x"), as_labels(arr("y"), f"{p.name}: y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{p}: x has {x.shape[0]} samples but y has {y.shape[0]} labels; expected equal counts")
    test = None
    if "x_test" in obj:
        test = arr("x_test"), as_labels(arr("y_test"), f"{p.name}: y_test")
        if test[0].shape[0] != test[1].shape[0]:
            raise ValueError(f"{p}: x_test has {test[0].shape[0]} samples but y_test has {test[1].shape[0]} labels")
    all_y = torch.cat([y, test[1]]) if test is not None else y
    if all_y.numel() and int(all_y.min()) < 0:
        raise ValueError(f"{p}: labels must be >= 0, got {int(all_y.min())}")
    if "classes" in obj:
        names = [str(c) for c in np.asarray(obj["classes"]).reshape(-1).tolist()]
    else:
        names = [str(i) for i in range(int(all_y.max()) + 1 if all_y.numel() else 0)]
    if not names:
        raise ValueError(f"{p} holds no labels and no 'classes'")
    labels = resolve_only(only, names)

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    yn = y.numpy()
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for label in labels:
        pos = np.flatnonzero(yn == label)
        if test is None:
            tr, te = split_positions(pos.size, frac, class_rng(seed, names[label], "split"))
            parts["train"].append(cap_positions(pos[tr], max_per_class, class_rng(seed, names[label], "cap-train")))
            parts["test"].append(cap_positions(pos[te], max_per_class, class_rng(seed, names[label], "cap-test")))
        else:
            parts["train"].append(cap_positions(pos, max_per_class, class_rng(seed, names[label], "cap-train")))
    splits["train"] = select_rows(x, y, np.sort(np.concatenate(parts["train"])))
    if test is None:
        splits["test"] = select_rows(x, y, np.sort(np.concatenate(parts["test"])))
    else:
        tyn = test[1].numpy()
        for label in labels:
            pos = np.flatnonzero(tyn == label)
            parts["test"].append(cap_positions(pos, max_per_class, class_rng(seed, names[label], "cap-test")))
        splits["test"] = select_rows(*test, np.sort(np.concatenate(parts["test"])))
    return from_tensors(
        *splits["train"], *splits["test"], classes=names, name=name or f"tensors:{p.stem}", keep_uint8=True
    )
