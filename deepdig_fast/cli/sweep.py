"""`deepdig sweep SPEC.toml --out SWEEP_DIR`: every model of a declared sweep under every settings
combination, each cell a `deepdig atlas` (or `deepdig run`) folder, then one results table and a
comparison report.

    SWEEP_DIR/manifest.json     kind deepdig-sweep, the spec's text and digest, the cells
    SWEEP_DIR/cells/<cell>/     one atlas (or run) folder per cell, with every folder guarantee
    SWEEP_DIR/done/<cell>.json  written once a cell is complete: the digest of its options and the
                                run id of its results (a later launcher skips the cell)
    SWEEP_DIR/cells.json        every cell's status, covariates and cost, written when collecting
    SWEEP_DIR/results.csv, results.parquet, sweep.html, sweep.md, figures/

Each cell's options are the words of its command, checked by that command's own parser before any
work; a bad one is reported with the spec key it came from. Launchers share cells through the
cells' folder locks: `--shard I/N` (or a SLURM job array) only chooses where a launcher starts, so
two launchers never compute one cell twice, and a killed launcher's cell is resumed by the next that
reaches it. Under torchrun, every rank walks the cells in the same order and each cell's units are
split over the ranks (run_atlas). The launcher that finds every cell complete collects.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import os
import sys
import time
from pathlib import Path
from typing import Any

from deepdig_fast.cli.errors import CLIError, _one_line
from deepdig_fast.columns import SWEEP_KIND

#: what a finished cell drops under `retention = "results"`: the stage files holding autoencoder
#: weights and intermediate sets (the results files, reports and DeepDIG borderline samples stay)
INTERMEDIATE = {
    "atlas": ("units/generators/*.pt",),
    "run": ("components/*.pt", "borderline/rpbs_*.pt", "borderline/epbs_*.pt"),
}


#: how _run_cell reports a cell another launcher holds (not a failure: that launcher computes it)
_BUSY = "busy: "
#: built-in data sets whose class count is known without reading them (for --dry-run)
_TEN_CLASSES = ("mnist", "fashion-mnist", "cifar10")


class _ArgError(Exception):
    pass


def _raising_parser(parser):
    def error(message):
        raise _ArgError(message)

    parser.error = error
    return parser


def _option_words(cell, parser) -> list[str]:
    """The command-line words of a cell's options (flags for booleans), each checked to be an option
    of the cell's command."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    words: list[str] = []
    for key, value in cell.options.items():
        where = cell.sources.get(key, key)
        action = actions.get(key)
        if action is None:
            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise CLIError(f"{where}: not an option of `deepdig {cell.kind}`{hint} (see deepdig {cell.kind} --help)")
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if action.nargs == 0:  # store_true
            if not isinstance(value, bool):
                raise CLIError(f"{where}: expected true or false (the flag {flag}), got {value!r}")
            if value:
                words.append(flag)
            continue
        if isinstance(value, bool):
            raise CLIError(f"{where}: expected a value for {flag}, got the boolean {str(value).lower()}")
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        words += [flag, text]
    return words


