"""Run-folder machinery shared by run_pair (pipeline.py) and run_atlas (atlas.py).

    with claim_folder(root, kind="deepdig-run", scope={"pair": [1, 2]}) as claim:
        store = StageStore(root, log)
        out, key = store.run("components/ae1_1-2", spec, compute)   # computed once, then reused
        ...
        write_json(root / "results.json", {..., "run_id": claim_id})

Guarantees (docs/RELIABILITY.md lists the tests that show each):
- A stage is ONE file, `root/<name>.pt`, written atomically (temp file + rename); its key (a digest
  of the stage's name and settings, which include the keys of its inputs) is stored inside it under
  `STAGE_KEY` and verified on every reuse. A stage whose file is missing, unreadable or stored
  under another key is computed again; there is no state outside that file to go stale.
- A process killed between writing a stage's temp file and renaming it leaves `.NAME.XXXXXXXX.tmp`;
  the next process to claim the folder removes such files under the lock.
- A folder is held by one process at a time (`FolderLock`: an exclusive `flock` on `root/.lock`,
  released by the kernel when its holder exits, so a crashed holder blocks nobody). torchrun
  ranks share an atlas folder through rank 0's lock.
- A folder belongs to one kind of run ("deepdig-run" or "deepdig-atlas") and one scope (the pair,
  or the class set); `claim_folder` refuses another, naming both.
- Stage seeds come from (run seed, stage name), so no result depends on what ran before it in
  the process, and nothing measured at run time (timings, machine load) enters a key or a result.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import platform
import socket
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from deepdig_fast import __version__
from deepdig_fast.columns import ATLAS_ROW_FIELDS
from deepdig_fast.io import atomic_save_tensors, atomic_write_text, is_temp_name, remove_stale_temps, torch_load
from deepdig_fast.paths import PathConflictError, refuse_links

__all__ = [
    "ATLAS_KIND",
    "ATLAS_ROW_FIELDS",
    "ATLAS_SCHEMA",
    "RESULTS_SCHEMA",
    "RUN_KIND",
    "KEY_SCHEMA",
    "STAGE_KEY",
    "FolderBusyError",
    "RunError",
    "FolderLock",
    "StageStore",
    "check_same_run",
    "claim_folder",
    "digest",
    "environment",
    "nan_to_none",
    "ratio",
    "read_manifest",
    "stage_seed",
    "write_json",
]

#: the kinds of folder deepdig writes and the schema versions of their results files
RUN_KIND, RESULTS_SCHEMA = "deepdig-run", 2  # results.json of run_pair
#: what stage keys and run ids are made of; bumped when their meaning changes, so that a folder
#: written under another meaning is recomputed, never reused (3: the model's identity and the data's
#: full fingerprint; every setting recorded as it resolves, none left out to keep an older key)
KEY_SCHEMA = 3
ATLAS_KIND, ATLAS_SCHEMA = "deepdig-atlas", 2  # atlas.json of run_atlas


#: the entry of a stage file that holds its key, name, settings and wall time
STAGE_KEY = "_stage"
LOCK_NAME = ".lock"


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def digest(obj: Any) -> str:
    """Hex SHA-256 of an object's canonical JSON (sorted keys; non-JSON values by str())."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def stage_seed(seed: int, name: str) -> int:
    """A stage's own seed, from the run's seed and the stage's name (independent of run order)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def nan_to_none(obj: Any) -> Any:
    """A copy of nested dicts/lists with non-finite floats replaced by None (valid JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    return obj


def ratio(num: Any, den: Any) -> float | None:
    """num / den, or None when either is missing or not finite, or den <= 0."""
    try:
        n, d = float(num), float(den)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float's range
        return None
    if isinstance(num, bool) or isinstance(den, bool) or not (math.isfinite(n) and math.isfinite(d)) or d <= 0:
        return None
    return n / d


def write_json(path: Path, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON (non-finite floats as null)."""
    return atomic_write_text(path, json.dumps(nan_to_none(obj), indent=2, default=str) + "\n")


def environment() -> dict:
    """Versions and the build of the extension, for manifests."""
    from deepdig_fast.ops import build_info

    return {
        "tool": "deepdig_fast",
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "build": build_info(),
    }


# --------------------------------------------------------------------------------------------------
# the stage store
# --------------------------------------------------------------------------------------------------


class StageStore:
    """Runs named stages, each stored as one atomic file `root/<name>.pt` with its key inside.

    root None keeps nothing (every stage is computed). `log` gets one line per stage. `timings`
    maps each stage met in this process to {"seconds", "reused"}.
    """

    def __init__(self, root: Path | None, log: Callable[[str], None] | None = None):
        self.root = None if root is None else Path(root)
        self.timings: dict[str, dict] = {}
        self.log = log or (lambda msg: None)

    @staticmethod
    def key(name: str, spec: dict) -> str:
        """The key a stage's output is stored under: a digest of the key schema, its name and settings."""
        return digest({"key_schema": KEY_SCHEMA, "stage": name, **spec})

    def path(self, name: str) -> Path:
        assert self.root is not None
        return self.root / f"{name}.pt"

    def _load(self, name: str, *, lazy: bool = False) -> dict | None:
        """The stored payload of a stage, or None when absent or unreadable (a note is logged)."""
        if self.root is None:
            return None
        p = self.path(name)
        if not p.is_file():
            return None
        try:
            obj = torch_load(p, mmap=lazy)
        except Exception as exc:  # torn by hand, foreign, or from an older format: recomputed
            self.log(f"{name}: stored file unreadable ({type(exc).__name__}); computing it again")
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get(STAGE_KEY), dict):
            return None
        return obj

    def stored(self, name: str) -> dict:
        """The stored stage's record ({"key", "stage", "seconds", "spec"}), {} when there is none."""
        obj = self._load(name, lazy=True)
        return {} if obj is None else dict(obj[STAGE_KEY])

    def finished(self, name: str, spec: dict) -> bool:
        """Whether stage `name` is stored under the key of `spec` (always False without a root)."""
        return self.stored(name).get("key") == self.key(name, spec)

    def load(self, name: str, spec: dict) -> dict:
        """The stored output of a finished stage; KeyError if it is not stored under spec's key."""
        obj = self._load(name)
        if obj is None or obj[STAGE_KEY].get("key") != self.key(name, spec):
            raise KeyError(f"stage {name} is not stored with the expected key")
        obj.pop(STAGE_KEY)
        return obj

    def run(self, name: str, spec: dict, compute: Callable[[], dict]) -> tuple[dict, str]:
        """The stage's output (reused when stored under its key, else computed and stored) and key."""
        key = self.key(name, spec)
        obj = self._load(name)
        if obj is not None and obj[STAGE_KEY].get("key") == key:
            info = obj.pop(STAGE_KEY)
            self.timings[name] = {"seconds": info.get("seconds"), "reused": True}
            self.log(f"{name}: reused (finished earlier)")
            return obj, key
        self.log(f"{name}: running")
        t0 = time.perf_counter()
        out = compute()
        seconds = time.perf_counter() - t0
        if STAGE_KEY in out:
            raise ValueError(f"stage {name} returned the reserved entry {STAGE_KEY!r}")
        self.timings[name] = {"seconds": seconds, "reused": False}
        if self.root is not None:
            record = {"key": key, "stage": name, "seconds": seconds, "spec": json.loads(json.dumps(spec, default=str))}
            atomic_save_tensors(self.path(name), {**out, STAGE_KEY: record})
        return out, key


# --------------------------------------------------------------------------------------------------
# one process per folder, one kind and scope per folder
# --------------------------------------------------------------------------------------------------


class RunError(RuntimeError):
    """A run cannot go on for a reason outside the arguments (another process, another rank)."""


class FolderBusyError(RunError):
    """Another process holds the folder's lock."""


class FolderLock:
    """An exclusive lock on a run or atlas folder (`root/.lock`, flock).

    The kernel drops the lock when its holder exits, however it exits, so a crashed run never
    blocks the next one. The file records the holder (pid, host, start time, command) for the
    message another process gets. On systems without fcntl (Windows) the lock is a no-op.
    """

    def __init__(self, root: Path, what: str = "folder"):
        self.root = Path(root)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_NAME
        # never through a link: the holder's record would overwrite whatever the link points at
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | nofollow, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP or path.is_symlink():
                raise PathConflictError(
                    f"{self.what} {self.root}: {LOCK_NAME} is a symbolic link; deepdig writes only real files "
                    "inside its folders (remove the link or use another folder)"
                ) from None
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise FolderBusyError(
                    f"{self.what} {self.root} is in use by another deepdig process"
                    f"{f' ({holder})' if holder else ''}; wait for it to finish or use another folder"
                ) from None
            raise
        info = (
            f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}, "
            f"command: {' '.join(sys.argv)[:300]}"
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def read_manifest(root: Path) -> dict | None:
    """root/manifest.json as a dict, None when absent; ValueError when it is not a JSON object."""
    p = Path(root) / "manifest.json"
    if not p.is_file():
        return None
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except RecursionError:  # nested deeper than the parser goes: never one of deepdig's files
        raise ValueError(f"{p} is not a readable JSON file (nested too deep); is this a deepdig folder?") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p} is not a readable JSON file ({exc}); is this a deepdig folder?") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{p} must hold a JSON object; is this a deepdig folder?")
    return obj


