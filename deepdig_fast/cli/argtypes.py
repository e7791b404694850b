"""What the text of each option may be: the argparse types (a bad value is a one-line message
naming what was expected), and the names the options choose from."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepdig_fast.configs import RETRIES_MAX
from deepdig_fast.validation import BATCH_MAX, BETA_RULE, INT_MAX, MAX_STEPS_MAX, SEED_MAX, STEPS_MAX, THREADS_MAX

DATASETS = ("mnist", "fashion-mnist", "cifar10")
#: --dataset also takes these: a folder of class subfolders, a .pt/.npz file, torchvision:NAME
DATA_SOURCES = ("imagefolder", "tensors", "torchvision:NAME")
AUTOENCODERS = ("auto", "mlp", "conv")
ARCHS = ("cnn", "fcn", "resnet", "resnet18", "resnet34", "googlenet")
#: --train-layout -> AdversarialConfig.channels_last
_LAYOUTS: dict[str, bool | str] = {"auto": "auto", "channels_last": True, "contiguous": False}


def _pair(text: str) -> tuple:
    """Two classes: ids like 1,2 (or 1-2), or names like cat,dog (resolved against the data set's
    class names, then the model's, once they are known)."""
    parts = [p.strip() for p in text.split(",")] if "," in text else text.split("-")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"expected two classes like 1,2 or cat,dog, got {text!r}")
    pair = tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)
    if pair[0] == pair[1]:
        raise argparse.ArgumentTypeError(f"the two classes must differ, got {text!r}")
    return pair


def _number_arg(convert, ok, what: str):
    """An argparse type: `convert(text)`, accepted when `ok(value)`; else "expected WHAT, got 'text'"."""

    def parse(text: str):
        try:
            v = convert(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


def _int_arg(low: int, high: int):
    """An argparse type: an integer in [low, high] ("expected a positive integer of at most 64")."""
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            v = None
        if v is None or v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {_shown(text)}")
        if v > high:
            raise argparse.ArgumentTypeError(f"expected {what} of at most {high}, got {_shown(text)}")
        return v

    return parse


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


# the bounds are the configs' own (deepdig_fast.validation), so the API and the command agree
_positive_int = _int_arg(1, INT_MAX)
_seed = _int_arg(0, SEED_MAX)
_train_steps = _int_arg(1, STEPS_MAX)
_retries = _int_arg(0, RETRIES_MAX)


def _steps_or_auto(text: str) -> int | str:
    """--steps: a step count (AdversarialConfig.steps' bounds) or "auto" (its stopping rule)."""
    return "auto" if text == "auto" else _train_steps(text)


_engine_steps = _int_arg(1, MAX_STEPS_MAX)
_batch = _int_arg(1, BATCH_MAX)
_threads = _int_arg(1, THREADS_MAX)
_seconds = _int_arg(1, 30 * 24 * 3600)  # a process-group timeout; a month covers any real phase


def _beta(text: str) -> float:
    """--beta: validation.BETA_RULE, the rule of the library's configs, as an argparse type."""
    try:
        return BETA_RULE.check(float(text), "beta")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None


_share = _number_arg(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
_positive_float = _number_arg(float, lambda v: 0 < v < float("inf"), "a positive number")


def _lr_or_auto(text: str) -> float | str:
    """--ae-lr: a positive learning rate or "auto" (AdversarialConfig.lr's)."""
    return "auto" if text == "auto" else _positive_float(text)


_non_negative = _number_arg(float, lambda v: 0 <= v < float("inf"), "a non-negative number")
_unit_left = _number_arg(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def _fraction(text: str) -> float:
    """A number like 0.3 or 8/255, in (0, 1]."""
    try:
        num, _, den = text.partition("/")
        v = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        v = float("nan")
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] like 0.3 or 8/255, got {text!r}")
    return v


def _out_dir(text: str) -> str:
    """An output folder: non-empty, not an existing file, and inside a folder this user may write."""
    import os

    if not text or not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, expected a folder")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {probe} is a file, so no folder can be made there")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {probe} is not writable")
    return text


def _dataset(text: str) -> str:
    import re

    if (
        text in DATASETS
        or text in ("imagefolder", "tensors")
        or re.fullmatch(r"torchvision:[A-Za-z][A-Za-z0-9_]*", text)
    ):
        return text
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(DATASETS + DATA_SOURCES)})")


def _image_size(text: str):
    parts = text.lower().split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected a size like 64 or 64x48 (HxW), got {text!r}")
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _autoencoder(text: str) -> str:
    if text in AUTOENCODERS or (":" in text and all(text.split(":", 1))):
        return text
    raise argparse.ArgumentTypeError(
        f"expected auto, mlp, conv or package.module:factory (or file.py:factory), got {text!r}"
    )


def _class_token(text: str):
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _classes(text: str):
    """'all', or two or more classes given by id or name: 0,1,2 or cat,dog,ship."""
    if text.strip().lower() == "all":
        return None
    out = [_class_token(p) for p in text.split(",") if p.strip()]
    if len(set(out)) < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or at least two different classes like 0,1,2, got {text!r}")
    return out


def _pairs(text: str) -> list[tuple]:
    """Class pairs by id or name: 1-2,4-9 or cat-dog,ship-truck (a name with '-' in it: use its id)."""
    if not all(part.count("-") == 1 for part in text.split(",")):
        raise argparse.ArgumentTypeError(f"expected pairs like 1-2,4-9 or cat-dog, got {text!r}")
    return [_pair(part) for part in text.split(",")]


def _model_name(text: str) -> str:
    """A model's display name: one line of at most 64 printable characters."""
    if not text.strip() or len(text) > 64 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected a name of 1 to 64 printable characters on one line, got {text!r}")
    return text.strip()


def _shard(text: str) -> tuple[int, int]:
    """I/N: launcher I (1-based) of N."""
    i, sep, n = text.partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(i) <= int(n):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, like 1/4, got {text!r}")
    return int(i), int(n)
