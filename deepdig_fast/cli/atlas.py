"""`deepdig atlas`: DeepDIG on every class pair (or the chosen ones) of a model, in one process or
sharded over the ranks of torchrun."""

from __future__ import annotations

import contextlib
import sys
import time

from deepdig_fast.cli.argtypes import _LAYOUTS
from deepdig_fast.cli.classes import _named_classes, _resolve_atlas_scope
from deepdig_fast.cli.classifier import _classifier, _embedding_layer, _preprocessing_args
from deepdig_fast.cli.errors import CLIError, _one_line
from deepdig_fast.cli.inputs import (
    _autoencoder_factory,
    _check_folder,
    _check_paths,
    _device,
    _inputs,
    _load_data,
    _manifest_extra,
)
from deepdig_fast.cli.summary import _print_atlas

_DIST_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _init_distributed(args):
    """Under torchrun: join the process group (nccl on GPUs, gloo on CPUs) and return (rank, world,
    device); otherwise (0, 1, device).

    torchrun is recognised by TORCHELASTIC_RUN_ID (or asked for with --distributed, for other
    launchers that set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT). A stray WORLD_SIZE or
    MASTER_ADDR in an ordinary shell is ignored with a note instead of waiting for peers that never
    come; joining the group waits at most --dist-init-timeout seconds.
    """
    import datetime
    import os

    import torch

    env = {k: os.environ.get(k) for k in _DIST_VARS}
    launched = bool(os.environ.get("TORCHELASTIC_RUN_ID")) or args.distributed
    if not launched:
        stray = [f"{k}={v}" for k, v in env.items() if v is not None]
        if stray and int(env.get("WORLD_SIZE") or "1") > 1 and not args.quiet:
            print(
                f"[deepdig] note: {', '.join(stray)} set but this process was not started by torchrun: running as "
                "one process (pass --distributed to join a process group from these variables)",
                file=sys.stderr,
            )
        return 0, 1, _device(args.device)
    missing = [k for k, v in env.items() if not v]
    if missing:
        raise CLIError(
            f"distributed run: {', '.join(missing)} not set; start with torchrun (or set all of "
            f"{', '.join(_DIST_VARS)})"
        )
    try:
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    except ValueError:
        raise CLIError(
            f"distributed run: RANK={env['RANK']!r} and WORLD_SIZE={env['WORLD_SIZE']!r} must be integers"
        ) from None
    if world <= 1:
        return 0, 1, _device(args.device)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = (
            torch.device(f"cuda:{local % torch.cuda.device_count()}")
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    else:
        device = _device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(
                "nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(seconds=args.dist_init_timeout)
            )
        except Exception as exc:  # DistStoreError, RuntimeError: nobody answered at MASTER_ADDR:MASTER_PORT
            raise CLIError(
                f"could not join the process group at {env['MASTER_ADDR']}:{env['MASTER_PORT']} as rank "
                f"{rank} of {world} within {args.dist_init_timeout} s ({type(exc).__name__}); are all "
                "ranks started?"
            ) from None
        # from now on a rank may wait for the others as long as a phase takes
        set_timeout = getattr(dist.distributed_c10d, "_set_pg_timeout", None)
        if set_timeout is not None:
            set_timeout(datetime.timedelta(seconds=args.dist_timeout))
    return dist.get_rank(), dist.get_world_size(), device


def _atlas_only(args, config):
    """The classes an atlas reads: those of --classes / --pairs when a classifier is given and the
    strategy is pairwise (a per-target generator trains on every other class, and a default
    checkpoint may need training on all of them); None (every class) otherwise."""
    if not (args.classifier or args.model):
        return None
    chosen = args.classes if args.classes is not None else ([c for p in args.pairs for c in p] if args.pairs else None)
    if chosen is None or not all(isinstance(c, int) for c in chosen):  # names: resolved once the data is read
        return None
    if config.resolved_strategy(len(set(chosen))) != "pairwise":
        return None
    return sorted(set(chosen))


def _atlas_scope_directions(args, data, classes, pairs):
    from deepdig_fast.atlas import atlas_directions

    try:
        return atlas_directions(data.num_classes, classes, pairs)
    except ValueError as exc:
        raise CLIError(f"{exc} ({args.dataset} has {data.num_classes} classes)") from None


def cmd_atlas(args) -> int:
    import torch

    threads = torch.get_num_threads()
    try:
        return _atlas(args)
    finally:  # --threads is this command's setting, not the calling process's (main() called in-process)
        torch.set_num_threads(threads)


def _atlas_config(args):
    """The AtlasConfig of `deepdig atlas`'s options (its constructor checks every setting)."""
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.atlas import AtlasConfig

    return AtlasConfig(
        strategy=args.strategy,
        adversarial=AdversarialConfig(
            steps=args.steps,
            lr=args.ae_lr,
            channels_last=_LAYOUTS[args.train_layout],
            on_collapse=args.on_collapse,
        ),
        beta=args.beta,
        max_steps=args.max_steps,
        method=args.method,
        engine_batch_size=args.engine_batch_size,
        seed=args.seed,
        trajectory=not args.no_trajectory,
        trajectory_segments=None if args.trajectory_exact else args.trajectory_segments,
        linearity=not args.no_linearity,
        max_inputs_per_class=args.max_per_class,
        save_points=args.save_points,
        compile=not args.no_compile,
        joint_training=args.joint_training,
        retry_collapsed=args.retry_collapsed,
        refine_steps=args.refine_steps,
    )


def _atlas(args) -> int:
    import torch

    _check_paths(_inputs(args), {"--out": args.out})
    if args.threads:
        torch.set_num_threads(args.threads)
    config = _atlas_config(args)  # every setting is checked before any work
    _preprocessing_args(args)
    rank, world, device = _init_distributed(args)
    try:
        atlas_in_group(args, config, rank, world, device)
    finally:
        if world > 1:
            leave_group()
            args.leave_at_once = True
    return 0


def leave_group() -> None:
    """Tear the process group down once every rank has left its last collective (a rank that
    exits while another still talks to it can abort the other at shutdown)."""
    import torch.distributed as dist

    if dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.barrier()
        dist.destroy_process_group()


def atlas_in_group(args, config, rank: int, world: int, device):
    """The atlas of `args` (checked, `config` built from them) on this rank of `world`, in a process
    group already joined when world > 1; returns the AtlasResult. `deepdig sweep` runs one per cell
    in one group."""
    from deepdig_fast.atlas import run_atlas

    log = (lambda m: None) if args.quiet else (lambda m: print(f"[deepdig] {m}", flush=True))
    data = _load_data(args, only=_atlas_only(args, config))
    # names only a zoo model defines (e.g. Hugging Face id2label) wait for it; others fail here
    scope = _resolve_atlas_scope(args, data, None, final=not args.model)
    directions = None if scope is None else _atlas_scope_directions(args, data, *scope)
    autoencoder = _autoencoder_factory(args, data)
    if rank == 0 and directions is not None:
        _check_folder(args.out, "deepdig-atlas", {"directions": [list(d) for d in directions]})
    if world > 1:
        import torch.distributed as dist

        # rank 0 loads (or trains and caches) the classifier first; its failure reaches every
        # rank at once instead of leaving them waiting for the whole --dist-timeout
        failure = None
        if rank == 0:
            try:
                model, meta, info = _classifier(args, data, device, log)
            except Exception as exc:
                failure = exc
        box = [None if failure is None else _one_line(failure)]
        dist.broadcast_object_list(box, src=0)
        if failure is not None:
            raise failure
        if box[0] is not None:
            raise CLIError(f"rank 0 could not prepare the classifier: {box[0]}")
        if rank != 0:
            model, meta, info = _classifier(args, data, device, lambda m: None)
    else:
        model, meta, info = _classifier(args, data, device, log)
    data = _named_classes(data, info)
    if scope is None:
        scope = _resolve_atlas_scope(args, data, info.get("classes"), final=True)
        directions = _atlas_scope_directions(args, data, *scope)
        if rank == 0:
            _check_folder(args.out, "deepdig-atlas", {"directions": [list(d) for d in directions]})
    classes, pairs = scope
    layer = _embedding_layer(args, model, data, info, log if rank == 0 else (lambda m: None))
    t0 = time.perf_counter()
    result = run_atlas(
        model,
        data,
        config,
        classes=classes,
        pairs=pairs,
        out_dir=args.out,
        embedding_layer=layer,
        autoencoder=autoencoder,
        progress=not args.quiet and rank == 0,
        log=log,
        report=not args.no_report,
        min_accuracy=args.min_accuracy,
        manifest_extra=_manifest_extra(args, data, meta, info),
    )
    if rank == 0:
        _print_atlas(result, time.perf_counter() - t0, args.out)
    return result
