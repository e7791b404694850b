"""Save and load classifiers: weights in `<stem>.pt`, metadata in `<stem>.json`.

The `.pt` file holds only the model's state_dict (tensors, moved to the CPU), so it loads with
`torch.load(weights_only=True)` and never runs pickled code. The `.json` file records how to rebuild
the model (architecture name and constructor arguments), what it was trained on, and a SHA-256 of
the weights (`deepdig_fast.io.sha256_state_dict`) that is checked on every load.

JSON fields: format, arch, arch_kwargs (None for a user architecture; `dropout` among them for the
built-in ones), dataset, classes, num_classes, in_shape, embedding_layer, accuracy, weights_file,
weights_sha256, torch_version, deepdig_fast_version, created (UTC ISO-8601), extra. A classifier
trained by deepdig holds `extra.training`: train_classifier's statistics, with `recipe` =
`TrainRecipe.to_dict()` (recipe name, epochs, lr, batch size, schedule, regularisers, regime, PGD).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepdig_fast.io import ChecksumError, atomic_save_tensors, atomic_write_text, load_tensors, sha256_state_dict
from deepdig_fast.models import ARCHITECTURES, build_classifier
from deepdig_fast.userfiles import first_line, resolve_factory
from deepdig_fast.validation import Number

if TYPE_CHECKING:
    from deepdig_fast.data import ClassificationData

if TYPE_CHECKING:
    from deepdig_fast.training import TrainRecipe

__all__ = [
    "FORMAT",
    "save_classifier",
    "load_classifier",
    "load_user_model",
    "load_or_train_classifier",
    "check_fits",
    "checkpoint_paths",
    "ChecksumError",
]

FORMAT = "deepdig_fast.classifier/1"

PathLike = str | os.PathLike


def checkpoint_paths(path: PathLike, default_stem: str | None = None) -> tuple[Path, Path]:
    """(weights .pt, metadata .json) for a checkpoint path.

    `path` may be "<stem>.pt", "<stem>.json", "<stem>" (no suffix, not an existing directory), or a
    directory, in which case the stem is `default_stem` (required then).
    """
    p = Path(path)
    if p.suffix in (".pt", ".json"):
        stem = p.with_suffix("")
    elif p.is_dir() or str(path).endswith(("/", os.sep)):
        if default_stem is None:
            raise ValueError(f"path {str(p)!r} is a directory; expected a '<name>.pt' or '<name>.json' path")
        stem = p / default_stem
    else:
        stem = p
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def _jsonable(value: Any, arg: str) -> Any:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{arg} must be JSON-serialisable ({e})") from e
    return value


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-") or "model"


def save_classifier(
    path: PathLike,
    model: nn.Module,
    *,
    arch: str,
    dataset: str,
    classes: Sequence[str],
    accuracy: float | None,
    extra: Mapping[str, Any] | None = None,
    in_shape: Sequence[int] | None = None,
    embedding_layer: str | None = None,
) -> Path:
    """Write `model`'s weights and metadata; returns the path of the `.pt` file (the `.json` is beside it).

    Args:
        path: "<stem>.pt", "<stem>.json", "<stem>", or a directory (then the stem is
            "<dataset>_<arch>").
        model: the classifier. Built-in models (`deepdig_fast.models`) also record their
            constructor arguments so `load_classifier` can rebuild them.
        arch: the architecture's name: a key of `ARCHITECTURES`, or any name for a user model
            (which then must be passed to `load_classifier(model=...)`).
        dataset: the training data set's name.
        classes: class names, one per output logit.
        accuracy: test accuracy (or None).
        extra: more JSON-serialisable metadata (e.g. the dict returned by `train_classifier`).
        in_shape: (C, H, W) of one input; defaults to `model.in_shape` when present.
        embedding_layer: the submodule name whose output is the embedding; defaults to
            `model.EMBEDDING_LAYER` when present.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"arch must be a non-empty str, got {arch!r}")
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty str, got {dataset!r}")
    classes = [str(c) for c in classes]
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != len(classes):
        raise ValueError(f"classes names {len(classes)} classes but the model has num_classes={num_classes}")
    if accuracy is not None:
        accuracy = float(accuracy)
        if not (math.isnan(accuracy) or 0.0 <= accuracy <= 1.0):
            raise ValueError(f"accuracy must be a fraction in [0, 1] or None, got {accuracy}")
    if in_shape is None:
        in_shape = getattr(model, "in_shape", None)
    if embedding_layer is None:
        embedding_layer = getattr(model, "EMBEDDING_LAYER", None)
    if embedding_layer is not None:
        name = embedding_layer.partition(":")[0]
        if name not in dict(model.named_modules()):
            raise ValueError(f"embedding_layer {embedding_layer!r} is not a submodule of the model")

    arch_kwargs = None
    if arch in ARCHITECTURES:
        if not isinstance(model, ARCHITECTURES[arch]):
            raise TypeError(
                f"arch={arch!r} names {ARCHITECTURES[arch].__name__}, but model is a {type(model).__name__}"
            )
        arch_kwargs = model.config()  # type: ignore[operator]
        arch_kwargs.pop("num_classes", None)
        arch_kwargs.pop("in_shape", None)

    state: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"model.state_dict()[{k!r}] is a {type(v).__name__}; only tensor entries can be saved")
        state[k] = v.detach().to("cpu").clone()
    pt_path, json_path = checkpoint_paths(path, default_stem=_safe_name(f"{dataset}_{arch}"))
    from deepdig_fast import __version__

    meta = {
        "format": FORMAT,
        "arch": arch,
        "arch_kwargs": arch_kwargs,
        "dataset": dataset,
        "classes": classes,
        "num_classes": len(classes),
        "in_shape": None if in_shape is None else [int(s) for s in in_shape],
        "embedding_layer": embedding_layer,
        "accuracy": accuracy,
        "weights_file": pt_path.name,
        "weights_sha256": sha256_state_dict(state),
        "torch_version": torch.__version__,
        "deepdig_fast_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "extra": _jsonable(dict(extra) if extra is not None else None, "extra"),
    }
    atomic_save_tensors(pt_path, state)
    atomic_write_text(json_path, json.dumps(meta, indent=2, allow_nan=True) + "\n")
    return pt_path


