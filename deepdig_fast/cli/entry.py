"""`main`, the `deepdig` console script: parse the arguments, run the command, and report any
failure in one line with an exit status (DEEPDIG_TRACEBACK=1 shows an unexpected one in full)."""

from __future__ import annotations

import errno
import os
import sys

from deepdig_fast.cli.errors import CLIError, _one_line
from deepdig_fast.cli.parser import build_parser


def main(argv=None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    # the command is the first word that is not an option (the top level has only --help); only its
    # options are built, as those of run, atlas and train read their defaults from modules that import torch
    args = build_parser(next((w for w in given if not w.startswith("-")), "")).parse_args(given)
    try:
        code = args.fn(args)
        if code == 0 and getattr(args, "leave_at_once", False) and argv is None:
            # A torchrun rank whose work is committed and whose process group is destroyed can die
            # at interpreter shutdown ("terminate called without an active exception", SIGABRT: a
            # C++ thread of torch's distributed runtime still joinable), and torchrun then reports
            # the finished atlas as failed. Leave without the shutdown: every result is already on
            # disk; only the output streams need flushing.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return code
    except CLIError as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
        return 2
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
        return 1
    except OSError as exc:  # a full disk, a folder without permission, ...
        where = f" ({exc.filename})" if exc.filename else ""
        hint = "; free some space and rerun the same command to resume" if exc.errno == errno.ENOSPC else ""
        sys.stderr.write(f"deepdig {args.command}: error: {exc.strerror or exc}{where}{hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("deepdig: interrupted; rerun the same command to resume\n")
        return 130
    except Exception as exc:
        from deepdig_fast.rundir import RunError  # (imports torch: only once a command has failed)

        if isinstance(exc, RunError):  # another process holds the folder, a rank failed, ...
            sys.stderr.write(f"deepdig {args.command}: error: {_one_line(exc)}\n")
            return 1
        # a defect of ours, or torch failing in a way nothing above foresaw: still one line
        if os.environ.get("DEEPDIG_TRACEBACK"):
            raise
        sys.stderr.write(
            f"deepdig {args.command}: error: {type(exc).__name__}: {_one_line(exc)[:300]} (unexpected; "
            "finished stages are kept, so rerunning resumes; DEEPDIG_TRACEBACK=1 shows where it failed)\n"
        )
        return 1
