"""What a command reads, checked before any work: the device, the paths it reads and writes, the
data set of --dataset / --data-root, the --autoencoder factory, and what the manifest records."""

from __future__ import annotations

import sys
from pathlib import Path

from deepdig_fast.cli.argtypes import DATASETS
from deepdig_fast.cli.errors import CLIError


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


def _manifest_extra(args, data, meta, info) -> dict:
    """What `deepdig run` and `deepdig atlas` add to manifest.json: the command line, the classifier's
    metadata, the data source, the autoencoder asked for and the zoo model's record."""
    return {
        "command": getattr(args, "command_line", None) or sys.argv,
        "name": getattr(args, "name", None),
        "classifier_meta": meta,
        "dataset": args.dataset,
        "data_source": _data_record(args, data),
        "autoencoder": args.autoencoder,
        "model_info": info,
    }
