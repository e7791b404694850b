"""The commands on finished folders, which only read them and write reports: `deepdig report` (one
run), `deepdig compare` (two atlases), `deepdig table` (the paper's tables); and `deepdig info`,
the report of how the extension was built."""

from __future__ import annotations

import json
from pathlib import Path

from deepdig_fast.cli.argtypes import _out_dir
from deepdig_fast.cli.errors import CLIError
from deepdig_fast.cli.inputs import _check_paths, _refuse_links


def cmd_report(args) -> int:
    from deepdig_fast.report import write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"{run_dir} is not a folder; expected a run folder written by `deepdig run`")
    if not (run_dir / "results.json").is_file():
        raise CLIError(
            f"{run_dir} is not a finished run folder (no results.json); run `deepdig run ... --out {run_dir}` first"
        )
    _refuse_links(run_dir, "RUN_DIR")
    paths = write_report(run_dir)
    for name in ("report.md", "report.html"):
        if name in paths:
            print(paths[name])
    return 0


def cmd_compare(args) -> int:
    from deepdig_fast.atlas_report import compare_atlases, format_compare_table

    labels = tuple(args.labels.split(",")) if args.labels else None
    if labels is not None and len(labels) != 2:
        raise CLIError(f"--labels must be two names like base,robust, got {args.labels!r}")
    out = args.out or _out_dir(f"{Path(args.atlas_b).name}-vs-{Path(args.atlas_a).name}")
    from deepdig_fast.atlas_report import COMPARE_FILES
    from deepdig_fast.paths import PathConflictError, refuse_linked_outputs

    written = [Path(out) / f for f in COMPARE_FILES]
    _check_paths({"ATLAS_A": args.atlas_a, "ATLAS_B": args.atlas_b}, {"--out": written})
    try:
        refuse_linked_outputs(written, "--out")
    except PathConflictError as exc:
        raise CLIError(str(exc)) from None
    result = compare_atlases(args.atlas_a, args.atlas_b, out, top=args.top, labels=labels)
    print(format_compare_table(result, args.top))
    print(f"\n{Path(out) / 'compare.html'}")
    return 0


def cmd_table(args) -> int:
    from deepdig_fast.tables import TableInputError, write_tables

    try:  # the inputs and --out are checked there, before anything is written
        written = write_tables(args.dirs, args.out)
    except TableInputError as exc:
        raise CLIError(str(exc)) from None
    for path in written.values():
        print(path)
    return 0


def cmd_info(args) -> int:
    from deepdig_fast import build_info

    print(json.dumps(build_info(), indent=2))
    return 0