_KIND_TEXT = {RUN_KIND: "a `deepdig run` folder", ATLAS_KIND: "a `deepdig atlas` folder"}


def _describe(kind: str | None, scope: dict | None) -> str:
    text = _KIND_TEXT.get(kind or "", f"a folder of kind {kind!r}")
    return text + (f" for {json.dumps(scope, sort_keys=True)}" if scope else "")


def _foreign_entries(root: Path) -> list[str]:
    """What a folder without a manifest holds besides deepdig's own lock and temp files (a run
    killed before its manifest was written leaves only those)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != LOCK_NAME and not is_temp_name(p.name))


def check_folder(root: Path, kind: str, scope: dict) -> dict | None:
    """Refuse a folder that holds another kind of run or another scope; return its manifest."""
    manifest = read_manifest(root)
    if manifest is None:
        if (Path(root) / "results.json").exists() or (Path(root) / "atlas.json").exists():
            raise ValueError(f"out_dir {root} holds results but no manifest.json; use another folder")
        foreign = _foreign_entries(Path(root))
        if foreign:
            listed = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise ValueError(
                f"out_dir {root} is not empty and is not a deepdig folder (it holds {listed}); "
                "use a new or empty folder"
            )
        return None
    old_kind = manifest.get("kind")
    old_scope = manifest.get("scope")
    if old_kind is None and "pair" in manifest:  # run folders written before kinds were recorded
        old_kind, old_scope = RUN_KIND, {"pair": manifest["pair"]}
    if old_kind is None and "strategy" in manifest:  # atlas folders of that time: scope unknown
        old_kind, old_scope = ATLAS_KIND, scope
    if old_kind != kind or old_scope != scope:
        raise ValueError(
            f"out_dir {root} is {_describe(old_kind, old_scope)}, not {_describe(kind, scope)}; "
            "give each run its own folder"
        )
    return manifest


@contextlib.contextmanager
def claim_folder(root: Path, kind: str, scope: dict, *, lock: bool = True) -> Iterator[dict | None]:
    """Lock `root` (unless lock=False: a torchrun rank other than 0) and check that it is free or
    holds the same kind and scope of run; yields the existing manifest (or None). With the lock
    held, temp files a killed process left behind are removed first."""
    root = Path(root)
    if lock:
        refuse_links(root)  # before the lock file is made: a link could lead the lock elsewhere
        with FolderLock(root, "out_dir"):
            refuse_links(root)
            manifest = check_folder(root, kind, scope)
            remove_stale_temps(root)  # left by a process killed mid-write; nobody else writes here now
            yield manifest
    else:
        yield read_manifest(root)


def check_same_run(root: Path, manifest: dict, results: dict, results_name: str) -> None:
    """Refuse results written by another run than the folder's manifest describes.

    Both carry the run's id (a digest of its kind, scope, settings, classifier and data); a folder
    reused by a run that did not finish holds the new manifest beside the old results.
    """
    for name, obj in (("manifest.json", manifest), (results_name, results)):
        if obj.get("kind") not in (None, RUN_KIND, ATLAS_KIND):
            raise ValueError(f"{Path(root) / name} is not a deepdig file (kind {obj.get('kind')!r})")
    if manifest.get("kind") and results.get("kind") and manifest["kind"] != results["kind"]:
        raise ValueError(
            f"{Path(root)}: {results_name} is of a {results['kind']} but manifest.json of a {manifest['kind']}"
        )
    a, b = manifest.get("run_id"), results.get("run_id")
    if a is not None and b is not None and a != b:
        raise ValueError(
            f"{Path(root)}: {results_name} (run {b[:12]}) was not computed by the run manifest.json describes "
            f"(run {a[:12]}); a later run with other settings did not finish. Rerun it to completion, or use another folder"
        )
