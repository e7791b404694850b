"""Classification data sets as in-memory tensors: MNIST (shipped), Fashion-MNIST, CIFAR-10, image
folders, tensor files, torchvision data sets, any tensors.

Every loader returns a `ClassificationData`: float32 inputs in [0, 1] shaped [N, C, H, W] and int64
labels shaped [N], for a train and a test split, plus the class names. Nothing is downloaded unless
asked for (`load_torchvision_dataset(download=True)`): MNIST ships with the repository under
`data/mnist` (verified against its SHA256SUMS); the other data sets are read from a folder or file
the user supplies, which is only read.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import inspect
import math
import os
import pickle
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .io import ChecksumError, load_failure, sha256_file, torch_load
from .validation import Int, Optional, check_input_dtype, check_number, check_options

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
    "IMAGE_SUFFIXES",
    "ClassSelectionError",
    "load_image_folder",
    "load_tensor_file",
    "load_torchvision_dataset",
]

PathLike = str | os.PathLike

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


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """Inputs as the method sees them: uint8 pixels -> float32 in [0, 1] (value / 255, exactly the
    values a float32 load gives); any floating-point tensor is returned as it is."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


@dataclass(repr=False)
class ClassificationData:
    """A classification data set held in memory.

    Attributes:
        name: a short label ("mnist", "cifar10", ...).
        x_train: [N_train, C, H, W] (or [N_train, *sample_shape]) inputs: float in [0, 1], or uint8
            pixels standing for value / 255. Image folders and torchvision data sets keep their
            decoded uint8 pixels (a quarter of the memory); every reader converts only the rows it
            uses (`class_inputs`, `inputs`, `probe_inputs`, or `as_unit` on a slice), so a pair run
            materialises float32 for its two classes only. Results do not depend on the storage.
        y_train: int64 [N_train] labels in [0, num_classes).
        x_test: [N_test, *sample_shape] inputs, stored like x_train.
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
                raise TypeError(
                    f"x_{split} and y_{split} must be torch.Tensors, got {type(x).__name__}, {type(y).__name__}"
                )
            if x.dim() < 2:
                raise ValueError(
                    f"x_{split} must be [N, *sample_shape] with at least 2 dims, got shape {tuple(x.shape)}"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{split} must be [N] with N = x_{split}.shape[0] = {x.shape[0]}, got shape {tuple(y.shape)}"
                )
            if y.dtype != torch.int64:
                raise TypeError(f"y_{split} must be int64, got {y.dtype}")
            check_input_dtype(x, f"x_{split}", pixels=True)
        if self.x_train.dtype != self.x_test.dtype:
            raise TypeError(f"x_train and x_test must have one dtype, got {self.x_train.dtype} and {self.x_test.dtype}")
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

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the inputs as the method sees them (float32 for uint8 storage)."""
        return torch.float32 if self.x_train.dtype == torch.uint8 else self.x_train.dtype

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
        return as_unit(x[y == label])

    def inputs(
        self, split: str = "train", classes: Sequence[int | str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of a split restricted to `classes` (all when None), rows in their stored order, x as
        the method sees it (float, see as_unit): only those rows are materialised."""
        x, y = self.split(split)
        if classes is None:
            return as_unit(x), y
        labels = torch.tensor([self.class_index(c) for c in classes], dtype=y.dtype)
        keep = torch.isin(y, labels)
        return as_unit(x[keep]), y[keep]

    def probe_inputs(self, n: int = 2) -> torch.Tensor:
        """The first `n` test inputs (training inputs when there is no test split): what one-forward
        checks (check_fits, the embedding-layer search) feed a classifier."""
        return as_unit(self.x_test[:n] if self.x_test.shape[0] else self.x_train[:n])

    def class_counts(self, split: str = "train") -> list[int]:
        """Number of samples per class in a split, a list of length num_classes."""
        _, y = self.split(split)
        return torch.bincount(y, minlength=self.num_classes).tolist()

    # -- derived sets ------------------------------------------------------------------------------

    def take(self, n_train: int | None = None, n_test: int | None = None) -> ClassificationData:
        """Keep the first `n_train` training and `n_test` test samples (None keeps a split whole).

        The tensors are views of this instance's tensors (no copy)."""
        for arg, n in (("n_train", n_train), ("n_test", n_test)):
            Optional(Int(0)).check(n, arg)
        a = len(self.x_train) if n_train is None else n_train
        b = len(self.x_test) if n_test is None else n_test
        return replace(
            self,
            x_train=self.x_train[:a],
            y_train=self.y_train[:a],
            x_test=self.x_test[:b],
            y_test=self.y_test[:b],
        )

    def subset(
        self,
        classes: Iterable[int | str] | None = None,
        per_class: int | None = None,
        per_class_test: int | None = None,
        seed: int = 0,
    ) -> ClassificationData:
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

    def to(self, device: str | torch.device) -> ClassificationData:
        """A copy with all tensors moved to `device`."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
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
    raise FileNotFoundError(f"{role} file not found in {root}: looked for {' and '.join(c.name for c in candidates)}")


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
        torch.cat([p[0] for p in parts]),
        torch.cat([p[1] for p in parts]),
        x_test,
        y_test,
        classes=classes,
        name="cifar10",
    )


# --------------------------------------------------------------------------------------------------
# Any tensors / torch Datasets
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Image folders, tensor files, torchvision data sets
# --------------------------------------------------------------------------------------------------

#: File suffixes read as images (case-insensitive). Any other non-hidden file in a class folder is
#: an error: a stray file is reported rather than silently dropped.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})


class ClassSelectionError(ValueError):
    """`only=` (or `classes=`) names a class the data set does not have."""


def _pil_image() -> Any:
    """PIL.Image, imported only when image files are read."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow, which is not installed here; pip install pillow") from None
    return Image


def _check_image_size(image_size: Any) -> tuple[int, int] | None:
    """None, or (H, W) from an int (square) or a pair."""
    if image_size is None:
        return None
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, (bool, np.bool_)):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def _check_channels(channels: Any) -> int | None:
    if channels is None:
        return None
    return int(check_options(channels, "channels", (1, 3)))  # None: taken from the images


