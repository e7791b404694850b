"""The `deepdig` command line (also `python -m deepdig_fast`). The only module that parses arguments.

deepdig train --dataset mnist --arch cnn            train (or refresh) a reference classifier
deepdig run --dataset mnist --arch cnn --pair 1,2 --out runs/mnist-cnn-1-2
deepdig report RUN_DIR                              (re)write report.md / report.html of a run
deepdig atlas --dataset mnist --arch cnn --classes all --out runs/atlas-mnist-cnn
torchrun --nproc-per-node N -m deepdig_fast atlas ...   the same, sharded over N processes
deepdig compare ATLAS_A ATLAS_B --out DIR           two atlases side by side
deepdig table DIR... --out OUT                      the paper's tables from run folders and atlases
deepdig info                                        how the extension was built
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import time
from pathlib import Path

from deepdig_fast.validation import BATCH_MAX, BETA, BETA_RULE, INT_MAX, MAX_STEPS_MAX, SEED_MAX, STEPS_MAX, THREADS_MAX

DATASETS = ("mnist", "fashion-mnist", "cifar10")
#: --dataset also takes these: a folder of class subfolders, a .pt/.npz file, torchvision:NAME
DATA_SOURCES = ("imagefolder", "tensors", "torchvision:NAME")
AUTOENCODERS = ("auto", "mlp", "conv")
TRAJECTORY_SEGMENTS = 5000  # CLI default: estimate mode (the exact design is |B| * 50 segments)
ATLAS_TRAJECTORY_SEGMENTS = 1000  # per direction of an atlas (K(K-1) of them)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits with status 2."""

    def error(self, message):  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class CLIError(Exception):
    """A problem with the user's arguments or files, reported in one line."""


def _device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise CLIError(f"--device must be cpu, cuda, cuda:N or auto, got {spec!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {spec}: no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CLIError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def _pair(text: str) -> tuple:
    """Two classes: ids like 1,2 (or 1-2), or names like cat,dog (resolved against the data set's
    class names, then the model's, once they are known)."""
    parts = [p.strip() for p in text.split(",")] if "," in text else text.split("-")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected two classes like 1,2 or cat,dog, got {text!r}")
    pair = tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
    if pair[0] == pair[1]:
        raise argparse.ArgumentTypeError(f"the two classes must differ, got {text!r}")
    return pair


def _number_arg(convert, ok, what: str):
    """An argparse type: `convert(text)`, accepted when `ok(value)`; else "expected WHAT, got 'text'"."""

    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


def _int_arg(low: int, high: int):
    """An argparse type: an integer in [low, high] ("expected a positive integer of at most 64")."""
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {_shown(text)}")
        if v > high:
            raise argparse.ArgumentTypeError(f"expected {what} of at most {high}, got {_shown(text)}")
        return v

    return parse


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


# the bounds are the configs' own (deepdig_fast.validation), so the API and the command agree
_positive_int = _int_arg(1, INT_MAX)
_seed = _int_arg(0, SEED_MAX)
_train_steps = _int_arg(1, STEPS_MAX)
_engine_steps = _int_arg(1, MAX_STEPS_MAX)
_batch = _int_arg(1, BATCH_MAX)
_threads = _int_arg(1, THREADS_MAX)
_seconds = _int_arg(1, 30 * 24 * 3600)  # a process-group timeout; a month covers any real phase


def _beta(text: str) -> float:
    """--beta: validation.BETA_RULE, the rule of the library's configs, as an argparse type."""
    try:
        return BETA_RULE.check(float(text), "beta")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None


_share = _number_arg(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
_positive_float = _number_arg(float, lambda v: 0 < v < float("inf"), "a positive number")
_non_negative = _number_arg(float, lambda v: 0 <= v < float("inf"), "a non-negative number")
_unit_left = _number_arg(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _fraction(text: str) -> float:
    """A number like 0.3 or 8/255, in (0, 1]."""
    try:
        num, _, den = text.partition("/")
        v = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        v = float("nan")
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] like 0.3 or 8/255, got {text!r}")
    return v


def _out_dir(text: str) -> str:
    """An output folder: non-empty, not an existing file, and inside a folder this user may write."""
    import os

    if not text or not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, expected a folder")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {probe} is a file, so no folder can be made there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {probe} is not writable")
    return text


def _spec_file(spec: str | None) -> str | None:
    """The file of a 'path/file.py:factory' spec (None for a module name or a zoo model)."""
    module = (spec or "").rpartition(":")[0]
    return module if module.endswith(".py") else None


def _inputs(args) -> dict:
    """Every path a run / atlas / train command reads, by the argument that names it."""
    from deepdig_fast.data import SHIPPED_MNIST_ROOT

    reads: dict = {"--data-root": args.data_root}
    if args.data_root is None and args.dataset == "mnist":
        reads["the shipped MNIST (--data-root)"] = SHIPPED_MNIST_ROOT
    if getattr(args, "classifier", None):
        from deepdig_fast.checkpoint import checkpoint_paths

        given = Path(args.classifier)
        reads["--classifier"] = [given] if given.is_dir() else list(checkpoint_paths(given))
    for arg in ("model", "autoencoder"):
        reads[f"--{arg}"] = _spec_file(getattr(args, arg, None))
    reads["--weights"] = getattr(args, "weights", None)
    return reads


def _refuse_links(folder, arg: str) -> None:
    from deepdig_fast.paths import PathConflictError, refuse_links

    try:
        refuse_links(folder, arg)
    except PathConflictError as exc:
        raise CLIError(str(exc)) from None


def _check_paths(reads: dict, writes: dict) -> None:
    """paths.check_paths as a one-line CLIError, before any work."""
    from deepdig_fast.paths import PathConflictError, check_paths

    try:
        check_paths(reads=reads, writes=writes)
    except PathConflictError as exc:
        raise CLIError(str(exc)) from None


def _dataset(text: str) -> str:
    import re

    if (
        text in DATASETS
        or text in ("imagefolder", "tensors")
        or re.fullmatch(r"torchvision:[A-Za-z][A-Za-z0-9_]*", text)
    ):
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS + DATA_SOURCES)})")


