"""The classifier of `deepdig run` and `deepdig atlas`: a zoo or user model (--model), a given
checkpoint (--classifier) or the cached reference one, its preprocessing (--normalize, --resize)
and its embedding layer (--embedding-layer), each checked against the data before any work."""

from __future__ import annotations

from pathlib import Path

from deepdig_fast.cli.errors import CLIError, _one_line
from deepdig_fast.cli.inputs import _data_tag


def _default_arch(dataset: str) -> str:
    return "resnet34" if dataset == "cifar10" else "cnn"  # the paper's CIFAR-10 ResNet


def _classifier(args, data, device, log):
    """The classifier of `deepdig run` / `atlas` and what describes it: (model, meta, info). A zoo or
    user model (--model), a given checkpoint, or the cached reference one. Every one is checked
    against the data (`check_fits`) before any other work; a path the user gave (--classifier,
    --weights) is only read, never written: a classifier is trained only into the default
    checkpoints/DATASET-ARCH location, and only when nothing is there."""
    from deepdig_fast.checkpoint import checkpoint_paths, load_classifier, load_or_train_classifier
    from deepdig_fast.zoo import ZOO_SOURCES, Preprocessed, load_model

    if args.model:
        zoo = args.model.partition(":")[0] in ZOO_SOURCES
        if not args.weights and not zoo:
            raise CLIError("--model needs --weights (a state_dict file)")
        if args.classifier:
            raise CLIError("--classifier and --model are alternatives; give one of them")
        try:  # a module that is not there, does not import, or weights that do not fit: bad arguments
            model, info = load_model(
                args.model,
                weights=args.weights,
                in_shape=data.sample_shape,
                normalize=args.normalize,
                resize=args.resize,
                device=device,
            )
        except (ImportError, FileNotFoundError, ValueError, TypeError) as exc:
            text = _one_line(exc)
            raise CLIError(text if text.startswith("--model") else f"--model {args.model}: {text}") from None
        _check_fits(model, data, None, args, f"--model {args.model}")
        return model, {"model": args.model, "weights": str(args.weights) if args.weights else None}, info
    if args.weights:
        raise CLIError(
            "--weights belongs to --model (package.module:factory or a zoo model); for a deepdig checkpoint use --classifier"
        )
    if args.classifier:
        given = Path(args.classifier)
        if not given.is_dir():
            pt_path, json_path = checkpoint_paths(given)
            if not (pt_path.is_file() and json_path.is_file()):
                raise CLIError(
                    f"--classifier {args.classifier}: no checkpoint there (expected {pt_path} and {json_path}); "
                    f"write one with `deepdig train --out {pt_path.with_suffix('')}`"
                )
        where = f"--classifier {args.classifier}"
        try:
            model, meta = load_classifier(given, device=device)
        except (ValueError, FileNotFoundError) as exc:
            raise CLIError(f"{where}: {exc}") from None
        _check_fits(model, data, meta, args, where)
        info = {"spec": str(args.classifier), "source": "checkpoint"}
    else:
        arch = args.arch or _default_arch(args.dataset)
        path = Path(f"checkpoints/{_data_tag(args, data)}-{arch}")
        try:
            model, meta = load_or_train_classifier(
                path, arch, data, seed=args.seed, device=device, progress=not args.quiet, log=log
            )
        except ValueError as exc:
            raise CLIError(f"{exc}; pass --classifier PATH, or move it away to train a new one there") from None
        info = {"spec": str(path), "source": "reference"}
    if args.normalize is not None or args.resize is not None:  # asked for explicitly: inside the model
        model = Preprocessed(model, args.normalize, resize=args.resize).to(device).eval()
        info["preprocessing"] = model.describe()
    return model, meta, info


def _preprocessing_args(args) -> None:
    """--normalize / --resize parsed in place (before any data or model is touched); "auto" stays."""
    from deepdig_fast.zoo import parse_normalize, parse_resize

    try:
        args.normalize = parse_normalize(args.normalize)
    except ValueError as exc:
        raise CLIError(f"--normalize: {exc}") from None
    if args.resize.strip().lower() == "auto":
        args.resize = "auto" if args.model else None
    else:
        try:
            args.resize = parse_resize(args.resize, "--resize")
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if not args.model and args.normalize == "auto":
        args.normalize = None  # checkpoints and the reference models carry no zoo normalisation


def _embedding_layer(args, model, data, info, log):
    """--embedding-layer resolved: "auto" (the default) finds the penultimate representation (the
    model's declared layer, or the input of its final Linear layer), "none" records none, a name is
    used as given (a zoo model's layer may be named without the wrapper's "model." prefix)."""
    from torch import nn

    from deepdig_fast.zoo import resolve_embedding_layer

    given = args.embedding_layer
    if given is None or given.strip().lower() == "auto":
        layer = info.get("embedding_layer")
        if layer is None:
            try:
                layer = resolve_embedding_layer(model, "auto", data.probe_inputs(2))
            except ValueError as exc:
                log(f"note: {exc}; EPBS and the linearity metric are skipped")
                layer = None
        how = "auto"
    elif given.strip().lower() == "none":
        layer, how = None, "none"
    else:
        layer, how = given, "given"
        name = given.partition(":")[0]
        modules = dict(model.named_modules()) if isinstance(model, nn.Module) else {}
        if name not in modules and f"model.{name}" in modules:
            layer = f"model.{given}"
    info["embedding_layer"] = layer
    info["embedding_layer_from"] = how if layer is not None else None
    return layer


def _check_fits(model, data, meta, args, name: str) -> None:
    """check_fits with the --arch and --embedding-layer given, as a one-line CLIError: a misspelt
    layer is a bad argument, found with one forward before any folder is touched."""
    from deepdig_fast.checkpoint import check_fits

    layer = args.embedding_layer
    if layer is not None and layer.strip().lower() in ("auto", "none"):
        layer = None  # resolved later by _embedding_layer
    elif layer is not None:
        modules = dict(model.named_modules()) if hasattr(model, "named_modules") else {}
        if layer.partition(":")[0] not in modules and f"model.{layer.partition(':')[0]}" in modules:
            layer = f"model.{layer}"  # a zoo model's layer named without the wrapper's prefix
    try:
        check_fits(model, data, meta, arch=args.arch if meta is not None else None, name=name, embedding_layer=layer)
    except ValueError as exc:
        text = str(exc)
        if text.startswith("embedding_layer "):
            text = "--embedding-layer " + text[len("embedding_layer ") :]
        raise CLIError(text) from None