def _check_fraction(test_fraction: Any) -> float:
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


def _resolve_only(only: Iterable[int | str] | None, classes: Sequence[str]) -> list[int]:
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
                raise ClassSelectionError(f"class {c!r} is not one of the data set's classes {_names(classes)}")
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


def _names(classes: Sequence[str], limit: int = 6) -> str:
    head = ", ".join(repr(c) for c in classes[:limit])
    return f"[{head}{', ...' if len(classes) > limit else ''}]"


def _class_rng(seed: int, name: str, purpose: str) -> np.random.Generator:
    """A generator per (seed, class, purpose): a class's split does not depend on the other classes."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{purpose}/{name}".encode())])


def _split_positions(n: int, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) positions in range(n), each sorted: round(n * test_fraction) test samples, at
    least one of each split when n >= 2 and test_fraction > 0."""
    n_test = int(round(n * test_fraction))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    elif n < 2:
        n_test = 0
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _cap(positions: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` of `positions`, a seeded random choice kept in order."""
    if limit is None or positions.size <= limit:
        return positions
    return np.sort(rng.choice(positions, size=limit, replace=False))


def _memory_budget(max_bytes: float | None) -> float:
    """max_bytes, or half of this machine's physical memory (no limit where it is unknown)."""
    if max_bytes is not None:
        return float(max_bytes)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return float("inf")


def _check_budget(
    what: str, n: int, sample_shape: Sequence[int], max_bytes: float | None, *, as_float: bool = False
) -> None:
    """Refuse, before decoding, data whose tensors (uint8, or float32 when `as_float`, plus the uint8
    staging copy) would not fit."""
    need = n * math.prod(sample_shape) * (5 if as_float else 2)
    budget = _memory_budget(max_bytes)
    if need > budget:
        kind = "float32" if as_float else "uint8"
        raise MemoryError(
            f"{what}: {n} inputs of shape {list(sample_shape)} need {need / 2**30:.1f} GiB "
            f"({kind} plus a uint8 copy while decoding), more than the {budget / 2**30:.1f} GiB allowed "
            "(max_bytes; default half the machine's memory); read fewer classes (only=; the CLI reads only "
            "the classes it needs when a classifier is given), fewer images (max_per_class=) or smaller ones (image_size=)"
        )


def _u8_to_float(x: torch.Tensor, size: tuple[int, int] | None = None, chunk_bytes: int = 32 << 20) -> torch.Tensor:
    """uint8 [N, C, H, W] (any strides) -> float32 [N, C, H', W'] in [0, 1], converted a chunk of
    about `chunk_bytes` at a time so that no full-size temporary exists; `size` resizes (bilinear,
    antialiased)."""
    n, c, h, w = x.shape
    oh, ow = size if size is not None else (h, w)
    out = torch.empty((n, c, oh, ow), dtype=torch.float32)
    chunk = max(1, chunk_bytes // (4 * c * max(h * w, oh * ow)))
    for i in range(0, n, chunk):
        part = x[i : i + chunk].to(torch.float32).div_(255.0)
        if (oh, ow) != (h, w):
            part = F.interpolate(part, size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)
            part.clamp_(0.0, 1.0)
        out[i : i + chunk] = part
    return out


def _set_channels(x: torch.Tensor, channels: int | None, what: str) -> torch.Tensor:
    """uint8 [N, C, H, W] with C in {1, 3, 4} -> `channels` channels (grey: ITU-R 601-2 luma, as
    Pillow's convert("L"); a fourth (alpha) channel is dropped)."""
    c = x.shape[1]
    if c == 4:
        x, c = x[:, :3], 3
    if c not in (1, 3):
        raise ValueError(f"{what}: images have {c} channels; expected 1 (grey), 3 (RGB) or 4 (RGBA)")
    if channels is None or channels == c:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    luma = (x[:, 0].to(torch.int32) * 299 + x[:, 1].to(torch.int32) * 587 + x[:, 2].to(torch.int32) * 114 + 500) // 1000
    return luma.to(torch.uint8).unsqueeze(1)


# -- image folders ---------------------------------------------------------------------------------


def _class_folders(folder: Path) -> dict[str, Path]:
    """Non-hidden subfolders of `folder` by name (files beside them are ignored)."""
    return {
        d.name: d for d in sorted(folder.iterdir(), key=lambda d: d.name) if d.is_dir() and not d.name.startswith(".")
    }


def _list_images(folder: Path) -> list[Path]:
    """Image files under `folder` (recursively, sorted, hidden files and folders skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            p = Path(dirpath) / f
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(
                    f"{p} is not an image file (expected one of {', '.join(sorted(IMAGE_SUFFIXES))}); "
                    "move it out of the class folder"
                )
            out.append(p)
    return out


def _image_header(Image: Any, path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) of an image file, read from its header."""
    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except Exception as e:
        raise ValueError(f"{path} cannot be read as an image ({type(e).__name__}: {e})") from None


def _decode(Image: Any, path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image file -> uint8 [H, W, channels] at `size` (H, W), resized (bilinear) if needed."""
    h, w = size
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I;16"):  # 16-bit grey: keep the high byte
                im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
            im = im.convert("L" if channels == 1 else "RGB")  # drops alpha, expands palettes
            if im.size != (w, h):
                resample = getattr(Image, "Resampling", Image).BILINEAR
                im = im.resize((w, h), resample)
            return np.asarray(im, dtype=np.uint8).reshape(h, w, channels)
    except Exception as e:
        raise ValueError(f"{path} cannot be decoded as an image ({type(e).__name__}: {e})") from None


def load_image_folder(
    root: PathLike,
    *,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    split: tuple[str, str] = ("train", "test"),
    test_fraction: float = 0.2,
    classes: Sequence[str] | None = None,
    only: Iterable[int | str] | None = None,
    seed: int = 0,
    max_per_class: int | None = None,
    max_bytes: float | None = None,
    name: str | None = None,
) -> ClassificationData:
    """Images in class subfolders: ``root/CLASS/*.png`` (any depth below CLASS), or a ready split
    ``root/train/CLASS/...`` and ``root/test/CLASS/...`` (the names in `split`).

    Args:
        root: the folder. Nothing in it is written.
        image_size: resize every image to this size (an int for a square, or (H, W); bilinear,
            antialiased, aspect ratio not kept). None: all images must have the same size.
        channels: 1 (grey) or 3 (RGB); None: 1 when every image is grey, else 3. Alpha is dropped.
        split: the subfolder names of a ready train/test split; used when both exist.
        test_fraction: without them, this share of each class (rounded, at least one image when a
            class has two or more) becomes the test split, drawn with `seed`.
        classes: the class folders to use, in label order (default: every class folder, sorted by
            name; label i is the i-th).
        only: labels or names of the classes to read; the others are not decoded, but labels keep
            their values and `classes` still names every class (as `ClassificationData.subset`).
        seed: seeds the train/test split and the `max_per_class` choice (per class, so one class's
            draw does not depend on which others are read).
        max_per_class: read at most this many images of each class in each split (a seeded choice).
        max_bytes: refuse (MemoryError, before decoding) when the float32 tensors plus the uint8
            copy made while decoding exceed this; default half of the machine's memory.
        name: the data set's name (default "imagefolder:<folder name>").

    Files: hidden files and folders (".*") are skipped; files directly in `root` (or in a split
    folder) beside the class folders are ignored; any other file whose suffix is not an image
    suffix (IMAGE_SUFFIXES) is an error, and so is an image Pillow cannot decode: a corrupt file is
    reported (its path and Pillow's reason) rather than dropped, so the data never silently depend
    on which files happened to decode. Images are decoded with Pillow into a uint8 buffer, then
    converted to float32 in chunks (peak memory about 1.25 times the float32 result).

    Returns:
        ClassificationData with x float32 [N, C, H, W] in [0, 1] and y int64 labels.
    """
    root_p = Path(root)
    if not root_p.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    size = _check_image_size(image_size)
    ch = _check_channels(channels)
    frac = _check_fraction(test_fraction)
    Optional(Int(1)).check(max_per_class, "max_per_class")
    if not (isinstance(split, (tuple, list)) and len(split) == 2 and all(isinstance(s, str) and s for s in split)):
        raise ValueError(f"split must be two folder names like ('train', 'test'), got {split!r}")
    tr_dir, te_dir = root_p / split[0], root_p / split[1]
    presplit = tr_dir.is_dir() and te_dir.is_dir()
    if tr_dir.is_dir() != te_dir.is_dir():
        have, missing = (split[0], split[1]) if tr_dir.is_dir() else (split[1], split[0])
        raise ValueError(
            f"image folder {root_p} has a {have!r} folder but no {missing!r} folder; give both "
            f"({split[0]}/CLASS/..., {split[1]}/CLASS/...) or neither (CLASS/... split with test_fraction)"
        )
    if presplit:
        found, test_found = _class_folders(tr_dir), _class_folders(te_dir)
        stray = sorted(set(test_found) - set(found))
        if stray:
            raise ValueError(
                f"{te_dir} has class folders {stray} that {tr_dir} lacks; both splits must use the same classes"
            )
    else:
        found, test_found = _class_folders(root_p), {}
    if not found:
        raise ValueError(
            f"image folder {root_p} has no class subfolders; expected {root_p}/CLASS/IMAGE files "
            f"(or {split[0]}/CLASS/... and {split[1]}/CLASS/...)"
        )
    if classes is None:
        names = list(found)
    else:
        names = [str(c) for c in classes]
        missing_names = [c for c in names if c not in found]
        if missing_names or not names or len(set(names)) != len(names):
            raise ClassSelectionError(
                f"classes must name distinct class folders of {root_p} (found {_names(list(found))}), "
                f"got {names}" + (f"; no folder for {missing_names}" if missing_names else "")
            )
    labels = _resolve_only(only, names)

    files: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for label in labels:
        cname = names[label]
        if presplit:
            parts = {
                "train": _list_images(found[cname]),
                "test": _list_images(test_found[cname]) if cname in test_found else [],
            }
        else:
            all_files = _list_images(found[cname])
            tr, te = _split_positions(len(all_files), frac, _class_rng(seed, cname, "split"))
            parts = {"train": [all_files[i] for i in tr], "test": [all_files[i] for i in te]}
        if not parts["train"] and not parts["test"]:
            raise ValueError(f"class folder {found[cname]} holds no images")
        for sp, lst in parts.items():
            keep = _cap(np.arange(len(lst)), max_per_class, _class_rng(seed, cname, f"cap-{sp}"))
            files[sp] += [(lst[i], label) for i in keep]

    Image = _pil_image()
    todo = files["train"] + files["test"]
    sizes: dict[tuple[int, int], Path] = {}
    grey = True
    for path, _ in todo:
        mode, (w, h) = _image_header(Image, path)
        if mode not in _GREY_MODES and mode not in _COLOUR_MODES:
            raise ValueError(f"{path}: image mode {mode!r} is not supported (expected grey, RGB or palette images)")
        grey = grey and mode in _GREY_MODES
        sizes.setdefault((h, w), path)
    if size is None and len(sizes) > 1:
        (s1, p1), (s2, p2) = list(sizes.items())[:2]
        raise ValueError(
            f"images in {root_p} have different sizes ({p1.name} is {s1[0]}x{s1[1]}, {p2.name} is "
            f"{s2[0]}x{s2[1]}); pass image_size (--image-size) to resize them all"
        )
    hw = size if size is not None else next(iter(sizes))
    c = ch if ch is not None else (1 if grey else 3)
    what = f"image folder {root_p}"
    _check_budget(what, len(todo), (c, *hw), max_bytes)

    out: dict[str, torch.Tensor] = {}
    for sp in ("train", "test"):
        buf = np.empty((len(files[sp]), hw[0], hw[1], c), dtype=np.uint8)
        for i, (path, _) in enumerate(files[sp]):
            buf[i] = _decode(Image, path, c, hw)
        out[f"x_{sp}"] = torch.from_numpy(buf).permute(0, 3, 1, 2).contiguous()  # uint8, NCHW
        del buf
        out[f"y_{sp}"] = torch.tensor([lab for _, lab in files[sp]], dtype=torch.int64)
    return ClassificationData(name=name or f"imagefolder:{root_p.resolve().name}", classes=names, **out)


# -- tensor files ----------------------------------------------------------------------------------


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


def _rows(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.from_numpy(keep.astype(np.int64))
    return x.index_select(0, idx), y.index_select(0, idx)


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
    frac = _check_fraction(test_fraction)
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

    x, y = arr("x"), _as_labels(arr("y"), f"{p.name}: y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{p}: x has {x.shape[0]} samples but y has {y.shape[0]} labels; expected equal counts")
    test = None
    if "x_test" in obj:
        test = arr("x_test"), _as_labels(arr("y_test"), f"{p.name}: y_test")
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
    labels = _resolve_only(only, names)

    splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    yn = y.numpy()
    parts: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for label in labels:
        pos = np.flatnonzero(yn == label)
        if test is None:
            tr, te = _split_positions(pos.size, frac, _class_rng(seed, names[label], "split"))
            parts["train"].append(_cap(pos[tr], max_per_class, _class_rng(seed, names[label], "cap-train")))
            parts["test"].append(_cap(pos[te], max_per_class, _class_rng(seed, names[label], "cap-test")))
        else:
            parts["train"].append(_cap(pos, max_per_class, _class_rng(seed, names[label], "cap-train")))
    splits["train"] = _rows(x, y, np.sort(np.concatenate(parts["train"])))
    if test is None:
        splits["test"] = _rows(x, y, np.sort(np.concatenate(parts["test"])))
    else:
        tyn = test[1].numpy()
        for label in labels:
            pos = np.flatnonzero(tyn == label)
            parts["test"].append(_cap(pos, max_per_class, _class_rng(seed, names[label], "cap-test")))
        splits["test"] = _rows(*test, np.sort(np.concatenate(parts["test"])))
    return from_tensors(
        *splits["train"], *splits["test"], classes=names, name=name or f"tensors:{p.stem}", keep_uint8=True
    )


# -- torchvision -----------------------------------------------------------------------------------


def _torchvision() -> Any:
    try:
        import torchvision
    except Exception as e:  # not installed, or built for another torch (then it fails with a RuntimeError)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ImportError(
            f"torchvision data sets need torchvision, which cannot be imported here ({type(e).__name__}: "
            f"{first}); install the torchvision that matches torch {torch.__version__}"
        ) from None
    return torchvision


def _torchvision_class(tv: Any, name: str) -> Any:
    from torch.utils.data import Dataset

    known = {k: v for k, v in vars(tv.datasets).items() if isinstance(v, type) and issubclass(v, Dataset)}
    for k, v in known.items():
        if k.lower() == name.lower():
            return k, v
    raise ValueError(f"torchvision has no data set {name!r}; known: {', '.join(sorted(known))}")


def _as_nchw_u8(data: Any, what: str) -> torch.Tensor | None:
    """A data set's `.data` as uint8 [N, C, H, W] (from [N, H, W], [N, H, W, C] or [N, C, H, W]),
    or None when it is not a uint8 image array."""
    t = torch.as_tensor(np.asarray(data)) if not isinstance(data, torch.Tensor) else data
    if t.dtype != torch.uint8 or t.dim() not in (3, 4):
        return None
    if t.dim() == 3:
        return t.unsqueeze(1)
    if t.shape[1] in (1, 3) and t.shape[3] not in (1, 3, 4):
        return t
    if t.shape[3] in (1, 3, 4):
        return t.permute(0, 3, 1, 2)
    return None


def _dataset_arrays(
    ds: Any, what: str, channels: int | None, size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [N, C, H, W], int64 [N]) of a torchvision data set: its `.data` and `.targets` /
    `.labels` when it has them, else every item decoded (PIL images) one by one."""
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = getattr(ds, "labels", None)
    data = getattr(ds, "data", None)
    x = _as_nchw_u8(data, what) if data is not None else None
    if x is not None and labels is not None:
        return x, torch.as_tensor(np.asarray(labels)).to(torch.int64).reshape(-1)
    Image = _pil_image()
    items, ys = [], []
    shape = None
    for i in range(len(ds)):
        img, lab = ds[i][:2]
        if not isinstance(img, Image.Image):
            raise ValueError(f"{what}: item {i} is a {type(img).__name__}, expected a PIL image")
        c = channels or (1 if img.mode in _GREY_MODES else 3)
        hw = size or (img.size[1], img.size[0])
        if shape is None:
            shape = (c, *hw)
        elif (c, *hw) != shape:
            raise ValueError(
                f"{what}: images differ in size or mode (item 0: {list(shape)}, item {i}: {[c, *hw]}); "
                "pass image_size (--image-size) and channels (--channels)"
            )
        img = img.convert("L" if c == 1 else "RGB")
        if img.size != (hw[1], hw[0]):
            img = img.resize((hw[1], hw[0]), getattr(Image, "Resampling", Image).BILINEAR)
        items.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).reshape(hw[0], hw[1], c).copy()).permute(2, 0, 1))
        ys.append(int(lab))
    if not items:
        raise ValueError(f"{what} is empty")
    return torch.stack(items), torch.tensor(ys, dtype=torch.int64)


def load_torchvision_dataset(
    name: str,
    root: PathLike,
    *,
    download: bool = False,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    only: Iterable[int | str] | None = None,
    seed: int = 0,
    max_per_class: int | None = None,
    max_bytes: float | None = None,
) -> ClassificationData:
    """A torchvision data set (FashionMNIST, CIFAR10, CIFAR100, SVHN, STL10, ...) read from `root`.

    Needs torchvision (ImportError with the reason otherwise). Nothing is downloaded unless
    `download=True`; without it, missing files are a FileNotFoundError saying so. The train and
    test splits are the data set's own (its `train=` or `split=` argument). `image_size`,
    `channels`, `only`, `seed`, `max_per_class` and `max_bytes` work as in `load_image_folder`
    (resizing here is bilinear with antialiasing, in torch). Class names come from the data set's
    `classes` attribute when it has one. The name is "torchvision:<Name>".
    """
    size = _check_image_size(image_size)
    ch = _check_channels(channels)
    Optional(Int(1)).check(max_per_class, "max_per_class")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a torchvision data set name like 'CIFAR10', got {name!r}")
    tv = _torchvision()
    cls_name, cls = _torchvision_class(tv, name)
    what = f"torchvision:{cls_name}"
    root_p = Path(root)
    if not download and not root_p.is_dir():
        raise FileNotFoundError(
            f"{what}: data folder {str(root)!r} does not exist (download=True / --download fetches the data set there)"
        )
    params = inspect.signature(cls).parameters

    def make(train: bool) -> Any:
        kw: dict[str, Any] = {}
        if "train" in params:
            kw["train"] = train
        elif "split" in params:
            kw["split"] = "train" if train else "test"
        else:
            raise ValueError(
                f"{what} has neither a train= nor a split= argument; load it yourself and use from_dataset"
            )
        if "download" in params:
            kw["download"] = bool(download)
        try:
            return cls(str(root_p), **kw)
        except (RuntimeError, FileNotFoundError, OSError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            hint = "" if download else "; download=True (--download) fetches it"
            raise FileNotFoundError(
                f"{what}: could not read the {'train' if train else 'test'} split from {root_p} ({first}){hint}"
            ) from None

    ds = {"train": make(True), "test": make(False)}
    arrays = {sp: _dataset_arrays(d, what, ch, size) for sp, d in ds.items()}
    names = getattr(ds["train"], "classes", None)
    if not names:
        top = max(int(y.max()) for _, y in arrays.values() if y.numel())
        names = [str(i) for i in range(top + 1)]
    names = [str(c) for c in names]
    labels = _resolve_only(only, names)
    selected: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for sp, (x, y) in arrays.items():
        yn = y.numpy()
        keep = [
            _cap(np.flatnonzero(yn == lab), max_per_class, _class_rng(seed, names[lab], f"cap-{sp}")) for lab in labels
        ]
        selected[sp] = _rows(x, y, np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))
    c_out = ch or (3 if selected["train"][0].shape[1] >= 3 else 1)
    hw = size or tuple(selected["train"][0].shape[2:])
    resized = size is not None and tuple(size) != tuple(selected["train"][0].shape[2:])
    n_all = sum(x.shape[0] for x, _ in selected.values())
    _check_budget(what, n_all, (c_out, *hw), max_bytes, as_float=resized)
    out: dict[str, torch.Tensor] = {}
    for sp, (x, y) in selected.items():
        x = _set_channels(x, ch, what)
        # resized images are float32 (the bilinear resize is not rounded back to bytes); else uint8
        out[f"x_{sp}"] = _u8_to_float(x, size) if resized else x.contiguous()
        out[f"y_{sp}"] = y
    return from_tensors(
        out["x_train"], out["y_train"], out["x_test"], out["y_test"], classes=names, name=what, keep_uint8=True
    )
