"""SHA256SUMS files: reading them and checking a data set's files against them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from deepdig_fast.io import ChecksumError, PathLike, sha256_file

__all__ = ["read_sha256sums", "verify_checksums"]

_SUMS_LINE = re.compile(r"^([0-9a-fA-F]{64})\s+\*?(.+?)\s*$")


def read_sha256sums(path: PathLike) -> dict[str, str]:
    """Parse a `sha256sum`-style file ("<64 hex>  <name>" per line) into {name: lowercase hex}."""
    p = Path(path)
    sums: dict[str, str] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _SUMS_LINE.match(line)
        if m is None:
            raise ValueError(f"{p}: line {lineno} is not '<sha256 hex>  <file name>': {line!r}")
        sums[m.group(2)] = m.group(1).lower()
    return sums


def verify_checksums(root: Path, used: Iterable[Path], *, required: bool) -> None:
    """Check every used file listed in root/SHA256SUMS against its checksum.

    With `required`, SHA256SUMS must exist and list every used file."""
    sums_path = root / "SHA256SUMS"
    if not sums_path.is_file():
        if required:
            raise FileNotFoundError(
                f"{sums_path} is missing; this data set must ship with a SHA256SUMS file listing its files"
            )
        return
    sums = read_sha256sums(sums_path)
    for f in used:
        expected = sums.get(f.name)
        if expected is None:
            if required:
                raise ChecksumError(f"{f.name} is not listed in {sums_path}; cannot verify it")
            continue
        actual = sha256_file(f)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {f}: SHA-256 is {actual}, but {sums_path} says {expected}; "
                "the file is corrupt or was modified"
            )
