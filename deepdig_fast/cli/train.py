"""`deepdig train`: train a reference classifier (a recipe, a regime) and save it as a checkpoint."""

from __future__ import annotations

from pathlib import Path

from deepdig_fast.cli.classifier import _default_arch
from deepdig_fast.cli.errors import CLIError
from deepdig_fast.cli.inputs import _check_paths, _data_tag, _device, _inputs, _load_data

_PGD_OPTIONS = (("pgd_eps", "--pgd-eps"), ("pgd_step", "--pgd-step"), ("pgd_steps", "--pgd-steps"))


def _train_recipe(args, data):
    """The TrainRecipe of `deepdig train`'s options: --recipe, then --epochs, --lr, --batch-size,
    the regularisers and --regime (PGD settings default to the data set's usual ones)."""
    from deepdig_fast.training import PGDConfig, pgd_preset, recipe

    pgd = None
    if args.regime == "adversarial":
        base = pgd_preset(args.dataset, tuple(data.sample_shape))
        pgd = PGDConfig(
            eps=base.eps if args.pgd_eps is None else args.pgd_eps,
            step_size=base.step_size if args.pgd_step is None else args.pgd_step,
            steps=base.steps if args.pgd_steps is None else args.pgd_steps,
        )
    return recipe(
        args.recipe,
        args.dataset,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        mixup_alpha=args.mixup,
        regime=args.regime,
        pgd=pgd,
    )


def cmd_train(args) -> int:
    from deepdig_fast.checkpoint import load_or_train_classifier
    from deepdig_fast.training import describe_training

    if args.regime != "adversarial":
        given = [opt for attr, opt in _PGD_OPTIONS if getattr(args, attr) is not None]
        if given:
            verb = "apply" if len(given) > 1 else "applies"
            raise CLIError(f"{', '.join(given)} {verb} to --regime adversarial, not --regime {args.regime}")
    from deepdig_fast.checkpoint import checkpoint_paths

    device = _device(args.device)
    reads = _inputs(args)
    if args.out:  # a given stem is checked before the data is read; the default one needs its name
        _check_train_out(args, reads)
    data = _load_data(args)
    recipe = _train_recipe(args, data)
    arch = args.arch or _default_arch(args.dataset)
    suffix = ("-paper" if recipe.name == "paper" else "") + ("-adversarial" if recipe.regime == "adversarial" else "")
    out = Path(args.out or f"checkpoints/{_data_tag(args, data)}-{arch}{suffix}")
    if not args.out:
        args.out = str(out)
        _check_train_out(args, reads)
    if args.overwrite and any(p.exists() for p in checkpoint_paths(out)):
        print(f"[deepdig] replacing the checkpoint at {out} (--overwrite)")
    _, meta = load_or_train_classifier(
        out,
        arch,
        data,
        seed=args.seed,
        device=device,
        progress=not args.quiet,
        retrain=True,
        log=print,
        recipe=recipe,
        arch_kwargs={"dropout": args.dropout} if args.dropout else None,
    )
    how = describe_training(meta)
    print(
        f"{arch} on {args.dataset}: test accuracy {meta['accuracy']:.4f} (recipe {how['recipe']}, regime "
        f"{how['regime']}; {how['settings']}); saved to {out}.pt (+ .json)"
    )
    return 0


def _check_train_out(args, reads: dict) -> None:
    """`deepdig train --out STEM` writes STEM.pt and STEM.json: never over an input, and never over
    an existing checkpoint unless --overwrite says so."""
    from deepdig_fast.checkpoint import checkpoint_paths

    if Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a folder; expected a checkpoint path stem like checkpoints/my-cnn")
    files = list(checkpoint_paths(args.out))
    _check_paths(reads, {"--out": files})
    there = [str(p) for p in files if p.exists() or p.is_symlink()]
    if there and not args.overwrite:
        raise CLIError(
            f"--out {args.out}: a checkpoint is already there ({', '.join(there)}); pass --overwrite to replace "
            "it, or choose another --out"
        )
