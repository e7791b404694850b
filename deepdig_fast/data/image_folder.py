"""Image files in class folders (``root/CLASS/...``, or a ready ``train/`` and ``test/`` split)
decoded with Pillow into a `ClassificationData` of uint8 pixels."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.images import COLOUR_MODES, GREY_MODES, check_budget, check_channels, check_image_size, pil_image
from deepdig_fast.data.selection import (
    ClassSelectionError,
    cap_positions,
    check_fraction,
    class_rng,
    format_names,
    resolve_only,
    split_positions,
)
from deepdig_fast.io import PathLike
from deepdig_fast.validation import Int, Optional

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

#: File suffixes read as images (case-insensitive). Any other non-hidden file in a class folder is
#: an error: a stray file is reported rather than silently dropped.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})


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
    size = check_image_size(image_size)
    ch = check_channels(channels)
    frac = check_fraction(test_fraction)
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
                f"classes must name distinct class folders of {root_p} (found {format_names(list(found))}), "
                f"got {names}" + (f"; no folder for {missing_names}" if missing_names else "")
            )
    labels = resolve_only(only, names)

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
            tr, te = split_positions(len(all_files), frac, class_rng(seed, cname, "split"))
            parts = {"train": [all_files[i] for i in tr], "test": [all_files[i] for i in te]}
        if not parts["train"] and not parts["test"]:
            raise ValueError(f"class folder {found[cname]} holds no images")
        for sp, lst in parts.items():
            keep = cap_positions(np.arange(len(lst)), max_per_class, class_rng(seed, cname, f"cap-{sp}"))
            files[sp] += [(lst[i], label) for i in keep]

    Image = pil_image()
    todo = files["train"] + files["test"]
    sizes: dict[tuple[int, int], Path] = {}
    grey = True
    for path, _ in todo:
        mode, (w, h) = _image_header(Image, path)
        if mode not in GREY_MODES and mode not in COLOUR_MODES:
            raise ValueError(f"{path}: image mode {mode!r} is not supported (expected grey, RGB or palette images)")
        grey = grey and mode in GREY_MODES
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
    check_budget(what, len(todo), (c, *hw), max_bytes)

    out: dict[str, torch.Tensor] = {}
    for sp in ("train", "test"):
        buf = np.empty((len(files[sp]), hw[0], hw[1], c), dtype=np.uint8)
        for i, (path, _) in enumerate(files[sp]):
            buf[i] = _decode(Image, path, c, hw)
        out[f"x_{sp}"] = torch.from_numpy(buf).permute(0, 3, 1, 2).contiguous()  # uint8, NCHW
        del buf
        out[f"y_{sp}"] = torch.tensor([lab for _, lab in files[sp]], dtype=torch.int64)
    return ClassificationData(name=name or f"imagefolder:{root_p.resolve().name}", classes=names, **out)
