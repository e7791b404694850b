"""Reading the run folder written by pipeline.run_pair for the run report (S, T = the run's pair,
manifest["pair"]; every .pt is loaded with torch.load(weights_only=True)):

    manifest.json                    required: dataset fingerprint ("data"), classifier, settings, "pair"
    results.json                     required: directions["S->T" / "T->S"]["methods"][method] summaries,
                                     component_one / component_two stats
    components/ae2_<s>-<t>.pt        "a2", "a": pair row r of borderline/deepdig_<s>-<t>.pt has the ends
                                     a2[r] (class s) and a[r] (class t)
    borderline/<method>_<s>-<t>.pt   method in deepdig, rpbs, epbs: points, status, attempts, probs, lam,
                                     a_index / b_index (rpbs, epbs: rows of the training set)

and, when present, the characterization (deepdig_fast.characterize):

    results.json directions["<s>-><t>"]["trajectory"]
                                     TrajectoryResult.to_dict(), or {"skipped": "why"}
    results.json "linearity"         linearity(...).to_dict(), or
                                     {"skipped": "why"}
    results.json "characterization"  optional {"note": "..."}: shown as is (e.g. why nothing was run)
    characterize/trajectory_<s>-<t>.pt
                                     TrajectoryResult.tensors(): {"stats": [S, 4] int64 (changes, distinct
                                     labels, third-class changes, points in band), "i": [S] int64,
                                     "j": [S] int64, "T": int, "columns": [4 str], "source": int,
                                     "target": int}
    characterize/linearity_S-T.pt    linearity(...).tensors(): {"distances": {"train" | "test" |
                                     "borderline": [n] float64 signed distances}, "labels": {same keys:
                                     [n] int64 true classes}, "positive_class": int, "source": int,
                                     "target": int}

Every JSON file is read by readers.read_json against the shapes declared there (readers.MANIFEST,
RUN_RESULTS, RUN_TIMINGS): a manifest.json or results.json that is not JSON, nests too deep, holds a
number no deepdig file holds or has a field of the wrong type stops the report with one line naming
the file and the field (DamagedFileError, a ValueError), before anything is written. A .pt file that
is unreadable or holds the wrong contents, or one that results.json says exists but is missing, is
recorded by readers.FolderFiles (read_run's `files`) for the report to state where its section
would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepdig_fast.readers import MANIFEST, RUN_RESULTS, RUN_TIMINGS, FolderFiles, read_json
from deepdig_fast.report.shared import direction_label
from deepdig_fast.rundir import check_same_run

METHODS = ("deepdig", "rpbs", "epbs")
METHOD_NAMES = {"deepdig": "DeepDIG", "rpbs": "RPBS", "epbs": "EPBS"}
RERUN = "the same `deepdig run` command"


class Names(dict):
    """Class id -> name; an id the manifest names no class for reads as itself."""

    def __missing__(self, c) -> str:
        return str(c)


def arrow(key: str) -> str:
    """A direction key of results.json ("3->5") as shown ("3→5")."""
    return key.replace("->", "→")


# --------------------------------------------------------------------------------------------------
# what a usable .pt file of each kind holds
# --------------------------------------------------------------------------------------------------


def _rows_of(d: dict, names: tuple[str, ...]) -> str | None:
    """None when each of `names` is a tensor of d with one row per pair (all the same length), else what is wrong."""
    n = None
    for k in names:
        v = d.get(k)
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            return f"no per-pair tensor {k!r}"
        if n is None:
            n = v.shape[0]
        elif v.shape[0] != n:
            return f"{k!r} has {v.shape[0]} rows but {names[0]!r} {n}"
    return None


def _borderline_check(method: str):
    names = ("status", "attempts", "points", "probs", "lam") + (() if method == "deepdig" else ("a_index", "b_index"))
    return lambda d: _rows_of(d, names)


def _ends_check(d: dict) -> str | None:
    return _rows_of(d, ("a", "a2"))


def _trajectory_check(d: dict) -> str | None:
    stats = d.get("stats")
    if not (isinstance(stats, torch.Tensor) and stats.dim() == 2 and stats.shape[1] >= 2):
        return "no [segments, 4] tensor 'stats'"
    if not (d.get("T") is None or (isinstance(d["T"], int) and not isinstance(d["T"], bool))):
        return f"'T' is a {type(d['T']).__name__}, not an int"
    return None


def _linearity_check(d: dict) -> str | None:
    for k in ("distances", "labels"):
        v = d.get(k)
        if v is not None and not (isinstance(v, dict) and all(isinstance(x, torch.Tensor) for x in v.values())):
            return f"{k!r} is not a dict of tensors"
    return None


# --------------------------------------------------------------------------------------------------
# the folder
# --------------------------------------------------------------------------------------------------


@dataclass
class RunFolder:
    """What the report shows of a run folder: its JSON files, and per direction key ("3->5") the
    .pt files read (None where absent or unusable: `files` says which and why)."""

    root: Path
    manifest: dict
    results: dict
    files: FolderFiles
    timings: dict
    S: int
    T: int
    names: Names
    directions: dict
    labels: dict[str, str]  # direction key -> "name s → name t"
    borderline: dict[str, dict[str, Any]]  # direction key -> method -> borderline file
    ae2: dict[str, dict | None]  # direction key -> DeepDIG's pair ends {"a", "a2"}
    trajectory_pt: dict[str, dict | None]
    linearity_pt: dict | None

    @property
    def config(self) -> dict:
        return self.manifest.get("config") or self.results.get("config") or {}

    @property
    def dataset(self) -> str:
        return self.manifest.get("dataset") or (self.manifest.get("data") or {}).get("name") or "?"

    @property
    def classifier(self) -> dict:
        return self.manifest.get("classifier") or {}

    @property
    def linearity(self):
        return self.results.get("linearity")


def read_run(run_dir) -> RunFolder:
    """The run folder's files; FileNotFoundError / DamagedFileError when manifest.json or
    results.json cannot be used, ValueError when results.json names no class pair."""
    if not isinstance(run_dir, (str, Path)):
        raise TypeError(f"run_dir must be a path (str or Path), got {type(run_dir).__name__}")
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run_dir must be a run folder written by `deepdig run`; {root} is not a directory")
    manifest = read_json(root / "manifest.json", "the run's settings", spec=MANIFEST)
    results = read_json(root / "results.json", "the run's results; is the run finished?", spec=RUN_RESULTS)
    check_same_run(root, manifest, results, "results.json")
    files = FolderFiles(root, RERUN)
    timings = files.json("timings.json", RUN_TIMINGS) or {}

    pair = results.get("pair") or manifest.get("pair")
    if not (isinstance(pair, list) and len(pair) == 2):
        raise ValueError(f'{root / "results.json"} must name the class pair as "pair": [s, t], got {pair!r}')
    S, T = int(pair[0]), int(pair[1])
    names = Names(enumerate(str(c) for c in (manifest.get("classes") or [])))
    directions: dict = results["directions"]
    labels = {k: direction_label(names, v["source"], v["target"]) for k, v in directions.items()}
    run = RunFolder(root, manifest, results, files, timings, S, T, names, directions, labels, {}, {}, {}, None)
    for key, d in directions.items():
        _read_direction(run, key, d)
    lin = results.get("linearity")
    run.linearity_pt = files.pt(
        f"characterize/linearity_{S}-{T}.pt",
        expected="results.json reports the embedding linearity" if isinstance(lin, dict) and lin.get("sets") else None,
        check=_linearity_check,
    )
    return run


def _read_direction(run: RunFolder, key: str, d: dict) -> None:
    """Read one direction's .pt files into run; a file results.json says the run wrote is expected."""
    files, label = run.files, run.labels[key]
    tag = f"{d['source']}-{d['target']}"
    methods = d.get("methods") or {}
    run.borderline[key] = {}
    for method in METHODS:
        info = methods.get(method)
        ran = isinstance(info, dict) and not info.get("skipped")
        run.borderline[key][method] = files.pt(
            f"borderline/{method}_{tag}.pt",
            expected=f"results.json reports {METHOD_NAMES[method]}'s search for {label}" if ran else None,
            check=_borderline_check(method),
        )
    deepdig_ran = isinstance(methods.get("deepdig"), dict) and not methods["deepdig"].get("skipped")
    c2 = files.pt(
        f"components/ae2_{tag}.pt",
        expected=f"results.json reports DeepDIG's pairs for {label}" if deepdig_ran else None,
        check=_ends_check,
    )
    run.ae2[key] = None if c2 is None else {"a": c2["a"], "a2": c2["a2"]}
    tr = d.get("trajectory")
    measured = isinstance(tr, dict) and not (tr.get("skipped") or tr.get("reason"))
    run.trajectory_pt[key] = files.pt(
        f"characterize/trajectory_{tag}.pt",
        expected=f"results.json reports the trajectory oscillation of {label}" if measured else None,
        check=_trajectory_check,
    )
