"""Loads the compiled extension (which registers the torch.ops.deepdig_fast operators)."""
from __future__ import annotations

import torch

try:
    from deepdig_fast import _C  # noqa: F401  (import registers the operators)
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "deepdig_fast's C++ extension (deepdig_fast._C) is not built or does not match this torch "
        f"({torch.__version__}). Build it with: pip install --no-build-isolation -e .   "
        f"(original error: {exc})"
    ) from exc

OPS = ("bracket_propose", "bracket_update", "nearest_neighbor", "segment_points", "trajectory_stats", "linear_distances")


def build_info() -> dict:
    """How the extension was built and which kernels are registered.

    Returns a dict: with_cuda (CUDA kernels compiled in), cuda_version (of the compiler, or None),
    torch_version (compiled against), torch_runtime (imported now), cplusplus (language level), and
    kernels: {op: [dispatch keys with a kernel]} read from the dispatcher.
    """
    from deepdig_fast import ops  # noqa: F401  (registers the fake/Meta kernels)

    info = dict(_C.build_info())
    info["torch_runtime"] = torch.__version__
    kernels = {}
    for op in OPS:
        name = f"deepdig_fast::{op}"
        kernels[op] = [
            key for key in ("CPU", "CUDA", "Meta") if torch._C._dispatch_has_kernel_for_dispatch_key(name, key)
        ]
    info["kernels"] = kernels
    return info
