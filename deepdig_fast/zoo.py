"""Any classifier: model zoos, their normalisation, and the embedding layer found without naming it.

The model contract: DeepDIG works in the data's pixel space, values in [0, 1]. Interpolation,
autoencoders, baselines and distances all stay there. Whatever preprocessing a classifier needs
(mean/std normalisation, a resize to the resolution it was trained at) happens inside the model, in
a `Preprocessed` wrapper, so it is part of every forward -- and of every gradient that flows back to
the pixels.

    model, info = load_model("timm:resnet18", weights="ft.safetensors", in_shape=(3, 32, 32))
    # info: source, weights, num_classes, classes, normalisation, resize, embedding layer

Model sources (`spec`):
    package.module:factory   your own code (checkpoint.load_user_model); file.py:factory works too
    torchvision:NAME         torchvision.models.get_model(NAME)
    timm:NAME                timm.create_model(NAME)
    hf:MODEL_ID_OR_DIR       transformers.AutoModelForImageClassification, wrapped to return logits
    robustbench:[DATASET/THREAT/]NAME   robustbench's model zoo (its normalisation is inside the model)

Weights: a state_dict file (`.pt`/`.pth`, read with weights_only=True, or `.safetensors`), or the
library's own pretrained weights when they already are in the local cache (torch hub cache, Hugging
Face cache). Nothing is ever downloaded here: without the cache the error says how to fetch them.

torchvision, timm, transformers, safetensors and robustbench are optional (`pip install
deepdig_fast[zoo]`) and imported only when a spec needs them; `Preprocessed`, `parse_normalize` and
`find_embedding_layer` need none of them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn
from torch.nn import functional as F

from deepdig_fast.validation import Int, Optional

__all__ = [
    "Normalization",
    "NORMALIZATIONS",
    "parse_normalize",
    "Preprocessed",
    "HFClassifier",
    "find_embedding_layer",
    "load_model",
    "ZOO_SOURCES",
]

ZOO_SOURCES = ("torchvision", "timm", "hf", "robustbench")


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


class HFClassifier(nn.Module):
    """A Hugging Face image classifier (AutoModelForImageClassification) as a plain logits model:
    forward(x) = hf(pixel_values=x).logits. The wrapped model is `.hf`."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hf(pixel_values=x).logits


# --------------------------------------------------------------------------------------------------
# the embedding layer
# --------------------------------------------------------------------------------------------------


def _last_linear(module: nn.Module, prefix: str) -> str | None:
    if isinstance(module, nn.Linear):
        return prefix
    found = None
    for name, m in module.named_modules(prefix=prefix):
        if isinstance(m, nn.Linear):
            found = name
    return found


def _structural_classifier(model: nn.Module) -> str | None:
    """The classifier layer by structure: a timm model's `pretrained_cfg["classifier"]`, else the last
    registered nn.Linear (torchvision's fc / classifier[-1] / heads.head, Hugging Face's classifier)."""
    modules = dict(model.named_modules())
    for prefix, m in model.named_modules():
        cfg = getattr(m, "pretrained_cfg", None)
        head = cfg.get("classifier") if isinstance(cfg, Mapping) else None
        if isinstance(head, str):
            full = f"{prefix}.{head}" if prefix else head
            if full in modules:
                name = _last_linear(modules[full], full)
                if name is not None:
                    return name
    return _last_linear(model, "") or None


def _traced_classifier(model: nn.Module, example: torch.Tensor) -> str | None:
    """The nn.Linear whose output is the model's output (or, failing that, the last one run whose
    output has the logits' shape), found by one forward of `example`."""
    from .hooks import inference

    runs: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(lambda _m, _i, out, name=name: runs.append((name, out))))
    try:
        with inference(model):
            logits = model(example.clone())
    finally:
        for h in handles:
            h.remove()
    if not isinstance(logits, torch.Tensor):
        return None
    for name, out in reversed(runs):
        if out is logits:
            return name
    for name, out in reversed(runs):
        if isinstance(out, torch.Tensor) and out.shape == logits.shape:
            return name
    return None