def _find_checkpoint(path: PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        metas = sorted(p.glob("*.json"))
        metas = [m for m in metas if m.with_suffix(".pt").is_file()]
        if len(metas) != 1:
            found = ", ".join(m.name for m in metas) or "none"
            raise ValueError(
                f"path {str(p)!r} is a directory with {len(metas)} checkpoints ({found}); expected exactly one "
                "or a '<name>.pt' / '<name>.json' path"
            )
        return metas[0].with_suffix(".pt"), metas[0]
    return checkpoint_paths(p)


def state_dict_from(obj: Any, source: str) -> dict[str, torch.Tensor]:
    """Accept a plain state_dict, or a dict wrapping one under "state_dict" / "model_state_dict"."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ValueError(f"{source}: expected a state_dict (a dict of parameter names to tensors)")
    return dict(obj)


def _load_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, strict: bool = True) -> None:
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise ValueError(f"{source}: the weights do not fit the model {type(model).__name__}: {e}") from e


def load_classifier(
    path: PathLike,
    *,
    model: nn.Module | None = None,
    device: str | torch.device = "cpu",
    verify: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a classifier written by `save_classifier`.

    Args:
        path: the `.pt` or `.json` file, their common stem, or a directory holding one checkpoint.
        model: an instance of the architecture to load into (needed for user architectures; for
            built-in ones the model is rebuilt from the JSON when this is None).
        device: where to put the model.
        verify: check the weights' SHA-256 against the JSON (raises ChecksumError on mismatch).

    Returns:
        (model in eval mode on `device`, metadata dict from the JSON).
    """
    pt_path, json_path = _find_checkpoint(path)
    if not json_path.is_file():
        raise FileNotFoundError(
            f"checkpoint metadata {json_path} not found (expected beside {pt_path.name}); "
            "for a bare state_dict use load_user_model"
        )
    if not pt_path.is_file():
        raise FileNotFoundError(f"checkpoint weights {pt_path} not found (expected beside {json_path.name})")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a deepdig_fast classifier checkpoint (expected format {FORMAT!r})")

    state = state_dict_from(load_tensors(pt_path), str(pt_path))
    if verify:
        expected = meta.get("weights_sha256")
        actual = sha256_state_dict(state)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {pt_path}: weights SHA-256 is {actual}, but {json_path.name} says "
                f"{expected}; the weights file is corrupt or does not belong to this metadata"
            )

    if model is None:
        arch = meta.get("arch")
        if arch not in ARCHITECTURES:
            raise ValueError(
                f"{json_path}: arch {arch!r} is not built in ({sorted(ARCHITECTURES)}); pass model= with an "
                "instance of the architecture to load into"
            )
        model = build_classifier(arch, meta["num_classes"], meta.get("in_shape"), **(meta.get("arch_kwargs") or {}))
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module or None, got {type(model).__name__}")
    _load_into(model, state, str(pt_path))
    return model.to(device).eval(), meta


