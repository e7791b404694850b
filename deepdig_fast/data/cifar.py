"""CIFAR-10 in its "python version" (pickled batches), read with an unpickler that resolves only
numpy array reconstruction, so a batch file cannot run code."""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepdig_fast.data.checksums import verify_checksums
from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.tensors import from_tensors
from deepdig_fast.io import PathLike

__all__ = ["CIFAR10_CLASSES", "UnreadablePickleError", "load_cifar10"]

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle may reference: numpy array/dtype reconstruction helpers."""
    try:
        from numpy._core import multiarray as _ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as _ma  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles of bytes at protocol < 3 go through _codecs.encode(str, "latin1").
        ("_codecs", "encode"): codecs.encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _ma._reconstruct
    try:  # protocol-5 pickles of arrays (numpy >= 1.x writes numeric._frombuffer)
        from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover
        try:
            from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
        except ImportError:
            _frombuffer = None
    if _frombuffer is not None:
        for mod in ("numpy.core.numeric", "numpy._core.numeric"):
            allowed[(mod, "_frombuffer")] = _frombuffer
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only numpy array/dtype reconstruction globals.

    Dicts, lists, tuples, bytes, str and numbers need no globals at all; any other class or function
    reference (os.system, builtins.eval, ...) raises pickle.UnpicklingError instead of being imported.
    """

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _numpy_globals()
        obj = _RestrictedUnpickler._allowed.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays and plain containers are allowed"
            )
        return obj


class UnreadablePickleError(pickle.UnpicklingError, ValueError):
    """A CIFAR pickle that is corrupt or asks for something other than arrays and containers
    (an UnpicklingError, and a ValueError so callers reporting bad input catch it)."""


def _load_cifar_pickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 file {path} does not exist")
    with open(path, "rb") as f:
        try:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
        except pickle.UnpicklingError as e:
            raise UnreadablePickleError(f"{path}: {e}") from None
        except Exception as e:
            raise ValueError(f"{path}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _get(d: dict, key: str) -> Any:
    """d[key] for a pickle loaded with encoding="bytes" (keys are bytes) or with str keys."""
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise KeyError(key)


def _cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 batch -> (float32 [N, 3, 32, 32] in [0, 1], int64 [N])."""
    d = _load_cifar_pickle(path)
    try:
        data, labels = _get(d, "data"), _get(d, "labels")
    except KeyError as e:
        raise ValueError(f"{path}: missing key {e.args[0]!r}; expected keys b'data' and b'labels'") from None
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' must be uint8 [N, 3072], got {data.dtype} {list(data.shape)}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise ValueError(
            f"{path}: b'labels' must hold {data.shape[0]} labels (one per row of b'data'), got shape {list(labels.shape)}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: b'labels' must be integers, got {labels.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(data)).reshape(-1, 3, 32, 32).to(torch.float32).div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def load_cifar10(root: PathLike) -> ClassificationData:
    """CIFAR-10 from the "python version" folder (`cifar-10-batches-py`, or the folder containing it).

    Reads data_batch_1..5 (train) and test_batch (test) with a restricted unpickler that only allows
    numpy arrays and plain containers; class names come from batches.meta (standard names if it is
    absent). A SHA256SUMS file in the folder is used when present.

    Returns:
        ClassificationData with x float32 [N, 3, 32, 32] in [0, 1] (50000 train / 10000 test for the
        full set) and y int64 [N] in [0, 10).
    """
    if root is None:
        raise ValueError("root is required for CIFAR-10 (the 'cifar-10-batches-py' folder); none is shipped")
    root_p = Path(root)
    if not root_p.is_dir():
        raise FileNotFoundError(f"root {str(root_p)!r} is not a directory (expected the cifar-10-batches-py folder)")
    if not (root_p / "test_batch").exists() and (root_p / "cifar-10-batches-py").is_dir():
        root_p = root_p / "cifar-10-batches-py"
    train_files = [root_p / f"data_batch_{i}" for i in range(1, 6)]
    test_file = root_p / "test_batch"
    for f in [*train_files, test_file]:
        if not f.is_file():
            raise FileNotFoundError(f"CIFAR-10 file {f.name} not found in {root_p}")
    meta_file = root_p / "batches.meta"
    used = [*train_files, test_file] + ([meta_file] if meta_file.is_file() else [])
    verify_checksums(root_p, used, required=False)

    classes = list(CIFAR10_CLASSES)
    if meta_file.is_file():
        meta = _load_cifar_pickle(meta_file)
        try:
            names = _get(meta, "label_names")
        except KeyError:
            raise ValueError(f"{meta_file}: missing b'label_names'") from None
        classes = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]

    parts = [_cifar_batch(f) for f in train_files]
    x_test, y_test = _cifar_batch(test_file)
    return from_tensors(
        torch.cat([p[0] for p in parts]),
        torch.cat([p[1] for p in parts]),
        x_test,
        y_test,
        classes=classes,
        name="cifar10",
    )
