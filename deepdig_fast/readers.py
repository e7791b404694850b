"""Reading deepdig's own files back, when they may be damaged or tampered with.

    results = read_json(root / "results.json", "the run's results", spec=RUN_RESULTS)
    files = FolderFiles(root, "the same `deepdig run` command")
    borderline = files.pt("borderline/deepdig_1-2.pt", expected="results.json reports successes")

read_json is the one reader of every JSON file: nesting deeper than MAX_DEPTH, integers of more
digits than any count deepdig writes, NaN and infinities are refused before any value is used, and
the value must have the shape a Spec declares (only the fields its consumers read). Every refusal
is a DamagedFileError: one line naming the file and the field.

FolderFiles reads the files a report can do without and remembers, per file, why it could not use
one: unreadable, damaged (loads, but not what the run writes), or missing although the results say
the run wrote it. The report states each where its section would be; document.finish_report then
raises ReportIncompleteError, so a report missing a section never passes for a complete one.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from deepdig_fast.io import load_failure, torch_load
from deepdig_fast.rundir import ATLAS_ROW_FIELDS

__all__ = [
    "MAX_DEPTH",
    "ANY",
    "CLASS",
    "COUNT",
    "NUMBER",
    "TEXT",
    "DamagedFileError",
    "FolderFiles",
    "ReportIncompleteError",
    "Spec",
    "check",
    "list_of",
    "map_of",
    "obj",
    "read_json",
    "read_json_if_present",
    "ATLAS",
    "ATLAS_TIMINGS",
    "MANIFEST",
    "RUN_RESULTS",
    "RUN_TIMINGS",
]


# --------------------------------------------------------------------------------------------------
# reading a folder's files: one reader for every JSON file, declared shapes, damage as text
# --------------------------------------------------------------------------------------------------

MAX_DEPTH = 100  # deepdig's own files nest a few levels; deeper is never one of them
MAX_INT = 2**64  # no count, class id or seed deepdig writes comes near it (a torch seed is < 2**64)
MAX_CLASS = 2**31 - 1


class DamagedFileError(ValueError):
    """A file that is there but cannot be used: unreadable, not JSON, nested too deep, holding a
    number deepdig never writes, or not of the shape its reader declares. The message is one line
    naming the file and, where there is one, the field."""


class ReportIncompleteError(ValueError):
    """A report was written, but without what some files of its folder should have shown; each is
    stated in the report where its section would be.

    paths: {path relative to the folder: Path} of the files written (what finish_report returns).
    problems: one sentence per file, naming it and how to get it back.
    """

    def __init__(self, message: str, paths: dict[str, Path], problems: list[str]):
        super().__init__(message)
        self.paths = paths
        self.problems = problems


@dataclass(frozen=True, eq=False)
class Spec:
    """The shape one value of a JSON file must have. Fields not declared are not looked at, and
    null is accepted wherever a value is not required (deepdig writes a missing number as null).

    kind: "object" (declared fields), "map" (any keys, one shape of value), "list", or a leaf:
        "count" (a whole number >= 0), "number", "class" (a class id), "text", "any".
    what: the shape in words, as an error message names it ("a list of objects").
    """

    kind: str
    what: str
    plural: str = "values"
    fields: Mapping[str, Spec] = field(default_factory=dict)
    item: Spec | None = None
    required: tuple[str, ...] = ()
    length: int | None = None
    is_leaf: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "is_leaf", self.kind not in ("object", "map", "list"))


def obj(
    many: Mapping[str, Spec] | None = None,
    /,
    *,
    required: tuple[str, ...] = (),
    what: str = "an object",
    **fields: Spec,
) -> Spec:
    """An object whose fields (`many` and `fields`), where present and not null, have their shapes;
    `required` must be present."""
    both = {**(many or {}), **fields}
    return Spec("object", what, "objects", MappingProxyType(both), required=tuple(required))


def list_of(item: Spec, *, length: int | None = None, what: str | None = None) -> Spec:
    size = "" if length is None else f"{length} "
    return Spec("list", what or f"a list of {size}{item.plural}", "lists", item=item, length=length)


def map_of(item: Spec, *, what: str | None = None) -> Spec:
    return Spec("map", what or f"an object of {item.plural}", "objects", item=item)


COUNT = Spec("count", "a count (a whole number >= 0)", "counts")
NUMBER = Spec("number", "a number", "numbers")
CLASS = Spec("class", "a class id (a whole number >= 0)", "class ids")
TEXT = Spec("text", "a string", "strings")
ANY = Spec("any", "anything", "values")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _join(path: str, key) -> str:
    """The path of a field as messages write it: directions[0].pairs, directions["1->2"].methods."""
    if isinstance(key, str) and _NAME.fullmatch(key):
        return f"{path}.{key}" if path else key
    text = json.dumps(key) if isinstance(key, (str, int)) else repr(key)
    return f"{path}[{text if len(text) <= 40 else text[:39] + '…'}]"


def _digits(v: int) -> int:
    try:
        return len(str(abs(v)))
    except ValueError:  # beyond Python's int-to-text limit: close enough
        return int(abs(v).bit_length() * math.log10(2)) + 1


def _got(v) -> str:
    """A value as a message shows it: numbers as themselves, anything else by its type."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, numbers.Integral):
        return f"an integer of {_digits(int(v))} digits" if abs(int(v)) > MAX_INT else str(int(v))
    if isinstance(v, numbers.Real):
        return repr(float(v))
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, (list, tuple)):
        return f"a list of {len(v)}"
    return type(v).__name__


