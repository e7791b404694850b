"""The options of every `deepdig` command: `build_parser`, one function per command, and the option
groups `run` and `atlas` share (one definition each, so their names, types, bounds and help
cannot drift).

An option that sets a field of a library config (PairConfig, AtlasConfig, AdversarialConfig,
TrainRecipe) takes its default from that field (`_config_default`), and its help shows the value
from there, so the command and the API cannot disagree; the one deliberate difference,
`TRAJECTORY_SEGMENTS`, is a named constant whose help says why. The method's configs live in
deepdig_fast.configs, which imports no torch; TrainRecipe lives in deepdig_fast.training, which
does, so each command's options are added only when that command is parsed
(`build_parser(command)`) and only `deepdig train` pays for torch's import to parse.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from deepdig_fast.cli.argtypes import (
    _LAYOUTS,
    ARCHS,
    _autoencoder,
    _batch,
    _beta,
    _classes,
    _dataset,
    _engine_steps,
    _fraction,
    _image_size,
    _lr_or_auto,
    _model_name,
    _non_negative,
    _out_dir,
    _pair,
    _pairs,
    _positive_float,
    _positive_int,
    _retries,
    _seconds,
    _seed,
    _shard,
    _share,
    _steps_or_auto,
    _threads,
    _train_steps,
    _unit_left,
)
from deepdig_fast.cli.atlas import cmd_atlas
from deepdig_fast.cli.classifier import _default_arch
from deepdig_fast.cli.reports import cmd_compare, cmd_info, cmd_report, cmd_table
from deepdig_fast.cli.run import cmd_run
from deepdig_fast.cli.sweep import cmd_sweep
from deepdig_fast.cli.train import cmd_train

#: `deepdig run --trajectory-segments`: an estimate from this many sampled segments per direction.
#: PairConfig.trajectory_segments defaults to None, the paper's exact design (|B| * 50 segments),
#: which is slow on a CPU; the command estimates unless --trajectory-exact is given.
TRAJECTORY_SEGMENTS = 5000


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits with status 2."""

    def error(self, message):  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _config_default(config: Any, name: str) -> Any:
    """The default of field `name` of the dataclass `config` (a default_factory is called)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
            if f.default is dataclasses.MISSING:
                raise TypeError(f"{config.__name__}.{name} has no default")
            return f.default
    raise TypeError(f"{config.__name__} has no field {name!r}")


def _process_options(q, seed: int) -> None:
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    q.add_argument("--seed", type=_seed, default=seed, help="seed of the run (default %(default)s)")
    q.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")


def _data_options(q) -> None:
    """The data set, and the reference classifier trained on it when no other is given."""
    q.add_argument(
        "--dataset",
        type=_dataset,
        default="mnist",
        metavar="DATASET",
        help="mnist (default, shipped), fashion-mnist, cifar10, imagefolder (class subfolders), "
        "tensors (a .pt/.npz file with x, y) or torchvision:NAME (e.g. torchvision:CIFAR100)",
    )
    q.add_argument(
        "--data-root", help="folder (or, for tensors, file) with the data (default for mnist: the shipped copy)"
    )
    q.add_argument("--image-size", type=_image_size, help="imagefolder / torchvision: resize to N (square) or HxW")
    q.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        help="imagefolder / torchvision: 1 (grey) or 3 (RGB); default: from the images",
    )
    q.add_argument("--download", action="store_true", help="torchvision:NAME only: fetch the data set into --data-root")
    q.add_argument(
        "--arch",
        choices=ARCHS,
        help=f"reference classifier (default {_default_arch('mnist')}; {_default_arch('cifar10')}, the paper's, "
        "for cifar10): cnn, fcn (the paper's MNIST models), resnet18, resnet34, googlenet (the paper's CIFAR-10 "
        "models), resnet (= resnet18)",
    )


def _model_options(q, config: Any) -> None:
    """The classifier of `run` and `atlas`, its input contract, and the autoencoders' training steps
    (`config`: PairConfig or AtlasConfig, whose defaults the options take)."""
    from deepdig_fast.configs import ON_COLLAPSE, AdversarialConfig, AutoStop

    auto = AutoStop()

    q.add_argument(
        "--classifier",
        help="checkpoint to use (STEM, STEM.pt or STEM.json; only read, never written); "
        "default checkpoints/DATASET-ARCH, trained there only when nothing is there",
    )
    q.add_argument(
        "--model",
        help="torchvision:NAME, timm:NAME, hf:MODEL_ID_OR_DIR, robustbench:NAME, or your own "
        "architecture as package.module:factory (with --weights)",
    )
    q.add_argument(
        "--name",
        type=_model_name,
        help="the model's name in tables, reports and sweeps (default: the checkpoint's file name, or "
        "--model and --weights)",
    )
    q.add_argument(
        "--weights",
        help="state_dict file for --model (.pt loaded with weights_only=True, or .safetensors); "
        "zoo models default to their pretrained weights when already in the local cache",
    )
    q.add_argument(
        "--normalize",
        default="auto",
        help="auto (default: the zoo model's own normalisation), none, "
        "imagenet, cifar10, mnist, MEAN,STD or M1,M2,M3,S1,S2,S3; applied inside the model, the "
        "method stays in [0, 1] pixel space",
    )
    q.add_argument(
        "--resize",
        default="auto",
        help="resize inputs inside the model: auto (default: to the "
        "pretrained weights' input size), none, N or H,W (bilinear, antialias off)",
    )
    q.add_argument(
        "--embedding-layer",
        default="auto",
        help="auto (default: the model's declared layer or the "
        "input of its final Linear layer), none, or a submodule NAME / NAME:input",
    )
    q.add_argument(
        "--steps",
        type=_steps_or_auto,
        default=_config_default(AdversarialConfig, "steps"),
        help="autoencoder training steps (default %(default)s, the paper's), or auto: each training "
        "stops once what its component keeps has stopped improving (AutoStop: checked every "
        f"{auto.every} steps on a fixed probe of its inputs, at least {auto.floor}, at most "
        f"{auto.ceiling} steps; it also stops a training whose outputs collapsed)",
    )
    q.add_argument(
        "--ae-lr",
        type=_lr_or_auto,
        default=_config_default(AdversarialConfig, "lr"),
        metavar="LR",
        help="the autoencoders' Adam learning rate, or auto (default %(default)s: the paper's 0.01 for "
        "its MLP autoencoder, 0.001 for the convolutional ones, which collapsed at 0.01 against zoo models)",
    )
    q.add_argument(
        "--retry-collapsed",
        type=_retries,
        default=_config_default(config, "retry_collapsed"),
        metavar="K",
        help="retrain a collapsed autoencoder with the next seed up to K times, each try recorded "
        "(default %(default)s)",
    )
    q.add_argument(
        "--on-collapse",
        choices=ON_COLLAPSE,
        default=_config_default(AdversarialConfig, "on_collapse"),
        help="when an autoencoder's outputs collapse (checked every "
        f"{auto.every} steps): stop (default %(default)s: end its training there, diagnosed), restore "
        "(end it and put back the weights of the last check before the collapse; fewer steps than "
        "the paper's recipe) or continue (train on to the end, as the paper does)",
    )
    q.add_argument(
        "--min-accuracy",
        type=_share,
        default=0.5,
        help="refuse a classifier that gets less than this share of a studied class's test inputs "
        "right (default %(default)s; usually a wrong input contract, e.g. a missing --normalize); 0 studies any",
    )


def _autoencoder_option(q) -> None:
    q.add_argument(
        "--autoencoder",
        type=_autoencoder,
        default="auto",
        metavar="AE",
        help="autoencoder of components I/II: auto (default: the paper's MLP for 28x28 grey images, the "
        "convolutional family otherwise), mlp, conv, or package.module:factory (called with the input shape)",
    )


def _engine_options(q, config: Any, trajectory_default: int, why: str) -> None:
    """The borderline search and trajectory options `run` and `atlas` share, their defaults the
    fields of `config` (PairConfig or AtlasConfig, which agree on them); only the trajectory
    default differs, for `why`."""
    from deepdig_fast.configs import DEFAULT_BATCH_SIZE

    q.add_argument(
        "--method",
        choices=("bisect", "illinois"),
        default=_config_default(config, "method"),
        help="borderline search (default %(default)s, the paper's)",
    )
    q.add_argument(
        "--beta",
        type=_beta,
        default=_config_default(config, "beta"),
        help="success threshold on |p_s - p_t| (default %(default)g, the paper's)",
    )
    q.add_argument(
        "--max-steps",
        type=_engine_steps,
        default=_config_default(config, "max_steps"),
        help="cap on points evaluated per pair",
    )
    q.add_argument(
        "--engine-batch-size",
        type=_batch,
        default=_config_default(config, "engine_batch_size"),
        help=f"live pairs per engine step (default {DEFAULT_BATCH_SIZE['cpu']} on a CPU, "
        f"{DEFAULT_BATCH_SIZE['accelerator']} on a GPU: fixed, so results never depend on timing; it enters "
        "the stage keys)",
    )
    q.add_argument(
        "--trajectory-segments",
        type=_positive_int,
        default=trajectory_default,
        help=f"estimate the trajectory oscillation from this many sampled segments per direction, with a "
        f"95%% confidence interval (default %(default)s: {why})",
    )
    q.add_argument(
        "--trajectory-exact",
        action="store_true",
        help="the paper's exact design instead: K = 50 partners per borderline sample, T = 50 points each "
        "(slow on a CPU)",
    )
    _execution_options(q, config)


def _execution_options(q, config: Any) -> None:
    """How the classifier runs and how the autoencoders train (`config` as in _engine_options)."""
    from deepdig_fast.configs import AdversarialConfig

    layout = _config_default(AdversarialConfig, "channels_last")
    q.add_argument(
        "--no-compile",
        action="store_true",
        help="run the classifier's inference forwards eager (default: optimised for the device, "
        "checked against eager on a probe batch; see deepdig_fast.fast)",
    )
    q.add_argument(
        "--joint-training",
        choices=("auto", "vectorized", "processes", "sequential"),
        default=_config_default(config, "joint_training"),
        help="how independent autoencoders (a run's two directions; an atlas's generators) are trained: "
        "vectorized (one vmapped model; the CUDA default), processes (single-thread worker processes side "
        "by side; the default on a CPU with 2+ threads), sequential (one after the other) (default: %(default)s)",
    )
    q.add_argument(
        "--train-layout",
        choices=tuple(_LAYOUTS),
        default=next(name for name, value in _LAYOUTS.items() if value == layout),
        help="memory format of the classifier copy the autoencoders train against: channels_last, "
        "contiguous, or auto (channels_last on a CPU for a model with 2-d convolutions; see "
        "AdversarialConfig.channels_last) (default: %(default)s)",
    )


def _pgd_value(v: float) -> str:
    """A PGD radius or step as it is usually written: 0.3 and 0.01 as decimals, 8/255 as 8/255."""
    short = f"{v:g}"
    n = v * 255
    return f"{round(n)}/255" if len(short) > 5 and abs(n - round(n)) < 1e-9 else short


def _train_options(q) -> None:
    from deepdig_fast.training import PGD_PRESETS, TrainRecipe, recipe

    fast, paper, paper_cifar10 = recipe("fast"), recipe("paper"), recipe("paper", "cifar10")

    def words(name: str) -> str:
        r, on_cifar10 = recipe(name), recipe(name, "cifar10")
        schedule = (
            "constant"
            if r.schedule_step is None
            else f"StepLR(step {r.schedule_step}, gamma {r.schedule_gamma:g}) stepped every iteration"
        )
        cifar10 = "" if on_cifar10.epochs == r.epochs else f"; {on_cifar10.epochs} for cifar10"
        return f"Adam lr {r.lr:g}, {schedule}, batch {r.batch_size}, {r.epochs} epochs{cifar10}"

    def pgd(c) -> str:
        return f"eps {_pgd_value(c.eps)}, {c.steps} steps of {_pgd_value(c.step_size)}"

    default_recipe = _config_default(TrainRecipe, "name")
    q.description = (
        "Train a reference classifier and save it (weights + metadata recording the recipe and regime). "
        f"By default the {default_recipe} recipe runs ({words(default_recipe)}); --recipe paper is the authors' "
        f"({words('paper')})."
    )
    _process_options(q, seed=0)  # seeds the classifier's training; no config holds it
    _data_options(q)
    q.add_argument(
        "--out",
        help="checkpoint path stem (default checkpoints/DATASET-ARCH, + -paper for --recipe paper, "
        "+ -adversarial for --regime adversarial; `deepdig run` uses checkpoints/DATASET-ARCH by default)",
    )
    q.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out (default: refuse)")
    q.add_argument(
        "--recipe",
        choices=("fast", "paper"),
        default=default_recipe,
        help=f"fast ({words('fast')}) or paper (the public code's: {words('paper')}) (default %(default)s)",
    )
    q.add_argument(
        "--epochs",
        type=_train_steps,
        help=f"training epochs (default: the recipe's: fast {fast.epochs}; paper {paper.epochs}, "
        f"cifar10 {paper_cifar10.epochs})",
    )
    lr = f"{fast.lr:g}" if fast.lr == paper.lr else f"fast {fast.lr:g}, paper {paper.lr:g}"
    q.add_argument("--lr", type=_positive_float, help=f"Adam learning rate (default: the recipe's, {lr})")
    q.add_argument(
        "--batch-size",
        type=_positive_int,
        help=f"batch size (default: the recipe's: fast {fast.batch_size}, paper {paper.batch_size})",
    )
    q.add_argument(
        "--regime",
        choices=("standard", "adversarial"),
        default=_config_default(TrainRecipe, "regime"),
        help="standard or adversarial (default %(default)s); adversarial: PGD adversarial training, every batch "
        f"replaced by its L-inf PGD examples (defaults: mnist/fashion-mnist/grey data {pgd(PGD_PRESETS['mnist'])}; "
        f"cifar10/colour data {pgd(PGD_PRESETS['cifar10'])})",
    )
    q.add_argument("--pgd-eps", type=_fraction, help="adversarial regime: L-inf radius, e.g. 0.3 or 8/255")
    q.add_argument("--pgd-step", type=_fraction, help="adversarial regime: step size, e.g. 0.01 or 2/255")
    q.add_argument("--pgd-steps", type=_train_steps, help="adversarial regime: PGD steps per batch")
    q.add_argument(
        "--weight-decay",
        type=_non_negative,
        help=f"Adam's L2 weight decay (default {_config_default(TrainRecipe, 'weight_decay'):g})",
    )
    q.add_argument("--dropout", type=_unit_left, help="dropout before the last layer (default 0)")
    q.add_argument(
        "--label-smoothing",
        type=_unit_left,
        help=f"label smoothing of the cross-entropy (default {_config_default(TrainRecipe, 'label_smoothing'):g})",
    )
    q.add_argument(
        "--mixup",
        type=_non_negative,
        help=f"mixup with lambda ~ Beta(A, A); 0 for none (default {_config_default(TrainRecipe, 'mixup_alpha'):g})",
    )


def _run_options(q) -> None:
    from deepdig_fast.configs import PairConfig

    _process_options(q, seed=_config_default(PairConfig, "seed"))
    _data_options(q)
    q.add_argument("--pair", type=_pair, required=True, help="two class ids or names, e.g. 1,2 or cat,dog")
    q.add_argument(
        "--out", type=_out_dir, required=True, help="run folder (resumable: rerun the same command after a crash)"
    )
    _model_options(q, PairConfig)
    _autoencoder_option(q)
    _engine_options(
        q,
        PairConfig,
        TRAJECTORY_SEGMENTS,
        "one pair's interval tight enough to compare runs, short on a CPU; the library's PairConfig "
        "defaults to the exact design, --trajectory-exact",
    )
    q.add_argument("--no-baselines", action="store_true", help="skip the RPBS and EPBS baselines")
    q.add_argument("--no-characterize", action="store_true", help="skip the trajectory and linearity metrics")
    q.add_argument("--no-report", action="store_true", help="do not write report.md / report.html at the end")


def _report_options(q) -> None:
    q.add_argument("run_dir", help="a run folder written by `deepdig run`")


def _distributed_options(q) -> None:
    """torchrun's options, for `atlas` and `sweep`."""
    q.add_argument(
        "--dist-timeout",
        type=_seconds,
        default=4 * 3600,
        help="seconds a rank waits for the others at a phase boundary (default %(default)s)",
    )
    q.add_argument(
        "--dist-init-timeout",
        type=_seconds,
        default=300,
        help="seconds to wait for every rank to join the process group (default %(default)s)",
    )
    q.add_argument(
        "--distributed",
        action="store_true",
        help="join a process group from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT without torchrun",
    )