def _cell_args(cell, root: Path, args) -> Any:
    """The checked Namespace of a cell's command (CLIError naming the spec key of a bad option)."""
    parser = _raising_parser(args.command_parser(cell.kind))
    words = _option_words(cell, parser) + ["--name", cell.model]
    # what defines the cell: its options and name; not its folder (the same however --out is
    # spelt) nor how it runs (threads, device, output), so a finished cell stays finished
    defining = list(words)
    words += ["--out", str(root / "cells" / cell.id)]
    for flag in ("quiet", "no_report"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    if args.threads and cell.kind == "atlas":
        words += ["--threads", str(args.threads)]
    words += ["--device", args.device]
    try:
        ns = parser.parse_args(words)
    except _ArgError as exc:
        message = str(exc)
        for key, where in cell.sources.items():
            flag = "--" + key.replace("_", "-")
            if f"argument {flag}" in message or f"argument {flag}/" in message or f"/{flag}:" in message:
                raise CLIError(f"{where} (cell {cell.id}): {message}") from None
        raise CLIError(f"cell {cell.id}: {message}") from None
    ns.command_line = ["deepdig", cell.kind, *words]
    ns.defining_words = defining
    ns.cell = cell
    return ns


def _check_exists(ns, reads: dict) -> None:
    """Every file a cell reads is there now, not only once the cells before it have run (a
    missing checkpoint of the 49th model is found before the first cell starts)."""
    for arg, paths in reads.items():
        if paths is None or not arg.startswith("--"):
            continue
        key = ns.cell.sources.get(arg[2:].replace("-", "_"), arg)
        for p in paths if isinstance(paths, list) else [paths]:
            if not Path(p).exists():
                raise CLIError(f"{key} (cell {ns.cell.id}): {p} does not exist")


def _shard_of(args) -> tuple[int, int]:
    """(0-based index, count) of this launcher: --shard, else SLURM's job array, else (0, 1)."""
    if args.shard is not None:
        return args.shard[0] - 1, args.shard[1]
    task, count = os.environ.get("SLURM_ARRAY_TASK_ID"), os.environ.get("SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return 0, 1
    try:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        index, n = int(task) - first, int(count)
    except ValueError:
        raise CLIError(
            f"SLURM_ARRAY_TASK_ID={task!r} / SLURM_ARRAY_TASK_COUNT={count!r}: expected integers; or give --shard I/N"
        ) from None
    if not 0 <= index < n:
        raise CLIError(
            f"SLURM_ARRAY_TASK_ID={task} is not within the {n} tasks of the array (from SLURM_ARRAY_TASK_MIN={first}); "
            "give --shard I/N"
        )
    return index, n


def _order(cells: list, index: int, count: int) -> list:
    """This launcher's cells first (every count-th from index), then the others in turn, so a
    launcher that finishes early helps with the cells nobody has taken."""
    mine = cells[index::count]
    return mine + [c for c in cells if c not in mine]


def _options_digest(ns) -> str:
    from deepdig_fast.rundir import KEY_SCHEMA, digest

    return digest({"key_schema": KEY_SCHEMA, "kind": ns.cell.kind, "words": ns.defining_words})


def _results_name(kind: str) -> str:
    return "atlas.json" if kind == "atlas" else "results.json"


def _run_id(folder: Path, kind: str) -> str | None:
    from deepdig_fast.readers import read_json_if_present

    try:
        res = read_json_if_present(folder / _results_name(kind))
    except ValueError:
        return None
    return res.get("run_id") if isinstance(res, dict) else None


def _marker(root: Path, cell) -> Path:
    return root / "done" / f"{cell.id}.json"


def _is_complete(root: Path, ns) -> bool:
    """The cell's marker names these options and the run id its folder's results carry."""
    from deepdig_fast.readers import read_json_if_present

    try:
        mark = read_json_if_present(_marker(root, ns.cell))
    except ValueError:
        return False
    if not isinstance(mark, dict) or mark.get("options") != _options_digest(ns):
        return False
    rid = _run_id(Path(ns.out), ns.cell.kind)
    return rid is not None and rid == mark.get("run_id")


def _busy(folder: Path) -> bool:
    """Whether another process holds the cell folder's lock now."""
    from deepdig_fast.rundir import FolderBusyError, FolderLock

    if not folder.is_dir():
        return False
    try:
        with FolderLock(folder, "cell"):
            return False
    except FolderBusyError:
        return True


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / f).stat().st_size
    return total


def _drop_intermediate(folder: Path, kind: str) -> int:
    """Remove what `retention = "results"` does not keep; the bytes freed."""
    freed = 0
    for pattern in INTERMEDIATE[kind]:
        for p in folder.glob(pattern):
            with contextlib.suppress(OSError):
                freed += p.stat().st_size
                p.unlink()
    return freed


#: what a sweep folder holds before its manifest.json is written
_LAYOUT = ("cells", "done")


def _check_sweep_folder(root: Path) -> None:
    from deepdig_fast.paths import PathConflictError, refuse_links
    from deepdig_fast.rundir import read_manifest

    if not root.is_dir():
        return
    try:
        refuse_links(root, "--out")
        manifest = read_manifest(root)
    except (PathConflictError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if manifest is None:
        # another launcher setting the folder up (or killed while it did) has made only these
        foreign = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.name not in _LAYOUT)
        if foreign:
            raise CLIError(
                f"--out {root} is not empty and is not a sweep folder (it holds {', '.join(foreign[:3])}); use a new or empty folder"
            )
    elif manifest.get("kind") != SWEEP_KIND:
        raise CLIError(
            f"--out {root} is a folder of kind {manifest.get('kind')!r}, not a sweep; give the sweep its own folder"
        )


def _write_manifest(root: Path, spec, cells: list) -> None:
    from deepdig_fast.rundir import digest, environment, write_json

    write_json(
        root / "manifest.json",
        {
            **environment(),
            "kind": SWEEP_KIND,
            "scope": {},
            "spec": str(spec.path),
            "spec_digest": digest(spec.text),
            "spec_text": spec.text,
            "cells": [{"cell": c.id, "model": c.model, "settings": c.settings} for c in cells],
        },
    )


def _plan(spec, cells: list, nss: list, root: Path, index: int, count: int) -> None:
    """--dry-run: every cell, its folder, its state and the work it will do."""
    order = _order(cells, index, count)
    print(
        f"sweep {spec.path}: {len(spec.models)} models x {len(spec.combinations())} settings combinations = "
        f"{len(cells)} cells ({spec.kind} each)"
        + (
            f"; launcher {index + 1} of {count} starts with cells {', '.join(str(c.index + 1) for c in cells[index::count])}"
            if count > 1
            else ""
        )
    )
    print(f"{'#':>3}  {'cell':<32} {'state':<10} work")
    for c, ns in zip(cells, nss):
        folder = Path(ns.out)
        if _is_complete(root, ns):
            state = "complete"
        elif _busy(folder):
            state = "running"
        elif folder.is_dir() and any(folder.iterdir()):
            state = "partial"
        else:
            state = "new"
        print(f"{c.index + 1:>3}  {c.id:<32} {state:<10} {_work(c, ns)}")
    print(f"order of this launcher: {', '.join(c.id for c in order)}")
    print(f"folders: {root / 'cells'}/<cell>; nothing was run (--dry-run)")


def _work(cell, ns) -> str:
    """What a cell will compute, in words, from its options (classes known from the spec only)."""
    from deepdig_fast.configs import PER_TARGET, AtlasConfig

    who = ns.classifier or ns.model or f"reference {ns.arch or 'default'}"
    steps = ns.steps
    if cell.kind == "run":
        return f"pair {ns.pair[0]}-{ns.pair[1]}: 4 autoencoders x {steps} steps, both directions, baselines; {who}"
    if ns.pairs:
        dirs = 2 * len(ns.pairs)
        k = len({c for p in ns.pairs for c in p})
    elif ns.classes:
        k = len(ns.classes)
        dirs = k * (k - 1)
    elif ns.dataset in _TEN_CLASSES and not ns.data_root:
        k = 10
        dirs = 90
    else:
        return f"every class of {ns.dataset}: K(K-1) directions, strategy {ns.strategy}, {steps} steps; {who}"
    strategy = AtlasConfig(strategy=ns.strategy).resolved_strategy(k)
    gens = k if strategy in PER_TARGET else dirs
    return f"{dirs} directions, {gens} generators ({strategy}) x {steps} steps; {who}"


def cmd_sweep(args) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _sweep(args)
    finally:
        torch.set_num_threads(threads)


def _sweep(args) -> int:
    import torch

    from deepdig_fast.cli.atlas import _atlas_config, _init_distributed, leave_group
    from deepdig_fast.cli.inputs import _check_paths, _inputs
    from deepdig_fast.sweep.spec import SpecError, read_spec

    try:
        spec = read_spec(args.spec)
        cells = spec.cells()
    except SpecError as exc:
        raise CLIError(str(exc)) from None
    root = Path(args.out)
    reference = args.reference or spec.reference or spec.models[0]["name"]
    if reference not in [m["name"] for m in spec.models]:
        raise CLIError(
            f"--reference {reference!r}: not a model of the spec ({', '.join(m['name'] for m in spec.models)})"
        )
    try:
        nss = [_cell_args(c, root, args) for c in cells]  # every cell checked before any work
        for ns in nss:
            if ns.cell.kind == "atlas":
                try:
                    _atlas_config(ns)
                except (ValueError, TypeError) as exc:
                    raise CLIError(f"cell {ns.cell.id}: {_one_line(exc)}") from None
            reads = _inputs(ns)
            _check_exists(ns, reads)
    except CLIError as exc:  # named by the spec file, as the spec's own checks are
        raise CLIError(f"{args.spec}: {exc}") from None
    for ns in nss:
        _check_paths({**_inputs(ns), "SPEC": args.spec}, {"--out": root})
    _check_sweep_folder(root)
    index, count = _shard_of(args)
    if args.dry_run:
        _plan(spec, cells, nss, root, index, count)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = _init_distributed(args)
    if world > 1 and spec.kind == "run":
        leave_group()
        raise CLIError("pair-run cells are not split over torchrun's ranks; shard them with --shard I/N instead")
    log = (lambda m: None) if args.quiet else (lambda m: print(f"[sweep] {m}", file=sys.stderr, flush=True))
    failed: dict[str, str] = {}
    try:
        if rank == 0:
            root.mkdir(parents=True, exist_ok=True)
            _write_manifest(root, spec, cells)  # first: another launcher checking the folder finds a sweep
            (root / "cells").mkdir(exist_ok=True)
            (root / "done").mkdir(exist_ok=True)
        order = [] if args.collect_only else _order(nss, index, count)
        for i, ns in enumerate(order):
            state = _state(root, ns, args.recheck) if rank == 0 else None
            state = _broadcast(state, world)
            if state == "complete":
                continue
            if state == "busy":
                log(f"cell {ns.cell.id}: being computed by another launcher; skipped")
                continue
            log(f"cell {i + 1}/{len(order)} {ns.cell.id}: {_work(ns.cell, ns)}")
            tic = time.perf_counter()
            error = _run_cell(ns, rank, world, device)
            if error is not None and error.startswith(_BUSY) and world == 1:
                # another launcher took the cell between the probe and this launcher's claim
                log(f"cell {ns.cell.id}: taken by another launcher meanwhile; skipped")
                continue
            if error is not None and world > 1:
                # under torchrun a cell that failed on some ranks may have left the others inside a
                # collective: stop every rank here (what is finished is kept; a rerun resumes)
                from deepdig_fast.rundir import RunError

                raise RunError(
                    f"cell {ns.cell.id} failed on rank {rank}: {error}; the sweep stops so that its ranks stay in step"
                )
            if error is not None:
                failed[ns.cell.id] = error
                log(f"cell {ns.cell.id}: failed: {error}")
                continue
            if rank == 0:
                _finish_cell(root, ns, spec.retention, time.perf_counter() - tic)
                if spec.track:
                    from deepdig_fast.sweep.tracking import log_cell

                    log_cell(spec.track, root, ns.cell, Path(ns.out), log)
        if rank == 0:
            _collect(root, spec, cells, nss, reference, args, failed)
    finally:
        if world > 1:
            leave_group()
            args.leave_at_once = True
    if failed:
        from deepdig_fast.rundir import RunError

        raise RunError(
            f"{len(failed)} of {len(cells)} cells failed (the others are kept): "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())
        )
    return 0


