"""Memory bounds of the batched stages, derived from the input size alone.

Every stage that feeds a model many inputs does it in chunks. The default chunk sizes (the engine's
live batch, the inference batches of the components and baselines, the trajectory's points per
chunk, the autoencoder's micro-batch) are the historical values for the paper's 28x28 and 32x32
inputs, and shrink for larger inputs so that one chunk holds a bounded number of input elements.
The bound depends only on the sample shape -- never on timing or on free memory -- so results do not
depend on the machine (docs/RELIABILITY.md); the classifier's own activations scale with its input,
so bounding the inputs bounds the activations of a given architecture as well.

    fit_batch(512, (3, 224, 224), FORWARD_ELEMENTS) -> 64
    fit_batch(512, (1, 28, 28), FORWARD_ELEMENTS)   -> 512 (unchanged)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from deepdig_fast.validation import check_int

#: input elements in one inference forward (64 MiB of float32 inputs): 512 images up to 3x128x128,
#: 64 at 3x224x224
FORWARD_ELEMENTS = 1 << 24
#: input elements in one forward+backward of autoencoder training (16 MiB of float32 inputs): the
#: paper's batch of 128 up to 3x64x64, micro-batches of 16 at 3x224x224
TRAIN_ELEMENTS = 1 << 22
#: input elements the trajectory generates at once (256 MiB of float32 points): the historical
#: 65536 points up to 28x28 inputs
TRAJECTORY_ELEMENTS = 1 << 26


def fit_batch(batch: int, sample_shape: Sequence[int], elements: int) -> int:
    """`batch`, or the largest power of two whose chunk of `sample_shape` inputs holds at most
    `elements` input elements when `batch` would hold more (at least 1)."""
    check_int(batch, "batch", low=1)
    check_int(elements, "elements", low=1)
    per_sample = max(1, math.prod(int(d) for d in sample_shape))
    if batch * per_sample <= elements:
        return batch
    fit = max(1, elements // per_sample)
    return 1 << (fit.bit_length() - 1)
