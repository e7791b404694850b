"""What every zoo builder shares: the `Built` record it returns, optional packages imported with a
one-line error, state_dict files read (`read_weights`) and loaded, the class count a state_dict
implies, the architecture built on the meta device, and torch hub's cache file for a URL.

A builder is `build_NAME(name, spec, state, pretrained, num_classes, in_shape) -> Built`, one per
zoo source (source_*.py), registered in load.py.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from deepdig_fast.zoo.normalize import Normalization

__all__ = [
    "Built",
    "import_optional",
    "read_weights",
    "load_state",
    "classes_in_state",
    "reconcile_classes",
    "meta_build",
    "hub_file",
]


def import_optional(package: str, spec: str, extra: str = "deepdig_fast[zoo]") -> Any:
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
    from deepdig_fast.checkpoint import state_dict_from
    from deepdig_fast.io import load_tensors

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} does not exist")
    if p.suffix == ".safetensors":
        st = import_optional("safetensors.torch", f"{spec} (.safetensors weights)")
        state = dict(st.load_file(str(p)))
    else:
        state = state_dict_from(load_tensors(p), str(p))
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())
        raise ValueError(f"{where}: the weights do not fit {type(model).__name__}: {first[:400]}") from e


def classes_in_state(head: str | None, state: Mapping[str, torch.Tensor] | None) -> int | None:
    if head is None or state is None:
        return None
    w = state.get(f"{head}.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def reconcile_classes(spec: str, asked: int | None, in_weights: int | None, default: int | None) -> int | None:
    if asked is not None and in_weights is not None and asked != in_weights:
        raise ValueError(f"{spec}: num_classes={asked}, but the weights' final layer has {in_weights} outputs")
    return asked if asked is not None else in_weights if in_weights is not None else default


def meta_build(build) -> nn.Module | None:
    """The architecture without memory (meta device), to read its layer names; None if that fails."""
    try:
        with torch.device("meta"):
            return build()
    except Exception:
        return None


@dataclass
class Built:
    model: nn.Module
    weights: str
    num_classes: int | None
    classes: list[str] | None = None
    norm: Normalization | None = None
    norm_source: str | None = None
    resize: tuple[int, int] | None = None
    wrapped: bool = True


def hub_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
