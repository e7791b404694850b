"""Full float32 arithmetic for every forward and training step deepdig_fast runs.

PyTorch lets cuDNN convolutions run float32 inputs in TF32 by default
(`torch.backends.cudnn.conv.fp32_precision == "tf32"`; before torch 2.9,
`torch.backends.cudnn.allow_tf32 = True`): on an Ampere or newer GPU each product keeps 10 mantissa
bits, so a logit moves by ~1e-3 of its size. The engine decides |p_source - p_target| < beta = 1e-4
and reads the sign of a logit gap at every step; a TF32 forward changes those decisions and the
borderline points, and a GPU run would no longer agree with the same run on a CPU. Reduced precision
(TF32, bfloat16) is therefore used nowhere unless it is shown not to change results -- no run has
shown that yet -- and `full_fp32()` makes every float32 convolution and matrix product IEEE float32
for its duration (cuDNN, cuBLAS and oneDNN), whatever the process's own settings, which it restores
afterwards.

These switches are process-wide in PyTorch: while a deepdig_fast call runs, another thread's float32
convolutions run in IEEE float32 too. Setting them costs well under a microsecond.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["full_fp32"]


def _new_api_switches() -> list[object]:
    """The backends' fp32_precision holders (torch >= 2.9) that exist in this build."""
    found = []
    for path in ("cuda.matmul", "cudnn.conv", "mkldnn.conv", "mkldnn.matmul"):
        obj: object = torch.backends
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "fp32_precision"):
            found.append(obj)
    return found


_SWITCHES = _new_api_switches()


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """IEEE float32 convolutions and matrix products (no TF32, no bfloat16) for the duration; the
    previous settings come back afterwards. Usable as a decorator."""
    if _SWITCHES:
        saved = [s.fp32_precision for s in _SWITCHES]  # type: ignore[attr-defined]
        for s in _SWITCHES:
            s.fp32_precision = "ieee"  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for s, v in zip(_SWITCHES, saved):
                s.fp32_precision = v  # type: ignore[attr-defined]
        return
    # torch < 2.9: the legacy switches (CPU oneDNN had no reduced-precision float32 mode then)
    legacy = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = legacy
