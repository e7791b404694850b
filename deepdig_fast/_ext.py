"""Loads the compiled extension (which registers the torch.ops.deepdig_fast operators) and checks
that it was built for the torch it runs with.
"""

from __future__ import annotations

import json
import re

import torch

_REBUILD = "Rebuild it for this torch, from the repository: pip install --no-build-isolation -e ."

try:
    from deepdig_fast import _C  # noqa: F401  (import registers the operators)
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "deepdig_fast's C++ extension (deepdig_fast._C) is not built or does not match this torch "
        f"({torch.__version__}, CUDA {torch.version.cuda}). {_REBUILD}   (original error: {exc})"
    ) from exc

NAMESPACE = "deepdig_fast"


def _schema(op: str):
    return getattr(torch.ops.deepdig_fast, op).default._schema


def _registered_ops() -> tuple[str, ...]:
    """Every op registered under the deepdig_fast namespace, read from the dispatcher (sorted)."""
    prefix = NAMESPACE + "::"
    names = torch._C._dispatch_get_all_op_names()
    return tuple(sorted(name[len(prefix) :] for name in names if name.startswith(prefix)))


def _takes_tensors(op: str) -> bool:
    return any(isinstance(arg.type, torch._C.TensorType) for arg in _schema(op).arguments)


def _built_info() -> dict:
    """The extension's own record of how it was built (the build_info op; see csrc/deepdig_fast.cpp)."""
    try:
        raw = torch.ops.deepdig_fast.build_info()
    except (AttributeError, RuntimeError) as exc:
        raise ImportError(
            f"deepdig_fast's C++ extension ({_C.__file__}) was built from older sources: it has no "
            f"build_info op. {_REBUILD}"
        ) from exc
    return json.loads(raw)


def _major_minor(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_versions(built: dict, torch_version: str, torch_cuda: str | None) -> None:
    """Raises ImportError unless an extension built as `built` says can run with this torch.

    torch's major.minor must equal the one the extension was compiled against (its C++ ABI changes
    between minor releases). An extension with CUDA kernels needs a CUDA build of torch with the
    same CUDA major version (minor versions are compatible, as torch-scatter checks it).
    """
    ours, theirs = _major_minor(built["torch_version"]), _major_minor(torch_version)
    problems = []
    if ours != theirs:
        problems.append(f"torch {built['torch_version']} but runs with torch {torch_version}")
    if built["with_cuda"]:
        cuda_ours, cuda_theirs = _major_minor(built["cuda_version"]), _major_minor(torch_cuda)
        if cuda_theirs is None:
            problems.append(f"CUDA {built['cuda_version']} but this torch is a CPU-only build")
        elif cuda_ours is None or cuda_ours[0] != cuda_theirs[0]:
            problems.append(f"CUDA {built['cuda_version']} but this torch uses CUDA {torch_cuda}")
    if problems:
        raise ImportError("deepdig_fast's C++ extension was built for " + "; and for ".join(problems) + ". " + _REBUILD)


BUILT = _built_info()  # how the extension was built (setup.py records it)
check_versions(BUILT, torch.__version__, torch.version.cuda)

# The operators that take tensors (the kernels); the others (build_info, constants) describe the
# extension itself and have one kernel for every backend.
OPS = tuple(op for op in _registered_ops() if _takes_tensors(op))


def constants() -> dict:
    """The C++ side's named constants: {"status": {"PENDING": -1, ...}, "method": {...},
    "fstate": {"lo": 0, ...}, "istate": {"attempts": 0, ...}} (csrc/common/bracket.h)."""
    return json.loads(torch.ops.deepdig_fast.constants())
