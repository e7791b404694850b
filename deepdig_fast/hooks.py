"""Read a classifier's embedding from a named submodule with a forward hook (no model surgery).

`layer` is a dotted submodule name as in `model.named_modules()`. By default the module's output is
captured; append ":input" to capture the module's (first) input instead, e.g. "fc2:input" is the
input of the last linear layer, the embedding of METHOD.md.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


def _resolve(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
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
    """Context manager: while active, every forward of `model` stores the layer's output (or input)."""
    module, use_input = _resolve(model, layer)
    cap = EmbeddingCapture()

    def hook(_mod, inputs, output):
        t = inputs[0] if use_input else output
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"embedding_layer {layer!r} produced {type(t).__name__}, expected a Tensor")
        cap.value = t.detach().reshape(t.shape[0], -1)

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


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, layer: str, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` over `x` in batches; return (logits [N, C], embeddings [N, E])."""
    logits, embs = [], []
    with capture_embeddings(model, layer) as cap:
        for i in range(0, x.shape[0], batch_size):
            logits.append(model(x[i : i + batch_size]))
            embs.append(cap.take())
    if not logits:
        raise ValueError("embed: x is empty; expected at least one input")
    return torch.cat(logits), torch.cat(embs)