def _atlas_options(q) -> None:
    from deepdig_fast.configs import STRATEGIES, AtlasConfig

    _process_options(q, seed=_config_default(AtlasConfig, "seed"))
    _data_options(q)
    which = q.add_mutually_exclusive_group()
    which.add_argument(
        "--classes",
        type=_classes,
        default=None,
        help="'all' (default) or classes by id or name, like 0,1,2 or cat,dog,ship",
    )
    which.add_argument(
        "--pairs", type=_pairs, help="class pairs by id or name, like 1-2,4-9 or cat-dog (both directions of each)"
    )
    q.add_argument(
        "--out", type=_out_dir, required=True, help="atlas folder (resumable: rerun the same command after a crash)"
    )
    q.add_argument(
        "--strategy",
        choices=("auto", *STRATEGIES),
        default=_config_default(AtlasConfig, "strategy"),
        help="per-target: one generator per target class (K in all); per-target-refine: the same "
        "generators, and per direction a component-II autoencoder started from G_s and trained "
        "--refine-steps on the direction's adversarial samples; pairwise: the paper's two "
        "autoencoders per direction; auto: per-target for more than 3 classes (default %(default)s)",
    )
    q.add_argument(
        "--refine-steps",
        type=_train_steps,
        default=_config_default(AtlasConfig, "refine_steps"),
        metavar="N",
        help="steps of each direction's component-II autoencoder with --strategy per-target-refine "
        "(default %(default)s)",
    )
    _model_options(q, AtlasConfig)
    _autoencoder_option(q)
    _engine_options(
        q,
        AtlasConfig,
        _config_default(AtlasConfig, "trajectory_segments"),
        f"fewer than a pair run's {TRAJECTORY_SEGMENTS}, as an atlas has K(K-1) directions",
    )
    q.add_argument("--no-trajectory", action="store_true", help="skip the trajectory oscillation")
    q.add_argument("--no-linearity", action="store_true", help="skip the per-direction linear SVM (m1)")
    q.add_argument(
        "--max-per-class",
        type=_positive_int,
        default=_config_default(AtlasConfig, "max_inputs_per_class"),
        help="use at most this many inputs per class (a seeded subset)",
    )
    q.add_argument(
        "--save-points", action="store_true", help="keep each direction's borderline samples in its unit file"
    )
    q.add_argument(
        "--threads", type=_threads, help="torch threads per process (results are reproducible for a fixed value)"
    )
    _distributed_options(q)
    q.add_argument("--no-report", action="store_true", help="do not write atlas.md / atlas.html / heatmaps")


