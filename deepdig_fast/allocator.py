"""glibc malloc settings for deepdig's own processes (the CLI, its training workers).

PyTorch's CPU tensors come from malloc. glibc serves blocks above its mmap threshold (128 KiB at
start, raised up to 32 MiB as large blocks are freed) with fresh mmaps, and gives freed memory at
the top of the heap back to the system once more than its trim threshold (twice the mmap threshold)
is free there. A DeepDIG autoencoder step allocates and frees several 3-4 MB activation buffers;
when the heap shrinks past the trim threshold between steps, the next step page-faults its buffers
in again. On the 2-core dev VM a synthetic training loop (one fixed batch of random inputs, the
paper's MNIST CNN in NCHW) took 11.9 ms a step with glibc's defaults against 6.4 ms with these
settings; the real training loop showed no measurable difference (about one page fault a step
either way): the gain depends on the allocation pattern (benchmarks/RESULTS.md, "The allocator").

:func:`tune_allocator` fixes both thresholds at the ceiling glibc's own adjustment would reach after
freeing one 32 MiB block (mmap threshold 32 MiB, trim threshold 64 MiB): at most 64 MiB of freed
memory stays mapped. It changes no number any computation produces, only where its memory comes
from. The command line and the training workers call it; a script using the library can call it
once at start. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["SETTINGS", "tune_allocator", "allocator_record"]

#: mallopt parameter numbers (glibc's malloc.h) and the values tune_allocator sets, in bytes
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
SETTINGS = {"mmap_threshold": 32 << 20, "trim_threshold": 64 << 20}

_applied: dict | None = None


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds to SETTINGS for this process; True when they were set
    (False on a C library without mallopt, e.g. macOS or musl). Idempotent."""
    global _applied
    if _applied is not None:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0
    if mallopt(_M_MMAP_THRESHOLD, SETTINGS["mmap_threshold"]) != 1:
        return False
    if mallopt(_M_TRIM_THRESHOLD, SETTINGS["trim_threshold"]) != 1:
        return False
    _applied = dict(SETTINGS)
    return True


def allocator_record() -> dict | None:
    """What tune_allocator set in this process (for manifests), or None when it did not run."""
    return None if _applied is None else dict(_applied)
