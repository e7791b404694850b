"""Classification data sets as in-memory tensors: MNIST (shipped), Fashion-MNIST, CIFAR-10, any tensors.

Every loader returns a `ClassificationData`: float32 inputs in [0, 1] shaped [N, C, H, W] and int64
labels shaped [N], for a train and a test split, plus the class names. Nothing is downloaded: MNIST
ships with the repository under `data/mnist` (verified against its SHA256SUMS); the other data sets
are read from a folder the user supplies.
"""
from __future__ import annotations

import codecs
import functools
import gzip
import os
import pickle
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from .io import ChecksumError, sha256_file
from .validation import Int, Optional

__all__ = [
    "ClassificationData",
    "ChecksumError",
    "MNIST_CLASSES",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "IDX_FILES",
    "SHIPPED_MNIST_ROOT",
    "read_idx",
    "read_sha256sums",
    "load_idx_dataset",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "from_tensors",
    "from_dataset",
]

PathLike = str | os.PathLike

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]

#: File names of an IDX data set (MNIST and Fashion-MNIST use the same ones). A name ending in ".gz"
#: is also found uncompressed (without ".gz") and vice versa.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: Where the repository ships MNIST (looked up at call time, so it can be redirected in tests).
SHIPPED_MNIST_ROOT = Path(__file__).resolve().parent.parent / "data" / "mnist"

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
_SPLITS = ("train", "test")


# --------------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------------


@dataclass(repr=False)
class ClassificationData:
    """A classification data set held in memory.

    Attributes:
        name: a short label ("mnist", "cifar10", ...).
        x_train: float32 [N_train, C, H, W] (or [N_train, *sample_shape]) inputs in [0, 1].
        y_train: int64 [N_train] labels in [0, num_classes).
        x_test: float32 [N_test, *sample_shape] inputs in [0, 1].
        y_test: int64 [N_test] labels.
        classes: the class names; index i names label i.

    Loaders may share tensors between the instances they return (MNIST is cached in-process), so
    treat the tensors as read-only: derive new tensors instead of modifying them in place.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        # Cheap structural checks only; `from_tensors` also checks value ranges.
        self.classes = list(self.classes)
        for split in _SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(f"x_{split} and y_{split} must be torch.Tensors, got {type(x).__name__}, {type(y).__name__}")
            if x.dim() < 2:
                raise ValueError(f"x_{split} must be [N, *sample_shape] with at least 2 dims, got shape {tuple(x.shape)}")
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{split} must be [N] with N = x_{split}.shape[0] = {x.shape[0]}, got shape {tuple(y.shape)}"
                )
            if y.dtype != torch.int64:
                raise TypeError(f"y_{split} must be int64, got {y.dtype}")
            if not x.dtype.is_floating_point:
                raise TypeError(f"x_{split} must be a floating-point tensor with values in [0, 1], got {x.dtype}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"x_train and x_test must have the same sample shape, got {tuple(self.x_train.shape[1:])} "
                f"and {tuple(self.x_test.shape[1:])}"
            )
        if not self.classes:
            raise ValueError("classes must name at least one class")

    # -- descriptors -------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes, len(classes)."""
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 28, 28) for MNIST or (3, 32, 32) for CIFAR-10."""
        return tuple(self.x_train.shape[1:])

    def __len__(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    def __repr__(self) -> str:
        return (
            f"ClassificationData(name={self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, num_classes={self.num_classes})"
        )

    # -- access --------------------------------------------------------------------------------------

    def split(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(x [N, *sample_shape], y [N]) of the "train" or "test" split."""
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def class_index(self, c: int | str) -> int:
        """The label of class `c`, given as a label (int) or a class name (str)."""
        if isinstance(c, str):
            try:
                return self.classes.index(c)
            except ValueError:
                raise ValueError(f"class {c!r} is not one of {self.classes}") from None
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"class must be an int label or a class name, got {type(c).__name__}")
        if not 0 <= int(c) < self.num_classes:
            raise ValueError(f"class label must be in [0, {self.num_classes}), got {int(c)}")
        return int(c)

    def class_inputs(self, c: int | str, split: str = "train") -> torch.Tensor:
        """Inputs [n_c, *sample_shape] of the given split whose (ground-truth) label is `c`."""
        label = self.class_index(c)
        x, y = self.split(split)
        return x[y == label]

    def class_counts(self, split: str = "train") -> list[int]:
        """Number of samples per class in a split, a list of length num_classes."""
        _, y = self.split(split)
        return torch.bincount(y, minlength=self.num_classes).tolist()

    # -- derived sets ------------------------------------------------------------------------------

    def take(self, n_train: int | None = None, n_test: int | None = None) -> "ClassificationData":
        """Keep the first `n_train` training and `n_test` test samples (None keeps a split whole).

        The tensors are views of this instance's tensors (no copy)."""
        for arg, n in (("n_train", n_train), ("n_test", n_test)):
            Optional(Int(0)).check(n, arg)
        a = len(self.x_train) if n_train is None else n_train
        b = len(self.x_test) if n_test is None else n_test
        return replace(
            self,
            x_train=self.x_train[:a], y_train=self.y_train[:a],
            x_test=self.x_test[:b], y_test=self.y_test[:b],
        )

    def subset(
        self,
        classes: Iterable[int | str] | None = None,
        per_class: int | None = None,
        per_class_test: int | None = None,
        seed: int = 0,
    ) -> "ClassificationData":
        """Keep only some classes and/or at most `per_class` random samples of each class.

        Labels keep their original values and `classes` keeps all names, so a classifier trained on
        the full set still applies. `per_class_test` defaults to `per_class`. The selection is drawn
        with a generator seeded by `seed`; kept samples stay in their original order.
        """
        keep = None if classes is None else sorted({self.class_index(c) for c in classes})
        if per_class_test is None:
            per_class_test = per_class
        for arg, n in (("per_class", per_class), ("per_class_test", per_class_test)):
            Optional(Int(0)).check(n, arg)
        gen = torch.Generator().manual_seed(int(seed))
        out: dict[str, Any] = {}
        for split, limit in (("train", per_class), ("test", per_class_test)):
            x, y = self.split(split)
            labels = range(self.num_classes) if keep is None else keep
            chosen = []
            for c in labels:
                idx = torch.nonzero(y == c, as_tuple=False).flatten()
                if limit is not None and idx.numel() > limit:
                    idx = idx[torch.randperm(idx.numel(), generator=gen)[:limit]]
                chosen.append(idx)
            index = torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.int64)
            out[f"x_{split}"], out[f"y_{split}"] = x[index], y[index]
        return replace(self, **out)

    def to(self, device: str | torch.device) -> "ClassificationData":
        """A copy with all tensors moved to `device`."""
        return replace(
            self,
            x_train=self.x_train.to(device), y_train=self.y_train.to(device),
            x_test=self.x_test.to(device), y_test=self.y_test.to(device),
        )