def _compare_options(q) -> None:
    q.add_argument("atlas_a", help="atlas folder A (the reference)")
    q.add_argument("atlas_b", help="atlas folder B (differences are B - A)")
    q.add_argument(
        "--out",
        type=_out_dir,
        help="folder for compare.html, compare.md, compare.json and figures/ (default: B-vs-A in the current folder)",
    )
    q.add_argument("--labels", help="names of A and B, like base,robust (default: the folder names)")
    q.add_argument(
        "--top", type=_positive_int, default=15, help="rows of the largest-changes table (default %(default)s)"
    )


def _table_options(q) -> None:
    q.description = (
        "Assemble finished `deepdig run` folders and `deepdig atlas` folders into the paper's tables, per "
        "model and class pair: success rate and mean attempts of DeepDIG, RPBS and EPBS; trajectory oscillation; "
        "linearity (m1 and SVM accuracy on train, test and borderline). Writes tables.md, tables.tex and one CSV "
        "per table into --out, stating each model's classifier, recipe and regime and each row's DeepDIG "
        "settings, and flagging tables whose rows used different settings. The inputs are only read."
    )
    q.add_argument("dirs", nargs="+", metavar="DIR", help="run folders (results.json) and atlas folders (atlas.json)")
    q.add_argument("--out", type=_out_dir, required=True, help="folder for the tables (not inside an input folder)")


