"""Batched, inference-only forwards of a classifier: logits (predict) and logits with embeddings
(embed), in batches of bounded memory, under hooks.inference (no autograd, eval mode, modes
restored) and on private copies of the caller's inputs; and the checks of what goes in and out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from deepdig_fast.budget import FORWARD_ELEMENTS, fit_batch
from deepdig_fast.data import as_unit
from deepdig_fast.fast import prepared_for
from deepdig_fast.hooks import capture_embeddings, inference, private
from deepdig_fast.precision import full_fp32
from deepdig_fast.validation import check_input_dtype, check_int

Classifier = Callable[[torch.Tensor], torch.Tensor]


def check_inputs(x: object, name: str) -> torch.Tensor:
    """`x` itself when it is a floating tensor [N, *in_shape] (float32 or float64)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_input_dtype(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must be shaped [N, *in_shape], got shape {tuple(x.shape)}")
    return x


def check_logits(out: object, n: int) -> None:
    """Refuse a classifier output that is not logits [n, C]."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"classifier must return a logits tensor [N, C], got {type(out).__name__} "
            f"(wrap models that return tuples so they return only the logits)"
        )
    if out.dim() != 2 or out.shape[0] != n:
        raise ValueError(f"classifier must return logits shaped [N, C]; got {tuple(out.shape)} for N={n}")


# --------------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------------
@full_fp32()
def predict(classifier: Classifier, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits ``[N, C]`` of ``classifier`` on ``x`` ``[N, *in_shape]``, in batches, without grad.

    An nn.Module classifier runs in eval mode; its own modes are restored afterwards. It sees
    copies of ``x``'s batches, so ``x`` is never modified. uint8 pixels (a data set's storage) are
    converted a batch at a time (data.as_unit).
    """
    pixels = isinstance(x, torch.Tensor) and x.dtype == torch.uint8
    x = x if pixels else check_inputs(x, "x")
    bs = fit_batch(
        check_int(batch_size, "batch_size", low=1), x.shape[1:], FORWARD_ELEMENTS
    )  # bounded at any input size
    with inference(classifier):
        # max(N, 1): an empty x still gets one (empty) forward, which gives the logits' shape [0, C]
        outs = [
            classifier(as_unit(x[i : i + bs]) if pixels else private(x[i : i + bs]))
            for i in range(0, max(x.shape[0], 1), bs)
        ]
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    check_logits(out, x.shape[0])
    return out


@full_fp32()
def embed(
    model: nn.Module, x: torch.Tensor, layer: str, batch_size: int = 1024, *, compile: bool | str = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` over `x` in batches; return (logits [N, C], embeddings [N, E]).

    The model runs under `inference` (no grad, eval mode, modes restored) on copies of `x`'s
    batches; the embeddings keep the layer's dtype. compile: True (default) prepares a plain
    nn.Module for the device's inference backend with `layer` (deepdig_fast.fast.prepared_for,
    guarded against eager on the first inputs); False runs the model as it is."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise TypeError(f"x must be a torch.Tensor [N, ...], got {getattr(x, 'shape', type(x).__name__)}")
    check_int(batch_size, "batch_size", low=1)
    if x.shape[0] == 0:
        raise ValueError("embed: x is empty; expected at least one input")
    if x.dim() >= 2:
        model = prepared_for(model, x[:32].detach(), embedding_layer=layer, compile=compile)
    batch_size = fit_batch(batch_size, x.shape[1:], FORWARD_ELEMENTS)  # bounded memory at any input size
    logits, embs = [], []
    with capture_embeddings(model, layer) as cap, inference(model):
        for i in range(0, x.shape[0], batch_size):
            logits.append(model(private(x[i : i + batch_size])))
            embs.append(cap.take())
    return torch.cat(logits), torch.cat(embs)
