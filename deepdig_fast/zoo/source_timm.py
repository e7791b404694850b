"""`timm:NAME`: timm.create_model(NAME), its pretrained_cfg's normalisation and input size,
pretrained weights only from the local Hugging Face or torch hub cache. timm is imported only when
a spec names it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepdig_fast.zoo.build import (
    Built,
    classes_in_state,
    hub_file,
    import_optional,
    load_state,
    meta_build,
    reconcile_classes,
)
from deepdig_fast.zoo.embedding import structural_classifier
from deepdig_fast.zoo.normalize import Normalization, parse_resize

__all__ = ["build_timm"]


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
    if url and hub_file(url).is_file():
        return hub_file(url)
    return None


def build_timm(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> Built:
    timm = import_optional("timm", spec)
    if not timm.is_model(name):
        raise ValueError(f"{spec}: timm has no model {name!r} (timm.list_models('PATTERN*') lists them)")
    meta = meta_build(lambda: timm.create_model(name, pretrained=False))
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
        return Built(
            model,
            f"pretrained {cfg.get('hf_hub_id') or cfg.get('url')} ({file})",
            getattr(model, "num_classes", n_pre),
            classes,
            norm,
            "timm pretrained_cfg",
            parse_resize(list(size[-2:])) if size else None,
        )
    head = structural_classifier(meta) if meta is not None else None
    n = reconcile_classes(spec, num_classes, classes_in_state(head, state), None)
    model = timm.create_model(name, pretrained=False, **({"num_classes": n} if n is not None else {}), **kwargs)
    if state is not None:
        load_state(model, state, spec)
    return Built(
        model,
        "" if state is not None else "random",
        getattr(model, "num_classes", n),
        None,
        norm,
        "timm pretrained_cfg" if norm else None,
    )
