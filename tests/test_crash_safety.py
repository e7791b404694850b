"""Nothing is lost on a crash: runs and atlases killed with SIGKILL, and disks that fill up, at
every kind of moment, end -- after a plain rerun -- with byte-for-byte the results of an
uninterrupted run, without leftover temp files, and without recomputing finished work.

Kill moments are write events, not wall-clock delays, so the test means the same on any machine:
the child process counts the atomic writes it makes (deepdig_fast.io._write_temp) and kills itself
with SIGKILL at a seeded random one, at one of four points of that write:

    before    the stage's work is done, nothing of it is on disk (as a kill during the work)
    mid       the temp file holds part of the data
    written   the temp file is complete and fsynced, not yet renamed
    renamed   the file is in place, the directory not yet fsynced

Between two writes nothing on disk changes, so these four cover every state a kill can leave.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
PHASES = ("before", "mid", "written", "renamed")
S, T = 3, 5

# --------------------------------------------------------------------------------------------------
# the run every test here repeats: run_pair on a small slice of MNIST
# --------------------------------------------------------------------------------------------------


def tiny_run(out_dir, checkpoint, log=None, characterize=True):
    """run_pair on 1200 training / 300 test images, few autoencoder steps; every stage (16 atomic
    writes), or all but the characterization (13; a fresh process then skips importing sklearn)."""
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.checkpoint import load_classifier
    from deepdig_fast.data import load_mnist
    from deepdig_fast.pipeline import PairConfig, run_pair

    model, _ = load_classifier(checkpoint)
    data = load_mnist().take(1200, 300)
    cfg = PairConfig(
        adversarial=AdversarialConfig(steps=20, infer_batch_size=1024),
        trajectory_segments=50,
        trajectory_T=10,
        characterize=characterize,
    )
    return run_pair(model, data, S, T, cfg, out_dir=out_dir, log=log)


# the child: instruments the atomic writer, then runs `tiny_run` or the `deepdig` command
CHILD = r"""
import os, signal, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import deepdig_fast.io as dio