def _image_size(text: str):
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 64x48 (HxW), got {text!r}")
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _autoencoder(text: str) -> str:
    if text in AUTOENCODERS or (":" in text and all(text.split(":", 1))):
        return text
    raise argparse.ArgumentTypeError(
        f"expected auto, mlp, conv or package.module:factory (or file.py:factory), got {text!r}"
    )


def _load_data(args, only=None):
    """The data set of --dataset / --data-root (+ --image-size, --channels, --download). `only`:
    labels of the classes to read (image folders, tensor files and torchvision data sets read no
    other class; labels keep their values)."""
    from deepdig_fast import data as D

    name, root = args.dataset, args.data_root
    image_size, channels = getattr(args, "image_size", None), getattr(args, "channels", None)
    download = getattr(args, "download", False)
    if download and not name.startswith("torchvision:"):
        raise CLIError(f"--download only applies to --dataset torchvision:NAME, not {name}")
    if (image_size or channels) and name not in ("imagefolder",) and not name.startswith("torchvision:"):
        raise CLIError(f"--image-size and --channels apply to --dataset imagefolder or torchvision:NAME, not {name}")
    if name == "mnist":
        return D.load_mnist(root)
    if root is None:
        what = {"imagefolder": "a folder of class subfolders", "tensors": "a .pt or .npz file"}.get(
            name, f"a folder with the {name} files"
        )
        raise CLIError(f"--dataset {name} needs --data-root ({what})")
    try:
        if name == "imagefolder":
            return D.load_image_folder(root, image_size=image_size, channels=channels, only=only)
        if name == "tensors":
            return D.load_tensor_file(root, only=only)
        if name.startswith("torchvision:"):
            return D.load_torchvision_dataset(
                name.split(":", 1)[1], root, download=download, image_size=image_size, channels=channels, only=only
            )
    except D.ClassSelectionError as exc:
        raise CLIError(f"{'--classes/--pairs' if args.command == 'atlas' else '--pair'}: {exc}") from None
    except (ImportError, MemoryError) as exc:
        raise CLIError(f"--dataset {name}: {exc}") from None
    return D.load_fashion_mnist(root) if name == "fashion-mnist" else D.load_cifar10(root)


def _data_tag(args, data) -> str:
    """The data set's part of a default checkpoint path: --dataset for the built-in ones, else the
    loaded set's name made file-safe (so two image folders never share a cached classifier)."""
    import re

    return args.dataset if args.dataset in DATASETS else re.sub(r"[^A-Za-z0-9_.-]+", "-", data.name)


def _data_record(args, data) -> dict:
    """What the manifest records about the data: the command-line source and what was loaded."""
    return {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "image_size": getattr(args, "image_size", None),
        "channels": getattr(args, "channels", None),
        "name": data.name,
        "sample_shape": list(data.sample_shape),
        "classes_loaded": sorted({int(c) for c in data.y_train.unique().tolist()}),
    }


def _autoencoder_factory(args, data):
    """The --autoencoder factory (None for auto), checked against the data's input shape."""
    from deepdig_fast.adversarial import autoencoder_from_spec

    try:
        return autoencoder_from_spec(args.autoencoder, data.sample_shape)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"--autoencoder {args.autoencoder}: {exc}") from None


def _default_arch(dataset: str) -> str:
    return "resnet34" if dataset == "cifar10" else "cnn"  # the paper's CIFAR-10 ResNet


ARCHS = ("cnn", "fcn", "resnet", "resnet18", "resnet34", "googlenet")


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


def _class_id(value, data, model_classes, arg: str) -> int | None:
    """A class given by id or name -> its id in the data set; None when a name is not known (yet).

    A number is a class name first when the data set names its classes with numbers other than their
    ids (an image folder of classes "3" and "5": --pair 3,5 means those folders, ids 0 and 1)."""
    from deepdig_fast.data import number_names_class

    if number_names_class(value, data.classes):
        return [str(c) for c in data.classes].index(str(value))
    if isinstance(value, int):
        if not 0 <= value < data.num_classes:
            raise CLIError(f"{arg} classes must lie in [0, {data.num_classes}) for {data.name}, got {value}")
        return value
    for names in (data.classes, model_classes or []):
        names = [str(c) for c in names]
        for match in (lambda c: c == value, lambda c: c.lower() == value.lower()):
            hits = [i for i, c in enumerate(names) if match(c)]
            if len(hits) == 1 and hits[0] < data.num_classes:
                return hits[0]
    return None


def _resolve_classes(values, data, model_classes, final: bool, arg: str):
    """Class ids or names -> ids (a tuple); None while a name is unknown and not `final` (a zoo model's
    names, e.g. Hugging Face id2label, are known once it is loaded). A name known to neither the data
    set nor the model is a CLIError naming `arg`."""
    ids = [_class_id(c, data, model_classes, arg) for c in values]
    if None in ids and final:
        bad = next(c for c, i in zip(values, ids) if i is None)
        known = ", ".join(str(c) for c in (model_classes or data.classes)[:12])
        raise CLIError(
            f"{arg}: class {bad!r} is not a class name of {data.name} or of the model (classes: {known}"
            f"{', ...' if len(model_classes or data.classes) > 12 else ''})"
        )
    return None if None in ids else tuple(ids)


def _resolve_pair(pair, data, model_classes, final: bool):
    return _resolve_classes(pair, data, model_classes, final, "--pair")


def _resolve_atlas_scope(args, data, model_classes, final: bool):
    """(classes, pairs) of `deepdig atlas` as ids; (None, None) for 'all'; None while a name waits
    for the model's class names."""
    if args.classes is not None:
        ids = _resolve_classes(args.classes, data, model_classes, final, "--classes")
        return None if ids is None else (list(ids), None)
    if args.pairs is not None:
        pairs = [_resolve_classes(p, data, model_classes, final, "--pairs") for p in args.pairs]
        return None if None in pairs else (None, [tuple(p) for p in pairs])
    return None, None


