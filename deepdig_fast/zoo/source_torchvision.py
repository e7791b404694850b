"""`torchvision:NAME`: torchvision.models.get_model_builder(NAME), its weights' normalisation and
crop size, pretrained weights only from the local torch hub cache. torchvision is imported only
when a spec names it."""

from __future__ import annotations

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

__all__ = ["build_torchvision"]


def build_torchvision(name: str, spec: str, state, pretrained: bool, num_classes, in_shape) -> Built:
    import_optional("torchvision", spec)
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
        file = hub_file(default_weights.url)
        if not file.is_file():
            raise FileNotFoundError(
                f"{spec}: the pretrained weights {default_weights} are not in the local torch hub cache ({file}); "
                f"fetch them once with python -c \"import torchvision; torchvision.models.get_model('{name}', "
                f"weights='DEFAULT')\" (or pass --weights FILE)"
            )
        model = builder(weights=default_weights)  # the cached file: torchvision reads it, nothing is downloaded
        crop = getattr(default_weights.transforms(), "crop_size", None)
        return Built(
            model,
            f"pretrained {default_weights} ({file})",
            len(categories),
            [str(c) for c in categories],
            norm,
            "torchvision weights transforms",
            parse_resize(list(crop)) if crop else None,
        )
    if state is not None:
        meta = meta_build(lambda: builder(weights=None, **kwargs))
        n = reconcile_classes(
            spec,
            num_classes,
            classes_in_state(structural_classifier(meta) if meta is not None else None, state),
            None,
        )
        model = builder(weights=None, **({"num_classes": n} if n is not None else {}), **kwargs)
        load_state(model, state, spec)
        return Built(model, "", n, None, norm, "torchvision weights transforms" if norm else None)
    model = builder(weights=None, **({"num_classes": num_classes} if num_classes is not None else {}), **kwargs)
    return Built(model, "random", num_classes, None, norm, "torchvision weights transforms" if norm else None)
