"""Choosing what a file-backed loader reads: classes named by label or name, a seeded train/test
split per class, a seeded cap on samples per class. Image folders, tensor files and torchvision
sets all draw through these, so one seed picks the same samples whichever classes are read."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from deepdig_fast.validation import check_number

__all__ = [
    "ClassSelectionError",
    "check_fraction",
    "number_names_class",
    "resolve_only",
    "format_names",
    "class_rng",
    "split_positions",
    "cap_positions",
    "select_rows",
]


class ClassSelectionError(ValueError):
    """`only=` (or `classes=`) names a class the data set does not have."""


def check_fraction(test_fraction: Any) -> float:
    """test_fraction as a float in [0, 1): the share of each class that becomes the test split."""
    return check_number(test_fraction, "test_fraction", low=0, high=1, closed="left")


def number_names_class(c: Any, classes: Sequence[str]) -> bool:
    """Whether the int `c` means the class *named* str(c): when the data set names its classes with
    numbers other than their labels (an image folder of classes "3" and "5": 3 means the folder "3",
    label 0) and exactly one class has that name."""
    names = [str(n) for n in classes]
    return (
        isinstance(c, (int, np.integer))
        and names != [str(i) for i in range(len(names))]
        and names.count(str(int(c))) == 1
    )


def resolve_only(only: Iterable[int | str] | None, classes: Sequence[str]) -> list[int]:
    """Sorted labels selected by `only` (labels or class names; a number is a name first, see
    number_names_class); every label when None."""
    if only is None:
        return list(range(len(classes)))
    if isinstance(only, (str, int)):
        only = [only]
    labels = set()
    for c in only:
        if number_names_class(c, classes):
            c = str(int(c))
        if isinstance(c, str):
            if c not in classes:
                raise ClassSelectionError(f"class {c!r} is not one of the data set's classes {format_names(classes)}")
            labels.add(classes.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, (bool, np.bool_)):
            if not 0 <= int(c) < len(classes):
                raise ClassSelectionError(
                    f"class {int(c)} is out of range: the data set has {len(classes)} classes (0 to {len(classes) - 1})"
                )
            labels.add(int(c))
        else:
            raise TypeError(f"only must hold class labels (int) or names (str), got {type(c).__name__}")
    return sorted(labels)


def format_names(classes: Sequence[str], limit: int = 6) -> str:
    """The first `limit` class names for an error message, "['a', 'b', ...]"."""
    head = ", ".join(repr(c) for c in classes[:limit])
    return f"[{head}{', ...' if len(classes) > limit else ''}]"


def class_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    """A generator per (seed, class, purpose): a class's split does not depend on the other classes."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{purpose}/{name}".encode())])


def split_positions(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions in range(n), each sorted: round(n * test_fraction) test samples, at
    least one of each split when n >= 2 and test_fraction > 0."""
    n_test = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    elif n < 2:
        n_test = 0
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def cap_positions(positions: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` of `positions`, a seeded random choice kept in order."""
    if limit is None or positions.size <= limit:
        return positions
    return np.sort(rng.choice(positions, size=limit, replace=False))


def select_rows(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(x[keep], y[keep]) for an array of row positions."""
    idx = torch.from_numpy(keep.astype(np.int64))
    return x.index_select(0, idx), y.index_select(0, idx)
