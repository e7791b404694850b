"""Work in units over torch.distributed ranks, on a shared folder.

A phase is a list of units (name, key spec, compute). Rank 0 lists the unfinished ones; every rank
takes every world_size-th of them, computes and stores each atomically (rundir.StageStore), and all
ranks meet at the end of the phase, so a failure on one rank stops them all. A rerun, or an
elastic restart, computes only the units not yet stored. Without torch.distributed (or with one
process) everything runs here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepdig_fast.rundir import RunError, claim_folder, write_json


def world_of() -> tuple[int, int]:
    """(this process's rank, the number of processes): (0, 1) without torch.distributed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast(obj, world: int):
    """Rank 0's `obj`, on every rank."""
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, world: int) -> list:
    """Every rank's `obj`, in rank order, on every rank."""
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


@dataclass
class Unit:
    """One unit of work: its stored name, the spec its key is made of, and how to compute it."""

    name: str
    spec: dict
    compute: Callable[[], dict]


@contextlib.contextmanager
def claim(root: Path | None, kind: str, manifest: dict, results: tuple[str, ...], rank: int, world: int):
    """Rank 0 locks the folder, checks its kind and scope, removes another run's `results` files
    and writes the manifest, for all ranks (the others learn the outcome by broadcast, so a
    refusal stops every rank at once instead of leaving them waiting)."""
    if root is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        failure: Exception | None = None
        if rank == 0:
            try:
                old = stack.enter_context(claim_folder(root, kind, manifest["scope"]))
                if old is not None and old.get("run_id") != manifest["run_id"]:
                    for name in results:  # another run's results
                        (root / name).unlink(missing_ok=True)
                write_json(root / "manifest.json", manifest)
            except (ValueError, OSError) as exc:
                failure = exc
        message = broadcast(None if failure is None else str(failure), world)
        if failure is not None:
            raise failure
        if message is not None:
            raise RunError(f"rank 0 could not take the {kind} folder: {message}")
        yield


def run_phase(
    what: str,
    units: list[Unit],
    state: Any,
    rank: int,
    world: int,
    say,
    mine: Callable | None = None,
    kind: str = "atlas",
) -> None:
    """Compute the unfinished units of a phase, split over the ranks; raise on every rank if any
    rank failed (so no rank waits forever for one that died of an exception). `mine`, when given,
    is called first with the names of this rank's units, in the order it computes them."""
    todo = None
    if rank == 0:
        todo = [i for i, u in enumerate(units) if not state.store.finished(u.name, u.spec)]
        say(
            f"{what}: {len(units) - len(todo)} of {len(units)} units finished earlier, {len(todo)} to compute"
            + (f" on {world} processes" if world > 1 else "")
        )
    todo = broadcast(todo, world)
    if mine is not None:
        mine([units[i].name for i in todo[rank::world]])
    error = None
    for i in todo[rank::world]:
        u = units[i]
        try:
            out, _ = state.store.run(u.name, u.spec, u.compute)
        except Exception as exc:  # reported on every rank below
            if world == 1:
                raise
            error = f"rank {rank}, unit {u.name}: {type(exc).__name__}: {exc}"
            break
        if state.store.root is None:
            state.memory[u.name] = out
        state.store.timings[u.name]["rank"] = rank
    errors = [e for e in gather(error, world) if e]
    if errors:
        raise RunError(f"{kind} {what} phase failed: " + "; ".join(errors))
    # learn the other ranks' timings (for timings.json on rank 0)
    for t in gather({u: v for u, v in state.store.timings.items()}, world):
        for u, v in t.items():
            state.store.timings.setdefault(u, v)