def _fits(kind: str, v) -> bool:
    if kind == "any":
        return True
    if kind == "text":
        return isinstance(v, str)
    if kind == "list":
        return isinstance(v, (list, tuple))
    if kind in ("object", "map"):
        return isinstance(v, Mapping)
    t = type(v)  # a number: plain int and float first, the abstract number types are slow to test
    if t is not int and t is not float and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
        return False
    if t is int or (t is not float and isinstance(v, numbers.Integral)):
        i = int(v)
        return abs(i) <= MAX_INT if kind == "number" else 0 <= i <= (MAX_CLASS if kind == "class" else MAX_INT)
    f = float(v)
    if kind == "number":
        return True  # NaN and ±inf mean "no value" to the formatters
    return kind == "count" and math.isfinite(f) and 0 <= f <= MAX_INT and f.is_integer()


def check(spec: Spec, value, file, path: str = "") -> None:
    """Raise DamagedFileError (naming `file` and the field) unless `value` has the shape `spec`."""
    if spec.kind == "any":
        return
    if not _fits(spec.kind, value):
        where = f"{file} must hold" if not path else f"{file}: '{path}' must be"
        raise DamagedFileError(f"{where} {spec.what}, got {_got(value)}")
    if spec.is_leaf:
        return
    if spec.kind == "object":
        for key in spec.required:
            if value.get(key) is None:
                sub = spec.fields.get(key, ANY)
                state = "is missing" if key not in value else f"must be {sub.what}, got null"
                raise DamagedFileError(f"{file}: '{_join(path, key)}' {state}")
        for key, sub in spec.fields.items():
            v = value.get(key)
            if v is not None and not (sub.is_leaf and _fits(sub.kind, v)):
                check(sub, v, file, _join(path, key))
        return
    assert spec.item is not None  # a list or a map
    if spec.kind == "list":
        if spec.length is not None and len(value) != spec.length:
            raise DamagedFileError(f"{file}: '{path}' must be {spec.what}, got {_got(value)}")
        entries: Iterable[tuple[Any, Any]] = enumerate(value)
    else:
        entries = value.items()
    for key, v in entries:
        if v is None and spec.item.is_leaf:
            continue
        check(spec.item, v, file, _join(path, key))


class _Unusable:
    """What the parser puts in place of a number no deepdig file holds (found and named after parsing)."""

    def __init__(self, text: str):
        self.text = text


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nested_too_deep(text: str) -> bool:
    """Whether the JSON text nests deeper than MAX_DEPTH (counted before parsing: Python's parser
    recurses once per level, and a file can hold far more levels than the interpreter's stack)."""
    depth = 0
    for ch in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _find_unusable(v, path: str = "") -> tuple[str, _Unusable] | None:
    if isinstance(v, _Unusable):
        return path, v
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for key, sub in items:
        found = _find_unusable(sub, _join(path, key))
        if found is not None:
            return found
    return None


def _parse(text: str, shown) -> Any:
    unusable: list[_Unusable] = []

    def mark(why: str) -> _Unusable:
        unusable.append(_Unusable(why))
        return unusable[-1]

    def parse_int(s: str):
        digits = len(s) - s.startswith("-")
        v = int(s) if digits <= 20 else None  # never converts a thousand-digit literal
        if v is not None and abs(v) <= MAX_INT:
            return v
        return mark(f"an integer of {digits} digits, larger than any a deepdig file holds")

    def parse_float(s: str):
        v = float(s)
        return v if math.isfinite(v) else mark(f"{s[:30]}, beyond the range of a float")

    def parse_constant(s: str):
        return mark(f"{s}, which deepdig never writes (a missing number is null)")

    if _nested_too_deep(text):
        raise DamagedFileError(f"{shown} nests deeper than {MAX_DEPTH} levels; no deepdig file does")
    try:
        obj = json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except RecursionError:  # a stack already deep when called: the same verdict
        raise DamagedFileError(f"{shown} nests too deep to be read") from None
    except ValueError as exc:  # JSONDecodeError
        raise DamagedFileError(f"{shown} is not valid JSON ({_first_line(exc)})") from None
    if unusable:
        where, bad = _find_unusable(obj) or ("", unusable[0])
        raise DamagedFileError(f"{shown}: '{where}' holds {bad.text}" if where else f"{shown} holds {bad.text}")
    return obj