# --------------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------------

_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$")


def read_sha256sums(path: PathLike) -> dict[str, str]:
    """Parse a `sha256sum`-style file ("<64 hex>  <name>" per line) into {name: lowercase hex}."""
    p = Path(path)
    sums: dict[str, str] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _SUMS_LINE.match(line)
        if m is None:
            raise ValueError(f"{p}: line {lineno} is not '<sha256 hex>  <file name>': {line!r}")
        sums[m.group(2)] = m.group(1).lower()
    return sums


def _verify_checksums(root: Path, used: Iterable[Path], *, required: bool) -> None:
    """Check every used file listed in root/SHA256SUMS against its checksum.

    With `required`, SHA256SUMS must exist and list every used file."""
    sums_path = root / "SHA256SUMS"
    if not sums_path.is_file():
        if required:
            raise FileNotFoundError(
                f"{sums_path} is missing; this data set must ship with a SHA256SUMS file listing its files"
            )
        return
    sums = read_sha256sums(sums_path)
    for f in used:
        expected = sums.get(f.name)
        if expected is None:
            if required:
                raise ChecksumError(f"{f.name} is not listed in {sums_path}; cannot verify it")
            continue
        actual = sha256_file(f)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {f}: SHA-256 is {actual}, but {sums_path} says {expected}; "
                "the file is corrupt or was modified"
            )


# --------------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------------------------------


def _read_maybe_gzip(path: Path) -> bytes:
    """File contents, decompressed when the file starts with the gzip magic (1f 8b)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from e
    return raw


def read_idx(path: PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (optionally gzip-compressed) into a uint8 array.

    Layout: big-endian int32 magic (0x0000 0x08 ndim), ndim big-endian int32 sizes, then the bytes
    in row-major order. Returns an array shaped by those sizes, e.g. [60000, 28, 28] for MNIST
    training images (magic 2051) or [60000] for labels (magic 2049).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"IDX file {p} does not exist")
    buf = _read_maybe_gzip(p)
    if len(buf) < 4:
        raise ValueError(f"{p}: truncated IDX file ({len(buf)} bytes, expected at least a 4-byte magic number)")
    (magic,) = struct.unpack(">i", buf[:4])
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{p}: wrong IDX magic number {magic}, expected {expected_magic}")
    if magic >> 8 != 0x08:
        raise ValueError(f"{p}: IDX magic {magic} does not denote unsigned-byte data (expected 0x0000 08 ndim)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if ndim == 0 or len(buf) < header:
        raise ValueError(f"{p}: truncated IDX header (expected {ndim} dimension sizes after the magic number)")
    dims = struct.unpack(f">{ndim}i", buf[4:header])
    if any(d < 0 for d in dims):
        raise ValueError(f"{p}: negative IDX dimension size in {dims}")
    count = int(np.prod(dims, dtype=np.int64))
    have = len(buf) - header
    if have < count:
        raise ValueError(f"{p}: truncated IDX data: header promises {dims} = {count} bytes, file has {have}")
    if have > count:
        raise ValueError(f"{p}: {have - count} unexpected trailing bytes after the {dims} IDX data")
    return np.frombuffer(buf, dtype=np.uint8, count=count, offset=header).reshape(dims)


def _find_file(root: Path, name: str, role: str) -> Path:
    """root/name, or its gzip/uncompressed twin; a FileNotFoundError naming both otherwise."""
    candidates = [root / name]
    candidates.append(root / name[:-3] if name.endswith(".gz") else root / f"{name}.gz")
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{role} file not found in {root}: looked for {' and '.join(c.name for c in candidates)}"
    )


def _idx_images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] -> float32 [N, 1, H, W] in [0, 1]."""
    return torch.from_numpy(images.copy()).unsqueeze(1).to(torch.float32).div_(255.0)