target, phase = os.environ.get("KILL_AT", ""), os.environ.get("KILL_PHASE", "")
seen = {{}}
orig_write_temp, orig_fsync_dir = dio._write_temp, dio._fsync_dir
pending = []

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def write_temp(path, write):
    rel = os.path.relpath(str(path), sys.argv[2])
    seen[rel] = seen.get(rel, 0) + 1
    here = f"{{rel}}#{{seen[rel]}}"
    print("WRITE", here, flush=True)
    if here != target:
        return orig_write_temp(path, write)
    if phase == "before":
        die()
    if phase == "mid":
        def partial(f):
            import io
            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: max(1, len(buf.getvalue()) // 2)])
            f.flush()
            os.fsync(f.fileno())
            die()
        return orig_write_temp(path, partial)
    out = orig_write_temp(path, write)
    if phase == "written":
        die()
    pending.append(path)   # "renamed": die at the directory fsync that follows the rename
    return out

def fsync_dir(directory):
    if pending:
        die()
    return orig_fsync_dir(directory)

dio._write_temp, dio._fsync_dir = write_temp, fsync_dir
if sys.argv[1] == "run":
    from test_crash_safety import tiny_run
    tiny_run(sys.argv[2], sys.argv[3], log=lambda m: print("LOG", m, flush=True), characterize=False)
else:
    from deepdig_fast.cli import main
    sys.exit(main(sys.argv[3:]))
"""


def _env(**extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1", DEEPDIG_PROGRESS="off", **extra)
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        env.pop(k, None)
    return env


def child(script: Path, what: str, out: Path, *args: str, kill: tuple[str, str] | None = None):
    """Run the child; returns (returncode, stdout). kill = (write 'rel#n', phase) to SIGKILL at."""
    env = _env(KILL_AT=kill[0], KILL_PHASE=kill[1]) if kill else _env()
    r = subprocess.run(
        [sys.executable, str(script), what, str(out), *args], capture_output=True, text=True, timeout=600, env=env
    )
    if kill is None:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    else:
        assert r.returncode == -signal.SIGKILL, f"not killed at {kill}: {r.returncode}\n{r.stderr[-3000:]}"
    return r.returncode, r.stdout


def writes(stdout: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in stdout.splitlines() if line.startswith("WRITE ")]


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def checkpoint(tiny_fcn_checkpoint):
    return tiny_fcn_checkpoint


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    p = tmp_path_factory.mktemp("child") / "child.py"
    p.write_text(CHILD.format(root=str(ROOT), tests=str(TESTS)))
    return p


# --------------------------------------------------------------------------------------------------
# (a) deepdig run killed at random writes, each followed by a rerun
# --------------------------------------------------------------------------------------------------
# The reference and every killed run are separate processes; the reruns run in this process, so
# the comparison also shows that results do not depend on which process computed which stage.

RUN_KILLS = 10


def test_killed_run_reruns_to_the_same_results(script, checkpoint, tmp_path):
    ref = tmp_path / "ref"
    _, out = child(script, "run", ref, checkpoint)
    sequence = writes(out)
    assert len(sequence) == 13 and sequence[0] == "manifest.json#1" and sequence[-1] == "results.json#1"
    expected = (ref / "results.json").read_bytes()
    rng = random.Random(1912_11460)
    moments = [(sequence[i], rng.choice(PHASES)) for i in sorted(rng.sample(range(len(sequence)), RUN_KILLS))]
    assert len({p for _, p in moments}) == len(PHASES)  # the seed covers every point of a write
    print("run kills:", moments)
    for k, kill in enumerate(moments):
        folder = tmp_path / f"kill{k}"
        _, killed = child(script, "run", folder, checkpoint, kill=kill)
        assert not (folder / "results.json").exists() or kill == ("results.json#1", "renamed")
        # the rerun (here, in this process: no second start-up per kill) completes the run
        lines = []
        tiny_run(folder, checkpoint, log=lines.append, characterize=False)
        assert (folder / "results.json").read_bytes() == expected, kill
        assert not temps(folder), (kill, temps(folder))
        # a stage finished before the kill is reused, not computed again (the killed run's own
        # writes: the two directions are finished in the order their trainings end)
        reused = {line.split()[0].rstrip(":") for line in lines if line.endswith("reused (finished earlier)")}
        before = writes(killed)
        done = before[1 : before.index(kill[0]) + (kill[1] == "renamed")]
        done_before = {stage for stage in (w.split("#")[0] for w in done) if stage.endswith(".pt")}
        done_before = {stage[: -len(".pt")] for stage in done_before}
        assert reused == done_before, kill


# --------------------------------------------------------------------------------------------------
# (b) deepdig atlas killed again and again in one folder: every unit is computed once
# --------------------------------------------------------------------------------------------------

ATLAS_KILLS = 10
ATLAS_ARGS = [
    "--classes",
    "3,5,8",
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
]


def test_atlas_killed_ten_times_computes_every_unit_once(script, checkpoint, tmp_path):
    ref = tmp_path / "ref"
    argv = lambda out: ["atlas", "--out", str(out), "--classifier", checkpoint, *ATLAS_ARGS]  # noqa: E731
    _, out = child(script, "cli", ref, *argv(ref))
    sequence = writes(out)
    units = [w for w in sequence if w.startswith("units/")]
    assert len(units) == 12 and sequence[0] == "manifest.json#1"
    assert any(w.startswith("atlas.html") for w in sequence)  # the report's group is among the moments
    expected = (ref / "atlas.json").read_bytes()

    rng = random.Random(20_24)
    moments = [(sequence[i], rng.choice(PHASES)) for i in sorted(rng.sample(range(1, len(sequence)), ATLAS_KILLS))]
    assert len({p for _, p in moments}) == len(PHASES)
    print("atlas kills:", moments)
    folder = tmp_path / "killed"
    runs = Counter()  # "running" log lines per unit, over every process
    finished: dict[Path, int] = {}
    for kill in moments:
        _, out = child(script, "cli", folder, *argv(folder), kill=kill)
        runs.update(line.split()[1].rstrip(":") for line in out.splitlines() if line.endswith(": running"))
        # units on disk before this process stay untouched by it ...
        for p, mtime in finished.items():
            assert p.stat().st_mtime_ns == mtime, (kill, p)
        finished = {p: p.stat().st_mtime_ns for p in (folder / "units").rglob("*.pt")}
    _, out = child(script, "cli", folder, *argv(folder))
    runs.update(line.split()[1].rstrip(":") for line in out.splitlines() if line.endswith(": running"))
    for p, mtime in finished.items():
        assert p.stat().st_mtime_ns == mtime, p
    assert (folder / "atlas.json").read_bytes() == expected
    assert (folder / "atlas.csv").read_bytes() == (ref / "atlas.csv").read_bytes()
    assert not temps(folder)
    # ... and each unit ran once, plus once for each kill that hit it before its file was in place
    interrupted = Counter(
        w.split("#")[0][len("units/") : -len(".pt")]
        for w, phase in moments
        if w.startswith("units/") and phase != "renamed"
    )
    assert set(runs) == {u.split("#")[0][len("units/") : -len(".pt")] for u in units}
    assert runs == Counter({u: 1 + interrupted[u] for u in runs}), (runs, interrupted)
    t = json.loads((folder / "timings.json").read_text())
    assert t["units_reused"] == len(finished) and t["units_computed"] == 12 - len(finished)


# --------------------------------------------------------------------------------------------------
# (c) a full disk at every write of a run, and while a report is written
# --------------------------------------------------------------------------------------------------


class DiskFull:
    """Makes the k-th atomic write (or, with `name`, the write of file `name`, a path relative to
    the folder `root`) fail the way a full disk does: the data is half written, then the write
    raises OSError(ENOSPC) (the writer removes its temp file and re-raises)."""

    def __init__(self, monkeypatch, k: int = 0, root: Path | None = None, name: Path | None = None):
        import deepdig_fast.io as dio

        self.k, self.n, self.orig = k, 0, dio._write_temp
        self.root, self.name = root, name
        self.failed: str | None = None
        monkeypatch.setattr(dio, "_write_temp", self)

    def __call__(self, path, write):
        self.n += 1
        hit = self.n == self.k if self.name is None else Path(path).relative_to(self.root) == self.name
        if not hit or self.failed is not None:
            return self.orig(path, write)
        self.failed = str(path)

        def full(f):
            import io

            buf = io.BytesIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return self.orig(path, full)


@pytest.fixture(scope="module")
def reference_run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("disk") / "ref"
    tiny_run(out, checkpoint)
    return out


def test_full_disk_at_every_write_of_a_run(checkpoint, reference_run, tmp_path, monkeypatch):
    import deepdig_fast.io as dio

    expected = (reference_run / "results.json").read_bytes()
    counted = []
    with monkeypatch.context() as m:
        orig = dio._write_temp
        m.setattr(dio, "_write_temp", lambda path, write: (counted.append(path), orig(path, write))[1])
        tiny_run(tmp_path / "count", checkpoint)
    n = len(counted)
    assert n == 16
    # each file of the run in turn (by name: the two directions are finished in the order their
    # trainings end, so the k-th write is not always the same file)
    for k, name in enumerate((Path(c).relative_to(tmp_path / "count") for c in counted), start=1):
        folder = tmp_path / f"full{k}"
        with monkeypatch.context() as m:
            disk = DiskFull(m, root=folder, name=name)
            with pytest.raises(OSError) as info:
                tiny_run(folder, checkpoint)
        assert info.value.errno == errno.ENOSPC
        assert Path(disk.failed).relative_to(folder) == name
        assert not temps(folder), k
        assert not (folder / "results.json").exists()
        tiny_run(folder, checkpoint)
        assert (folder / "results.json").read_bytes() == expected, k
        assert not temps(folder), k


def test_full_disk_while_writing_a_report_keeps_the_old_report(reference_run, tmp_path, monkeypatch, capsys):
    from deepdig_fast.cli import main
    from deepdig_fast.report import write_report

    folder = tmp_path / "run"
    shutil.copytree(reference_run, folder)
    files = write_report(folder)
    group = sorted(files)
    assert {"report.md", "report.html"} <= set(group) and any(g.startswith("figures/") for g in group)
    old = {rel: b"old " + rel.encode() for rel in group}
    for rel, data in old.items():
        (folder / rel).write_bytes(data)
    # the group is written as a whole: a failure at its first, a middle or its last file (when all
    # others are written) leaves every file old
    for k in sorted({1, len(group) // 2, len(group)}):
        with monkeypatch.context() as m:
            DiskFull(m, k)
            with pytest.raises(OSError):
                write_report(folder)
        for rel in group:
            assert (folder / rel).read_bytes() == old[rel], (k, rel)
        assert not temps(folder), k
    # the command says so in one line, with exit status 1
    with monkeypatch.context() as m:
        DiskFull(m, len(group))
        capsys.readouterr()
        assert main(["report", str(folder)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "rerun the same command" in err[0], err
    assert (folder / "report.md").read_bytes() == old["report.md"]
    # and without the failure both are new
    write_report(folder)
    for rel in group:
        assert (folder / rel).read_bytes() != old[rel], rel


# --------------------------------------------------------------------------------------------------
# the lock of a killed process, and a run with other settings that does not finish
# --------------------------------------------------------------------------------------------------

HOLDER = r"""
import sys, time
sys.path.insert(0, {root!r})
from deepdig_fast.rundir import FolderLock
FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_lock_holder_blocks_nobody(tmp_path):
    from deepdig_fast.rundir import FolderBusyError, FolderLock

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusyError, match=rf"in use by another deepdig process \(pid {holder.pid} "):
            FolderLock(tmp_path / "run").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with FolderLock(tmp_path / "run"):  # the kernel dropped the dead holder's lock
        pass


