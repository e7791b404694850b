"""`deepdig run`: DeepDIG for one class pair, both directions, with the baselines and a report."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from deepdig_fast.cli.argtypes import _LAYOUTS
from deepdig_fast.cli.classes import _named_classes, _resolve_pair
from deepdig_fast.cli.classifier import _classifier, _embedding_layer, _preprocessing_args
from deepdig_fast.cli.inputs import (
    _autoencoder_factory,
    _check_folder,
    _check_paths,
    _device,
    _inputs,
    _load_data,
    _manifest_extra,
)
from deepdig_fast.cli.summary import _print_summary


def cmd_run(args) -> int:
    # the autoencoders' worker processes start first: their imports overlap this process's
    pool = _early_training_pool(args)
    with pool if pool is not None else contextlib.nullcontext():
        return _run_command(args, pool)


def _early_training_pool(args):
    """Two worker processes (workers.WorkerPool, which imports no torch) started before torch is
    imported here, when the run will likely train in worker processes ("--joint-training
    processes", or "auto" with a CPU of 2+ cores); None otherwise. _run_command hands them to
    run_pair as an adversarial.TrainingPool. A guess: _run_command closes them once the device or
    the thread count says otherwise, and run_pair ignores them unless its mode is "processes"."""
    import os

    if args.joint_training not in ("auto", "processes") or args.device not in ("auto", "cpu"):
        return None
    if args.joint_training == "auto" and (os.cpu_count() or 1) < 2:
        return None
    from deepdig_fast.workers import WorkerPool

    return WorkerPool(2)


def _pair_config(args):
    """The PairConfig of `deepdig run`'s options (its constructor checks every setting)."""
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.pipeline import PairConfig

    adv = AdversarialConfig(
        steps=args.steps,
        lr=args.ae_lr,
        channels_last=_LAYOUTS[args.train_layout],
        on_collapse=args.on_collapse,
    )
    return PairConfig(
        adversarial=adv,
        beta=args.beta,
        max_steps=args.max_steps,
        method=args.method,
        engine_batch_size=args.engine_batch_size,
        seed=args.seed,
        baselines=not args.no_baselines,
        characterize=not args.no_characterize,
        trajectory_segments=None if args.trajectory_exact else args.trajectory_segments,
        compile=not args.no_compile,
        joint_training=args.joint_training,
        retry_collapsed=args.retry_collapsed,
    )


def _run_command(args, pool) -> int:
    import torch

    from deepdig_fast.adversarial import TrainingPool
    from deepdig_fast.pipeline import run_pair

    device = _device(args.device)
    if pool is not None and (device.type != "cpu" or (args.joint_training == "auto" and torch.get_num_threads() < 2)):
        pool.close()
        pool = None
    torch.manual_seed(args.seed)
    log = (lambda m: None) if args.quiet else (lambda m: print(f"[deepdig] {m}", flush=True))
    _check_paths(_inputs(args), {"--out": args.out})
    # every setting is checked before the data, the classifier or the folder is touched
    config = _pair_config(args)
    _preprocessing_args(args)
    ids = all(isinstance(c, int) for c in args.pair)
    # with a given classifier only the pair's classes are read (a default checkpoint may need training
    # on every class); the results are the same, every stage selects the pair's inputs
    data = _load_data(args, only=tuple(args.pair) if ids and (args.classifier or args.model) else None)
    autoencoder = _autoencoder_factory(args, data)
    # names only a zoo model defines (e.g. Hugging Face id2label) wait for it; others fail here
    pair = _resolve_pair(args.pair, data, None, final=not args.model)
    if pair is not None:
        _check_folder(args.out, "deepdig-run", {"pair": list(pair)})
    model, meta, info = _classifier(args, data, device, log)
    data = _named_classes(data, info)
    if pair is None:
        pair = _resolve_pair(args.pair, data, info.get("classes"), final=True)
        _check_folder(args.out, "deepdig-run", {"pair": list(pair)})
    s, t = pair
    layer = _embedding_layer(args, model, data, info, log)
    t0 = time.perf_counter()
    result = run_pair(
        model,
        data,
        s,
        t,
        config,
        out_dir=args.out,
        embedding_layer=layer,
        autoencoder=autoencoder,
        progress=not args.quiet,
        log=log,
        min_accuracy=args.min_accuracy,
        manifest_extra=_manifest_extra(args, data, meta, info),
        pool=None if pool is None else TrainingPool(processes=pool),
    )
    if pool is not None:
        pool.close()  # before the report: nothing to train any more
    _print_summary(result, time.perf_counter() - t0, args.out)
    if not args.no_report:
        from deepdig_fast.report import write_report

        paths = write_report(args.out)
        print(f"report: {paths.get('report.html', Path(args.out) / 'report.html')}")
    return 0