def load_idx_dataset(
    root: PathLike,
    name: str,
    files: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
    require_checksums: bool = False,
) -> ClassificationData:
    """Load an MNIST-format data set from IDX files in `root`.

    Args:
        root: folder holding the four files.
        name: the data set's name in the returned object.
        files: {"train_images", "train_labels", "test_images", "test_labels"} -> file name;
            defaults to `IDX_FILES` (the MNIST names). ".gz" and uncompressed twins are both found.
        classes: class names; default "0", "1", ... up to the largest label.
        require_checksums: if True, root/SHA256SUMS must exist and list every file used. Otherwise a
            SHA256SUMS file, when present, is still used to verify the files it lists.

    Returns:
        ClassificationData with x float32 [N, 1, H, W] in [0, 1] and y int64 [N].
    """
    root_p = Path(root)
    if not root_p.is_dir():
        raise FileNotFoundError(f"root {str(root_p)!r} is not a directory (expected a folder of IDX files)")
    names = dict(IDX_FILES)
    if files is not None:
        unknown = set(files) - set(IDX_FILES)
        if unknown:
            raise ValueError(f"files has unknown keys {sorted(unknown)}; expected keys from {sorted(IDX_FILES)}")
        names.update(files)
    paths = {role: _find_file(root_p, fname, role) for role, fname in names.items()}
    _verify_checksums(root_p, paths.values(), required=require_checksums)

    arrays: dict[str, torch.Tensor] = {}
    num_labels = 0
    for split in _SPLITS:
        img_path, lab_path = paths[f"{split}_images"], paths[f"{split}_labels"]
        images = read_idx(img_path, IDX_IMAGES_MAGIC)
        labels = read_idx(lab_path, IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{split} split: {img_path.name} holds {images.shape[0]} images but {lab_path.name} holds "
                f"{labels.shape[0]} labels; expected equal counts"
            )
        arrays[f"x_{split}"] = _idx_images_to_tensor(images)
        arrays[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
        if labels.size:
            num_labels = max(num_labels, int(labels.max()) + 1)
    if classes is None:
        classes = [str(i) for i in range(num_labels)]
    elif num_labels > len(classes):
        raise ValueError(f"labels go up to {num_labels - 1} but classes names only {len(classes)} classes")
    return ClassificationData(name=name, classes=list(classes), **arrays)


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


# --------------------------------------------------------------------------------------------------
# CIFAR-10 ("python version" pickles)
# --------------------------------------------------------------------------------------------------


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
        raise ValueError(f"{path}: b'labels' must hold {data.shape[0]} labels (one per row of b'data'), got shape {list(labels.shape)}")
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
    _verify_checksums(root_p, used, required=False)

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
        torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), x_test, y_test,
        classes=classes, name="cifar10",
    )


# --------------------------------------------------------------------------------------------------
# Any tensors / torch Datasets
# --------------------------------------------------------------------------------------------------


def _as_inputs(x: Any, arg: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype == torch.uint8:
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


def _as_labels(y: Any, arg: str) -> torch.Tensor:
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
) -> ClassificationData:
    """Build a ClassificationData from tensors (or numpy arrays), validating them.

    Args:
        x_train, x_test: float [N, *sample_shape] with values in [0, 1], e.g. [N, C, H, W]; uint8 input
            is taken as [0, 255] and divided by 255. Stored as float32.
        y_train, y_test: integer labels [N] in [0, C).
        classes: C class names; default "0" .. str(max label).
        name: a label for the data set.
    """
    xs = {"x_train": _as_inputs(x_train, "x_train"), "x_test": _as_inputs(x_test, "x_test")}
    ys = {"y_train": _as_labels(y_train, "y_train"), "y_test": _as_labels(y_test, "y_test")}
    for split in _SPLITS:
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
