"""The extension as a whole: its constants agree with the Python mirrors, build_info() and the op
table come from the extension itself, and the import-time version check."""

from __future__ import annotations

import inspect

import pytest
import torch

import deepdig_fast
from deepdig_fast import _ext, ops, reference
from deepdig_fast.engine import Status


def test_status_codes_match_engine_status():
    # By name and value, both ways: a code added on one side only fails here.
    cpp = _ext.constants()["status"]
    assert cpp == {s.name: int(s) for s in Status}


def test_methods_and_state_columns_match_python_mirrors():
    c = _ext.constants()
    assert c["method"] == ops.METHODS
    assert c["fstate"] == {"lo": reference.LO, "hi": reference.HI, "g_lo": reference.GLO, "g_hi": reference.GHI}
    assert c["istate"] == {
        "attempts": reference.ATTEMPTS,
        "status": reference.STATUS,
        "intruder": reference.INTRUDER,
        "side": reference.SIDE,
    }
    assert {name: getattr(reference, name) for name in c["status"]} == c["status"]
    assert c["idx"] == {"empty_row": reference.EMPTY_ROW}


def test_ops_table_is_read_from_the_dispatcher():
    registered = {n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("deepdig_fast::")}
    # The extension-describing ops are registered but are not kernels.
    assert {"build_info", "constants"} <= registered
    assert set(_ext.OPS) == registered - {"build_info", "constants"}
    # Every kernel op has a public wrapper, in ops.py (the method's) or train_ops.py (the training
    # accelerator's, exactly those of csrc/train/), and a twin in reference.py with the same name.
    from deepdig_fast import train_ops

    for op in _ext.OPS:
        wrappers = [m for m in (ops, train_ops) if inspect.isfunction(getattr(m, op, None))]
        assert len(wrappers) == 1, f"{op} needs one wrapper, in ops.py or train_ops.py"
        assert inspect.isfunction(getattr(reference, op, None)), f"reference.{op} is missing"


def test_build_info_keys_and_kernels():
    info = deepdig_fast.build_info()
    assert set(info) == {"with_cuda", "cuda_version", "torch_version", "cplusplus", "torch_runtime", "kernels"}
    assert info["torch_runtime"] == torch.__version__
    assert info["cplusplus"] >= 201703
    assert (info["cuda_version"] is None) == (not info["with_cuda"])
    assert list(info["kernels"]) == list(_ext.OPS)
    for op, keys in info["kernels"].items():
        assert "CPU" in keys and "Meta" in keys, (op, keys)
        assert ("CUDA" in keys) == info["with_cuda"], (op, keys)


def test_extension_does_not_link_torch_python():
    with open(deepdig_fast._C.__file__, "rb") as f:
        assert b"libtorch_python" not in f.read()


def _built(torch_version="2.13.0+cpu", with_cuda=False, cuda_version=None):
    return {"with_cuda": with_cuda, "cuda_version": cuda_version, "torch_version": torch_version, "cplusplus": 201703}


def test_version_check_accepts_matching_builds():
    _ext.check_versions(_built("2.13.0+cpu"), "2.13.1+cpu", None)
    _ext.check_versions(_built("2.14.1", True, "13.0"), "2.14.1+cu130", "13.0")
    _ext.check_versions(_built("2.14.1", True, "12.6"), "2.14.0", "12.8")  # CUDA minor versions differ
    _ext.check_versions(_built("2.14.1"), "2.14.1+cu130", "13.0")  # CPU-only extension, CUDA torch


@pytest.mark.parametrize(
    "built, runtime, cuda, words",
    [
        (_built("2.13.0+cpu"), "2.14.1+cu130", "13.0", ["torch 2.13.0+cpu", "torch 2.14.1+cu130"]),
        (_built("2.14.1", True, "13.0"), "2.14.1+cpu", None, ["CUDA 13.0", "CPU-only"]),
        (_built("2.14.1", True, "13.0"), "2.14.1+cu128", "12.8", ["CUDA 13.0", "CUDA 12.8"]),
    ],
)
def test_version_check_names_both_versions_and_the_fix(built, runtime, cuda, words):
    with pytest.raises(ImportError) as err:
        _ext.check_versions(built, runtime, cuda)
    message = str(err.value)
    for w in words:
        assert w in message
    assert "pip install --no-build-isolation -e ." in message


def test_the_loaded_extension_passes_its_own_check():
    _ext.check_versions(_ext._built_info(), torch.__version__, torch.version.cuda)
