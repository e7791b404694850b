"""The embedding layer without naming it: `find_embedding_layer` (the input of the final nn.Linear
classifier, by one forward or by structure) and `resolve_embedding_layer` (what a run uses, from
the caller's `embedding_layer=`).

Needs only torch; `structural_classifier` also tells the zoo builders which layer of a state_dict
holds the classes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["find_embedding_layer", "resolve_embedding_layer", "structural_classifier"]


def _last_linear(module: nn.Module, prefix: str) -> str | None:
    if isinstance(module, nn.Linear):
        return prefix
    found = None
    for name, m in module.named_modules(prefix=prefix):
        if isinstance(m, nn.Linear):
            found = name
    return found


def structural_classifier(model: nn.Module) -> str | None:
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
    from deepdig_fast.hooks import inference

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
        name = structural_classifier(model)
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