def _named_classes(data, info):
    """The data set with the model's class names (e.g. Hugging Face id2label) when the data set only
    numbers its classes ("0", "1", ...) and the model names exactly that many."""
    import dataclasses

    names = info.get("classes")
    numbered = [str(i) for i in range(data.num_classes)]
    if names and len(names) == data.num_classes and [str(c) for c in data.classes] == numbered:
        return dataclasses.replace(data, classes=[str(c) for c in names])
    ours = [str(c).lower() for c in data.classes]
    theirs = [str(c).lower() for c in names or []]
    if theirs != ours and sorted(theirs) == sorted(ours):
        # the same names in another order: output i of the model is not class i of the data
        raise CLIError(
            f"--model names the classes {', '.join(map(str, names[:6]))}{', ...' if len(names) > 6 else ''} "
            f"but {data.name} orders them {', '.join(map(str, data.classes[:6]))}"
            f"{', ...' if len(data.classes) > 6 else ''}: output i of the model must be class i of the data "
            "(rename or reorder the class folders, or retrain the head)"
        )
    return data


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


_PGD_OPTIONS = (("pgd_eps", "--pgd-eps"), ("pgd_step", "--pgd-step"), ("pgd_steps", "--pgd-steps"))


def _train_recipe(args, data):
    """The TrainRecipe of `deepdig train`'s options: --recipe, then --epochs, --lr, --batch-size,
    the regularisers and --regime (PGD settings default to the data set's usual ones)."""
    from deepdig_fast.training import PGDConfig, pgd_preset, recipe

    pgd = None
    if args.regime == "adversarial":
        base = pgd_preset(args.dataset, tuple(data.sample_shape))
        pgd = PGDConfig(
            eps=base.eps if args.pgd_eps is None else args.pgd_eps,
            step_size=base.step_size if args.pgd_step is None else args.pgd_step,
            steps=base.steps if args.pgd_steps is None else args.pgd_steps,
        )
    return recipe(
        args.recipe,
        args.dataset,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        mixup_alpha=args.mixup,
        regime=args.regime,
        pgd=pgd,
    )


