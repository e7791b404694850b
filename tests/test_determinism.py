"""Results never depend on timing or load: the same command, run twice in fresh processes -- the
second while another process keeps a core busy -- writes byte-identical results.json / atlas.json.

(timings.json, which holds the wall times, is allowed to differ and is not compared.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", DEEPDIG_PROGRESS="off")
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        env.pop(k, None)
    return env


@contextmanager
def busy_core():
    """Another process spinning on one core for as long as the block runs."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spin.kill()
        spin.wait()


def twice(cmd, out_a: Path, out_b: Path, name: str) -> tuple[bytes, bytes]:
    """Run cmd(out) for out_a on a quiet machine and for out_b beside a busy loop; name's bytes."""
    for out, load in ((out_a, False), (out_b, True)):
        if load:
            with busy_core():
                r = subprocess.run(cmd(out), capture_output=True, text=True, timeout=600, env=_env(), cwd=ROOT)
        else:
            r = subprocess.run(cmd(out), capture_output=True, text=True, timeout=600, env=_env(), cwd=ROOT)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return (out_a / name).read_bytes(), (out_b / name).read_bytes()


@pytest.fixture(scope="module")
def checkpoint(tiny_fcn_checkpoint):
    return tiny_fcn_checkpoint


def test_deepdig_run_twice_gives_identical_results(checkpoint, tmp_path):
    """The command on all of MNIST's 3s and 5s (thousands of pairs through the engine)."""

    def cmd(out):
        return [
            sys.executable,
            "-m",
            "deepdig_fast",
            "run",
            "--pair",
            "3,5",
            "--out",
            str(out),
            "--classifier",
            checkpoint,
            "--device",
            "cpu",
            "--steps",
            "5",
            "--no-baselines",
            "--no-characterize",
            "--no-report",
            "--quiet",
        ]

    a, b = twice(cmd, tmp_path / "a", tmp_path / "b", "results.json")
    assert b'"success_rate"' in a
    assert a == b
    # the engine's live batch is the fixed CPU default, not a measured ("auto") one
    assert json.loads(a)["config"]["engine_batch_size"] == 512


SCRIPT = r"""
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_crash_safety import tiny_run
tiny_run(sys.argv[1], sys.argv[2])
"""


def test_every_stage_twice_gives_identical_results(checkpoint, tmp_path):
    """run_pair with every stage -- baselines (EPBS's nearest neighbours), trajectory, linearity --
    on a slice of MNIST."""
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(TESTS)))
    a, b = twice(
        lambda out: [sys.executable, str(script), str(out), checkpoint], tmp_path / "a", tmp_path / "b", "results.json"
    )
    for key in (b'"epbs"', b'"trajectory"', b'"linearity"'):
        assert key in a
    assert a == b


def test_atlas_twice_gives_identical_atlas(checkpoint, tmp_path):
    def cmd(out):
        return [
            sys.executable,
            "-m",
            "deepdig_fast",
            "atlas",
            "--out",
            str(out),
            "--classifier",
            checkpoint,
            "--pairs",
            "3-5",
            "--steps",
            "20",
            "--max-per-class",
            "80",
            "--trajectory-segments",
            "40",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--no-report",
            "--quiet",
        ]

    a, b = twice(cmd, tmp_path / "a", tmp_path / "b", "atlas.json")
    assert b'"m1_borderline"' in a
    assert a == b
    assert (tmp_path / "a" / "atlas.csv").read_bytes() == (tmp_path / "b" / "atlas.csv").read_bytes()
