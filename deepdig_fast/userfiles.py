"""User code named on the command line or in a config: "package.module:attr" and
"path/to/file.py:attr" specs (resolve_factory), the files they import and under which module
names (the same in every process, so worker processes can import them before they unpickle the
user's classes), and which modules define an object's classes."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

import torch

PathLike = str | os.PathLike

_SPEC = re.compile(r"^(?P<module>[^:]+):(?P<attr>[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)$")


#: the module names under which `file.py:attr` specs are imported (and re-imported by train workers)
USER_MODULE_PREFIX = "_deepdig_user_"


def user_module_name(file: PathLike) -> str:
    """The module name of a user's file: its stem and a digest of its resolved path, the same in every
    process (a worker that unpickles the user's classes imports the file under this name)."""
    path = Path(file).resolve()
    stem = re.sub(r"\W", "_", path.stem)
    return f"{USER_MODULE_PREFIX}{stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"


def import_user_file(file: PathLike, name: str | None = None) -> Any:
    """Import the Python file `file` as module `name` (default: user_module_name(file)), once per
    process; ValueError in one line when the file fails to import."""
    file = Path(file)
    name = name or user_module_name(file)
    if name in sys.modules:
        return sys.modules[name]
    mod_spec = importlib.util.spec_from_file_location(name, file)
    if mod_spec is None or mod_spec.loader is None:
        raise ValueError(f"cannot import {file} as a Python module")
    mod = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = mod
    try:
        mod_spec.loader.exec_module(mod)
    except Exception as e:  # the user's file fails to import: one line naming it, not a traceback
        sys.modules.pop(name, None)
        raise ValueError(f"importing {file} failed ({first_line(e)})") from e
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def defining_modules(*objs: Any) -> set[str]:
    """The modules that define the classes of the module trees in `objs` (and of `objs` themselves,
    classes or factories included): what another process must import to unpickle them."""
    names: set[str] = set()
    for obj in objs:
        if obj is None:
            continue
        for t in list(obj.modules()) if isinstance(obj, torch.nn.Module) else [obj]:
            for c in t.__mro__ if isinstance(t, type) else (t, *type(t).__mro__):
                name = getattr(c, "__module__", None)
                if isinstance(name, str):
                    names.add(name)
    return names


def user_files(*objs: Any) -> list[tuple[str, str]]:
    """(module name, file) of every user file (imported by import_user_file) among the
    defining_modules of `objs`, for a worker process to import before it unpickles them."""
    found = []
    for name in sorted(defining_modules(*objs)):
        file = getattr(sys.modules.get(name), "__file__", None)
        if name.startswith(USER_MODULE_PREFIX) and file:
            found.append((name, file))
    return found


def _import_spec_module(module: str, spec: str) -> Any:
    if module.endswith(".py") or os.sep in module or "/" in module:
        file = Path(module)
        if not file.is_file():
            raise ValueError(f"spec {spec!r}: module file {file} does not exist")
        try:
            return import_user_file(file)
        except ValueError as e:
            raise ValueError(f"spec {spec!r}: {e}") from e.__cause__
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", module):
        raise ValueError(f"spec {spec!r}: {module!r} is not a dotted module name")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ValueError(f"spec {spec!r}: cannot import module {module!r} ({e})") from e
    except Exception as e:  # the module exists but fails to import
        raise ValueError(f"spec {spec!r}: importing module {module!r} failed ({first_line(e)})") from e


def first_line(e: BaseException) -> str:
    """'Type: first line of the message' of an exception raised by the user's code."""
    text = (str(e).strip().splitlines() or [""])[0]
    if isinstance(e, SyntaxError) and e.lineno:
        text = f"{e.msg} at line {e.lineno}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def resolve_factory(spec: str, what: str = "spec") -> Any:
    """The object named by "package.module:attr" or "path/to/file.py:attr" (attr may be dotted),
    imported; ValueError in one line naming `what` when the spec is malformed or does not resolve."""
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a str 'package.module:factory', got {type(spec).__name__}")
    m = _SPEC.match(spec.strip())
    if m is None:
        raise ValueError(f"{what} must look like 'package.module:factory' (or 'file.py:factory'), got {spec!r}")
    obj: Any = _import_spec_module(m.group("module"), spec)
    for part in m.group("attr").split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{what} {spec!r}: {m.group('module')} has no attribute {m.group('attr')!r}") from None
    return obj