def cmd_train(args) -> int:
    from deepdig_fast.checkpoint import load_or_train_classifier
    from deepdig_fast.training import describe_training

    if args.regime != "adversarial":
        given = [opt for attr, opt in _PGD_OPTIONS if getattr(args, attr) is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise CLIError(f"{', '.join(given)} {verb} to --regime adversarial, not --regime {args.regime}")
    from deepdig_fast.checkpoint import checkpoint_paths

    device = _device(args.device)
    reads = _inputs(args)
    if args.out:  # a given stem is checked before the data is read; the default one needs its name
        _check_train_out(args, reads)
    data = _load_data(args)
    recipe = _train_recipe(args, data)
    arch = args.arch or _default_arch(args.dataset)
    suffix = ("-paper" if recipe.name == "paper" else "") + ("-adversarial" if recipe.regime == "adversarial" else "")
    out = Path(args.out or f"checkpoints/{_data_tag(args, data)}-{arch}{suffix}")
    if not args.out:
        args.out = str(out)
        _check_train_out(args, reads)
    if args.overwrite and any(p.exists() for p in checkpoint_paths(out)):
        print(f"[deepdig] replacing the checkpoint at {out} (--overwrite)")
    _, meta = load_or_train_classifier(
        out,
        arch,
        data,
        seed=args.seed,
        device=device,
        progress=not args.quiet,
        retrain=True,
        log=print,
        recipe=recipe,
        arch_kwargs={"dropout": args.dropout} if args.dropout else None,
    )
    how = describe_training(meta)
    print(
        f"{arch} on {args.dataset}: test accuracy {meta['accuracy']:.4f} (recipe {how['recipe']}, regime "
        f"{how['regime']}; {how['settings']}); saved to {out}.pt (+ .json)"
    )
    return 0


def _check_train_out(args, reads: dict) -> None:
    """`deepdig train --out STEM` writes STEM.pt and STEM.json: never over an input, and never over
    an existing checkpoint unless --overwrite says so."""
    from deepdig_fast.checkpoint import checkpoint_paths

    if Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a folder; expected a checkpoint path stem like checkpoints/my-cnn")
    files = list(checkpoint_paths(args.out))
    _check_paths(reads, {"--out": files})
    there = [str(p) for p in files if p.exists() or p.is_symlink()]
    if there and not args.overwrite:
        raise CLIError(
            f"--out {args.out}: a checkpoint is already there ({', '.join(there)}); pass --overwrite to replace "
            "it, or choose another --out"
        )


def _engine_options(q, trajectory_default: int, why: str) -> None:
    """The borderline search and trajectory options `run` and `atlas` share (one definition, so their
    names, types, bounds and help cannot drift); only the trajectory default differs, for `why`."""
    q.add_argument(
        "--method",
        choices=("bisect", "illinois"),
        default="bisect",
        help="borderline search (default bisect, the paper's)",
    )
    q.add_argument("--beta", type=_beta, default=BETA, help=f"success threshold on |p_s - p_t| (paper: {BETA:g})")
    q.add_argument("--max-steps", type=_engine_steps, default=64, help="cap on points evaluated per pair")
    q.add_argument(
        "--engine-batch-size",
        type=_batch,
        help="live pairs per engine step (default 512 on a CPU, 16384 on a GPU: fixed, so results never "
        "depend on timing; it enters the stage keys)",
    )
    q.add_argument(
        "--trajectory-segments",
        type=_positive_int,
        default=trajectory_default,
        help=f"estimate the trajectory oscillation from this many sampled segments per direction, with a "
        f"95%% confidence interval (default {trajectory_default}: {why})",
    )
    q.add_argument(
        "--trajectory-exact",
        action="store_true",
        help="the paper's exact design instead: K = 50 partners per borderline sample, T = 50 points each "
        "(slow on a CPU)",
    )
    _compile_option(q)


def _compile_option(q) -> None:
    q.add_argument(
        "--no-compile",
        action="store_true",
        help="run the classifier's inference forwards eager (default: optimised for the device, "
        "checked against eager on a probe batch; see deepdig_fast.fast)",
    )
    q.add_argument(
        "--joint-training",
        choices=("auto", "vectorized", "processes", "sequential"),
        default="auto",
        help="how independent autoencoders (a run's two directions; an atlas's generators) are trained: "
        "vectorized (one vmapped model; the CUDA default), processes (single-thread worker processes side "
        "by side; the default on a CPU with 2+ threads), sequential (one after the other) (default: auto)",
    )
    q.add_argument(
        "--train-layout",
        choices=tuple(_LAYOUTS),
        default="auto",
        help="memory format of the classifier copy the autoencoders train against: channels_last, "
        "contiguous, or auto (channels_last on a CPU for a model with 2-d convolutions; see "
        "AdversarialConfig.channels_last) (default: auto)",
    )


#: --train-layout -> AdversarialConfig.channels_last
_LAYOUTS: dict[str, bool | str] = {"auto": "auto", "channels_last": True, "contiguous": False}


def cmd_run(args) -> int:
    # the autoencoders' worker processes start first: their imports overlap this process's
    pool = _early_training_pool(args)
    with pool if pool is not None else contextlib.nullcontext():
        return _run_command(args, pool)


def _early_training_pool(args):
    """Two training workers (train_worker.TrainingPool) started before torch is imported here, when
    the run will likely train in worker processes ("--joint-training processes", or "auto" with a
    CPU of 2+ cores); None otherwise. A guess: _run_command closes it once the device or the
    thread count says otherwise, and run_pair ignores it unless its mode is "processes"."""
    import os

    if args.joint_training not in ("auto", "processes") or args.device not in ("auto", "cpu"):
        return None
    if args.joint_training == "auto" and (os.cpu_count() or 1) < 2:
        return None
    from deepdig_fast.train_worker import TrainingPool

    return TrainingPool(2)


def _run_command(args, pool) -> int:
    import torch

    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.pipeline import PairConfig, run_pair

    device = _device(args.device)
    if pool is not None and (device.type != "cpu" or (args.joint_training == "auto" and torch.get_num_threads() < 2)):
        pool.close()
        pool = None
    torch.manual_seed(args.seed)
    log = (lambda m: None) if args.quiet else (lambda m: print(f"[deepdig] {m}", flush=True))
    _check_paths(_inputs(args), {"--out": args.out})
    # every setting is checked before the data, the classifier or the folder is touched
    adv = AdversarialConfig(steps=args.steps, channels_last=_LAYOUTS[args.train_layout])
    config = PairConfig(
        adversarial=adv,
        beta=args.beta,
        max_steps=args.max_steps,
        method=args.method,
        engine_batch_size=args.engine_batch_size,
        seed=args.seed,
        baselines=not args.no_baselines,
        characterize=not args.no_characterize,
        trajectory_segments=None if args.trajectory_exact else args.trajectory_segments,
        compile=not args.no_compile,
        joint_training=args.joint_training,
    )
    _preprocessing_args(args)
    ids = all(isinstance(c, int) for c in args.pair)
    # with a given classifier only the pair's classes are read (a default checkpoint may need training
    # on every class); the results are the same, every stage selects the pair's inputs
    data = _load_data(args, only=tuple(args.pair) if ids and (args.classifier or args.model) else None)
    autoencoder = _autoencoder_factory(args, data)
    # names only a zoo model defines (e.g. Hugging Face id2label) wait for it; others fail here
    pair = _resolve_pair(args.pair, data, None, final=not args.model)
    if pair is not None:
        _check_folder(args.out, "deepdig-run", {"pair": list(pair)})
    model, meta, info = _classifier(args, data, device, log)
    data = _named_classes(data, info)
    if pair is None:
        pair = _resolve_pair(args.pair, data, info.get("classes"), final=True)
        _check_folder(args.out, "deepdig-run", {"pair": list(pair)})
    s, t = pair
    layer = _embedding_layer(args, model, data, info, log)
    t0 = time.perf_counter()
    result = run_pair(
        model,
        data,
        s,
        t,
        config,
        out_dir=args.out,
        embedding_layer=layer,
        autoencoder=autoencoder,
        progress=not args.quiet,
        log=log,
        min_accuracy=args.min_accuracy,
        manifest_extra=_manifest_extra(args, data, meta, info),
        pool=pool,
    )
    if pool is not None:
        pool.close()  # before the report: nothing to train any more
    _print_summary(result, time.perf_counter() - t0, args.out)
    if not args.no_report:
        from deepdig_fast.report import write_report

        paths = write_report(args.out)
        print(f"report: {paths.get('report.html', Path(args.out) / 'report.html')}")
    return 0


def _manifest_extra(args, data, meta, info) -> dict:
    """What `deepdig run` and `deepdig atlas` add to manifest.json: the command line, the classifier's
    metadata, the data source, the autoencoder asked for and the zoo model's record."""
    return {
        "command": sys.argv,
        "classifier_meta": meta,
        "dataset": args.dataset,
        "data_source": _data_record(args, data),
        "autoencoder": args.autoencoder,
        "model_info": info,
    }


def _check_folder(out: str, kind: str, scope: dict) -> None:
    """Refuse, before any work, a folder that holds another kind of run or another scope (the run
    itself checks again under the folder's lock)."""
    from deepdig_fast.paths import refuse_links
    from deepdig_fast.rundir import check_folder

    if Path(out).is_dir():
        try:
            refuse_links(out)
            check_folder(Path(out), kind, scope)
        except ValueError as exc:
            raise CLIError(str(exc).replace("out_dir", "--out", 1)) from None


def cmd_report(args) -> int:
    from deepdig_fast.report import write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"{run_dir} is not a folder; expected a run folder written by `deepdig run`")
    if not (run_dir / "results.json").is_file():
        raise CLIError(
            f"{run_dir} is not a finished run folder (no results.json); run `deepdig run ... --out {run_dir}` first"
        )
    _refuse_links(run_dir, "RUN_DIR")
    paths = write_report(run_dir)
    for name in ("report.md", "report.html"):
        if name in paths:
            print(paths[name])
    return 0


