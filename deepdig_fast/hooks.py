"""Read a classifier's embedding from a named submodule with a forward hook (no model surgery).

`layer` is a dotted submodule name as in `model.named_modules()`. By default the module's output is
captured; append ":input" to capture the module's (first) input instead, e.g. "fc2:input" is the
input of the last linear layer, the embedding of docs/METHOD-NOTES.md.

How the library runs a classifier for inference (engine, forward.predict, forward.embed, baselines,
characterize):
inside `inference(model)` -- no autograd and every submodule in eval mode, so dropout is off and
BatchNorm neither uses nor updates batch statistics; each module's flag is restored afterwards --
and never on the caller's memory: a chunk of caller data is copied before the forward (`private`),
so a model that edits its input in place (`x.sub_(mean)`, `x.mul_(0)`) cannot change the caller's
tensors. Tensors the library allocated itself for the forward (the engine's midpoints, trajectory
points) need no copy. A captured embedding is a copy too (a later in-place op in the model, e.g.
`relu_` on the layer's output, cannot change it) and keeps the layer's dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def resolve_layer(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """(the submodule `layer` names, whether its input rather than its output is the embedding)."""
    name, _, which = layer.partition(":")
    if which not in ("", "input", "output"):
        raise ValueError(f"embedding_layer must be 'NAME', 'NAME:input' or 'NAME:output', got {layer!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"embedding_layer={layer!r} needs model to be an nn.Module, got {type(model).__name__}")
    modules = dict(model.named_modules())
    if name not in modules:
        known = ", ".join(n for n in modules if n) or "(none)"
        raise ValueError(f"embedding_layer {name!r} is not a submodule of the model; submodules: {known}")
    return modules[name], which == "input"


class EmbeddingCapture:
    """Holds the embedding of the latest forward, flattened to [N, E]."""

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def take(self) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("the embedding layer did not run during the forward pass")
        v, self.value = self.value, None
        return v


@contextlib.contextmanager
def capture_embeddings(model: nn.Module, layer: str) -> Iterator[EmbeddingCapture]:
    """Context manager: while active, every forward of `model` stores the layer's output (or input).

    `model` may also be a deepdig_fast.fast.PreparedClassifier prepared for `layer`: its optimised
    function returns the embedding itself (no hook on a compiled module)."""
    tap = getattr(model, "embedding_tap", None)
    if tap is not None and not isinstance(model, nn.Module):
        with tap(layer) as prepared_cap:
            yield prepared_cap
        return
    module, use_input = resolve_layer(model, layer)
    cap = EmbeddingCapture()

    def hook(_mod, inputs, output):
        t = inputs[0] if use_input else output
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"embedding_layer {layer!r} produced {type(t).__name__}, expected a Tensor")
        # a copy: an in-place op later in the forward (e.g. relu_) must not change the record
        cap.value = t.detach().reshape(t.shape[0], -1).clone()

    handle = module.register_forward_hook(hook)
    try:
        yield cap
    finally:
        handle.remove()


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """Every submodule of an nn.Module in eval mode for the duration (predictions must not depend
    on dropout or batch statistics); each module's own flag is restored afterwards. Other
    callables pass through unchanged."""
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def inference(model) -> Iterator[None]:
    """No autograd and `eval_mode(model)` for the duration: how the library runs a classifier for
    predictions (flags restored afterwards; other callables pass through)."""
    with torch.no_grad(), eval_mode(model):
        yield


def private(x: torch.Tensor) -> torch.Tensor:
    """A copy of `x` for one forward: what the model does to its input stays in the copy."""
    return x.clone()


def model_device(model: Any, fallback: torch.device | str = "cpu") -> torch.device:
    """The device of a module's first parameter (or buffer); `fallback` for callables and
    parameter-free modules. A PreparedClassifier (deepdig_fast.fast) answers for its module."""
    model = getattr(model, "module", model) if not isinstance(model, nn.Module) else model
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device(fallback)
