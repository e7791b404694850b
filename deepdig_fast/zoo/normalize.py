"""Input preprocessing inside the model: named normalisations, `parse_normalize` / `parse_resize`
for what a caller asks for, and the `Preprocessed` wrapper that applies them in every forward.

Needs only torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Normalization", "NORMALIZATIONS", "parse_normalize", "parse_resize", "Preprocessed"]


@dataclass(frozen=True)
class Normalization:
    """Per-channel (x - mean) / std; one value broadcasts over every channel."""

    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ValueError(f"normalize {self.name!r}: mean has {len(self.mean)} values but std has {len(self.std)}")
        for v in (*self.mean, *self.std):
            if not math.isfinite(v):
                raise ValueError(f"normalize {self.name!r}: mean and std must be finite, got {v}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"normalize {self.name!r}: std must be positive, got {list(self.std)}")

    @property
    def channels(self) -> int:
        return max(len(self.mean), len(self.std))


#: Named normalisations (x in [0, 1], per channel, RGB order).
NORMALIZATIONS: dict[str, Normalization] = {
    # ImageNet-1k training set per-channel mean / std, the values torchvision's and timm's ImageNet
    # weights were trained with: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    "imagenet": Normalization("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # CIFAR-10 training set per-channel pixel mean (0.4914, 0.4822, 0.4465) and std
    # (0.2470, 0.2435, 0.2616). (The also-quoted std (0.2023, 0.1994, 0.2010) is the mean of
    # per-image stds, not the pixel std; give it as MEAN,STD if your model was trained with it.)
    "cifar10": Normalization("cifar10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # MNIST training set pixel mean 0.1307 and std 0.3081 (the PyTorch MNIST example's values).
    "mnist": Normalization("mnist", (0.1307,), (0.3081,)),
}


def parse_normalize(text: Any) -> Normalization | None | str:
    """What `--normalize` / `load_model(normalize=...)` asks for.

    "auto": the zoo model's own normalisation (none for a model without one); "none": none;
    "imagenet" | "cifar10" | "mnist": NORMALIZATIONS; "MEAN,STD": one mean and one std for every
    channel; "M1,M2,M3,S1,S2,S3": per channel (the first half are means, the second half stds).
    A Normalization, None or "auto" passes through. Returns a Normalization, None or "auto".
    """
    if text is None or isinstance(text, Normalization):
        return text
    if not isinstance(text, str):
        raise TypeError(f"normalize must be a str like 'imagenet' or '0.5,0.25', got {type(text).__name__}")
    key = text.strip().lower()
    if key == "auto":
        return "auto"
    if key == "none":
        return None
    if key in NORMALIZATIONS:
        return NORMALIZATIONS[key]
    parts = [p.strip() for p in key.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) < 2 or len(values) % 2:
        raise ValueError(
            f"normalize must be auto, none, {', '.join(NORMALIZATIONS)}, MEAN,STD or "
            f"M1,...,Mc,S1,...,Sc (as many means as stds), got {text!r}"
        )
    half = len(values) // 2
    return Normalization(text.strip(), tuple(values[:half]), tuple(values[half:]))


def parse_resize(resize: Any, arg: str = "resize") -> tuple[int, int] | None:
    if resize is None or (isinstance(resize, str) and resize.strip().lower() == "none"):
        return None
    if isinstance(resize, str):
        try:
            resize = [int(p) for p in resize.split(",")]
        except ValueError:
            raise ValueError(f"{arg} must be none, N or H,W (pixels), got {resize!r}") from None
    if isinstance(resize, int) and not isinstance(resize, bool):
        resize = (resize, resize)
    if (
        not isinstance(resize, Sequence)
        or len(resize) not in (1, 2)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in resize)
    ):
        raise ValueError(f"{arg} must be None, a positive int or (H, W), got {resize!r}")
    h, w = (resize[0], resize[0]) if len(resize) == 1 else resize
    return int(h), int(w)


class Preprocessed(nn.Module):
    """`model` behind its preprocessing: inputs in [0, 1] pixel space, optionally resized, then normalised.

    forward(x): x [N, C, H, W] in [0, 1] -> resize to `resize` (when given and x differs; bilinear,
    align_corners=False, antialias off, so the map is smooth, differentiable and the same on every
    device) -> (x - mean) / std per channel (when mean/std are given) -> model. The caller's tensor is
    never modified. Gradients flow through to the pixels.

    Args:
        model: the classifier that expects preprocessed inputs (available as `.model`).
        mean, std: per-channel values (or one value for all channels); both or neither. A
            `Normalization` may be passed as `mean` instead.
        resize: None, an int (square) or (H, W).
        name: how describe() names the normalisation (e.g. "imagenet", "timm pretrained_cfg").
        embedding_layer: the submodule name (as in this wrapper's named_modules) holding the
            embedding; default: "model." + model.EMBEDDING_LAYER when the model declares one. Set
            as EMBEDDING_LAYER, which run_pair / run_atlas use by default.

    mean and std are buffers, so they are part of the state_dict (and of the classifier checksum a
    run folder records: another normalisation is another classifier).
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Any = None,
        std: Any = None,
        resize: Any = None,
        *,
        name: str | None = None,
        embedding_layer: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(mean, Normalization):
            if std is not None:
                raise ValueError("pass either a Normalization as mean or mean= and std=, not both")
            name = name or mean.name
            mean, std = mean.mean, mean.std
        if (mean is None) != (std is None):
            raise ValueError("mean and std must be given together (or neither)")
        self.model = model
        self.norm_name = None
        if mean is not None:

            def values(v, arg):
                t = torch.as_tensor(v, dtype=torch.float32).flatten()
                if t.numel() == 0:
                    raise ValueError(f"{arg} must hold at least one value")
                return t

            norm = Normalization(
                name or "custom", tuple(values(mean, "mean").tolist()), tuple(values(std, "std").tolist())
            )
            self.norm_name = norm.name
            c = norm.channels
            self.register_buffer("mean", torch.tensor(norm.mean, dtype=torch.float32).expand(c).clone())
            self.register_buffer("std", torch.tensor(norm.std, dtype=torch.float32).expand(c).clone())
        else:
            self.mean: torch.Tensor | None = None
            self.std: torch.Tensor | None = None
        self.resize = parse_resize(resize)
        if embedding_layer is None:
            inner = getattr(model, "EMBEDDING_LAYER", None)
            embedding_layer = f"model.{inner}" if isinstance(inner, str) else None
        if embedding_layer is not None:
            self.EMBEDDING_LAYER = embedding_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize is not None and tuple(x.shape[-2:]) != self.resize:
            if x.dim() != 4:
                raise ValueError(f"Preprocessed: resize needs inputs [N, C, H, W], got shape {list(x.shape)}")
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=False)
        if self.mean is not None:
            assert self.std is not None
            c = self.mean.numel()
            if x.dim() < 2 or (c != 1 and x.shape[1] != c):
                raise ValueError(
                    f"Preprocessed: the normalisation has {c} channels, but the input has shape "
                    f"{list(x.shape)} (channels in dim 1)"
                )
            shape = [1, c] + [1] * (x.dim() - 2)
            x = (x - self.mean.to(x.dtype).view(shape)) / self.std.to(x.dtype).view(shape)
        return self.model(x)

    def describe(self) -> dict[str, Any]:
        """What the manifest records: normalisation name, mean, std, resize and its interpolation."""
        return {
            "normalize": self.norm_name,
            "mean": None if self.mean is None else [round(float(v), 6) for v in self.mean],
            "std": None if self.std is None else [round(float(v), 6) for v in self.std],
            "resize": None if self.resize is None else list(self.resize),
            "interpolation": None if self.resize is None else "bilinear, align_corners=False, antialias off",
        }

    def extra_repr(self) -> str:
        d = self.describe()
        return f"normalize={d['normalize']}, resize={d['resize']}"