def test_an_unfinished_run_with_other_settings_leaves_no_old_results(checkpoint, reference_run, tmp_path, monkeypatch):
    """A folder's results.json is always the run its manifest.json describes: a rerun with other
    settings removes the old results before its first stage, so a crash cannot leave them side by side."""
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.checkpoint import load_classifier
    from deepdig_fast.data import load_mnist
    from deepdig_fast.pipeline import PairConfig, run_pair
    from deepdig_fast.report import write_report

    folder = tmp_path / "run"
    shutil.copytree(reference_run, folder)
    model, _ = load_classifier(checkpoint)
    other = PairConfig(
        adversarial=AdversarialConfig(steps=20, infer_batch_size=1024),
        trajectory_segments=50,
        trajectory_T=10,
        beta=5e-4,
    )
    with monkeypatch.context() as m:
        DiskFull(m, 2)  # the manifest is written, the first stage is not
        with pytest.raises(OSError):
            run_pair(model, load_mnist().take(1200, 300), S, T, other, out_dir=folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"]["beta"] == 5e-4
    assert not (folder / "results.json").exists() and not (folder / "timings.json").exists()
    with pytest.raises(FileNotFoundError, match="results.json"):
        write_report(folder)


# --------------------------------------------------------------------------------------------------
# (d) a really full file system: torch's own C++ writer fails, the command still says one line
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MB tmpfs mounted for the test (root only; skipped where mounting is not allowed)."""
    where = tmp_path / "fs"
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_torch_writer_on_a_full_file_system_raises_the_os_error(small_fs):
    import torch

    from deepdig_fast.io import atomic_save_tensors

    dest = small_fs / "big.pt"
    with pytest.raises(OSError) as info:
        atomic_save_tensors(dest, {"x": torch.zeros(2_000_000)})  # 8 MB into 3 MB
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(dest)
    assert list(small_fs.iterdir()) == []  # the temp file is gone too


def test_run_on_a_full_file_system_fails_in_one_line(checkpoint, small_fs, tmp_path):
    out = small_fs / "run"
    argv = ["run", "--pair", "3,5", "--classifier", checkpoint, "--device", "cpu", "--steps", "5"]
    argv += ["--no-characterize", "--no-report", "--quiet", "--joint-training", "sequential", "--out", str(out)]
    r = subprocess.run([sys.executable, "-m", "deepdig_fast", *argv], capture_output=True, text=True, cwd=ROOT)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr[-3000:]
    assert "No space left on device" in lines[0] and str(out) in lines[0] and "rerun the same command" in lines[0]
    assert not temps(small_fs)
