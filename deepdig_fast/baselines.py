"""Baseline starting pairs for the borderline engine (docs/METHOD-NOTES.md "Baselines").

RPBS  random pairs: correctly classified training inputs of class s and of class t, shuffled,
      truncated to the shorter list, paired index by index.
EPBS  embedding-nearest pairs: every correctly classified input of class s with the correctly
      classified input of class t nearest to it in the classifier's embedding space (Euclidean).
      The public DeepDIG code takes one norm over the whole difference matrix and so pairs every s
      input with the same t input; this is the intended nearest-neighbour search, done by the fused
      `nearest_neighbor` op in O(queries + references) memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from deepdig_fast.budget import FORWARD_ELEMENTS, fit_batch
from deepdig_fast.data import as_unit
from deepdig_fast.fast import inference_mode, prepared_for
from deepdig_fast.forward import embed
from deepdig_fast.hooks import inference
from deepdig_fast.validation import check_input_dtype


@dataclass
class PairSet:
    """Starting pairs: a [P, ...] (class s, predicted s), b [P, ...] (class t, predicted t), and the
    rows of the input tensor they came from (a_index, b_index: [P] int64). `distance` [P] is the
    embedding distance for EPBS, None for RPBS. `inference`: how the classifier's forwards ran
    ("torchscript", "inductor" or "eager")."""

    a: Tensor
    b: Tensor
    a_index: Tensor
    b_index: Tensor
    distance: Tensor | None = None
    inference: str = "eager"

    def __len__(self) -> int:
        return int(self.a.shape[0])


def _check(x: Tensor, y: Tensor, s: int, t: int) -> None:
    if not isinstance(x, Tensor) or not (x.is_floating_point() or x.dtype == torch.uint8) or x.dim() < 2:
        raise ValueError(
            f"x must be a floating-point (or uint8 pixel) tensor [N, ...], got {getattr(x, 'shape', type(x).__name__)}"
        )
    check_input_dtype(x, "x", pixels=True)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"y must be a label tensor of shape [{x.shape[0]}], got {getattr(y, 'shape', type(y).__name__)}"
        )
    if s == t:
        raise ValueError(f"source and target must differ, got {s} and {t}")


def _correct(model, x: Tensor, y: Tensor, c: int, batch_size: int) -> Tensor:
    """Indices (into x) of the inputs labelled c that the model predicts as c (in eval mode, without
    grad; the model sees copies: indexing with an index tensor copies the rows)."""
    idx = (y == c).nonzero().flatten()
    if idx.numel() == 0:
        return idx
    batch_size = fit_batch(batch_size, x.shape[1:], FORWARD_ELEMENTS)  # bounded memory at any input size
    with inference(model):
        preds = torch.cat(
            [model(as_unit(x[idx[i : i + batch_size]])).argmax(1) for i in range(0, idx.numel(), batch_size)]
        )
    return idx[preds.to(idx.device) == c]


def _prepared(model, x: Tensor, y: Tensor, source: int, target: int, layer: str | None, compile: bool | str):
    """The model as the baselines run it (fast.prepared_for), guarded on a few inputs of both classes."""
    rows = [torch.nonzero(y == c).flatten()[:16].to(x.device) for c in (source, target)]
    return prepared_for(model, as_unit(x[torch.cat(rows)]), embedding_layer=layer, compile=compile)


def random_pairs(
    model,
    x: Tensor,
    y: Tensor,
    source: int,
    target: int,
    *,
    seed: int = 0,
    batch_size: int = 1024,
    compile: bool | str = True,
) -> PairSet:
    """RPBS pairs. x: [N, ...] inputs (float in [0, 1], or uint8 pixels: only the rows used are
    converted, see data.as_unit), y: [N] labels (on any device; the model runs on x's). compile:
    True (default) prepares a plain nn.Module for the device's inference backend, guarded against
    eager (deepdig_fast.fast.prepared_for); False runs it as it is."""
    _check(x, y, source, target)
    model = _prepared(model, x, y, source, target, None, compile)
    ia = _correct(model, x, y, source, batch_size)
    ib = _correct(model, x, y, target, batch_size)
    g = torch.Generator().manual_seed(seed)
    ia = ia[torch.randperm(ia.numel(), generator=g).to(ia.device)]
    ib = ib[torch.randperm(ib.numel(), generator=g).to(ib.device)]
    n = min(ia.numel(), ib.numel())
    ia, ib = ia[:n], ib[:n]
    return PairSet(as_unit(x[ia]), as_unit(x[ib]), ia, ib, inference=inference_mode(model))


def embedding_nearest_pairs(
    model,
    x: Tensor,
    y: Tensor,
    source: int,
    target: int,
    embedding_layer: str,
    *,
    batch_size: int = 1024,
    compile: bool | str = True,
) -> PairSet:
    """EPBS pairs: each correctly classified source input with its nearest correctly classified
    target input in the embedding read from `embedding_layer` (see deepdig_fast.hooks). compile: as
    for random_pairs."""
    from deepdig_fast import ops

    _check(x, y, source, target)
    model = _prepared(model, x, y, source, target, embedding_layer, compile)
    ia = _correct(model, x, y, source, batch_size)
    ib = _correct(model, x, y, target, batch_size)
    if ia.numel() == 0 or ib.numel() == 0:
        empty = ia[:0]
        none = as_unit(x[empty])
        return PairSet(none, none.clone(), empty, empty.clone(), none.new_empty((0,)), inference_mode(model))
    xa = as_unit(x[ia])
    _, ha = embed(model, xa, embedding_layer, batch_size)
    _, hb = embed(model, as_unit(x[ib]), embedding_layer, batch_size)
    nearest, dist = ops.nearest_neighbor(ha.contiguous(), hb.contiguous())
    jb = ib[nearest.to(ib.device)]
    return PairSet(xa, as_unit(x[jb]), ia, jb, dist, inference_mode(model))