def load_user_model(
    spec: str,
    weights: PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    strict: bool = True,
    factory_kwargs: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build a user's classifier from "module:factory" and load its weights.

    Args:
        spec: "package.module:factory" (or "path/to/file.py:factory"); `factory` may be a dotted
            attribute (e.g. "Net.pretrained") and is called with `factory_kwargs` to get an nn.Module.
        weights: a file saved with `torch.save(model.state_dict())` (or a dict holding it under
            "state_dict" / "model_state_dict"), loaded with `weights_only=True`. None keeps the
            factory's weights.
        device: where to put the model.
        strict: passed to `load_state_dict`.

    Returns:
        the model in eval mode on `device`.
    """
    obj = resolve_factory(spec)
    if not callable(obj):
        raise ValueError(f"spec {spec!r} names a {type(obj).__name__}, expected a callable returning an nn.Module")
    try:
        model = obj(**dict(factory_kwargs or {}))
    except Exception as e:  # the user's factory failed: one line naming it
        raise ValueError(f"spec {spec!r}: calling the factory failed ({first_line(e)})") from e
    if not isinstance(model, nn.Module):
        raise TypeError(f"spec {spec!r}: the factory returned {type(model).__name__}, expected an nn.Module")
    if weights is not None:
        state = state_dict_from(load_tensors(weights), str(weights))
        _load_into(model, state, str(weights), strict=strict)
    return model.to(device).eval()


def _short(values: Sequence[Any], limit: int = 4) -> str:
    values = [str(v) for v in values]
    head = ", ".join(values[:limit])
    return f"[{head}, ... {len(values)} in all]" if len(values) > limit else f"[{head}]"


def check_fits(
    classifier: Any,
    data: Any,
    meta: Mapping[str, Any] | None = None,
    *,
    arch: str | None = None,
    name: str = "the classifier",
    embedding_layer: str | None = None,
) -> None:
    """Check that `classifier` can be used on `data`; raise ValueError (one line naming both sides) if not.

    Checks, in this order (the cheap ones first):
      * `meta` (a checkpoint's metadata, e.g. from `load_classifier`), when given: its data set
        equals `data.name`, its class count and class names equal `data`'s, its input shape equals
        `data.sample_shape`, and its arch equals `arch` (when `arch` is given) and names the
        classifier's type (for a built-in arch);
      * one forward (no grad, eval mode, modes restored, on a copy) of two of `data`'s inputs on the
        classifier's device: it must accept them and return floating-point logits [2,
        data.num_classes].

    Args:
        classifier: an nn.Module or callable mapping [N, *sample_shape] to logits [N, C].
        data: a `deepdig_fast.data.ClassificationData`.
        meta: checkpoint metadata, or None (a user model without metadata: only the forward check).
        arch: the architecture the caller expects (e.g. the CLI's --arch), or None for any.
        name: how messages name the classifier (e.g. "--classifier ckpt/mnist-fcn").
        embedding_layer: when given, the same forward also checks that this submodule exists and
            yields a tensor (deepdig_fast.hooks), so a misspelt layer fails before any training.
    """
    from deepdig_fast.data import ClassificationData
    from deepdig_fast.hooks import capture_embeddings, inference

    if not isinstance(data, ClassificationData):
        raise TypeError(f"data must be a ClassificationData, got {type(data).__name__}")
    if not callable(classifier):
        raise TypeError(f"{name} must be an nn.Module or a callable returning logits, got {type(classifier).__name__}")
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise TypeError(f"meta must be a checkpoint's metadata dict or None, got {type(meta).__name__}")
        ds = meta.get("dataset")
        if ds is not None and ds != data.name:
            raise ValueError(f"{name} was trained on data set {ds!r}, but the data set is {data.name!r}")
        n = meta.get("num_classes")
        if n is not None and n != data.num_classes:
            raise ValueError(f"{name} has {n} classes, but data set {data.name!r} has {data.num_classes}")
        names = meta.get("classes")
        if names is not None and [str(c) for c in names] != [str(c) for c in data.classes]:
            raise ValueError(
                f"{name} has classes {_short(names)}, but data set {data.name!r} has {_short(data.classes)}"
            )
        shape = meta.get("in_shape")
        if shape is not None and tuple(int(d) for d in shape) != tuple(data.sample_shape):
            raise ValueError(
                f"{name} takes inputs of shape {list(shape)}, but data set {data.name!r} has "
                f"inputs of shape {list(data.sample_shape)}"
            )
        stored = meta.get("arch")
        if arch is not None and stored != arch:
            raise ValueError(f"{name} holds a {stored!r} classifier, but arch {arch!r} was asked for")
        if (
            stored in ARCHITECTURES
            and isinstance(classifier, nn.Module)
            and not isinstance(classifier, ARCHITECTURES[stored])
        ):
            raise ValueError(
                f"{name} is a {type(classifier).__name__}, but its metadata names arch {stored!r} "
                f"({ARCHITECTURES[stored].__name__})"
            )

    x = data.probe_inputs(2)
    if x.shape[0] == 0:
        raise ValueError(f"data set {data.name!r} has no inputs to check {name} with")
    device = x.device
    if isinstance(classifier, nn.Module):
        first: torch.Tensor | None = next(iter(classifier.parameters()), None)
        if first is None:
            first = next(iter(classifier.buffers()), None)
        if first is not None:
            device = first.device
    x = x.to(device, copy=True)
    with contextlib.ExitStack() as stack:
        # a missing layer is reported by capture_embeddings itself, before the forward
        cap = stack.enter_context(capture_embeddings(classifier, embedding_layer)) if embedding_layer else None
        try:
            with inference(classifier):
                out = classifier(x)
        except Exception as e:  # any failure of the user's forward is reported as a misfit, in one line
            head = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(
                f"{name} does not accept inputs of data set {data.name!r} (shape "
                f"{[x.shape[0], *data.sample_shape]}, {x.dtype}): {type(e).__name__}: {head}"
            ) from e
        if cap is not None and cap.value is None:
            raise ValueError(f"embedding_layer {embedding_layer!r} did not run during {name}'s forward pass")
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"{name} returned {type(out).__name__} for a batch of data set {data.name!r}, "
            f"expected a logits tensor [N, {data.num_classes}]"
        )
    if out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] != data.num_classes:
        raise ValueError(
            f"{name} returned logits of shape {list(out.shape)} for {x.shape[0]} inputs, but data set "
            f"{data.name!r} has {data.num_classes} classes (expected [{x.shape[0]}, {data.num_classes}])"
        )
    if not out.is_floating_point():
        raise ValueError(f"{name} returned {out.dtype} logits, expected floating point")


def class_accuracy(
    classifier: Any, data: ClassificationData, classes: Sequence[int], batch_size: int = 1024
) -> dict[int, float | None]:
    """{class: the share of its test inputs (training inputs when the data set has no test split)
    that `classifier` assigns to it}, None for a class with no inputs. One forward per input."""
    from deepdig_fast.forward import predict

    split = "test" if data.x_test.shape[0] else "train"
    out: dict[int, float | None] = {}
    for c in classes:
        x = data.class_inputs(c, split)
        if x.shape[0] == 0:
            out[int(c)] = None
            continue
        device = x.device
        if isinstance(classifier, nn.Module):
            first = next(iter(classifier.parameters()), None)
            device = first.device if first is not None else device
        pred = predict(classifier, x.to(device), batch_size).argmax(dim=1)
        out[int(c)] = float((pred == int(c)).float().mean())
    return out


def check_accuracy(
    classifier: Any,
    data: ClassificationData,
    classes: Sequence[int],
    min_accuracy: float | None,
    *,
    name: str = "classifier",
) -> dict[int, float | None]:
    """The input-contract guard: `class_accuracy` of the given classes, a ValueError when one of them
    is below `min_accuracy` (None or 0 never refuses).

    A classifier that gets a class of its own data mostly wrong almost always sees inputs it was not
    trained on -- the most common cause is a normalisation applied twice or not at all (the data here
    is in [0, 1]; the model must normalise inside, e.g. Preprocessed / --normalize). DeepDIG keeps only
    correctly classified inputs, so on such a model it would measure the boundary of a mistake.
    """
    if min_accuracy is not None:
        Number(0, 1).check(min_accuracy, "min_accuracy")
    acc = class_accuracy(classifier, data, classes)
    if min_accuracy:
        low = {c: a for c, a in acc.items() if a is not None and a < min_accuracy}
        if low:
            split = "test" if data.x_test.shape[0] else "training"
            parts = ", ".join(f"class {data.classes[c]!r} {a:.0%}" for c, a in low.items())
            raise ValueError(
                f"{name} classifies too few {split} inputs of {data.name!r} correctly ({parts}; "
                f"min_accuracy={min_accuracy}): check its input contract -- the data is in [0, 1] and the "
                "model must normalise inside (Preprocessed, --normalize) -- or pass min_accuracy=0 "
                "(--min-accuracy 0) to study it anyway"
            )
    return acc


def load_or_train_classifier(
    path: PathLike,
    arch: str,
    data,
    *,
    seed: int = 0,
    epochs: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    retrain: bool = False,
    log=None,
    recipe: TrainRecipe | None = None,
    arch_kwargs: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The reference classifier `arch` for `data`, cached at `path` (a checkpoint stem).

    When nothing is at `path` (neither `<stem>.pt` nor `<stem>.json`), or with retrain=True, trains
    one with `train_classifier` (seeded; `recipe`, a `deepdig_fast.training.TrainRecipe`, default the
    "fast" one; `epochs` replaces its epochs; `arch_kwargs` go to `build_classifier`, e.g. dropout=)
    and saves it atomically there, the recipe recorded in the metadata (extra.training.recipe).
    Otherwise loads the checkpoint and checks it with `check_fits` (architecture, data set, classes, input shape):
    a checkpoint that does not fit raises ValueError and is never overwritten -- only retrain=True
    replaces an existing file. Returns (model in eval mode on `device`, metadata).
    """
    from deepdig_fast.models import train_classifier

    pt_path, json_path = checkpoint_paths(path)
    if not retrain and (pt_path.exists() or json_path.exists()):
        if not (pt_path.is_file() and json_path.is_file()):
            have, missing = (pt_path, json_path) if pt_path.exists() else (json_path, pt_path)
            raise ValueError(
                f"{have} exists but {missing} does not; expected both files of a checkpoint "
                "(move the file away to train a new classifier there)"
            )
        model, meta = load_classifier(pt_path, device=device)
        check_fits(model, data, meta, arch=arch, name=f"checkpoint {pt_path}")
        return model, meta
    name = getattr(recipe, "name", "fast")
    if log:
        log(
            f"training the reference {arch} classifier on {data.name} (recipe {name}, seed {seed}); "
            f"it is saved to {pt_path}"
        )
    model = build_classifier(arch, data.num_classes, tuple(data.sample_shape), seed=seed, **dict(arch_kwargs or {}))
    stats = train_classifier(model, data, recipe, epochs=epochs, seed=seed, device=device, progress=progress)
    save_classifier(
        pt_path,
        model,
        arch=arch,
        dataset=data.name,
        classes=data.classes,
        accuracy=stats["test_accuracy"],
        extra={"training": {k: v for k, v in stats.items() if k != "epoch_losses"}},
    )
    return load_classifier(pt_path, device=device)
