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
convolutions run in IEEE float32 too. Scopes nest and overlap across threads (a process-wide count:
the caller's settings come back when the last one ends). A scope costs about 6 µs.
"""

from __future__ import annotations

import contextlib
import threading
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


class _Scope:
    """Process-wide nesting count: the first scope entered saves the settings and sets IEEE, the last
    one left restores them -- so overlapping scopes in several threads never restore the caller's
    TF32 while another deepdig_fast call still runs."""

    lock = threading.Lock()
    depth = 0
    saved: list = []


def _read() -> list:
    if _SWITCHES:
        return [s.fp32_precision for s in _SWITCHES]  # type: ignore[attr-defined]
    return [torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32]


def _write(values: list) -> None:
    if _SWITCHES:
        for s, v in zip(_SWITCHES, values):
            s.fp32_precision = v  # type: ignore[attr-defined]
    else:  # torch < 2.9: the legacy switches (oneDNN had no reduced-precision float32 mode then)
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = values


def _ieee() -> list:
    return ["ieee"] * len(_SWITCHES) if _SWITCHES else [False, False]


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """IEEE float32 convolutions and matrix products (no TF32, no bfloat16) for the duration; the
    previous settings come back when the outermost scope (in any thread) ends. Usable as a
    decorator."""
    with _Scope.lock:
        if _Scope.depth == 0:
            _Scope.saved = _read()
            _write(_ieee())
        _Scope.depth += 1
    try:
        yield
    finally:
        with _Scope.lock:
            _Scope.depth -= 1
            if _Scope.depth == 0:
                _write(_Scope.saved)