def _sweep_options(q) -> None:
    q.description = (
        "Run a declared sweep: every model of SPEC.toml under every settings combination, each cell a "
        "`deepdig atlas` (or `deepdig run`) folder under SWEEP_DIR/cells/, then one results table "
        "(results.csv, results.parquet) and a comparison report (sweep.html). Resumable: rerun the same "
        "command. Cells are shared by several launchers through their folder locks (--shard I/N, SLURM job "
        "arrays) and each cell's units over torchrun's ranks. Schema: docs/SWEEPS.md."
    )
    q.add_argument("spec", metavar="SPEC", help="the sweep's TOML file (only read)")
    q.add_argument("--out", type=_out_dir, required=True, help="sweep folder (resumable; shared by every launcher)")
    q.add_argument(
        "--dry-run", action="store_true", help="list the cells, their folders and the work they will do; run nothing"
    )
    q.add_argument(
        "--shard",
        type=_shard,
        help="I/N: this launcher starts with every N-th cell from the I-th (1-based), then helps with the rest; "
        "default from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set",
    )
    q.add_argument(
        "--reference", help="the report's reference model (default: the spec's `reference`, else its first model)"
    )
    q.add_argument(
        "--recheck",
        action="store_true",
        help="rerun every cell's command, even those marked complete (finished units are reused)",
    )
    q.add_argument(
        "--collect-only",
        action="store_true",
        help="compute nothing: collect the complete cells into the table and the report",
    )
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    q.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
    q.add_argument(
        "--threads", type=_threads, help="torch threads per process (results are reproducible for a fixed value)"
    )
    q.add_argument("--no-report", action="store_true", help="write the table only (no sweep.html, no cell reports)")
    _distributed_options(q)
    q.set_defaults(command_parser=command_parser)