def _broadcast(obj, world: int):
    from deepdig_fast.ranks import broadcast

    return broadcast(obj, world)


def _state(root: Path, ns, recheck: bool) -> str:
    if not recheck and _is_complete(root, ns):
        return "complete"
    return "busy" if _busy(Path(ns.out)) else "todo"


def _run_cell(ns, rank: int, world: int, device) -> str | None:
    """Run one cell's command here; None, or the one-line failure (every rank gets the same)."""
    from deepdig_fast.rundir import FolderBusyError

    try:
        if ns.cell.kind == "atlas":
            from deepdig_fast.cli.atlas import _atlas_config, atlas_in_group
            from deepdig_fast.cli.classifier import _preprocessing_args

            config = _atlas_config(ns)
            _preprocessing_args(ns)
            atlas_in_group(ns, config, rank, world, device)
        else:
            from deepdig_fast.cli.run import cmd_run

            cmd_run(ns)
        return None
    except FolderBusyError as exc:
        return _BUSY + _one_line(exc)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one cell's failure does not lose the others
        if os.environ.get("DEEPDIG_TRACEBACK"):
            raise
        return f"{type(exc).__name__}: {_one_line(exc)[:300]}"


def _finish_cell(root: Path, ns, retention: str, seconds: float) -> None:
    """Mark the cell complete (its options' digest and its results' run id), after dropping what
    the retention setting does not keep."""
    from deepdig_fast.rundir import write_json

    folder = Path(ns.out)
    freed = _drop_intermediate(folder, ns.cell.kind) if retention == "results" else 0
    write_json(
        _marker(root, ns.cell),
        {
            "cell": ns.cell.id,
            "options": _options_digest(ns),
            "run_id": _run_id(folder, ns.cell.kind),
            "command": ns.command_line,
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "launcher_seconds": seconds,
            "retention": retention,
            "freed_bytes": freed,
        },
    )