def find_embedding_layer(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """The embedding layer for `embedding_layer="auto"`: the penultimate representation, as a
    `deepdig_fast.hooks` layer name.

    In order: the model's declared `EMBEDDING_LAYER` (the reference CNN/FCN/ResNet; a `Preprocessed`
    wrapper passes its model's on, prefixed "model."); else the input of the final nn.Linear
    classifier -- the one whose output is the logits in one forward of `example` (when given), or by
    structure: a timm model's `pretrained_cfg["classifier"]` (the input of timm's head is
    `forward_head(pre_logits=True)`, `num_features` wide), else the last registered nn.Linear
    (torchvision's `fc`, `classifier[-1]`, `heads.head`; Hugging Face's `classifier`). Returns e.g.
    "model.fc:input". Raises ValueError when the model has no nn.Linear layer (name one yourself).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    declared = getattr(model, "EMBEDDING_LAYER", None)
    if isinstance(declared, str):
        return declared
    name = None
    if example is not None:
        name = _traced_classifier(model, example)
    if name is None:
        name = _structural_classifier(model)
    if not name:
        raise ValueError(
            f"embedding_layer 'auto': {type(model).__name__} has no nn.Linear classifier layer; "
            "name the embedding layer (embedding_layer='NAME' or 'NAME:input', --embedding-layer)"
        )
    return f"{name}:input"


def resolve_embedding_layer(
    model: nn.Module, embedding_layer: str | None, example: torch.Tensor | None = None
) -> str | None:
    """The embedding layer a run uses, from what the caller passed.

    None: the model's declared `EMBEDDING_LAYER` if it has one, else no layer (EPBS and the linearity
    metric are then skipped). "auto": `find_embedding_layer(model, example)` -- a model without an
    nn.Linear classifier is a ValueError naming the argument. "none": no layer. Any other string is a
    layer name (`NAME` or `NAME:input`), used as given; `check_fits` verifies it with one forward.
    """
    if embedding_layer is None:
        declared = getattr(model, "EMBEDDING_LAYER", None)
        return declared if isinstance(declared, str) else None
    if not isinstance(embedding_layer, str) or not embedding_layer.strip():
        raise TypeError(f"embedding_layer must be None, 'auto', 'none' or a layer name, got {embedding_layer!r}")
    word = embedding_layer.strip().lower()
    if word == "none":
        return None
    if word == "auto":
        if example is not None and isinstance(model, nn.Module):
            param = next(iter(model.parameters()), None)
            example = example if param is None else example.to(param.device)
        return find_embedding_layer(model, example)
    return embedding_layer


# --------------------------------------------------------------------------------------------------
# load_model
# --------------------------------------------------------------------------------------------------


def _import(package: str, spec: str, extra: str = "deepdig_fast[zoo]") -> Any:
    """Import an optional package; a missing (or broken) one is a one-line ImportError naming the spec."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(
            f"{spec} needs the {package} package, which is not installed "
            f"(pip install {extra}; torchvision must match your torch)"
        ) from e
    except RuntimeError as e:  # e.g. torchvision built for another torch: "operator torchvision::nms does not exist"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ImportError(
            f"{spec} needs {package}, but it does not import ({first}); install the {package} "
            "build that matches your torch"
        ) from e


def read_weights(path: str | os.PathLike, spec: str = "weights") -> dict[str, torch.Tensor]:
    """A state_dict from `.safetensors` (safetensors.torch.load_file) or a torch file (weights_only);
    a dict holding one under "state_dict" / "model_state_dict" and a "module." prefix (DDP) are
    unwrapped."""
    from .checkpoint import state_dict_from
    from .io import load_tensors

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} does not exist")
    if p.suffix == ".safetensors":
        st = _import("safetensors.torch", f"{spec} (.safetensors weights)")
        state = dict(st.load_file(str(p)))
    else:
        state = state_dict_from(load_tensors(p), str(p))
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _load_state(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())
        raise ValueError(f"{where}: the weights do not fit {type(model).__name__}: {first[:400]}") from e


