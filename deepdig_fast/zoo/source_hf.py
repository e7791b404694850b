"""`hf:MODEL_ID_OR_DIR`: transformers.AutoModelForImageClassification from a local folder or the
local Hugging Face cache, its image processor's normalisation and size, wrapped in `HFClassifier`
to return logits. transformers is imported only when a spec names it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from deepdig_fast.zoo.build import Built, classes_in_state, import_optional, load_state, meta_build, reconcile_classes
from deepdig_fast.zoo.embedding import structural_classifier
from deepdig_fast.zoo.normalize import Normalization

__all__ = ["HFClassifier", "build_hf"]


class HFClassifier(nn.Module):
    """A Hugging Face image classifier (AutoModelForImageClassification) as a plain logits model:
    forward(x) = hf(pixel_values=x).logits. The wrapped model is `.hf`."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hf(pixel_values=x).logits


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


def build_hf(ident: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> Built:
    transformers = import_optional("transformers", spec)
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
        meta = meta_build(lambda: auto.from_config(config))
        n = reconcile_classes(
            spec,
            num_classes,
            classes_in_state(structural_classifier(meta) if meta is not None else None, state),
            None,
        )
        if n is not None and n != config.num_labels:
            config.num_labels = n  # resets id2label to LABEL_i
        model = auto.from_config(config)
        if state is not None:
            load_state(model, state, spec)
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
    return Built(
        HFClassifier(model),
        weights,
        int(model.config.num_labels),
        classes,
        norm,
        "hf image processor" if norm else None,
        resize,
    )