def _cell_record(root: Path, cell, ns, status: str) -> dict:
    from deepdig_fast.readers import read_json_if_present

    folder = Path(ns.out)
    try:
        tm = read_json_if_present(folder / "timings.json") or {}
        res = read_json_if_present(folder / _results_name(cell.kind)) or {}
    except ValueError:
        tm, res = {}, {}
    phases: dict = tm["phases"] if isinstance(tm.get("phases"), dict) else {}
    gen, dirs = phases.get("generators"), phases.get("directions")
    seconds = (gen or 0) + (dirs or 0) if (gen is not None or dirs is not None) else tm.get("total_seconds")
    classes = res.get("classes") or res.get("pair") or []
    return {
        "cell": cell.id,
        "model": cell.model,
        "kind": cell.kind,
        "folder": str(folder),
        "settings": cell.settings,
        "settings_values": cell.values,
        "covariates": cell.covariates,
        "classes": classes,
        "class_names": res.get("class_names") or [str(c) for c in classes],
        "seconds": seconds,
        "generator_seconds": gen,
        "direction_seconds": dirs,
        "size_bytes": _folder_bytes(folder) if folder.is_dir() else 0,
        "status": status,
        "command": ns.command_line,
    }


def _collect(root: Path, spec, cells: list, nss: list, reference: str, args, failed: dict) -> None:
    """When every cell is complete: cells.json, the results table and the report; otherwise say
    which cells are missing (the last launcher to finish collects)."""
    from deepdig_fast.rundir import FolderBusyError, FolderLock, write_json
    from deepdig_fast.sweep.results import sweep_rows, write_results

    status = {}
    for c, ns in zip(cells, nss):
        status[c.id] = (
            "complete"
            if _is_complete(root, ns)
            else ("failed" if c.id in failed else ("running" if _busy(Path(ns.out)) else "missing"))
        )
    missing = [k for k, v in status.items() if v != "complete"]
    if missing and not args.collect_only:
        print(
            f"sweep {root}: {len(cells) - len(missing)} of {len(cells)} cells complete; not collected yet "
            f"({', '.join(f'{k} {status[k]}' for k in missing[:8])}{', ...' if len(missing) > 8 else ''}); "
            "the launcher that completes the last cell collects, or rerun the same command"
        )
        return
    try:
        lock = FolderLock(root, "sweep folder").acquire()
    except FolderBusyError:
        print(f"sweep {root}: another launcher is collecting the same cells now")
        return
    try:
        records = [_cell_record(root, c, ns, status[c.id]) for c, ns in zip(cells, nss)]
        write_json(root / "cells.json", {"kind": SWEEP_KIND, "reference": reference, "cells": records})
        rows, _ = sweep_rows(root)
        paths = write_results(root, rows)
        if not args.no_report:
            from deepdig_fast.sweep.report import write_sweep_report

            paths.update(write_sweep_report(root, rows, records, reference=reference, title=spec.title))
    finally:
        lock.release()
    done = len(cells) - len(missing)
    print(
        f"sweep of {len(cells)} cells ({done} complete): {len(rows)} direction rows; "
        + ", ".join(str(p) for p in paths.values())
    )
