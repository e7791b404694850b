"""torchvision's data sets (FashionMNIST, CIFAR10, SVHN, ...) read from a folder, downloaded only
when asked; their pixels kept as uint8, or resized in torch to float32."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.images import GREY_MODES, check_budget, check_channels, check_image_size, pil_image
from deepdig_fast.data.selection import cap_positions, class_rng, resolve_only, select_rows
from deepdig_fast.data.tensors import from_tensors
from deepdig_fast.io import PathLike
from deepdig_fast.validation import Int, Optional

__all__ = ["load_torchvision_dataset"]


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
    Image = pil_image()
    items, ys = [], []
    shape = None
    for i in range(len(ds)):
        img, lab = ds[i][:2]
        if not isinstance(img, Image.Image):
            raise ValueError(f"{what}: item {i} is a {type(img).__name__}, expected a PIL image")
        c = channels or (1 if img.mode in GREY_MODES else 3)
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
    size = check_image_size(image_size)
    ch = check_channels(channels)
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
    labels = resolve_only(only, names)
    selected: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for sp, (x, y) in arrays.items():
        yn = y.numpy()
        keep = [
            cap_positions(np.flatnonzero(yn == lab), max_per_class, class_rng(seed, names[lab], f"cap-{sp}"))
            for lab in labels
        ]
        selected[sp] = select_rows(x, y, np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64))
    c_out = ch or (3 if selected["train"][0].shape[1] >= 3 else 1)
    hw = size or tuple(selected["train"][0].shape[2:])
    resized = size is not None and tuple(size) != tuple(selected["train"][0].shape[2:])
    n_all = sum(x.shape[0] for x, _ in selected.values())
    check_budget(what, n_all, (c_out, *hw), max_bytes, as_float=resized)
    out: dict[str, torch.Tensor] = {}
    for sp, (x, y) in selected.items():
        x = _set_channels(x, ch, what)
        # resized images are float32 (the bilinear resize is not rounded back to bytes); else uint8
        out[f"x_{sp}"] = _u8_to_float(x, size) if resized else x.contiguous()
        out[f"y_{sp}"] = y
    return from_tensors(
        out["x_train"], out["y_train"], out["x_test"], out["y_test"], classes=names, name=what, keep_uint8=True
    )
