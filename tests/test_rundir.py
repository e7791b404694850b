"""The run-folder machinery: one-file stages with verified keys, the folder lock, kinds and scopes,
run-id cross-checks, group commits, and the declared argument constraints."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import pytest
import torch

from deepdig_fast.io import atomic_write_group
from deepdig_fast.rundir import (
    STAGE_KEY,
    FolderBusyError,
    FolderLock,
    StageStore,
    check_folder,
    check_same_run,
    claim_folder,
    ratio,
    write_json,
)
from deepdig_fast.validation import (
    BAND,
    Int,
    Number,
    Optional,
    Options,
    ParameterError,
    check_class_id,
    validate_fields,
)


def test_stage_is_one_file_with_its_key_inside(tmp_path):
    store = StageStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    out, key = store.run("a/b", {"k": 1}, compute)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.pt"]
    saved = torch.load(tmp_path / "a" / "b.pt", weights_only=True)
    assert saved[STAGE_KEY]["key"] == key and torch.equal(saved["x"], torch.arange(3))
    # reused under the same key, without computing
    again, key2 = StageStore(tmp_path).run("a/b", {"k": 1}, compute)
    assert key2 == key and torch.equal(again["x"], out["x"]) and STAGE_KEY not in again and len(calls) == 1
    # another setting: computed again and stored under the new key
    _, key3 = StageStore(tmp_path).run("a/b", {"k": 2}, compute)
    assert key3 != key and len(calls) == 2
    assert torch.load(tmp_path / "a" / "b.pt", weights_only=True)[STAGE_KEY]["key"] == key3
    assert StageStore(tmp_path).finished("a/b", {"k": 2}) and not StageStore(tmp_path).finished("a/b", {"k": 1})


def test_a_torn_or_foreign_stage_file_is_computed_again(tmp_path):
    lines: list[str] = []
    store = StageStore(tmp_path, lines.append)
    (tmp_path / "s.pt").write_bytes(b"not a torch file")
    out, _ = store.run("s", {}, lambda: {"v": 1})
    assert out == {"v": 1} and any("unreadable" in m for m in lines)
    torch.save({"v": 2}, tmp_path / "t.pt")  # a .pt without a key: never trusted
    assert StageStore(tmp_path).run("t", {}, lambda: {"v": 3})[0] == {"v": 3}
    with pytest.raises(KeyError):
        StageStore(tmp_path).load("t", {"other": 1})


def test_stage_output_may_not_use_the_reserved_entry(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        StageStore(tmp_path).run("s", {}, lambda: {STAGE_KEY: 1})


def _hold_lock(root, ready, release):
    with FolderLock(root):
        ready.set()
        release.wait(30)


def test_folder_lock_is_exclusive_and_dies_with_its_holder(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    p.start()
    try:
        assert ready.wait(60)
        with pytest.raises(FolderBusyError, match=f"in use by another deepdig process \\(pid {p.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        p.kill()  # a crashed holder: the kernel drops its lock
        p.join()
    with FolderLock(tmp_path):
        pass


def test_folder_kind_and_scope(tmp_path):
    with claim_folder(tmp_path, "deepdig-run", {"pair": [1, 2]}) as old:
        assert old is None
        write_json(tmp_path / "manifest.json", {"kind": "deepdig-run", "scope": {"pair": [1, 2]}, "run_id": "a"})
    assert check_folder(tmp_path, "deepdig-run", {"pair": [1, 2]})["run_id"] == "a"
    with pytest.raises(ValueError, match="is a `deepdig run` folder for .*not a `deepdig atlas` folder"):
        check_folder(tmp_path, "deepdig-atlas", {"directions": [[1, 2], [2, 1]]})
    with pytest.raises(ValueError, match="give each run its own folder"):
        check_folder(tmp_path, "deepdig-run", {"pair": [1, 3]})
    # results without a manifest: another tool's folder or a damaged one
    other = tmp_path / "other"
    other.mkdir()
    (other / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="no manifest.json"):
        check_folder(other, "deepdig-run", {"pair": [1, 2]})


def test_results_must_come_from_the_manifests_run(tmp_path):
    check_same_run(tmp_path, {"kind": "deepdig-run", "run_id": "abc"}, {"kind": "deepdig-run", "run_id": "abc"}, "r")
    with pytest.raises(ValueError, match="was not computed by the run manifest.json describes"):
        check_same_run(tmp_path, {"run_id": "abc"}, {"run_id": "abd"}, "results.json")
    with pytest.raises(ValueError, match="deepdig-atlas but manifest.json of a deepdig-run"):
        check_same_run(tmp_path, {"kind": "deepdig-run"}, {"kind": "deepdig-atlas"}, "atlas.json")


def test_group_write_leaves_every_file_old_when_one_write_fails(tmp_path, monkeypatch):
    import deepdig_fast.io as dio

    a, b = tmp_path / "a.md", tmp_path / "b.html"
    atomic_write_group({a: b"old a", b: b"old b"})
    real = dio._write_temp
    calls = []

    def failing(path, write):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(dio, "_write_temp", failing)
    with pytest.raises(OSError):
        atomic_write_group({a: b"new a", b: b"new b"})
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_write_json_and_ratio(tmp_path):
    write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.5, float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.5, None]}
    assert ratio(1, 4) == 0.25 and ratio(1, 0) is None and ratio(None, 2) is None and ratio(True, 2) is None


def test_declared_constraints_one_wording():
    class Cfg:
        CONSTRAINTS = {
            "n": Int(1),
            "beta": Number(0, 1, "neither"),
            "how": Options(("a", "b")),
            "opt": Optional(Int(0)),
            "band": BAND,
        }

        def __init__(self, **kw):
            self.n, self.beta, self.how, self.opt, self.band = 1, 0.5, "a", None, [-1, 1]
            self.__dict__.update(kw)

    validate_fields(Cfg(), Cfg.CONSTRAINTS)
    cases = [
        ({"n": 0}, "Cfg.n must be a positive int, got 0"),
        ({"n": True}, "Cfg.n must be a positive int"),
        ({"beta": 1.0}, r"Cfg.beta must be a number in \(0, 1\), got 1.0"),
        ({"beta": float("nan")}, "Cfg.beta must be a number in"),
        ({"how": "c"}, "Cfg.how must be one of 'a', 'b'"),
        ({"opt": -1}, r"Cfg.opt must be a non-negative int, got -1 \(or None\)"),
        ({"band": (1, 0)}, r"Cfg.band must be \(lo, hi\)"),
    ]
    for kw, msg in cases:
        with pytest.raises(ParameterError, match=msg) as info:
            validate_fields(Cfg(**kw), Cfg.CONSTRAINTS)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    c = Cfg(band=[-1, 1])
    validate_fields(c, Cfg.CONSTRAINTS)
    assert c.band == (-1.0, 1.0)
    assert check_class_id(3, "s", 10) == 3
    with pytest.raises(ParameterError, match=r"s must be a class id in \[0, 10\), got 10"):
        check_class_id(10, "s", 10)
