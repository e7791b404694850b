"""Data sets from tensors or numpy arrays the caller holds, and from torch Datasets: their values
checked, then wrapped in a `ClassificationData`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from deepdig_fast.data.container import SPLITS, ClassificationData, as_unit

__all__ = ["as_labels", "from_tensors", "from_dataset"]


def _as_inputs(x: Any, arg: str, keep_uint8: bool = False) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
        if keep_uint8:
            if t.dim() < 2:
                raise ValueError(f"{arg} must be [N, *sample_shape] (e.g. [N, C, H, W]), got shape {tuple(t.shape)}")
            return t
        t = t.to(torch.float32).div_(255.0)
    elif not t.dtype.is_floating_point:
        raise TypeError(f"{arg} must be float in [0, 1] (or uint8 in [0, 255]), got {t.dtype}")
    t = t.to(torch.float32)
    if t.dim() < 2:
        raise ValueError(f"{arg} must be [N, *sample_shape] (e.g. [N, C, H, W]), got shape {tuple(t.shape)}")
    if t.numel():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{arg} contains NaN or infinite values; expected values in [0, 1]")
        lo, hi = float(t.min()), float(t.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{arg} must have values in [0, 1], got range [{lo:g}, {hi:g}]")
    return t


def as_labels(y: Any, arg: str) -> torch.Tensor:
    """`y` as int64 labels [N]; a TypeError or ValueError naming `arg` when it is not 1-d integers."""
    t = torch.as_tensor(y)
    if t.dtype == torch.bool or t.dtype.is_floating_point or t.dtype.is_complex:
        raise TypeError(f"{arg} must hold integer labels, got {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{arg} must be a 1-d tensor of labels [N], got shape {tuple(t.shape)}")
    return t.to(torch.int64)


def from_tensors(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    classes: Sequence[str] | None = None,
    name: str = "tensors",
    *,
    keep_uint8: bool = False,
) -> ClassificationData:
    """Build a ClassificationData from tensors (or numpy arrays), validating them.

    Args:
        x_train, x_test: float [N, *sample_shape] with values in [0, 1], e.g. [N, C, H, W]; uint8 input
            is taken as [0, 255] and divided by 255. Stored as float32 -- or, with keep_uint8=True and
            uint8 input, as the uint8 pixels themselves (see ClassificationData: a quarter of the
            memory, converted where read; results are the same).
        y_train, y_test: integer labels [N] in [0, C).
        classes: C class names; default "0" .. str(max label).
        name: a label for the data set.
    """
    xs = {
        "x_train": _as_inputs(x_train, "x_train", keep_uint8),
        "x_test": _as_inputs(x_test, "x_test", keep_uint8),
    }
    if len({x.dtype for x in xs.values()}) > 1:  # one uint8 split, one float split: store both as float
        xs = {k: as_unit(x) for k, x in xs.items()}
    ys = {"y_train": as_labels(y_train, "y_train"), "y_test": as_labels(y_test, "y_test")}
    for split in SPLITS:
        n_x, n_y = xs[f"x_{split}"].shape[0], ys[f"y_{split}"].shape[0]
        if n_x != n_y:
            raise ValueError(f"x_{split} has {n_x} samples but y_{split} has {n_y} labels; expected equal counts")
    max_label = max((int(y.max()) for y in ys.values() if y.numel()), default=-1)
    min_label = min((int(y.min()) for y in ys.values() if y.numel()), default=0)
    if classes is None:
        if max_label < 0:
            raise ValueError("classes must be given when there are no labels to infer them from")
        classes = [str(i) for i in range(max_label + 1)]
    classes = [str(c) for c in classes]
    if min_label < 0 or max_label >= len(classes):
        raise ValueError(
            f"labels must be in [0, {len(classes)}) for {len(classes)} classes, got range [{min_label}, {max_label}]"
        )
    return ClassificationData(name=name, classes=classes, **xs, **ys)


def _collect(ds: Any, arg: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack every (x, y) item of a map-style or iterable torch Dataset."""
    if hasattr(ds, "__len__") and hasattr(ds, "__getitem__"):
        items: Iterable = (ds[i] for i in range(len(ds)))
    elif hasattr(ds, "__iter__"):
        items = iter(ds)
    else:
        raise TypeError(f"{arg} must be a torch Dataset yielding (x, y) pairs, got {type(ds).__name__}")
    xs, ys = [], []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"{arg}[{i}] must be an (x, y) pair, got {type(item).__name__}")
        x, y = item[0], torch.as_tensor(item[1])
        if y.numel() != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise ValueError(f"{arg}[{i}]: label must be a single integer, got {item[1]!r}")
        xs.append(x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)))
        ys.append(int(y))
    if not xs:
        raise ValueError(f"{arg} is empty; expected at least one (x, y) pair")
    try:
        x_all = torch.stack(xs)
    except RuntimeError as e:
        raise ValueError(f"{arg}: inputs do not all have the same shape ({e})") from e
    return x_all, torch.tensor(ys, dtype=torch.int64)


def from_dataset(
    train_ds: Any,
    test_ds: Any,
    classes: Sequence[str] | None = None,
    name: str = "dataset",
) -> ClassificationData:
    """Build a ClassificationData from two torch Datasets yielding (x, y) with x a tensor in [0, 1]
    (e.g. torchvision data sets with `transform=ToTensor()`) and y an int label.

    Class names default to `train_ds.classes` when the data set has that attribute.
    """
    if classes is None:
        classes = getattr(train_ds, "classes", None)
    x_train, y_train = _collect(train_ds, "train_ds")
    x_test, y_test = _collect(test_ds, "test_ds")
    return from_tensors(x_train, y_train, x_test, y_test, classes=classes, name=name)
