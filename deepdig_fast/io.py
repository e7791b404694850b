"""Crash-safe file writing, tensor (de)serialisation and checksums.

Every writer here puts the data into a temporary file in the destination's own directory, flushes and
fsyncs it, then renames it over the destination with `os.replace` (atomic on POSIX and Windows) and,
where the platform allows, fsyncs the directory. A reader therefore sees either the old file or the
complete new one, never a torn write.

Tensors are read back with `torch.load(weights_only=True)`: only tensors and plain containers
(dict, list, tuple, str, int, float, bool, None) can come out of a file, never arbitrary objects.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "ChecksumError",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_group",
    "atomic_save_tensors",
    "load_tensors",
    "load_failure",
    "torch_load",
    "sha256_file",
    "sha256_bytes",
    "sha256_state_dict",
    "remove_stale_temps",
    "is_temp_name",
]

PathLike = str | os.PathLike


class ChecksumError(ValueError):
    """A data or weights file does not match its recorded SHA-256."""


def _fsync_dir(directory: Path) -> None:
    """Best-effort fsync of a directory so a rename inside it survives a crash (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(path: PathLike, write: Callable[[IO[bytes]], None]) -> tuple[Path, str]:
    """Call `write(f)` on a new temp file beside `path` and fsync it; (destination, temp name).
    The temp file is removed again if anything fails."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    dest = Path(path)
    directory = dest.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates the file 0600; give it the permissions a plain open() would (0666 & ~umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        _unlink_quietly(tmp_name)
        failure = _os_error_behind(exc)
        if not isinstance(exc, Exception) or failure is None or (failure is exc and failure.filename):
            raise
        # torch's C++ writer turns a failed write (a full disk) into a RuntimeError about its zip
        # record; what the user needs is the OS's reason and the file it was writing
        raise OSError(failure.errno, failure.strerror or str(failure), str(dest)) from None
    return dest, tmp_name


def _os_error_behind(exc: BaseException) -> OSError | None:
    """The OSError that `exc` is, or that it was raised while handling (its context chain)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _writer(data: bytes | bytearray | memoryview) -> Callable[[IO[bytes]], None]:
    def write(f: IO[bytes]) -> None:
        f.write(data)

    return write


#: the names of the temp files written here: `.<destination name>.<8 random characters>.tmp`
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def is_temp_name(name: str) -> bool:
    """Whether a file name is one of this module's temp files (see remove_stale_temps)."""
    return _TEMP_NAME.match(name) is not None


def remove_stale_temps(root: PathLike) -> list[Path]:
    """Remove the temp files a killed writer left under `root` (a process killed between writing a
    temp file and renaming it cannot remove it itself); returns what was removed.

    Call it only while holding the folder's lock (rundir.FolderLock): a live writer's temp file
    has the same kind of name.
    """
    removed = []
    for p in Path(root).rglob(".*.tmp"):
        if _TEMP_NAME.match(p.name) and p.is_file() and not p.is_symlink():
            _unlink_quietly(str(p))
            removed.append(p)
    return removed


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(f)` on a temp file beside `path`, fsync it, then atomically rename it to `path`."""
    dest, tmp_name = _write_temp(path, write)
    try:
        os.replace(tmp_name, dest)
    except BaseException:
        _unlink_quietly(tmp_name)
        raise
    _fsync_dir(dest.parent)
    return dest


def atomic_write_group(files: Mapping[PathLike, bytes]) -> list[Path]:
    """Write several files so that a failure while writing leaves all of them as they were.

    Every file is first written and fsynced to a temp file beside its destination; only when all
    are written are they renamed into place (renames need no space, so a full disk or a failing
    write changes nothing). A crash during the short rename phase can leave some files new and
    some old — each file itself is always whole. Returns the destinations in order.
    """
    staged: list[tuple[Path, str]] = []
    try:
        for path, data in files.items():
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"files[{str(path)!r}] must be bytes-like, got {type(data).__name__}")
            staged.append(_write_temp(path, _writer(data)))
        for i, (dest, tmp_name) in enumerate(staged):
            os.replace(tmp_name, dest)
            staged[i] = (dest, "")
    except BaseException:
        for _, tmp_name in staged:
            if tmp_name:
                _unlink_quietly(tmp_name)
        raise
    for directory in {dest.parent for dest, _ in staged}:
        _fsync_dir(directory)
    return [dest for dest, _ in staged]


def atomic_write_bytes(path: PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Atomically replace `path` with `data`; returns the destination as a Path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    return _atomic_write(path, _writer(data))


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Atomically replace `path` with `text` encoded as `encoding` (UTF-8 by default)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_save_tensors(path: PathLike, obj: Mapping[str, Any]) -> Path:
    """Atomically `torch.save` a dict of tensors and plain values (str, int, float, bool, None,
    lists/tuples/dicts of those) to `path`.

    Only what `torch.load(weights_only=True)` can read back is meaningful here; tensors are stored
    as they are (call `.cpu()` first if the file must load on machines without the device).
    """
    if not isinstance(obj, Mapping):
        raise TypeError(f"obj must be a mapping of names to tensors/plain values, got {type(obj).__name__}")
    payload = dict(obj)
    return _atomic_write(path, lambda f: torch.save(payload, f))


def torch_load(path: PathLike, *, mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` onto the CPU, without torch's warnings (a hostile or
    foreign file makes it warn about pickle protocols before it fails). Errors as torch raises them;
    `load_failure` words one in a line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def load_failure(exc: BaseException) -> str:
    """Why torch.load failed, in one line: torch's weights-only refusal spans paragraphs of advice,
    of which the unpickler's own reason is what tells one file from another."""
    text = " ".join(str(exc).split())
    reason = re.search(r"WeightsUnpickler error: (.*?)(?: Check the documentation|$)", text)
    if reason:
        text = f"refused by the weights-only unpickler: {reason.group(1).strip()}"
    elif len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_tensors(path: PathLike) -> Any:
    """Load a file written by `atomic_save_tensors` (or any `torch.save` of tensors and plain values)
    with `weights_only=True` onto the CPU. Raises FileNotFoundError naming the path if it is absent,
    and ValueError if the file holds anything but tensors and plain containers."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path {str(p)!r}: no such file (expected a tensor file written by torch.save)")
    try:
        return torch_load(p)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError for corrupt zips, ...
        raise ValueError(
            f"path {str(p)!r}: could not be loaded with torch.load(weights_only=True); expected a file of "
            f"tensors and plain values ({load_failure(e)})"
        ) from e


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of a bytes-like object."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents, read in chunks of `chunk_size` bytes."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"path {str(p)!r}: no such file to checksum")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian storage bytes of a dense tensor of any dtype (bfloat16, bool, ... included)."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.dtype.is_complex:
        flat = torch.view_as_real(flat).reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def sha256_state_dict(state_dict: Mapping[str, Any]) -> str:
    """A stable hex SHA-256 of a model's weights.

    Entries are visited in sorted name order; for each tensor the name, dtype, shape and raw bytes
    enter the hash, so the value depends only on the weights, not on the file format, the device or
    the insertion order. Non-tensor entries (rare "extra state") enter as their `repr`.
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict must be a mapping of names to tensors, got {type(state_dict).__name__}")
    h = hashlib.sha256()
    for name in sorted(state_dict):
        if not isinstance(name, str):
            raise TypeError(f"state_dict keys must be str, got {type(name).__name__} ({name!r})")
        value = state_dict[name]
        h.update(b"name\0" + name.encode("utf-8") + b"\0")
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided:
                value = value.to_dense()
            h.update(f"tensor\0{value.dtype}\0{tuple(value.shape)}\0".encode())
            h.update(_tensor_bytes(value))
        else:
            h.update(f"value\0{value!r}\0".encode())
    return h.hexdigest()
