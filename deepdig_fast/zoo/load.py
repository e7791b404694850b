"""`load_model`: a spec parsed and dispatched to its zoo builder (or to your own
`package.module:factory`), the weights file read, the model wrapped in `Preprocessed` and its
embedding layer found. The spec forms are listed in the deepdig_fast.zoo docstring."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdig_fast.validation import Int, Optional
from deepdig_fast.zoo.build import Built, load_state, read_weights
from deepdig_fast.zoo.embedding import find_embedding_layer
from deepdig_fast.zoo.normalize import Normalization, Preprocessed, parse_normalize, parse_resize
from deepdig_fast.zoo.source_hf import build_hf
from deepdig_fast.zoo.source_robustbench import build_robustbench
from deepdig_fast.zoo.source_timm import build_timm
from deepdig_fast.zoo.source_torchvision import build_torchvision

__all__ = ["ZOO_SOURCES", "load_model"]

ZOO_SOURCES = ("torchvision", "timm", "hf", "robustbench")

_BUILDERS = {"torchvision": build_torchvision, "timm": build_timm, "hf": build_hf, "robustbench": build_robustbench}


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
            or "package.module:factory" / "file.py:factory" (see the deepdig_fast.zoo docstring).
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
    from deepdig_fast.checkpoint import load_user_model

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
            load_state(own, state or {}, spec)
        else:
            own = load_user_model(spec, weights, device="cpu")
        built = Built(own, str(weights) if weights is not None else "the factory's", num_classes, wrapped=False)
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
