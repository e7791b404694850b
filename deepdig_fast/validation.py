"""Argument constraints, declared once and checked by one validator.

Every public function and config of deepdig_fast checks its scalar arguments with the helpers here,
so "a positive int" or "a number in (0, 1)" means the same thing — and is worded the same way — in
every error message:

    check_int(max_steps, "max_steps", low=1)                     -> "max_steps must be a positive int, got 0"
    check_number(beta, "beta", low=0, high=1, closed="neither")  -> "beta must be a number in (0, 1), got 2"
    check_class_id(source, "source", num_classes=10)
    validate_fields(config, {"beta": Number(0, 1, "neither"), "seed": Int(0), ...})

Configs (PairConfig, AtlasConfig, AdversarialConfig) declare their constraints as a class-level
mapping `CONSTRAINTS` and call `validate_fields(self, self.CONSTRAINTS)` in `__post_init__`.
Booleans are never accepted where a number is expected (`True` is an `int` in Python).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BETA",
    "BETA_RULE",
    "INT_MAX",
    "SEED_MAX",
    "STEPS_MAX",
    "MAX_STEPS_MAX",
    "BATCH_MAX",
    "THREADS_MAX",
    "ParameterError",
    "Int",
    "Number",
    "Options",
    "Optional",
    "check_int",
    "check_number",
    "check_class_id",
    "check_band",
    "check_input_dtype",
    "INPUT_DTYPES",
    "check_options",
    "validate_fields",
    "BAND",
]


#: every int setting is bounded, so an absurd value is refused where it is given instead of failing
#: later in a kernel's int64, an allocation or a timer. The default bound of an int:
INT_MAX = 2**31 - 1
#: seeds: the range numpy and torch both take unchanged
SEED_MAX = 2**32 - 1
#: training steps of an autoencoder (the paper's 5000) and epochs/steps of a classifier
STEPS_MAX = 10_000_000
#: points the borderline engine evaluates per pair: a float64 bisection has no interval left to
#: halve after about 1,100 points, so a larger cap changes nothing
MAX_STEPS_MAX = 1 << 20
#: pairs the engine holds live at once (the GPU default is 16,384)
BATCH_MAX = 1 << 24
#: torch threads of a process
THREADS_MAX = 1024


class ParameterError(ValueError, TypeError):
    """An argument of the wrong type or out of its range. Both a ValueError and a TypeError, so
    callers may catch either (as scikit-learn's InvalidParameterError)."""


_BRACKETS = {"both": ("[", "]"), "left": ("[", ")"), "right": ("(", "]"), "neither": ("(", ")")}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _describe_int(low: int | None, high: int | None) -> str:
    """E.g. "a positive int", "a positive int <= 64", "an int in [2, 9]"; INT_MAX is left unsaid."""
    if low is None:
        base = "an int"
    elif low == 1:
        base = "a positive int"
    elif low == 0:
        base = "a non-negative int"
    else:
        base = f"an int >= {low}"
    if high is None or high == INT_MAX:
        return base
    return f"{base} <= {high}" if low in (None, 0, 1) else f"an int in [{low}, {high}]"


def check_int(value: Any, name: str, *, low: int | None = None, high: int | None = INT_MAX) -> int:
    """`value` as an int in [low, high]; ValueError naming `name` otherwise. `low` None: no lower
    bound; `high` defaults to INT_MAX (None: unbounded)."""
    if not _is_int(value) or (low is not None and value < low):
        raise ParameterError(f"{name} must be {_describe_int(low, high)}, got {_short_repr(value)}")
    if high is not None and value > high:
        what = _describe_int(low, high) if high != INT_MAX else f"{_describe_int(low, None)} <= {high}"
        raise ParameterError(f"{name} must be {what}, got {_short_repr(value)}")
    return int(value)


def _short_repr(value: Any) -> str:
    """repr(value), shortened: a 10**400 in a message helps nobody."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
) -> float:
    """`value` as a finite float within the interval (`closed`: both, left, right or neither)."""
    lb, rb = _BRACKETS[closed]
    ok = _is_number(value) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if lb == "[" else value > low
    if ok and high is not None:
        ok = value <= high if rb == "]" else value < high
    if not ok:
        if low is None and high is None:
            what = "a finite number"
        elif high is None:
            what = f"a number {'>=' if lb == '[' else '>'} {low:g}"
        elif low is None:
            what = f"a number {'<=' if rb == ']' else '<'} {high:g}"
        else:
            what = f"a number in {lb}{low:g}, {high:g}{rb}"
        raise ParameterError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_class_id(value: Any, name: str, num_classes: int | None = None) -> int:
    """A class index: a non-negative int, below `num_classes` when it is known."""
    if num_classes is None:
        if not _is_int(value) or value < 0:
            raise ParameterError(f"{name} must be a non-negative int class index, got {value!r}")
    elif not _is_int(value) or not 0 <= value < num_classes:
        raise ParameterError(f"{name} must be a class id in [0, {num_classes}), got {value!r}")
    return int(value)


#: the input dtypes of the method: its kernels and its IEEE float32 results are defined for these
INPUT_DTYPES = ("torch.float32", "torch.float64")


def check_input_dtype(t: Any, name: str, *, pixels: bool = False) -> None:
    """Inputs of the method are float32 or float64 (uint8 pixels too with `pixels`): a float16 or
    bfloat16 tensor is refused here, by name, instead of failing in the model's first layer."""
    allowed = INPUT_DTYPES + (("torch.uint8",) if pixels else ())
    dtype = str(getattr(t, "dtype", type(t).__name__))
    if dtype not in allowed:
        hint = (
            "; convert it with .float() (and the model with .float())"
            if dtype in ("torch.float16", "torch.bfloat16")
            else ""
        )
        raise ParameterError(
            f"{name} must be a float32 or float64{' (or uint8 pixel)' if pixels else ''} tensor, got {dtype}{hint}"
        )


def check_band(value: Any, name: str) -> tuple[float, float]:
    """A pair (lo, hi) of finite numbers with lo <= hi."""
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(_is_number(b) and math.isfinite(b) for b in items) or not items[0] <= items[1]:
        raise ParameterError(f"{name} must be (lo, hi), two finite numbers with lo <= hi, got {value!r}")
    return float(items[0]), float(items[1])


def check_options(value: Any, name: str, options: Iterable[Any]) -> Any:
    """`value` must be one of `options`."""
    opts = tuple(options)
    if isinstance(value, bool) or value not in opts:
        raise ParameterError(f"{name} must be one of {', '.join(repr(o) for o in opts)}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------
# declared constraints
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Int:
    """An int in [low, high] (low None: unbounded; high INT_MAX unless given)."""

    low: int | None = None
    high: int | None = INT_MAX

    def check(self, value: Any, name: str) -> Any:
        return check_int(value, name, low=self.low, high=self.high)


@dataclass(frozen=True)
class Number:
    """A finite number in the interval; `closed` is both, left, right or neither."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def check(self, value: Any, name: str) -> Any:
        return check_number(value, name, low=self.low, high=self.high, closed=self.closed)


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values."""

    values: tuple

    def check(self, value: Any, name: str) -> Any:
        return check_options(value, name, self.values)


@dataclass(frozen=True)
class Optional:
    """None, or a value satisfying `inner` (the message says that None is allowed too)."""

    inner: Int | Number | Options

    def check(self, value: Any, name: str) -> Any:
        if value is None:
            return None
        try:
            return self.inner.check(value, name)
        except ParameterError as exc:
            raise ParameterError(f"{exc} (or None)") from None


class _Band:
    def check(self, value: Any, name: str) -> Any:
        return check_band(value, name)


BAND = _Band()

#: the success threshold on |p_source - p_target| (the paper's) and the one rule every entry point
#: checks it with: the engine, PairConfig, AtlasConfig and the CLI's --beta
BETA = 1e-4
BETA_RULE = Number(0, 1, "neither")


def validate_fields(obj: Any, constraints: Mapping[str, Any], owner: str | None = None) -> None:
    """Check every attribute of `obj` named in `constraints`; errors name `Owner.field`.

    Values keep their types (an int field stays an int); a band field is normalised to a tuple of
    floats, the one conversion the configs rely on.
    """
    prefix = (owner or type(obj).__name__) + "."
    for field_name, constraint in constraints.items():
        value = getattr(obj, field_name)
        checked = constraint.check(value, prefix + field_name)
        if constraint is BAND:
            object.__setattr__(obj, field_name, checked)