def _info_options(q) -> None:
    """`deepdig info` takes no options."""


#: command -> (its line in `deepdig --help`, the function adding its options, the function running it)
_COMMANDS = {
    "train": ("train a reference classifier and save it as a checkpoint", _train_options, cmd_train),
    "run": ("DeepDIG for one class pair, both directions, with baselines", _run_options, cmd_run),
    "report": ("write report.md and a self-contained report.html for a run folder", _report_options, cmd_report),
    "atlas": ("DeepDIG on every class pair of a model (torchrun to shard it)", _atlas_options, cmd_atlas),
    "compare": (
        "two atlases side by side: difference heatmaps and the largest changes",
        _compare_options,
        cmd_compare,
    ),
    "table": (
        "the paper's tables (DeepDIG vs RPBS vs EPBS, oscillation, linearity) from run folders and atlases",
        _table_options,
        cmd_table,
    ),
    "sweep": (
        "many models x settings: one atlas per cell, one results table, one comparison report",
        _sweep_options,
        cmd_sweep,
    ),
    "info": ("print how the C++/CUDA extension was built", _info_options, cmd_info),
}


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command alone (prog `deepdig NAME`), for `deepdig sweep`, which builds each
    cell's options as that command's words and lets its parser check them."""
    line, add_options, run = _COMMANDS[name]
    q = _Parser(prog=f"deepdig {name}", description=line)
    add_options(q)
    q.set_defaults(fn=run, command=name)
    return q


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `deepdig` parser. `command`: add only that command's options (the others are listed, with
    none), as `main` does for the command it is given; None: every command's."""
    p = _Parser(
        prog="deepdig", description="Find and characterize the decision boundaries of deep classifiers (DeepDIG)."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (line, add_options, run) in _COMMANDS.items():
        q = sub.add_parser(name, help=line)
        if command is None or command == name:
            add_options(q)
        q.set_defaults(fn=run)
    return p