def _classes_in_state(head: str | None, state: Mapping[str, torch.Tensor] | None) -> int | None:
    if head is None or state is None:
        return None
    w = state.get(f"{head}.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def _reconcile_classes(spec: str, asked: int | None, in_weights: int | None, default: int | None) -> int | None:
    if asked is not None and in_weights is not None and asked != in_weights:
        raise ValueError(f"{spec}: num_classes={asked}, but the weights' final layer has {in_weights} outputs")
    return asked if asked is not None else in_weights if in_weights is not None else default


def _meta_build(build) -> nn.Module | None:
    """The architecture without memory (meta device), to read its layer names; None if that fails."""
    try:
        with torch.device("meta"):
            return build()
    except Exception:
        return None


@dataclass
class _Built:
    model: nn.Module
    weights: str
    num_classes: int | None
    classes: list[str] | None = None
    norm: Normalization | None = None
    norm_source: str | None = None
    resize: tuple[int, int] | None = None
    wrapped: bool = True


def _hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _torchvision(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> _Built:
    _import("torchvision", spec)
    from torchvision import models

    try:
        builder = models.get_model_builder(name)
    except ValueError:
        raise ValueError(
            f"{spec}: torchvision has no model {name!r} (torchvision.models.list_models() lists "
            "them, e.g. resnet18, convnext_tiny, vit_b_16)"
        ) from None
    try:
        default_weights = models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        default_weights = None
    norm = None
    if default_weights is not None:
        tf = default_weights.transforms()
        if getattr(tf, "mean", None) is not None and getattr(tf, "std", None) is not None:
            norm = Normalization(f"torchvision {default_weights}", tuple(tf.mean), tuple(tf.std))
    kwargs: dict[str, Any] = {}
    if name.startswith("vit_") and in_shape is not None and (state is not None or not pretrained):
        if in_shape[-1] != in_shape[-2]:
            raise ValueError(f"{spec}: torchvision's ViT takes square images, in_shape is {list(in_shape)}")
        kwargs["image_size"] = int(in_shape[-1])
    if state is None and pretrained:
        if default_weights is None:
            raise ValueError(f"{spec}: torchvision has no pretrained weights for {name}; pass weights=FILE (--weights)")
        categories = default_weights.meta.get("categories") or []
        if num_classes is not None and num_classes != len(categories):
            raise ValueError(
                f"{spec}: the pretrained weights ({default_weights}) have {len(categories)} classes, "
                f"but num_classes={num_classes}; pass your own weights (--weights)"
            )
        file = _hub_file(default_weights.url)
        if not file.is_file():
            raise FileNotFoundError(
                f"{spec}: the pretrained weights {default_weights} are not in the local torch hub cache ({file}); "
                f"fetch them once with python -c \"import torchvision; torchvision.models.get_model('{name}', "
                f"weights='DEFAULT')\" (or pass --weights FILE)"
            )
        model = builder(weights=default_weights)  # the cached file: torchvision reads it, nothing is downloaded
        crop = getattr(default_weights.transforms(), "crop_size", None)
        return _Built(
            model,
            f"pretrained {default_weights} ({file})",
            len(categories),
            [str(c) for c in categories],
            norm,
            "torchvision weights transforms",
            parse_resize(list(crop)) if crop else None,
        )
    if state is not None:
        meta = _meta_build(lambda: builder(weights=None, **kwargs))
        n = _reconcile_classes(
            spec,
            num_classes,
            _classes_in_state(_structural_classifier(meta) if meta is not None else None, state),
            None,
        )
        model = builder(weights=None, **({"num_classes": n} if n is not None else {}), **kwargs)
        _load_state(model, state, spec)
        return _Built(model, "", n, None, norm, "torchvision weights transforms" if norm else None)
    model = builder(weights=None, **({"num_classes": num_classes} if num_classes is not None else {}), **kwargs)
    return _Built(model, "random", num_classes, None, norm, "torchvision weights transforms" if norm else None)


def _timm_cached_file(cfg: Mapping[str, Any]) -> Path | None:
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            hf_hub_download = None
        if hf_hub_download is not None:
            names = (
                [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else ["model.safetensors", "pytorch_model.bin"]
            )
            for fn in names:
                try:
                    return Path(hf_hub_download(hub_id, fn, local_files_only=True))
                except Exception:  # LocalEntryNotFoundError, EntryNotFoundError, offline errors
                    continue
    url = cfg.get("url")
    if url and _hub_file(url).is_file():
        return _hub_file(url)
    return None


def _timm(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> _Built:
    timm = _import("timm", spec)
    if not timm.is_model(name):
        raise ValueError(f"{spec}: timm has no model {name!r} (timm.list_models('PATTERN*') lists them)")
    meta = _meta_build(lambda: timm.create_model(name, pretrained=False))
    cfg = dict(getattr(meta, "pretrained_cfg", None) or {})
    if meta is None:
        probe = timm.create_model(name, pretrained=False)
        cfg, meta = dict(probe.pretrained_cfg), probe
    norm = None
    if cfg.get("mean") and cfg.get("std"):
        tag = f"{cfg.get('architecture', name)}.{cfg['tag']}" if cfg.get("tag") else name
        norm = Normalization(f"timm pretrained_cfg {tag}", tuple(cfg["mean"]), tuple(cfg["std"]))
    kwargs: dict[str, Any] = {}
    if in_shape is not None and (state is not None or not pretrained):
        if cfg.get("fixed_input_size"):
            kwargs["img_size"] = tuple(int(v) for v in in_shape[-2:])
        if in_shape[0] != 3:
            kwargs["in_chans"] = int(in_shape[0])
    if state is None and pretrained:
        file = _timm_cached_file(cfg)
        if file is None:
            where = cfg.get("hf_hub_id") or cfg.get("url") or "?"
            raise FileNotFoundError(
                f"{spec}: the pretrained weights ({where}) are not in the local cache; fetch them once with "
                f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\" (or pass --weights FILE)"
            )
        n_pre = cfg.get("num_classes")
        if num_classes is not None and n_pre is not None and num_classes != n_pre:
            raise ValueError(
                f"{spec}: the pretrained weights have {n_pre} classes, but num_classes={num_classes}; "
                "pass your own weights (--weights)"
            )
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(file)})
        classes = None
        try:
            from timm.data import ImageNetInfo, infer_imagenet_subset

            subset = infer_imagenet_subset(model)
            classes = list(ImageNetInfo(subset).label_names()) if subset else None
        except Exception:  # label names are a convenience
            classes = None
        size = cfg.get("input_size")
        return _Built(
            model,
            f"pretrained {cfg.get('hf_hub_id') or cfg.get('url')} ({file})",
            getattr(model, "num_classes", n_pre),
            classes,
            norm,
            "timm pretrained_cfg",
            parse_resize(list(size[-2:])) if size else None,
        )
    head = _structural_classifier(meta) if meta is not None else None
    n = _reconcile_classes(spec, num_classes, _classes_in_state(head, state), None)
    model = timm.create_model(name, pretrained=False, **({"num_classes": n} if n is not None else {}), **kwargs)
    if state is not None:
        _load_state(model, state, spec)
    return _Built(
        model,
        "" if state is not None else "random",
        getattr(model, "num_classes", n),
        None,
        norm,
        "timm pretrained_cfg" if norm else None,
    )


def _hf_processor(ident: str) -> dict | None:
    p = Path(ident)
    if p.is_dir():
        f = p / "preprocessor_config.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(
            Path(hf_hub_download(ident, "preprocessor_config.json", local_files_only=True)).read_text(encoding="utf-8")
        )
    except Exception:
        return None


def _hf(ident: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> _Built:
    transformers = _import("transformers", spec)
    local = Path(ident).is_dir()
    try:
        config = transformers.AutoConfig.from_pretrained(ident, local_files_only=True)
    except (OSError, ValueError) as e:
        if local:
            raise ValueError(
                f"{spec}: {ident} is not a Hugging Face model folder (no usable config.json: "
                f"{' '.join(str(e).split())[:200]})"
            ) from None
        raise FileNotFoundError(
            f"{spec}: {ident!r} is neither a local folder nor in the local Hugging Face cache; "
            f"fetch it once with `hf download {ident}` (huggingface_hub), then rerun"
        ) from None
    proc = _hf_processor(ident)
    norm, resize = None, None
    if proc:
        if proc.get("do_normalize", True) and proc.get("image_mean") is not None and proc.get("image_std") is not None:
            norm = Normalization(f"hf image processor {ident}", tuple(proc["image_mean"]), tuple(proc["image_std"]))
        size = proc.get("size") if proc.get("do_resize", True) else None
        if isinstance(size, Mapping) and "height" in size and "width" in size:
            resize = (int(size["height"]), int(size["width"]))
        elif isinstance(size, Mapping) and "shortest_edge" in size:
            resize = (int(size["shortest_edge"]),) * 2
        elif isinstance(size, int):
            resize = (size, size)
    auto = transformers.AutoModelForImageClassification
    if state is not None or not pretrained:
        meta = _meta_build(lambda: auto.from_config(config))
        n = _reconcile_classes(
            spec,
            num_classes,
            _classes_in_state(_structural_classifier(meta) if meta is not None else None, state),
            None,
        )
        if n is not None and n != config.num_labels:
            config.num_labels = n  # resets id2label to LABEL_i
        model = auto.from_config(config)
        if state is not None:
            _load_state(model, state, spec)
    else:
        if num_classes is not None and num_classes != config.num_labels:
            raise ValueError(
                f"{spec}: the model has {config.num_labels} labels (config.json), but num_classes={num_classes}"
            )
        try:
            model = auto.from_pretrained(ident, local_files_only=True)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(
                f"{spec}: no weights for {ident} in the folder or the local cache "
                f"({' '.join(str(e).split())[:200]}); fetch them with `hf download {ident}`"
            ) from None
    labels = getattr(model.config, "id2label", None) or {}
    classes = [str(labels[i]) for i in sorted(labels)] if labels else None
    if classes and all(c == f"LABEL_{i}" for i, c in enumerate(classes)):
        classes = None
    weights = "random" if state is None and not pretrained else "" if state is not None else f"pretrained {ident}"
    return _Built(
        HFClassifier(model),
        weights,
        int(model.config.num_labels),
        classes,
        norm,
        "hf image processor" if norm else None,
        resize,
    )


def _robustbench(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> _Built:
    _import("robustbench", spec, extra="git+https://github.com/RobustBench/robustbench")
    from robustbench.utils import load_model as rb_load

    parts = name.split("/")
    if len(parts) == 1:
        dataset, threat, model_name = "cifar10", "Linf", parts[0]
    elif len(parts) == 3:
        dataset, threat, model_name = parts
    else:
        raise ValueError(
            f"{spec}: expected robustbench:NAME or robustbench:DATASET/THREAT/NAME (e.g. cifar10/Linf/Standard)"
        )
    model_dir = Path("models")  # robustbench's own default cache folder
    if state is None and pretrained and not (model_dir / dataset / threat / f"{model_name}.pt").is_file():
        raise FileNotFoundError(
            f"{spec}: {model_dir / dataset / threat / (model_name + '.pt')} is not there; fetch it once "
            f"with python -c \"from robustbench.utils import load_model; load_model('{model_name}', "
            f"dataset='{dataset}', threat_model='{threat}')\" in this folder"
        )
    if state is not None:
        from robustbench.model_zoo import model_dicts
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

        model = model_dicts[BenchmarkDataset(dataset)][ThreatModel(threat)][model_name]["model"]()
        _load_state(model, state, spec)
    else:
        model = rb_load(model_name=model_name, dataset=dataset, threat_model=threat, model_dir=str(model_dir))
    # robustbench models take [0, 1] inputs and normalise inside
    return _Built(
        model,
        "" if state is not None else f"robustbench cache {model_dir}",
        num_classes,
        None,
        None,
        "inside the robustbench model",
    )


_BUILDERS = {"torchvision": _torchvision, "timm": _timm, "hf": _hf, "robustbench": _robustbench}


def _check_shape(in_shape: Any) -> tuple[int, ...] | None:
    if in_shape is None:
        return None
    try:
        shape = tuple(int(v) for v in in_shape)
    except (TypeError, ValueError):
        raise ValueError(f"in_shape must be (C, H, W), got {in_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"in_shape must be (C, H, W) with positive sizes, got {in_shape!r}")
    return shape


def load_model(
    spec: str,
    *,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    in_shape: Sequence[int] | None = None,
    normalize: Any = "auto",
    resize: Any = "auto",
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """A classifier from a zoo or your code, taking inputs in [0, 1], and what was loaded.

    Args:
        spec: "torchvision:NAME", "timm:NAME", "hf:MODEL_ID_OR_DIR", "robustbench:[DATASET/THREAT/]NAME"
            or "package.module:factory" / "file.py:factory" (see the module docstring).
        weights: a state_dict file (.pt / .pth read with weights_only=True, or .safetensors). None: the
            library's pretrained weights from the local cache (an error says how to fetch them when
            they are not there; nothing is downloaded), or with pretrained=False a random
            initialisation (to train yourself). For package.module:factory, None keeps the factory's.
        num_classes: the number of classes; default: the weights' final layer (a 2-class state_dict
            for torchvision:resnet18 builds a 2-class ResNet-18), else the zoo's default. A mismatch
            with the weights is an error.
        in_shape: (C, H, W) of the data; sizes fixed-size architectures (ViTs) built for your weights,
            checks the normalisation's channels, and finds the embedding layer by one forward.
        normalize: "auto" (the zoo model's own normalisation: timm pretrained_cfg, torchvision
            weights transforms, the Hugging Face image processor; none for your own code), "none",
            "imagenet" | "cifar10" | "mnist", "MEAN,STD", a Normalization or None (parse_normalize).
        resize: "auto" (to the pretrained weights' input size when the library's pretrained weights
            are used, else none), None / "none", N or (H, W).
        pretrained: with weights=None, load the library's pretrained weights (True) or initialise
            randomly (False).
        device: where to put the model.

    Returns:
        (model in eval mode on `device`, info). Zoo models come wrapped in `Preprocessed` (with
        EMBEDDING_LAYER set, so run_pair finds it); your own code's model is wrapped only when a
        normalisation or resize is asked for. info: spec, source, weights, num_classes, classes
        (class names from the model, e.g. Hugging Face id2label or the ImageNet names, or None),
        preprocessing (Preprocessed.describe() plus where it came from), embedding_layer and how it
        was found, notes.
    """
    from .checkpoint import load_user_model

    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(
            f"spec must be SOURCE:NAME ({', '.join(s + ':NAME' for s in ZOO_SOURCES)}) or "
            f"package.module:factory, got {spec!r}"
        )
    source, _, name = spec.strip().partition(":")
    Optional(Int(1)).check(num_classes, "num_classes")
    shape = _check_shape(in_shape)
    norm = parse_normalize(normalize)
    if not (isinstance(resize, str) and resize.strip().lower() == "auto"):
        resize = parse_resize(resize)
    else:
        resize = "auto"
    if isinstance(norm, Normalization) and shape is not None and norm.channels not in (1, shape[0]):
        raise ValueError(
            f"normalize {norm.name!r} has {norm.channels} channels, but the inputs have {shape[0]} "
            f"(in_shape {list(shape)})"
        )
    if source in _BUILDERS and not name:
        raise ValueError(f"spec {spec!r}: name the model after '{source}:'")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights} does not exist")
    state = read_weights(weights, spec) if weights is not None else None

    if source in _BUILDERS:
        built = _BUILDERS[source](name, spec, state, pretrained, num_classes, shape)
        if not built.weights:
            built.weights = str(weights)
    else:
        if weights is not None and Path(weights).suffix == ".safetensors":
            own = load_user_model(spec, None, device="cpu")
            _load_state(own, state or {}, spec)
        else:
            own = load_user_model(spec, weights, device="cpu")
        built = _Built(own, str(weights) if weights is not None else "the factory's", num_classes, wrapped=False)
        source = "module:factory"

    use_norm = built.norm if norm == "auto" else norm
    use_resize = built.resize if resize == "auto" else resize
    notes: list[str] = []
    if isinstance(use_norm, Normalization) and shape is not None and use_norm.channels not in (1, shape[0]):
        raise ValueError(
            f"{spec}: its normalisation {use_norm.name!r} has {use_norm.channels} channels, but the inputs "
            f"have {shape[0]} (in_shape {list(shape)}); pass normalize= (--normalize) to choose another"
        )
    model: nn.Module = built.model
    if built.wrapped or use_norm is not None or use_resize is not None:
        model = Preprocessed(
            built.model,
            use_norm,
            resize=use_resize,
            name=use_norm.name if isinstance(use_norm, Normalization) else None,
        )
    model = model.to(device).eval()
    described = model.describe() if isinstance(model, Preprocessed) else Preprocessed(nn.Identity()).describe()
    described["from"] = (
        (built.norm_source if norm == "auto" else "normalize argument")
        if use_norm is not None
        else (built.norm_source if built.norm_source == "inside the robustbench model" else None)
    )

    example = None
    if shape is not None:
        example = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    how = "declared" if isinstance(getattr(model, "EMBEDDING_LAYER", None), str) else "auto"
    layer: str | None = None
    try:
        layer = find_embedding_layer(model, example)
    except ValueError as e:
        notes.append(str(e))
    except Exception as e:  # the forward on `example` failed: found by structure; check_fits reports the misfit
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        notes.append(f"a forward of in_shape {list(shape or [])} failed ({type(e).__name__}: {first})")
        try:
            layer = find_embedding_layer(model)
        except ValueError as e2:
            notes.append(str(e2))
    if isinstance(model, Preprocessed) and layer is not None:
        model.EMBEDDING_LAYER = layer
    info = {
        "spec": spec,
        "source": source,
        "weights": built.weights,
        "num_classes": built.num_classes,
        "classes": built.classes,
        "preprocessing": described,
        "embedding_layer": layer,
        "embedding_layer_from": how if layer is not None else None,
        "notes": notes,
    }
    return model, info