def _fmt(v, pct=False):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def _print_summary(result, seconds, out) -> None:
    rows = result.summary_rows()
    print()
    print(f"{'direction':<10}{'method':<9}{'pairs':>7}{'success':>9}{'attempts':>10}{'forwards':>10}  note")
    for r in rows:
        print(
            f"{r['direction']:<10}{r['method']:<9}{r['pairs'] or 0:>7}{_fmt(r['success_rate'], True):>9}"
            f"{_fmt(r['mean_attempts_success']):>10}{r['forwards'] if r['forwards'] is not None else '-':>10}  {r['skipped'] or ''}"
        )
    print(f"\n'attempts' = mean attempts over successes. Finished in {seconds:.0f} s; results in {out}/results.json")


def _class_token(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _classes(text: str):
    """'all', or two or more classes given by id or name: 0,1,2 or cat,dog,ship."""
    if text.strip().lower() == "all":
        return None
    out = [_class_token(p) for p in text.split(",") if p.strip()]
    if len(set(out)) < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or at least two different classes like 0,1,2, got {text!r}")
    return out


def _pairs(text: str) -> list[tuple]:
    """Class pairs by id or name: 1-2,4-9 or cat-dog,ship-truck (a name with '-' in it: use its id)."""
    if not all(part.count("-") == 1 for part in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected pairs like 1-2,4-9 or cat-dog, got {text!r}")
    return [_pair(part) for part in text.split(",")]


_DIST_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _init_distributed(args):
    """Under torchrun: join the process group (nccl on GPUs, gloo on CPUs) and return (rank, world,
    device); otherwise (0, 1, device).

    torchrun is recognised by TORCHELASTIC_RUN_ID (or asked for with --distributed, for other
    launchers that set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT). A stray WORLD_SIZE or
    MASTER_ADDR in an ordinary shell is ignored with a note instead of waiting for peers that never
    come; joining the group waits at most --dist-init-timeout seconds.
    """
    import datetime
    import os

    import torch

    env = {k: os.environ.get(k) for k in _DIST_VARS}
    launched = bool(os.environ.get("TORCHELASTIC_RUN_ID")) or args.distributed
    if not launched:
        stray = [f"{k}={v}" for k, v in env.items() if v is not None]
        if stray and int(env.get("WORLD_SIZE") or "1") > 1 and not args.quiet:
            print(
                f"[deepdig] note: {', '.join(stray)} set but this process was not started by torchrun: running as "
                "one process (pass --distributed to join a process group from these variables)",
                file=sys.stderr,
            )
        return 0, 1, _device(args.device)
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise CLIError(
            f"distributed run: {', '.join(missing)} not set; start with torchrun (or set all of "
            f"{', '.join(_DIST_VARS)})"
        )
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        raise CLIError(
            f"distributed run: RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be integers"
        ) from None
    if world <= 1:
        return 0, 1, _device(args.device)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = (
            torch.device(f"cuda:{local % torch.cuda.device_count()}")
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    else:
        device = _device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(seconds=args.dist_init_timeout)
            )
        except Exception as exc:  # DistStoreError, RuntimeError: nobody answered at MASTER_ADDR:MASTER_PORT
            raise CLIError(
                f"could not join the process group at {env['MASTER_ADDR']}:{env['MASTER_PORT']} as rank "
                f"{rank} of {world} within {args.dist_init_timeout} s ({type(exc).__name__}); are all "
                "ranks started?"
            ) from None
        # from now on a rank may wait for the others as long as a phase takes
        set_timeout = getattr(dist.distributed_c10d, "_set_pg_timeout", None)
        if set_timeout is not None:
            set_timeout(datetime.timedelta(seconds=args.dist_timeout))
    return dist.get_rank(), dist.get_world_size(), device


def _atlas_only(args, config):
    """The classes an atlas reads: those of --classes / --pairs when a classifier is given and the
    strategy is pairwise (a per-target generator trains on every other class, and a default
    checkpoint may need training on all of them); None (every class) otherwise."""
    if not (args.classifier or args.model):
        return None
    chosen = args.classes if args.classes is not None else ([c for p in args.pairs for c in p] if args.pairs else None)
    if chosen is None or not all(isinstance(c, int) for c in chosen):  # names: resolved once the data is read
        return None
    if config.resolved_strategy(len(set(chosen))) != "pairwise":
        return None
    return sorted(set(chosen))


def _atlas_scope_directions(args, data, classes, pairs):
    from deepdig_fast.atlas import atlas_directions

    try:
        return atlas_directions(data.num_classes, classes, pairs)
    except ValueError as exc:
        raise CLIError(f"{exc} ({args.dataset} has {data.num_classes} classes)") from None


def cmd_atlas(args) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _atlas(args)
    finally:  # --threads is this command's setting, not the calling process's (main() called in-process)
        torch.set_num_threads(threads)


def _atlas(args) -> int:
    import torch

    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.atlas import AtlasConfig, run_atlas

    _check_paths(_inputs(args), {"--out": args.out})
    if args.threads:
        torch.set_num_threads(args.threads)
    config = AtlasConfig(  # every setting is checked before any work
        strategy=args.strategy,
        adversarial=AdversarialConfig(steps=args.steps, channels_last=_LAYOUTS[args.train_layout]),
        beta=args.beta,
        max_steps=args.max_steps,
        method=args.method,
        engine_batch_size=args.engine_batch_size,
        seed=args.seed,
        trajectory=not args.no_trajectory,
        trajectory_segments=None if args.trajectory_exact else args.trajectory_segments,
        linearity=not args.no_linearity,
        max_inputs_per_class=args.max_per_class,
        save_points=args.save_points,
        compile=not args.no_compile,
        joint_training=args.joint_training,
    )
    _preprocessing_args(args)
    rank, world, device = _init_distributed(args)
    try:
        log = (lambda m: None) if args.quiet else (lambda m: print(f"[deepdig] {m}", flush=True))
        data = _load_data(args, only=_atlas_only(args, config))
        # names only a zoo model defines (e.g. Hugging Face id2label) wait for it; others fail here
        scope = _resolve_atlas_scope(args, data, None, final=not args.model)
        directions = None if scope is None else _atlas_scope_directions(args, data, *scope)
        autoencoder = _autoencoder_factory(args, data)
        if rank == 0 and directions is not None:
            _check_folder(args.out, "deepdig-atlas", {"directions": [list(d) for d in directions]})
        if world > 1:
            import torch.distributed as dist

            # rank 0 loads (or trains and caches) the classifier first; its failure reaches every
            # rank at once instead of leaving them waiting for the whole --dist-timeout
            failure = None
            if rank == 0:
                try:
                    model, meta, info = _classifier(args, data, device, log)
                except Exception as exc:
                    failure = exc
            box = [None if failure is None else _one_line(failure)]
            dist.broadcast_object_list(box, src=0)
            if failure is not None:
                raise failure
            if box[0] is not None:
                raise CLIError(f"rank 0 could not prepare the classifier: {box[0]}")
            if rank != 0:
                model, meta, info = _classifier(args, data, device, lambda m: None)
        else:
            model, meta, info = _classifier(args, data, device, log)
        data = _named_classes(data, info)
        if scope is None:
            scope = _resolve_atlas_scope(args, data, info.get("classes"), final=True)
            directions = _atlas_scope_directions(args, data, *scope)
            if rank == 0:
                _check_folder(args.out, "deepdig-atlas", {"directions": [list(d) for d in directions]})
        classes, pairs = scope
        layer = _embedding_layer(args, model, data, info, log if rank == 0 else (lambda m: None))
        t0 = time.perf_counter()
        result = run_atlas(
            model,
            data,
            config,
            classes=classes,
            pairs=pairs,
            out_dir=args.out,
            embedding_layer=layer,
            autoencoder=autoencoder,
            progress=not args.quiet and rank == 0,
            log=log,
            report=not args.no_report,
            min_accuracy=args.min_accuracy,
            manifest_extra=_manifest_extra(args, data, meta, info),
        )
        if rank == 0:
            _print_atlas(result, time.perf_counter() - t0, args.out)
    finally:
        if world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                # every rank leaves its last collective before any tears the group down (a rank that
                # exits while another still talks to it can abort the other at shutdown)
                with contextlib.suppress(Exception):
                    dist.barrier()
                dist.destroy_process_group()
                args.leave_at_once = True
    return 0


def _print_atlas(result, seconds, out) -> None:
    a = result.atlas
    rows = a["directions"]
    done = [r for r in rows if r["success_rate"] is not None]
    print(
        f"\natlas of {len(a['classes'])} classes, {len(rows)} directions, strategy {a['strategy']}: "
        f"{len(done)} with borderline samples, {len(rows) - len(done)} skipped"
    )
    print(f"{'direction':<10}{'pairs':>7}{'success':>9}{'attempts':>10}{'oscill.':>9}{'m1':>7}{'margin':>8}  note")
    for r in rows:
        print(
            f"{r['source']}->{r['target']:<7}{r['pairs'] or 0:>7}{_fmt(r['success_rate'], True):>9}"
            f"{_fmt(r['mean_attempts']):>10}{_fmt(r['oscillation']):>9}{_fmt(r['m1_borderline']):>7}"
            f"{_fmt(r['margin_l2_mean']):>8}  {(r['skipped'] or '')[:60]}"
        )
    written = ", atlas.html" if "atlas.html" in result.paths else ""
    print(f"\nFinished in {seconds:.0f} s; {out}/atlas.json, atlas.csv{written}")


def cmd_compare(args) -> int:
    from deepdig_fast.atlas_report import compare_atlases, format_compare_table

    labels = tuple(args.labels.split(",")) if args.labels else None
    if labels is not None and len(labels) != 2:
        raise CLIError(f"--labels must be two names like base,robust, got {args.labels!r}")
    out = args.out or _out_dir(f"{Path(args.atlas_b).name}-vs-{Path(args.atlas_a).name}")
    from deepdig_fast.atlas_report import COMPARE_FILES
    from deepdig_fast.paths import PathConflictError, refuse_linked_outputs

    written = [Path(out) / f for f in COMPARE_FILES]
    _check_paths({"ATLAS_A": args.atlas_a, "ATLAS_B": args.atlas_b}, {"--out": written})
    try:
        refuse_linked_outputs(written, "--out")
    except PathConflictError as exc:
        raise CLIError(str(exc)) from None
    result = compare_atlases(args.atlas_a, args.atlas_b, out, top=args.top, labels=labels)
    print(format_compare_table(result, args.top))
    print(f"\n{Path(out) / 'compare.html'}")
    return 0


def cmd_table(args) -> int:
    from deepdig_fast.tables import TableInputError, write_tables

    try:  # the inputs and --out are checked there, before anything is written
        written = write_tables(args.dirs, args.out)
    except TableInputError as exc:
        raise CLIError(str(exc)) from None
    for path in written.values():
        print(path)
    return 0


def cmd_info(args) -> int:
    from deepdig_fast import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def _autoencoder_option(q) -> None:
    q.add_argument(
        "--autoencoder",
        type=_autoencoder,
        default="auto",
        metavar="AE",
        help="autoencoder of components I/II: auto (default: the paper's MLP for 28x28 grey images, the "
        "convolutional family otherwise), mlp, conv, or package.module:factory (called with the input shape)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="deepdig", description="Find and characterize the decision boundaries of deep classifiers (DeepDIG)."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(q, data=True):
        q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
        q.add_argument("--seed", type=_seed, default=0, help="seed of the run (default 0)")
        q.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
        if data:
            q.add_argument(
                "--dataset",
                type=_dataset,
                default="mnist",
                metavar="DATASET",
                help="mnist (default, shipped), fashion-mnist, cifar10, imagefolder (class subfolders), "
                "tensors (a .pt/.npz file with x, y) or torchvision:NAME (e.g. torchvision:CIFAR100)",
            )
            q.add_argument(
                "--data-root", help="folder (or, for tensors, file) with the data (default for mnist: the shipped copy)"
            )
            q.add_argument(
                "--image-size", type=_image_size, help="imagefolder / torchvision: resize to N (square) or HxW"
            )
            q.add_argument(
                "--channels",
                type=int,
                choices=(1, 3),
                help="imagefolder / torchvision: 1 (grey) or 3 (RGB); default: from the images",
            )
            q.add_argument(
                "--download", action="store_true", help="torchvision:NAME only: fetch the data set into --data-root"
            )
            q.add_argument(
                "--arch",
                choices=ARCHS,
                help="reference classifier (default cnn; resnet34, the paper's, for cifar10): cnn, fcn (the "
                "paper's MNIST models), resnet18, resnet34, googlenet (the paper's CIFAR-10 models), resnet (= resnet18)",
            )

    def model_options(q):
        q.add_argument(
            "--classifier",
            help="checkpoint to use (STEM, STEM.pt or STEM.json; only read, never written); "
            "default checkpoints/DATASET-ARCH, trained there only when nothing is there",
        )
        q.add_argument(
            "--model",
            help="torchvision:NAME, timm:NAME, hf:MODEL_ID_OR_DIR, robustbench:NAME, or your own "
            "architecture as package.module:factory (with --weights)",
        )
        q.add_argument(
            "--weights",
            help="state_dict file for --model (.pt loaded with weights_only=True, or .safetensors); "
            "zoo models default to their pretrained weights when already in the local cache",
        )
        q.add_argument(
            "--normalize",
            default="auto",
            help="auto (default: the zoo model's own normalisation), none, "
            "imagenet, cifar10, mnist, MEAN,STD or M1,M2,M3,S1,S2,S3; applied inside the model, the "
            "method stays in [0, 1] pixel space",
        )
        q.add_argument(
            "--resize",
            default="auto",
            help="resize inputs inside the model: auto (default: to the "
            "pretrained weights' input size), none, N or H,W (bilinear, antialias off)",
        )
        q.add_argument(
            "--embedding-layer",
            default="auto",
            help="auto (default: the model's declared layer or the "
            "input of its final Linear layer), none, or a submodule NAME / NAME:input",
        )
        q.add_argument("--steps", type=_train_steps, default=5000, help="autoencoder training steps (paper: 5000)")
        q.add_argument(
            "--min-accuracy",
            type=_share,
            default=0.5,
            help="refuse a classifier that gets less than this share of a studied class's test inputs "
            "right (default 0.5; usually a wrong input contract, e.g. a missing --normalize); 0 studies any",
        )

    q = sub.add_parser(
        "train",
        help="train a reference classifier and save it as a checkpoint",
        description="Train a reference classifier and save it (weights + metadata recording the recipe and regime). "
        "By default the fast recipe runs (Adam lr 0.01, constant, 5 epochs, batch 128); --recipe paper is the "
        "authors' (Adam lr 0.01, StepLR(100, 0.99) every iteration, batch 64, 40 epochs; 10 for cifar10).",
    )
    common(q)
    q.add_argument(
        "--out",
        help="checkpoint path stem (default checkpoints/DATASET-ARCH, + -paper for --recipe paper, "
        "+ -adversarial for --regime adversarial; `deepdig run` uses checkpoints/DATASET-ARCH by default)",
    )
    q.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out (default: refuse)")
    q.add_argument(
        "--recipe",
        choices=("fast", "paper"),
        default="fast",
        help="fast (default: Adam lr 0.01 constant, 5 epochs, batch 128) or paper (the public code's: Adam lr "
        "0.01, StepLR(step 100, gamma 0.99) stepped every iteration, batch 64, 40 epochs; 10 for cifar10)",
    )
    q.add_argument(
        "--epochs", type=_train_steps, help="training epochs (default: the recipe's: fast 5; paper 40, cifar10 10)"
    )
    q.add_argument("--lr", type=_positive_float, help="Adam learning rate (default: the recipe's, 0.01)")
    q.add_argument("--batch-size", type=_positive_int, help="batch size (default: the recipe's: fast 128, paper 64)")
    q.add_argument(
        "--regime",
        choices=("standard", "adversarial"),
        default="standard",
        help="standard (default) or adversarial: PGD adversarial training, every batch replaced by its L-inf PGD "
        "examples (defaults: mnist/fashion-mnist/grey data eps 0.3, 40 steps of 0.01; cifar10/colour data "
        "eps 8/255, 10 steps of 2/255)",
    )
    q.add_argument("--pgd-eps", type=_fraction, help="adversarial regime: L-inf radius, e.g. 0.3 or 8/255")
    q.add_argument("--pgd-step", type=_fraction, help="adversarial regime: step size, e.g. 0.01 or 2/255")
    q.add_argument("--pgd-steps", type=_train_steps, help="adversarial regime: PGD steps per batch")
    q.add_argument("--weight-decay", type=_non_negative, help="Adam's L2 weight decay (default 0)")
    q.add_argument("--dropout", type=_unit_left, help="dropout before the last layer (default 0)")
    q.add_argument("--label-smoothing", type=_unit_left, help="label smoothing of the cross-entropy (default 0)")
    q.add_argument("--mixup", type=_non_negative, help="mixup with lambda ~ Beta(A, A); 0 (default) for none")
    q.set_defaults(fn=cmd_train)

    q = sub.add_parser("run", help="DeepDIG for one class pair, both directions, with baselines")
    common(q)
    q.add_argument("--pair", type=_pair, required=True, help="two class ids or names, e.g. 1,2 or cat,dog")
    q.add_argument(
        "--out", type=_out_dir, required=True, help="run folder (resumable: rerun the same command after a crash)"
    )
    model_options(q)
    _autoencoder_option(q)
    _engine_options(q, TRAJECTORY_SEGMENTS, "one pair's interval tight enough to compare runs, short on a CPU")
    q.add_argument("--no-baselines", action="store_true", help="skip the RPBS and EPBS baselines")
    q.add_argument("--no-characterize", action="store_true", help="skip the trajectory and linearity metrics")
    q.add_argument("--no-report", action="store_true", help="do not write report.md / report.html at the end")
    q.set_defaults(fn=cmd_run)

    q = sub.add_parser("report", help="write report.md and a self-contained report.html for a run folder")
    q.add_argument("run_dir", help="a run folder written by `deepdig run`")
    q.set_defaults(fn=cmd_report)

    q = sub.add_parser("atlas", help="DeepDIG on every class pair of a model (torchrun to shard it)")
    common(q)
    which = q.add_mutually_exclusive_group()
    which.add_argument(
        "--classes",
        type=_classes,
        default=None,
        help="'all' (default) or classes by id or name, like 0,1,2 or cat,dog,ship",
    )
    which.add_argument(
        "--pairs", type=_pairs, help="class pairs by id or name, like 1-2,4-9 or cat-dog (both directions of each)"
    )
    q.add_argument(
        "--out", type=_out_dir, required=True, help="atlas folder (resumable: rerun the same command after a crash)"
    )
    q.add_argument(
        "--strategy",
        choices=("auto", "per-target", "pairwise"),
        default="auto",
        help="per-target: one generator per target class (K in all); pairwise: the paper's two "
        "autoencoders per direction; auto (default): per-target for more than 3 classes",
    )
    model_options(q)
    _autoencoder_option(q)
    _engine_options(q, ATLAS_TRAJECTORY_SEGMENTS, "a fifth of a pair run's segments, as an atlas has K(K-1) directions")
    q.add_argument("--no-trajectory", action="store_true", help="skip the trajectory oscillation")
    q.add_argument("--no-linearity", action="store_true", help="skip the per-direction linear SVM (m1)")
    q.add_argument(
        "--max-per-class", type=_positive_int, help="use at most this many inputs per class (a seeded subset)"
    )
    q.add_argument(
        "--save-points", action="store_true", help="keep each direction's borderline samples in its unit file"
    )
    q.add_argument(
        "--threads", type=_threads, help="torch threads per process (results are reproducible for a fixed value)"
    )
    q.add_argument(
        "--dist-timeout",
        type=_seconds,
        default=4 * 3600,
        help="seconds a rank waits for the others at a phase boundary (default 14400)",
    )
    q.add_argument(
        "--dist-init-timeout",
        type=_seconds,
        default=300,
        help="seconds to wait for every rank to join the process group (default 300)",
    )
    q.add_argument(
        "--distributed",
        action="store_true",
        help="join a process group from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT without torchrun",
    )
    q.add_argument("--no-report", action="store_true", help="do not write atlas.md / atlas.html / heatmaps")
    q.set_defaults(fn=cmd_atlas)

    q = sub.add_parser("compare", help="two atlases side by side: difference heatmaps and the largest changes")
    q.add_argument("atlas_a", help="atlas folder A (the reference)")
    q.add_argument("atlas_b", help="atlas folder B (differences are B - A)")
    q.add_argument(
        "--out",
        type=_out_dir,
        help="folder for compare.html, compare.md, compare.json and figures/ (default: B-vs-A in the current folder)",
    )
    q.add_argument("--labels", help="names of A and B, like base,robust (default: the folder names)")
    q.add_argument("--top", type=_positive_int, default=15, help="rows of the largest-changes table (default 15)")
    q.set_defaults(fn=cmd_compare)

    q = sub.add_parser(
        "table",
        help="the paper's tables (DeepDIG vs RPBS vs EPBS, oscillation, linearity) from run folders and atlases",
        description="Assemble finished `deepdig run` folders and `deepdig atlas` folders into the paper's tables, per "
        "model and class pair: success rate and mean attempts of DeepDIG, RPBS and EPBS; trajectory oscillation; "
        "linearity (m1 and SVM accuracy on train, test and borderline). Writes tables.md, tables.tex and one CSV "
        "per table into --out, stating each model's classifier, recipe and regime and each row's DeepDIG "
        "settings, and flagging tables whose rows used different settings. The inputs are only read.",
    )
    q.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (results.json) and atlas folders (atlas.json)")
    q.add_argument("--out", type=_out_dir, required=True, help="folder for the tables (not inside an input folder)")
    q.set_defaults(fn=cmd_table)

    q = sub.add_parser("info", help="print how the C++/CUDA extension was built")
    q.set_defaults(fn=cmd_info)
    return p


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.fn(args)
        if code == 0 and getattr(args, "leave_at_once", False) and argv is None:
            # A torchrun rank whose work is committed and whose process group is destroyed. Once, in
            # CI, such a rank died at interpreter shutdown ("terminate called without an active
            # exception", SIGABRT: a C++ thread of torch's distributed runtime still joinable),
            # and torchrun reported the finished atlas as failed. Leave without the shutdown:
            # every result is already on disk; only the output streams need flushing.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return code
    except CLIError as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
        return 2
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
        return 1
    except OSError as exc:  # a full disk, a folder without permission, ...
        where = f" ({exc.filename})" if exc.filename else ""
        hint = "; free some space and rerun the same command to resume" if exc.errno == errno.ENOSPC else ""
        sys.stderr.write(f"deepdig {args.command}: error: {exc.strerror or exc}{where}{hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("deepdig: interrupted; rerun the same command to resume\n")
        return 130
    except Exception as exc:
        from deepdig_fast.rundir import RunError  # (imports torch: only once a command has failed)

        if isinstance(exc, RunError):  # another process holds the folder, a rank failed, ...
            sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
            return 1
        # a defect of ours, or torch failing in a way nothing above foresaw: still one line
        if os.environ.get("DEEPDIG_TRACEBACK"):
            raise
        sys.stderr.write(
            f"deepdig {args.command}: error: {type(exc).__name__}: {_one_line(exc)[:300]} (unexpected; "
            "finished stages are kept, so rerunning resumes; DEEPDIG_TRACEBACK=1 shows where it failed)\n"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
