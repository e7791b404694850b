"""What a stage key says about the classifier and the data set.

A stored stage is reused only when its key matches, so the key must change whenever the function
or the inputs the method reads change -- not only the weights (a Tanh and a ReLU network can share
every weight) and not only a sample of the data (one replaced test image changes the SVM's test
accuracy).

`model_identity(model)` is the weights' SHA-256 plus a digest of the function's structure: every
submodule's class, its `extra_repr`, its plain attributes (ints, floats, strings, ...), the hooks
it carries, and the source file of every class that is not torch's own (the user's file, timm's,
torchvision's, ours), so an edited `forward` is a new model. Nothing here depends on the device or
the thread count, so the same model has the same identity on every machine that resumes a run
(only code without any source -- defined in an interactive session -- is hashed by its bytecode,
which depends on the Python version).

`data_fingerprint(data)` hashes every value of x_train, y_train, x_test and y_test as the method
reads it: uint8 pixels and float32 images of the same values are one data set.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdig_fast.io import sha256_state_dict

__all__ = ["data_fingerprint", "model_identity"]

#: top-level packages whose classes are named, not hashed: their behaviour is fixed by the class name
_NAMED_ONLY = frozenset({"torch", "builtins"})
_PLAIN = (bool, int, float, str, type(None))


def _file_digest(path: str, cache: dict[str, str]) -> str:
    if path not in cache:
        cache[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return cache[path]


def _code_of(obj: Any, cache: dict[str, str]) -> str:
    """A digest of the code that defines class or function `obj`: its source file when there is one
    (a file of the user's, of a zoo library, of deepdig_fast), else its source text, else the
    bytecode of its forward / of itself ("unavailable" when none can be read)."""
    try:
        path = inspect.getsourcefile(obj)
    except (TypeError, OSError):
        path = None
    if path and Path(path).is_file():
        return "file:" + _file_digest(path, cache)
    try:
        return "source:" + hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]
    except (TypeError, OSError):
        pass
    fn = getattr(obj, "forward", obj)
    code = getattr(fn, "__code__", None)
    if code is None:
        return "unavailable"
    text = repr((code.co_code, code.co_names, code.co_consts))
    return "code:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _classes(cls: type) -> list[type]:
    """cls and its bases, the ones whose code is hashed: every class not defined by torch itself."""
    return [c for c in cls.__mro__ if c.__module__.split(".")[0] not in _NAMED_ONLY]


def _plain_attributes(m: nn.Module) -> str:
    """The module's public attributes that are plain values (a temperature, a flag, a mode name)."""
    items = []
    for k, v in sorted(vars(m).items()):
        if k.startswith("_") or k == "training":
            continue
        if isinstance(v, _PLAIN) or (isinstance(v, (tuple, list)) and all(isinstance(e, _PLAIN) for e in v)):
            items.append(f"{k}={v!r}")
    return ",".join(items)


def _hooks(m: nn.Module) -> str:
    names = []
    for attr in ("_forward_pre_hooks", "_forward_hooks"):
        for fn in getattr(m, attr, {}).values():
            names.append(f"{attr}:{_name(fn)}")
    return ",".join(names)


def _structure(model: Callable, cache: dict[str, str]) -> str:
    h = hashlib.sha256()
    code: dict[str, str] = {}
    if isinstance(model, nn.Module):
        for name, m in model.named_modules():
            cls = type(m)
            line = f"{name}|{_name(cls)}|{m.extra_repr()}|{_plain_attributes(m)}|{_hooks(m)}"
            if isinstance(m, torch.jit.ScriptModule):  # a scripted module's code is its function
                try:
                    line += "|script:" + hashlib.sha256(str(m.code).encode()).hexdigest()[:16]
                except (RuntimeError, AttributeError):
                    pass
            h.update(line.encode() + b"\n")
            for c in _classes(cls):
                if _name(c) not in code:  # each class's code read once, however many modules use it
                    code[_name(c)] = _code_of(c, cache)
    else:  # a plain callable: its class or function and that code
        target = model if inspect.isfunction(model) or inspect.ismethod(model) else type(model)
        h.update(f"callable|{_name(target)}\n".encode())
        if getattr(target, "__module__", "").split(".")[0] not in _NAMED_ONLY:
            code[_name(target)] = _code_of(target, cache)
    for name in sorted(code):
        h.update(f"code|{name}|{code[name]}\n".encode())
    return h.hexdigest()[:32]


def model_identity(model: Callable) -> dict:
    """{"weights": SHA-256 of the state_dict (None for a callable without one), "structure": digest
    of the function's structure and code}: two models with equal identities compute the same
    function up to the environment (torch's own kernels)."""
    weights = sha256_state_dict(model.state_dict()) if isinstance(model, nn.Module) else None
    return {"weights": weights, "structure": _structure(model, {})}


#: rows hashed at a time: bounded memory for any data set (a float32 copy of one chunk at most)
_CHUNK_BYTES = 32 << 20


def _bytes(t: torch.Tensor) -> Any:
    """The raw bytes of a CPU tensor, as a buffer (no copy of a contiguous one)."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy()


def _values_digest(x: torch.Tensor) -> str:
    """SHA-256 of a tensor's values as the method reads them (deepdig_fast.data.as_unit): uint8 pixels
    are hashed as they are, and so is a float32 tensor every value of which is a pixel / 255 (in one
    pass: each chunk is checked and hashed as pixels together); any other tensor is hashed as its own
    values and dtype."""
    from deepdig_fast.data import as_unit

    x = x.detach()
    rows = max(1, _CHUNK_BYTES // max(1, x[:1].numel() * x.element_size()))
    head = f"{tuple(x.shape)}\0".encode()
    chunks = (x[i : i + rows].cpu() for i in range(0, x.shape[0], rows))
    if x.dtype in (torch.uint8, torch.float32):
        h = hashlib.sha256(head + b"pixels\0")
        for chunk in chunks:
            u = chunk if chunk.dtype == torch.uint8 else chunk.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            if u is not chunk and not torch.equal(as_unit(u), chunk):
                break  # not pixel values: hashed as float32 values below
            h.update(_bytes(u))
        else:
            return h.hexdigest()[:32]
        chunks = (x[i : i + rows].cpu() for i in range(0, x.shape[0], rows))
    h = hashlib.sha256(head + f"{x.dtype}\0".encode())
    for chunk in chunks:
        h.update(_bytes(chunk))
    return h.hexdigest()[:32]


def data_fingerprint(data: Any) -> dict:
    """Identifies a data set by everything the method reads of it: its name, its shapes and a
    digest of every input and label of the train and test splits."""
    return {
        "name": data.name,
        "train": list(data.x_train.shape),
        "test": list(data.x_test.shape),
        "x_train": _values_digest(data.x_train),
        "y_train": _values_digest(data.y_train),
        "x_test": _values_digest(data.x_test),
        "y_test": _values_digest(data.y_test),
    }
