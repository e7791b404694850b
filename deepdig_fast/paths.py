"""One rule for the paths a command reads and the paths it writes.

    check_paths(reads={"--data-root": root, "--classifier": ckpt}, writes={"--out": out})

A command's outputs never overlap its inputs: no output path equals an input path, lies inside an
input folder, or contains an input (a folder written into must not hold what another argument reads).
Both sides are compared after resolving `..` and symbolic links, so `runs/../data` and a link to the
data folder are the data folder. The first conflict is a ValueError in one line naming both arguments.

Inside a folder deepdig writes (a run, an atlas, a report's figures), no entry may be a symbolic
link (`refuse_links`): a link would carry the write into a place the user never named as an output.
The lock file is opened without following a link for the same reason (rundir.FolderLock).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["PathConflictError", "check_paths", "contains", "refuse_links", "refuse_linked_outputs"]

PathLike = str | os.PathLike


class PathConflictError(ValueError):
    """An output path overlaps an input path, or a folder to write holds a symbolic link."""


def _resolved(path: PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve(strict=False)


def contains(folder: PathLike, path: PathLike) -> bool:
    """Whether `path` is `folder` or lies inside it (both resolved)."""
    f, p = _resolved(folder), _resolved(path)
    return p == f or f in p.parents


def _items(paths: Mapping[str, PathLike | Iterable[PathLike] | None]) -> list[tuple[str, Path, str]]:
    out = []
    for name, value in paths.items():
        if value is None:
            continue
        values = [value] if isinstance(value, (str, os.PathLike)) else list(value)
        for v in values:
            if v is not None and os.fspath(v) != "":
                out.append((name, _resolved(v), os.fspath(v)))
    return out


def check_paths(
    *,
    reads: Mapping[str, PathLike | Iterable[PathLike] | None],
    writes: Mapping[str, PathLike | Iterable[PathLike] | None],
) -> None:
    """Refuse any output that equals, lies inside or contains an input.

    `reads` and `writes` map an argument's name (as the user knows it: "--out", "out_dir") to a path
    or a list of paths; None entries are skipped. Raises PathConflictError naming both arguments.
    """
    inputs, outputs = _items(reads), _items(writes)
    for out_name, out, out_text in outputs:
        for in_name, inp, in_text in inputs:
            if out == inp:
                how = "is"
            elif inp in out.parents:
                how = "is inside"
            elif out in inp.parents:
                how = "contains"
            else:
                continue
            raise PathConflictError(
                f"{out_name} {out_text} {how} {in_name} {in_text}, which this command reads; "
                "outputs never overlap inputs: write to another folder"
            )


def refuse_links(root: PathLike, what: str = "out_dir") -> None:
    """Refuse a folder to write into that holds a symbolic link anywhere inside it (a link would
    send the write elsewhere). A root that does not exist yet holds none."""
    top = Path(root)
    if not top.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise PathConflictError(
                    f"{what} {top}: {p.relative_to(top)} is a symbolic link; deepdig writes only real files "
                    "and folders inside its folders (remove the link or use another folder)"
                )


def refuse_linked_outputs(paths: Iterable[PathLike], what: str = "out_dir") -> None:
    """Refuse output paths that are symbolic links themselves (a file written over a link replaces
    the link, but a linked folder would take the files written into it elsewhere)."""
    for p in paths:
        if Path(p).is_symlink():
            raise PathConflictError(
                f"{what}: {p} is a symbolic link; deepdig writes only real files and folders "
                "(remove the link or use another folder)"
            )
