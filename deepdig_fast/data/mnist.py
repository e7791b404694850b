"""MNIST (shipped with the repository under data/mnist) and Fashion-MNIST (from a user folder),
decoded once per process and cached."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.idx import load_idx_dataset
from deepdig_fast.io import PathLike

__all__ = ["MNIST_CLASSES", "FASHION_MNIST_CLASSES", "SHIPPED_MNIST_ROOT", "load_mnist", "load_fashion_mnist"]

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

#: Where the repository ships MNIST. `load_mnist` looks it up at call time, so tests can redirect it;
#: they must set it on this module, since the package only holds a copy of the name.
SHIPPED_MNIST_ROOT = Path(__file__).resolve().parents[2] / "data" / "mnist"


def _stat_key(root: Path) -> tuple:
    """(name, size, mtime_ns) of the files in root: part of the cache key so edited files reload."""
    try:
        return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(root) if e.is_file()))
    except OSError:
        return ()


@functools.lru_cache(maxsize=4)
def _cached_idx(root: Path, name: str, classes: tuple[str, ...], required: bool, _stat: tuple) -> ClassificationData:
    return load_idx_dataset(root, name, classes=classes, require_checksums=required)


def _load_cached_idx(root: Path, name: str, classes: Sequence[str], required: bool) -> ClassificationData:
    data = _cached_idx(root, name, tuple(classes), required, _stat_key(root))
    return replace(data)  # a fresh container (sharing the read-only tensors)


def load_mnist(root: PathLike | None = None) -> ClassificationData:
    """MNIST: 60000 train / 10000 test images, float32 [N, 1, 28, 28] in [0, 1], labels 0-9.

    With `root=None` the copy shipped in the repository (`data/mnist`) is used and its SHA256SUMS
    must be present and match. With a user `root`, a SHA256SUMS file there is used when present.
    The decoded tensors are cached in-process (keyed by the resolved folder and its files' sizes and
    modification times); each call returns a new container around the same read-only tensors.
    """
    if root is None:
        shipped = Path(SHIPPED_MNIST_ROOT)
        if not shipped.is_dir():
            raise FileNotFoundError(
                f"the shipped MNIST copy was not found at {shipped}; pass root= pointing at a folder with the "
                "four MNIST IDX files"
            )
        return _load_cached_idx(shipped.resolve(), "mnist", MNIST_CLASSES, True)
    return _load_cached_idx(Path(root).resolve(), "mnist", MNIST_CLASSES, False)


def load_fashion_mnist(root: PathLike) -> ClassificationData:
    """Fashion-MNIST from a user folder holding the four IDX files (same names as MNIST):
    float32 [N, 1, 28, 28] in [0, 1], ten named classes ("T-shirt/top", "Trouser", ...).
    A SHA256SUMS file in `root` is used when present. Cached like `load_mnist`."""
    if root is None:
        raise ValueError("root is required for Fashion-MNIST (a folder with its four IDX files); none is shipped")
    return _load_cached_idx(Path(root).resolve(), "fashion_mnist", FASHION_MNIST_CLASSES, False)
