"""The IDX format of MNIST and Fashion-MNIST: one file read into an array, four files into a
`ClassificationData`."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from deepdig_fast.data.checksums import verify_checksums
from deepdig_fast.data.container import SPLITS, ClassificationData
from deepdig_fast.io import PathLike

__all__ = ["IDX_FILES", "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "read_idx", "load_idx_dataset"]

#: File names of an IDX data set (MNIST and Fashion-MNIST use the same ones). A name ending in ".gz"
#: is also found uncompressed (without ".gz") and vice versa.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension


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
    verify_checksums(root_p, paths.values(), required=require_checksums)

    arrays: dict[str, torch.Tensor] = {}
    num_labels = 0
    for split in SPLITS:
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