def _first_line(exc: BaseException, limit: int = 120) -> str:
    text = (str(exc).strip().splitlines() or [""])[0].strip()
    return (text if len(text) <= limit else text[: limit - 1] + "…") or type(exc).__name__


def _read_json(path: Path, shown, spec: Spec | None) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedFileError(f"{shown} is not valid JSON (not UTF-8 text: {exc.reason})") from None
    except OSError as exc:
        raise DamagedFileError(f"{shown} could not be read ({exc.strerror or exc})") from None
    obj = _parse(text, shown)
    if not isinstance(obj, dict):
        raise DamagedFileError(f"{shown} must hold a JSON object, got {_got(obj)}")
    if spec is not None:
        check(spec, obj, shown)
    return obj


def read_json(path: Path, what: str, *, spec: Spec | None = None) -> dict:
    """The JSON object in `path`, checked against `spec`.

    Absent: FileNotFoundError naming the file and `what` it holds. There but unusable -- unreadable,
    not UTF-8 JSON, nested deeper than MAX_DEPTH, holding NaN, ±Infinity or an integer beyond 2**64
    (deepdig writes none of them), or not of the shape `spec` declares: DamagedFileError, one line
    naming the file and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run_dir must hold {path.name} ({what}); {path} does not exist")
    return _read_json(path, path, spec)


def read_json_if_present(path: Path, *, spec: Spec | None = None) -> dict | None:
    """read_json of a file a folder may lack: None when it is absent."""
    path = Path(path)
    return _read_json(path, path, spec) if path.is_file() else None


# ---- the files of deepdig's folders, as far as the reports and tables use them

_METHOD = obj(
    pairs=COUNT,
    successes=COUNT,
    success_rate=NUMBER,
    mean_attempts_success=NUMBER,
    mean_attempts_failure=NUMBER,
    forwards=COUNT,
    counts=map_of(COUNT),
    skipped=TEXT,
)
_TRAJECTORY = obj(
    skipped=TEXT,
    reason=TEXT,
    n_samples=COUNT,
    n_segments=COUNT,
    forwards=COUNT,
    oscillation=NUMBER,
    ci95=list_of(NUMBER, length=2),
    band=list_of(NUMBER, length=2),
    mean_distinct_labels=NUMBER,
    third_class_change_share=NUMBER,
    band_share=NUMBER,
)
_SVM_SET = obj(
    n=COUNT,
    misclassified=COUNT,
    m1=NUMBER,
    m2=NUMBER,
    mean_abs=NUMBER,
    max=NUMBER,
    mean=NUMBER,
    min=NUMBER,
    accuracy=NUMBER,
)
_CONFIG = obj(adversarial=obj(steps=COUNT), beta=NUMBER)

#: manifest.json of a run or an atlas folder
MANIFEST = obj(
    kind=TEXT,
    run_id=TEXT,
    pair=list_of(CLASS),
    classes=list_of(ANY),
    config=_CONFIG,
    data=obj(train=list_of(COUNT), test=list_of(COUNT)),
    classifier=obj(),
    classifier_meta=obj(accuracy=NUMBER),
)

#: results.json of a run folder (pipeline.run_pair)
RUN_RESULTS = obj(
    required=("directions",),
    kind=TEXT,
    run_id=TEXT,
    pair=list_of(CLASS),
    config=_CONFIG,
    seconds=NUMBER,
    directions=map_of(
        obj(
            required=("source", "target"),
            source=CLASS,
            target=CLASS,
            methods=obj(deepdig=_METHOD, rpbs=_METHOD, epbs=_METHOD),
            component_one=obj(
                train=obj(n_inputs=COUNT, kept=COUNT), fraction_of_all=NUMBER, test_fraction_of_all=NUMBER
            ),
            component_two=obj(pairs=COUNT),
            trajectory=_TRAJECTORY,
        ),
        what='an object of directions ({"S->T": {...}})',
    ),
    linearity=obj(skipped=TEXT, sets=obj(train=_SVM_SET, test=_SVM_SET, borderline=_SVM_SET), svm=obj()),
    characterization=obj(),
)

#: timings.json of a run folder
RUN_TIMINGS = obj(seconds=NUMBER, directions=map_of(obj(trajectory=obj(seconds=NUMBER))))

_ATLAS_COUNTS = (
    "inputs",
    "inputs_correct",
    "adversarial",
    "pairs",
    "successes",
    "third_class",
    "stalled",
    "max_steps",
    "invalid_bracket",
    "nonfinite",
    "forwards",
    "trajectory_segments",
)
_ATLAS_ROW = obj(
    {
        **{c: COUNT for c in _ATLAS_COUNTS},
        **{c: NUMBER for c in ATLAS_ROW_FIELDS if c not in (*_ATLAS_COUNTS, "source", "target", "skipped")},
    },
    required=("source", "target"),
    source=CLASS,
    target=CLASS,
    skipped=TEXT,
)

#: atlas.json of an atlas folder (atlas.run_atlas)
ATLAS = obj(
    required=("classes", "directions"),
    kind=TEXT,
    run_id=TEXT,
    classes=list_of(CLASS),
    class_names=list_of(ANY),
    classifier=obj(),
    config=obj(),
    generators=list_of(
        obj(target=CLASS, sources=list_of(CLASS), inputs=COUNT, outputs_target=COUNT, final_loss=NUMBER)
    ),
    directions=list_of(_ATLAS_ROW),
)

#: timings.json of an atlas folder
ATLAS_TIMINGS = obj(
    wall_seconds=NUMBER,
    units=map_of(obj(seconds=NUMBER)),
    forwards=map_of(NUMBER),
    phases=map_of(NUMBER),
    stages=map_of(NUMBER),
)


class FolderFiles:
    """The files a report reads from its folder beside the ones it cannot do without, and what
    was wrong with each it could not use. finish_report lists those problems in the report and
    then raises ReportIncompleteError: a report with a section missing because a file is damaged
    is written, but never passes for a complete one.

    rerun: the command that writes the folder's files again, e.g. "the same `deepdig run` command".
    """

    def __init__(self, root: Path, rerun: str):
        self.root = Path(root)
        self.rerun = rerun
        self.problems: dict[str, str] = {}  # path relative to root -> one sentence

    def problem(self, rel: str) -> str | None:
        return self.problems.get(rel)

    def pt(self, rel: str, *, expected: str | None = None, check=None) -> dict | None:
        """The dict in root/rel (torch.load, weights_only), or None when it is absent or unusable.

        expected: why the folder should hold the file (what its results say); an absent expected
            file is a problem too. check(obj) -> None, or what is wrong with the file's contents.
        """
        path = self.root / rel
        if not path.is_file():
            if expected is not None:
                self.problems[rel] = f"{rel} is missing, though {expected}; rerun {self.rerun} to compute it again"
            return None
        try:
            loaded = torch_load(path)
        except Exception as exc:  # torn, truncated or foreign bytes; the run recomputes such a file
            reason = load_failure(exc)
            reason = reason if len(reason) <= 160 else reason[:159] + "…"
            self.problems[rel] = f"{rel} is unreadable ({reason}); rerun {self.rerun} to compute it again"
            return None
        why: str | None = f"it holds a {type(loaded).__name__}, not a dict" if not isinstance(loaded, dict) else None
        if why is None and check is not None:
            why = check(loaded)
        if why:
            # the run reuses a readable stage file, so only a deleted one is computed again
            self.problems[rel] = f"{rel} is damaged ({why}); delete it and rerun {self.rerun} to compute it again"
            return None
        return loaded

    def json(self, rel: str, spec: Spec | None = None) -> dict | None:
        """An optional JSON file of the folder, read as read_json reads; None when absent or unusable."""
        path = self.root / rel
        if not path.is_file():
            return None
        try:
            return _read_json(path, rel, spec)
        except DamagedFileError as exc:
            self.problems[rel] = f"{exc}; rerun {self.rerun} to write it again"
            return None

    def summary(self) -> str | None:
        """The report's opening note when files could not be used (None when every file was)."""
        if not self.problems:
            return None
        n = len(self.problems)
        return (
            f"This report is incomplete: {n} file{'s' if n > 1 else ''} of the folder could not be used "
            f"({', '.join(f'`{rel}`' for rel in self.problems)}). The sections that need "
            f"{'them' if n > 1 else 'it'} say so; the list at the end says how to get them back."
        )
