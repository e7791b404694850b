"""What the image readers (image folders, torchvision data sets) share: Pillow, imported only when
images are read; the image modes they accept; the image_size and channels arguments; and the
memory check that refuses a data set before it is decoded."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepdig_fast.validation import check_options

__all__ = ["GREY_MODES", "COLOUR_MODES", "pil_image", "check_image_size", "check_channels", "check_budget"]

GREY_MODES = frozenset({"1", "L", "LA", "La", "I;16", "I;16L", "I;16B", "I;16N"})
COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})


def pil_image() -> Any:
    """PIL.Image, imported only when image files are read."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading image files needs Pillow, which is not installed here; pip install pillow") from None
    return Image


def check_image_size(image_size: Any) -> tuple[int, int] | None:
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


def check_channels(channels: Any) -> int | None:
    """None, or the channel count asked for: 1 (grey) or 3 (RGB)."""
    if channels is None:
        return None
    return int(check_options(channels, "channels", (1, 3)))  # None: taken from the images


def _memory_budget(max_bytes: float | None) -> float:
    """max_bytes, or half of this machine's physical memory (no limit where it is unknown)."""
    if max_bytes is not None:
        return float(max_bytes)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return float("inf")


def check_budget(
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
