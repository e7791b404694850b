"""The memory bounds of the batched stages: derived from the sample shape only, unchanged for the
paper's inputs, shrinking (as powers of two) for larger ones."""

from __future__ import annotations

import pytest

from deepdig_fast.budget import FORWARD_ELEMENTS, TRAIN_ELEMENTS, TRAJECTORY_ELEMENTS, fit_batch


@pytest.mark.parametrize(
    "batch, shape, elements, want",
    [
        (512, (1, 28, 28), FORWARD_ELEMENTS, 512),  # the paper's inputs: the historical values
        (4096, (1, 28, 28), FORWARD_ELEMENTS, 4096),
        (512, (3, 32, 32), FORWARD_ELEMENTS, 512),
        (128, (3, 64, 64), TRAIN_ELEMENTS, 128),
        (65536, (1, 28, 28), TRAJECTORY_ELEMENTS, 65536),
        (512, (3, 224, 224), FORWARD_ELEMENTS, 64),  # 224 px: bounded
        (4096, (3, 224, 224), FORWARD_ELEMENTS, 64),
        (128, (3, 224, 224), TRAIN_ELEMENTS, 16),
        (65536, (3, 224, 224), TRAJECTORY_ELEMENTS, 256),
        (16384, (3, 2048, 2048), FORWARD_ELEMENTS, 1),  # never below one input
        (7, (3, 224, 224), 1 << 30, 7),  # a batch that fits is kept as given (not rounded)
        (3, (), 2, 2),  # a scalar sample counts as one element
    ],
)
def test_fit_batch(batch, shape, elements, want):
    got = fit_batch(batch, shape, elements)
    assert got == want
    assert got == batch or (got & (got - 1) == 0 and got * max(1, _prod(shape)) <= max(elements, _prod(shape)))


def _prod(shape):
    n = 1
    for d in shape:
        n *= d
    return n


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_fit_batch_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="batch must be a positive int"):
        fit_batch(bad, (1, 2, 2), 10)
