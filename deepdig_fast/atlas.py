"""The boundary atlas: DeepDIG on every ordered class pair (s, t) of a model, optionally sharded
over processes with torch.distributed.

    result = run_atlas(classifier, data, AtlasConfig(), out_dir="runs/atlas-mnist-cnn")
    result.atlas["directions"]      # one row per direction s -> t (ROW_FIELDS)

Two strategies make the adversarial samples of a direction s -> t:

    pairwise     the paper's design: AE_I(s->t) trained on the class-s training inputs, AE_II(s->t)
                 trained on AE_I's adversarial samples back to s; 2 K (K - 1) autoencoders.
    per-target   one generator G_t per target class t, trained (same loss and settings) on the
                 correctly classified training inputs of every other class of the data set;
                 A(s->t) = {G_t(x) : x of class s, f(x) = s, f(G_t(x)) = t} and the
                 adversarial-of-adversarial step applies G_s to A(s->t). K generators in all.
                 The generators do not depend on which classes the atlas covers.

Either way, component III (refine_borderline) runs on the kept pairs (G_s(a) or AE_II(a), a),
and each direction is characterized: success rate, attempts, failures per reason, trajectory
oscillation (sampled segments by default), linearity m1 of its borderline samples, and the L2
distance from each borderline sample to the training input it came from (a margin estimate).

Work comes in units -- the generators (AE_I per direction for pairwise), then the directions --
each stored atomically under out_dir/units/ with a key of its settings and inputs. With
torch.distributed initialized (e.g. under torchrun), rank 0 lists the unfinished units of a phase,
every rank takes every world_size-th one, and all ranks meet at the end of the phase; rank 0 then
merges. A rerun, or an elastic restart, computes only the units not yet stored, so no finished unit
is computed twice. Every unit seeds itself from (seed, unit name) and uses fixed batch sizes, so
the atlas does not depend on the number of processes -- given the same number of torch threads
per process (torchrun sets OMP_NUM_THREADS=1). Ranks must share the file system of out_dir.

Folder:
    atlas.json      deterministic results (schema in docs/RESULTS-SCHEMA.md): classes, strategy,
                    settings, generators, one row per direction
    atlas.csv       the direction rows as a table
    timings.json    wall time per phase, per stage and per unit, ranks, forwards (varies by run)
    manifest.json   versions, command, world size
    atlas.md, atlas.html, figures/   the report (deepdig_fast.atlas_report)
    units/generators/*.pt, units/directions/*.pt   the units (each with its key and seconds inside)
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from deepdig_fast.adversarial import (
    JOINT_TRAINING,
    AdversarialConfig,
    JointTraining,
    apply_generator,
    autoencoder_key,
    build_autoencoder,
    joint_training_mode,
    predict,
    train_adversarial_autoencoder,
    training_key,
)
from deepdig_fast.checkpoint import check_accuracy, check_fits
from deepdig_fast.data import ClassificationData, as_unit
from deepdig_fast.engine import DEFAULT_BATCH_SIZE, default_batch_size, default_loop
from deepdig_fast.fast import COMPILE, inference_record, prepare_classifier, probe_inputs, unwrap
from deepdig_fast.identity import data_fingerprint, model_identity
from deepdig_fast.io import atomic_write_text
from deepdig_fast.rundir import (
    ATLAS_KIND,
    ATLAS_ROW_FIELDS,
    ATLAS_SCHEMA,
    KEY_SCHEMA,
    RunError,
    StageStore,
    claim_folder,
    digest,
    environment,
    model_device,
    nan_to_none,
    ratio,
    stage_seed,
    write_json,
)
from deepdig_fast.status import FAILURES
from deepdig_fast.train_worker import TrainingPool
from deepdig_fast.validation import (
    BAND,
    BATCH_MAX,
    BETA,
    BETA_RULE,
    MAX_STEPS_MAX,
    SEED_MAX,
    Int,
    Optional,
    Options,
    check_class_id,
    validate_fields,
)
from deepdig_fast.zoo import resolve_embedding_layer

STRATEGIES = ("per-target", "pairwise")
ENGINE_BATCH_CPU = DEFAULT_BATCH_SIZE["cpu"]
ENGINE_BATCH_ACCELERATOR = DEFAULT_BATCH_SIZE["accelerator"]

#: the columns of atlas.csv / the keys of every row of atlas.json["directions"]
ROW_FIELDS = ATLAS_ROW_FIELDS
#: row column of each failure status (the Status name in lower case)
_FAILURES = {status.name: status.name.lower() for status in FAILURES}


@dataclass
class AtlasConfig:
    """Settings of an atlas (defaults: the paper's where it has one).

    strategy: "auto" (per-target when the atlas covers more than 3 classes, else pairwise),
        "per-target" or "pairwise" (see the module docstring).
    adversarial: training of every autoencoder (AdversarialConfig; its seed is replaced by each
        unit's own). beta, max_steps, method: the engine's (refine_borderline).
    engine_batch_size: live-batch cap of the engine; fixed, never measured, so that results do not
        depend on timing (None: 512 on a CPU, 16384 on an accelerator). seed: every unit derives its seed from it and its name.
    trajectory_segments: sampled segments per direction for the oscillation estimate (None: the
        paper's exact design, K partners per sample); trajectory: False skips it.
    trajectory_K, trajectory_T, band: as in trajectory_oscillation.
    linearity: fit the s|t linear SVM per direction and report its borderline m1 (needs an
        embedding layer). max_inputs_per_class: use at most this many training (and test) inputs
        per class, a seeded random subset (None: all). save_points: keep each direction's
        successful borderline samples in its unit file. compile: how the classifier's inference-only
        forwards run (deepdig_fast.fast.prepare_classifier; False: eager); the mode that ran enters
        every unit's key. joint_training: how the generators are trained in a single-process atlas
        (adversarial.joint_training_mode: "auto" is "vectorized" on CUDA -- one vmapped model --,
        "processes" on a CPU with 2 or more torch threads -- single-thread worker processes, as many
        at once as torch has threads --, else "sequential"); with several ranks (torchrun) each
        rank trains its generators one at a time. The mode that ran enters the generators' keys.
    """

    strategy: str = "auto"
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    beta: float = BETA
    max_steps: int = 64
    method: str = "bisect"
    engine_batch_size: int | None = None
    seed: int = 0
    trajectory: bool = True
    trajectory_segments: int | None = 1000
    trajectory_K: int = 50
    trajectory_T: int = 50
    band: tuple = (-0.1, 0.1)
    linearity: bool = True
    max_inputs_per_class: int | None = None
    save_points: bool = False
    compile: bool | str = True
    joint_training: str = "auto"

    CONSTRAINTS = {
        "compile": COMPILE,
        "joint_training": Options(JOINT_TRAINING),
        "strategy": Options(("auto",) + STRATEGIES),
        "beta": BETA_RULE,
        "max_steps": Int(1, MAX_STEPS_MAX),
        "method": Options(("bisect", "illinois")),
        "engine_batch_size": Optional(Int(1, BATCH_MAX)),
        "seed": Int(0, SEED_MAX),
        "trajectory_segments": Optional(Int(1)),
        "trajectory_K": Int(1),
        "trajectory_T": Int(1),
        "band": BAND,
        "max_inputs_per_class": Optional(Int(1)),
    }

    def __post_init__(self) -> None:
        if isinstance(self.adversarial, dict):
            self.adversarial = AdversarialConfig(**self.adversarial)
        if not isinstance(self.adversarial, AdversarialConfig):
            raise TypeError(
                f"AtlasConfig.adversarial must be an AdversarialConfig, got {type(self.adversarial).__name__}"
            )
        validate_fields(self, self.CONSTRAINTS)

    def resolved_strategy(self, n_classes: int) -> str:
        if self.strategy != "auto":
            return self.strategy
        return "per-target" if n_classes > 3 else "pairwise"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class AtlasResult:
    """What run_atlas returns (on every rank). atlas: what atlas.json holds; timings: timings.json;
    paths: files written by rank 0 (relative name -> Path; empty without out_dir)."""

    atlas: dict
    timings: dict
    out_dir: Path | None
    paths: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return self.atlas["directions"]

    def row(self, source: int, target: int) -> dict:
        for r in self.atlas["directions"]:
            if r["source"] == source and r["target"] == target:
                return r
        raise KeyError(f"the atlas has no direction {source}->{target}")


# --------------------------------------------------------------------------------------------------
# which directions
# --------------------------------------------------------------------------------------------------


def atlas_directions(
    num_classes: int, classes: Iterable[int] | None = None, pairs: Iterable[Sequence[int]] | None = None
) -> list[tuple[int, int]]:
    """The ordered directions of an atlas, sorted: every (s, t), s != t, of `classes` (default: all
    classes), or both directions of each unordered pair in `pairs` (not both arguments)."""
    if classes is not None and pairs is not None:
        raise ValueError("give classes or pairs, not both")

    def cls(v, what):
        try:
            return check_class_id(v, what, num_classes)
        except ValueError:
            raise ValueError(f"{what} must hold class ids in [0, {num_classes}), got {v!r}") from None

    if pairs is not None:
        out = set()
        for p in pairs:
            p = tuple(p)
            if len(p) != 2:
                raise ValueError(f"pairs must hold two class ids each, got {p!r}")
            s, t = cls(p[0], "pairs"), cls(p[1], "pairs")
            if s == t:
                raise ValueError(f"pairs must hold two different classes, got {p!r}")
            out |= {(s, t), (t, s)}
        if not out:
            raise ValueError("pairs is empty")
        return sorted(out)
    chosen = sorted({cls(c, "classes") for c in (range(num_classes) if classes is None else classes)})
    if len(chosen) < 2:
        raise ValueError(f"classes must name at least 2 classes, got {chosen}")
    return [(s, t) for s in chosen for t in chosen if s != t]


# --------------------------------------------------------------------------------------------------
# torch.distributed
# --------------------------------------------------------------------------------------------------


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _broadcast(obj, world: int):
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------------------------------
# units
# --------------------------------------------------------------------------------------------------


@dataclass
class _Unit:
    name: str
    spec: dict
    compute: Callable[[], dict]


class _Atlas:
    """The state one process needs to compute units: model, data, settings, cached predictions."""

    def __init__(self, classifier, data, config, strategy, embedding_layer, autoencoder, store, progress):
        self.f = classifier
        self.data = data
        self.cfg = config
        self.strategy = strategy
        self.embedding_layer = embedding_layer
        self.autoencoder = autoencoder
        self.store = store
        self.progress = progress
        self.device = model_device(classifier)
        self.memory: dict[str, dict] = {}  # unit outputs when there is no out_dir
        self._pred: Tensor | None = None
        self._gen_cache: dict[str, nn.Module] = {}
        self.bs = config.adversarial.infer_batch_size
        self.gen_specs: dict[str, dict] = {}  # generator unit -> its spec (set by run_atlas)
        self.gen_dirs: dict[str, tuple[int | None, int]] = {}  # generator unit -> (source or None, target)
        self.gen_groups: dict[str, JointTraining] = {}  # generator unit -> its joint-training group

    # ---- data
    def train_pred(self) -> Tensor:
        """Predicted labels of every training input (computed once per process)."""
        if self._pred is None:
            self._pred = predict(self.f, self.data.x_train.to(self.device), self.bs).argmax(dim=1).cpu()
        return self._pred

    def class_train(self, c: int) -> tuple[Tensor, Tensor]:
        mask = self.data.y_train == c
        return as_unit(self.data.x_train[mask]).to(self.device), self.train_pred()[mask]

    # ---- generators
    def adv_config(self, unit: str) -> AdversarialConfig:
        return dataclasses.replace(self.cfg.adversarial, seed=stage_seed(self.cfg.seed, unit))

    def output(self, name: str, spec: dict) -> dict:
        """A finished unit's output (verified against the key of `spec`)."""
        if name in self.memory:
            return self.memory[name]
        return self.store.load(name, spec)

    def generator(self, name: str) -> nn.Module:
        if name not in self._gen_cache:
            state = self.output(name, self.gen_specs[name])["state_dict"]
            ae = build_autoencoder(self.autoencoder, tuple(self.data.x_train.shape[1:]))
            ae.load_state_dict(state)
            ae.to(device=self.device, dtype=self.data.dtype).eval()
            if len(self._gen_cache) >= 4:
                self._gen_cache.pop(next(iter(self._gen_cache)))
            self._gen_cache[name] = ae
        return self._gen_cache[name]


def _generator_name(strategy: str, s: int, t: int) -> str:
    return f"generators/to_{t}" if strategy == "per-target" else f"generators/ae1_{s}-{t}"


def _generator_stats(ctx: _Atlas, ae: nn.Module, x: Tensor, target: int, history) -> dict:
    """How often the trained generator's outputs on its own training inputs are classified `target`,
    and a collapse diagnosis (None when it did not collapse)."""
    g = apply_generator(
        ctx.f,
        ae,
        x,
        None,
        target,
        batch_size=ctx.bs,
        collapse_std=ctx.cfg.adversarial.collapse_std,
        name=f"generator into {target}",
    )
    return {
        "inputs": g.stats.n_inputs,
        "outputs_target": g.stats.outputs_target,
        "final_loss": history.final_loss,
        "train_seconds": history.seconds,
        "collapse": g.collapse,
    }


def _generator_inputs(ctx: _Atlas, name: str) -> tuple[Tensor, int, list[int], int]:
    """(training inputs, target, source classes, correctly classified inputs) of a generator unit."""
    s, t = ctx.gen_dirs[name]
    if s is None:  # per-target: every correctly classified input of another class
        pred = ctx.train_pred()
        y = ctx.data.y_train
        pool = (y != t) & (pred == y)
        if not bool(pool.any()):
            raise ValueError(
                f"no correctly classified training input outside class {t}: cannot train the generator into {t}"
            )
        x = as_unit(ctx.data.x_train[pool]).to(ctx.device)
        # the pool holds correctly classified inputs only
        return x, t, sorted({int(c) for c in y[pool].unique()}), int(x.shape[0])
    x, pred = ctx.class_train(s)
    if x.shape[0] == 0:
        raise ValueError(f"the data set has no training input of class {s}")
    return x, t, [s], int((pred == s).sum())


def _generator(ctx: _Atlas, name: str) -> dict:
    """Train the generator of unit `name` (alone, or with its group: ctx.gen_groups) under the unit's
    seed; its weights and stats."""
    x, t, sources, inputs_correct = _generator_inputs(ctx, name)
    group = ctx.gen_groups.get(name)
    if group is not None:
        ae, hist = group.get(name)
    else:
        ae, hist = train_adversarial_autoencoder(
            ctx.f, x, t, ctx.adv_config(name), autoencoder=ctx.autoencoder, progress=ctx.progress
        )
    stats = _generator_stats(ctx, ae, x, t, hist)
    return {
        "state_dict": {k: v.cpu() for k, v in ae.state_dict().items()},
        "stats": {"target": t, "sources": sources, "inputs_correct": inputs_correct, **stats},
    }


def _generator_job(ctx: _Atlas, name: str) -> tuple[Tensor, int, AdversarialConfig]:
    x, t, _, _ = _generator_inputs(ctx, name)
    return x, t, ctx.adv_config(name)


def _generator_groups(ctx: _Atlas, names: list[str], mode: str, pool=None) -> dict[str, JointTraining]:
    """{unit: its JointTraining} for joint-training `mode` ({} when sequential) of the generators
    `names`: processes, consecutive groups of as many generators as torch has threads (at least
    2), training only the ones not stored yet, in `pool` (a TrainingPool) when given -- `names`
    are this rank's own, so no rank trains another's; vectorized, one group of all (a resumed
    atlas retrains it whole)."""
    if mode == "sequential" or not names:
        return {}
    size = len(names) if mode == "vectorized" else max(2, torch.get_num_threads())
    out = {}
    for i in range(0, len(names), size):
        members = names[i : i + size]
        group = JointTraining(
            ctx.f,
            {n: functools.partial(_generator_job, ctx, n) for n in members},
            mode,
            autoencoder=ctx.autoencoder,
            pending=lambda n: not ctx.store.finished(n, ctx.gen_specs[n]),
            workers=len(members),
            pool=pool,
        )
        out.update({n: group for n in members})
    return out


def _empty_row(s: int, t: int) -> dict[str, Any]:
    row: dict[str, Any] = {k: None for k in ROW_FIELDS}
    row.update(source=s, target=t)
    return row


def _direction(ctx: _Atlas, s: int, t: int, name: str) -> dict:
    """One direction s -> t: components I/II from the stored generators, III, characterization."""
    from deepdig_fast.engine import refine_borderline

    cfg = ctx.cfg
    times: dict[str, float] = {}
    row = _empty_row(s, t)
    tic = time.perf_counter()
    x_s, pred_in = ctx.class_train(s)
    kw = dict(batch_size=ctx.bs, collapse_std=cfg.adversarial.collapse_std)
    one = apply_generator(ctx.f, ctx.generator(_generator_name(ctx.strategy, s, t)), x_s, s, t, pred_in=pred_in, **kw)
    st1, src = one.stats, one.index
    adv = one.kept
    row.update(
        inputs=st1.n_inputs,
        inputs_correct=st1.inputs_correct,
        adversarial=st1.kept,
        adversarial_rate=ratio(st1.kept, st1.inputs_correct),
    )
    times["component_one"] = time.perf_counter() - tic
    result: dict[str, Any] = {"row": row, "times": times}
    if st1.kept == 0 or one.collapse:
        row["skipped"] = one.collapse or f"component I kept no adversarial sample for {s}->{t}"
        return result

    # component II: back to s with G_s (per-target) or a fresh AE_II (pairwise)
    tic = time.perf_counter()
    if ctx.strategy == "per-target":
        g2 = ctx.generator(_generator_name(ctx.strategy, t, s))
    else:
        g2, hist2 = train_adversarial_autoencoder(
            ctx.f, adv, s, ctx.adv_config(f"{name}/ae2"), autoencoder=ctx.autoencoder, progress=ctx.progress
        )
        result["ae2_final_loss"] = hist2.final_loss
    two = apply_generator(ctx.f, g2, adv, t, s, pred_in=one.pred_out[src], **kw)
    st2, k2 = two.stats, two.index
    a2 = two.outputs
    row.update(pairs=st2.kept, pair_rate=ratio(st2.kept, st2.n_inputs))
    times["component_two"] = time.perf_counter() - tic
    if st2.kept == 0 or two.collapse:
        row["skipped"] = two.collapse or f"component II kept no pair for {s}->{t}"
        return result

    # component III
    tic = time.perf_counter()
    r = refine_borderline(
        ctx.f,
        a2[k2],
        adv[k2],
        s,
        t,
        beta=cfg.beta,
        max_steps=cfg.max_steps,
        method=cfg.method,
        batch_size=cfg.engine_batch_size,
        loop=default_loop(ctx.device, cfg.compile),
    )
    summ = r.summary()
    ok = r.success.cpu()
    points = r.points[ok.to(r.points.device)]
    row.update(
        successes=summ["successes"],
        success_rate=summ["success_rate"],
        yield_rate=ratio(summ["successes"], st1.inputs_correct),
        mean_attempts=summ["mean_attempts_success"],
        mean_attempts_all=summ["mean_attempts_all"],
        forwards=summ["forwards"],
        **{v: summ["counts"][k] for k, v in _FAILURES.items()},
    )
    origin = x_s[src[k2]][ok.to(x_s.device)]
    dist = (points.to(origin.device) - origin).flatten(1).double().norm(dim=1).cpu()
    if dist.numel():
        row.update(margin_l2_mean=float(dist.mean()), margin_l2_median=float(dist.median()))
    times["engine"] = time.perf_counter() - tic
    result.update(status=r.status.cpu(), attempts=r.attempts.cpu(), source_index=src[k2].cpu(), margin_l2=dist)
    if cfg.save_points:
        result["points"] = points.cpu()

    # characterization
    n_ok = int(points.shape[0])
    if cfg.trajectory and n_ok >= 2:
        from deepdig_fast.characterize import trajectory_oscillation

        tic = time.perf_counter()
        tr = trajectory_oscillation(
            ctx.f,
            points,
            s,
            t,
            K=cfg.trajectory_K,
            T=cfg.trajectory_T,
            segments=cfg.trajectory_segments,
            seed=stage_seed(cfg.seed, f"{name}/trajectory"),
            band=cfg.band,
        )
        ci = tr.ci95 or (None, None)
        row.update(
            oscillation=tr.oscillation,
            oscillation_ci_low=ci[0],
            oscillation_ci_high=ci[1],
            trajectory_segments=tr.n_segments,
            third_class_oscillation=tr.third_class_oscillation,
        )
        result["trajectory_forwards"] = tr.forwards
        times["trajectory"] = time.perf_counter() - tic
    if cfg.linearity and ctx.embedding_layer is not None and n_ok >= 1:
        from deepdig_fast.characterize import linearity

        tic = time.perf_counter()
        d = ctx.data
        x_tr, y_tr = d.inputs("train", (s, t))  # only the pair's rows are materialised
        x_te, y_te = d.inputs("test", (s, t))  # (linearity selects the same rows, in order)
        lin = linearity(
            ctx.f,
            ctx.embedding_layer,
            x_tr,
            y_tr,
            x_te,
            y_te,
            s,
            t,
            points,
            d.probe_inputs(0),
            seed=stage_seed(cfg.seed, f"{name}/linearity"),
        )
        sets = lin.sets
        row.update(
            m1_borderline=sets["borderline"]["m1"],
            m1_train=sets["train"]["m1"],
            svm_accuracy_borderline=sets["borderline"]["accuracy"],
            svm_accuracy_train=sets["train"]["accuracy"],
        )
        times["linearity"] = time.perf_counter() - tic
    return result


# --------------------------------------------------------------------------------------------------
# run_atlas
# --------------------------------------------------------------------------------------------------


def run_atlas(
    classifier: nn.Module,
    data: ClassificationData,
    config: AtlasConfig | None = None,
    *,
    classes: Iterable[int] | None = None,
    pairs: Iterable[Sequence[int]] | None = None,
    out_dir: str | Path | None = None,
    embedding_layer: str | None = None,
    autoencoder: Callable[[], nn.Module] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    report: bool = True,
    manifest_extra: dict | None = None,
    min_accuracy: float | None = 0.5,
) -> AtlasResult:
    """DeepDIG on every direction s -> t of `classes` (default: all) or of `pairs`.

    Args:
        classifier: nn.Module mapping [N, *sample_shape] to logits [N, C], on its own device.
        data: ClassificationData; training inputs feed every unit, test inputs only the SVM's test m1.
        config: AtlasConfig (defaults when None).
        classes / pairs: the directions (atlas_directions); K = the classes they involve.
        out_dir: the atlas folder (resumable); required when torch.distributed is initialized
            with more than one process. None keeps everything in memory and writes nothing.
        embedding_layer: submodule holding the embedding; "auto" finds the penultimate
            representation, None (default) takes classifier.EMBEDDING_LAYER, "none" uses none;
            without one the linearity columns stay empty.
        autoencoder: factory of a fresh autoencoder (default: the paper's MLP / a conv AE for colour).
        progress: progress bars; log: called with one line per unit. report: write atlas.md,
            atlas.html and heatmaps. manifest_extra: merged into manifest.json.
        min_accuracy: refuse, before any work, a classifier that assigns less than this share of
            a covered class's test inputs to it (checkpoint.check_accuracy: usually a wrong input
            contract, e.g. a missing normalisation); 0 or None studies any classifier.
    Returns:
        AtlasResult (the same on every rank).
    """
    config = config or AtlasConfig()
    if not isinstance(config, AtlasConfig):
        raise TypeError(f"config must be an AtlasConfig, got {type(config).__name__}")
    if not isinstance(data, ClassificationData):
        raise TypeError(f"data must be a ClassificationData, got {type(data).__name__}")
    if not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be an nn.Module, got {type(classifier).__name__}")
    directions = atlas_directions(data.num_classes, classes, pairs)
    covered = sorted({c for d in directions for c in d})
    strategy = config.resolved_strategy(len(covered))
    rank, world = _world()
    if world > 1 and out_dir is None:
        raise ValueError("out_dir is required when running on more than one process (the ranks share units through it)")
    embedding_layer = resolve_embedding_layer(classifier, embedding_layer, data.probe_inputs(2))
    check_fits(classifier, data, embedding_layer=embedding_layer)  # one forward, before any expensive work
    accuracy = check_accuracy(classifier, data, covered, min_accuracy)  # the input-contract guard
    if config.compile in (False, "eager"):  # everything eager, the autoencoders' training loss too
        config = dataclasses.replace(config, adversarial=dataclasses.replace(config.adversarial, compile=False))
    # one prepared classifier for every inference-only forward (paid once per model and process)
    probe = probe_inputs(data, covered, model_device(classifier), per_class=max(4, 64 // len(covered)))
    fast = prepare_classifier(classifier, probe, embedding_layer=embedding_layer, compile=config.compile)
    if config.engine_batch_size is None:
        config = dataclasses.replace(
            config, engine_batch_size=default_batch_size(model_device(classifier), data.sample_shape)
        )
    # several ranks already share the generators between them: each trains its own one at a time
    joint = (
        joint_training_mode(config.joint_training, model_device(classifier), classifier, autoencoder)
        if world == 1
        else "sequential"
    )
    prefix = f"[rank {rank}] " if world > 1 else ""
    say = (lambda m: log(prefix + m)) if log else (lambda m: None)
    root = None if out_dir is None else Path(out_dir)
    t_start = time.perf_counter()

    full_fp = data_fingerprint(data)
    identity = model_identity(classifier)  # the function, not only its weights (docs/RELIABILITY.md)
    adv = training_key(config.adversarial, model_device(classifier), classifier)
    adv.pop("seed")
    base = {
        "key_schema": KEY_SCHEMA,
        "classifier": identity,
        "data": full_fp,
        "max_inputs_per_class": config.max_inputs_per_class,
        "data_seed": config.seed if config.max_inputs_per_class else None,
        "seed": config.seed,
        "adversarial": adv,
        "dtype": str(data.dtype),
        "autoencoder": autoencoder_key(autoencoder, data.sample_shape),
    }
    base["inference"] = fast.key()  # optimised logits differ from eager in the last bits: never mixed
    engine_loop = default_loop(model_device(classifier), config.compile)
    base["engine_loop"] = engine_loop
    scope = {"directions": [list(d) for d in directions]}
    run_id = digest(
        {**base, **scope, "strategy": strategy, "config": config.to_dict(), "embedding_layer": embedding_layer}
    )

    manifest = {
        **environment(),
        "kind": ATLAS_KIND,
        "scope": scope,
        "run_id": run_id,
        "world_size": world,
        "strategy": strategy,
        "classes": covered,
        "config": config.to_dict(),
        "classifier": {
            "sha256": identity["weights"],
            "structure": identity["structure"],
            "class": type(classifier).__name__,
            "embedding_layer": embedding_layer,
            "class_accuracy": {str(c): a for c, a in accuracy.items()},
        },
        "inference": {**inference_record(fast), "engine_loop": engine_loop},
        "joint_training": joint,
        **(manifest_extra or {}),
    }
    with _claim(root, manifest, rank, world):
        if config.max_inputs_per_class is not None:
            data = data.subset(per_class=config.max_inputs_per_class, seed=config.seed)
        store = StageStore(None if root is None else root / "units", say)
        ctx = _Atlas(fast, data, config, strategy, embedding_layer, autoencoder, store, progress and rank == 0)

        # phase 1: generators
        gen_units: dict[str, _Unit] = {}
        training = {} if joint == "sequential" else {"training": joint}  # joint training rounds differently
        for s, t in directions:
            if strategy == "per-target":
                for c in (t, s):  # s -> t needs G_t and G_s
                    name = _generator_name(strategy, 0, c)
                    if name not in gen_units:
                        ctx.gen_dirs[name] = (None, c)
                        gspec = {**base, "target": c, "pool": "all-other-classes-correct", **training}
                        gen_units[name] = _Unit(name, gspec, functools.partial(_generator, ctx, name))
            else:
                name = _generator_name(strategy, s, t)
                ctx.gen_dirs[name] = (s, t)
                gspec = {**base, "source": s, "target": t, **training}
                gen_units[name] = _Unit(name, gspec, functools.partial(_generator, ctx, name))
        gen_units = dict(sorted(gen_units.items()))
        ctx.gen_specs = {name: u.spec for name, u in gen_units.items()}
        phase_seconds = {}
        tic = time.perf_counter()
        with contextlib.ExitStack() as stack:
            # processes: each rank groups its own generators (a group trains all its pending
            # members, each exactly its own training), in one set of persistent workers for the
            # phase, started only when the rank has generators to train; vectorized: one group of
            # all, whose rounding depends on its members, so the same on every rank and on resume
            def groups(mine: list[str]) -> None:
                if joint != "processes":
                    ctx.gen_groups.update(_generator_groups(ctx, list(gen_units), joint))
                elif mine:
                    pool = stack.enter_context(TrainingPool(max(2, torch.get_num_threads())))
                    ctx.gen_groups.update(_generator_groups(ctx, mine, joint, pool))

            _phase("generators", list(gen_units.values()), ctx, rank, world, say, mine=groups)
        phase_seconds["generators"] = time.perf_counter() - tic

        # phase 2: directions
        engine = {
            "beta": config.beta,
            "max_steps": config.max_steps,
            "method": config.method,
            "batch_size": config.engine_batch_size,
        }
        charact = {
            "trajectory": config.trajectory,
            "segments": config.trajectory_segments,
            "K": config.trajectory_K,
            "T": config.trajectory_T,
            "band": list(config.band),
            "linearity": config.linearity,
            "embedding_layer": embedding_layer,
            "save_points": config.save_points,
        }
        dir_units = []
        for s, t in directions:
            name = f"directions/{s}-{t}"
            ups = [_generator_name(strategy, s, t)] + (
                [_generator_name(strategy, t, s)] if strategy == "per-target" else []
            )
            spec = {
                "strategy": strategy,
                "s": s,
                "t": t,
                "engine": engine,
                "characterize": charact,
                "upstream": [store.key(u, gen_units[u].spec) for u in ups],
            }
            if strategy == "pairwise":
                spec["base"] = base
            dir_units.append(_Unit(name, spec, functools.partial(_direction, ctx, s, t, name)))
        tic = time.perf_counter()
        _phase("directions", dir_units, ctx, rank, world, say)
        phase_seconds["directions"] = time.perf_counter() - tic

        # merge (rank 0), then everyone reads the result
        paths: dict[str, Path] = {}
        merged = None
        if rank == 0:
            tic = time.perf_counter()
            units = [*gen_units.values(), *dir_units]
            outs = {u.name: ctx.output(u.name, u.spec) for u in units}  # read once
            atlas = _merge(
                ctx,
                outs,
                gen_units,
                dir_units,
                covered,
                directions,
                strategy,
                identity,
                embedding_layer,
                full_fp,
                run_id,
            )
            timings = _timings(ctx, outs, gen_units, dir_units, phase_seconds, world)
            timings["run_id"] = run_id
            timings["inference"] = {"mode": fast.mode, "prepare_seconds": fast.seconds}
            timings["joint_training"] = joint
            timings["phases"]["merge"] = time.perf_counter() - tic
            timings["wall_seconds"] = time.perf_counter() - t_start
            if root is not None:
                paths = _write(root, atlas, timings)
                if report:  # reads timings.json
                    from deepdig_fast.atlas_report import write_atlas_report

                    tic = time.perf_counter()
                    paths.update(write_atlas_report(root))
                    timings["phases"]["report"] = time.perf_counter() - tic
                    timings["wall_seconds"] = time.perf_counter() - t_start
                    write_json(root / "timings.json", timings)
            merged = (atlas, timings)
        atlas, timings = _broadcast(merged, world)
    return AtlasResult(atlas, timings, root, paths)


@contextlib.contextmanager
def _claim(root: Path | None, manifest: dict, rank: int, world: int):
    """Rank 0 locks the atlas folder, checks its kind and scope and writes the manifest, for all
    ranks (the others learn the outcome by broadcast, so a refusal stops every rank at once
    instead of leaving them waiting)."""
    if root is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        failure: Exception | None = None
        if rank == 0:
            try:
                old = stack.enter_context(claim_folder(root, ATLAS_KIND, manifest["scope"]))
                if old is not None and old.get("run_id") != manifest["run_id"]:
                    for name in ("atlas.json", "atlas.csv", "timings.json"):  # another run's results
                        (root / name).unlink(missing_ok=True)
                write_json(root / "manifest.json", manifest)
            except (ValueError, OSError) as exc:
                failure = exc
        message = _broadcast(None if failure is None else str(failure), world)
        if failure is not None:
            raise failure
        if message is not None:
            raise RunError(f"rank 0 could not take the atlas folder: {message}")
        yield


def _phase(
    what: str, units: list[_Unit], ctx: _Atlas, rank: int, world: int, say, mine: Callable | None = None
) -> None:
    """Compute the unfinished units of a phase, split over the ranks; raise on every rank if any
    rank failed (so no rank waits forever for one that died of an exception). `mine`, when given,
    is called first with the names of this rank's units, in the order it computes them."""
    todo = None
    if rank == 0:
        todo = [i for i, u in enumerate(units) if not ctx.store.finished(u.name, u.spec)]
        say(
            f"{what}: {len(units) - len(todo)} of {len(units)} units finished earlier, {len(todo)} to compute"
            + (f" on {world} processes" if world > 1 else "")
        )
    todo = _broadcast(todo, world)
    if mine is not None:
        mine([units[i].name for i in todo[rank::world]])
    error = None
    for i in todo[rank::world]:
        u = units[i]
        try:
            out, _ = ctx.store.run(u.name, u.spec, u.compute)
        except Exception as exc:  # reported on every rank below
            if world == 1:
                raise
            error = f"rank {rank}, unit {u.name}: {type(exc).__name__}: {exc}"
            break
        if ctx.store.root is None:
            ctx.memory[u.name] = out
        ctx.store.timings[u.name]["rank"] = rank
    errors = [e for e in _gather(error, world) if e]
    if errors:
        raise RunError(f"atlas {what} phase failed: " + "; ".join(errors))
    # learn the other ranks' timings (for timings.json on rank 0)
    for t in _gather({u: v for u, v in ctx.store.timings.items()}, world):
        for u, v in t.items():
            ctx.store.timings.setdefault(u, v)


def _merge(
    ctx, outs, gen_units, dir_units, covered, directions, strategy, identity, embedding_layer, full_fp, run_id
) -> dict:
    gens = []
    for name in gen_units:
        st = outs[name]["stats"]
        gens.append(
            {
                "unit": name,
                **{
                    k: st.get(k)
                    for k in (
                        "target",
                        "sources",
                        "inputs",
                        "inputs_correct",
                        "outputs_target",
                        "final_loss",
                        "collapse",
                    )
                },
            }
        )
    rows = [outs[u.name]["row"] for u in dir_units]
    names = list(ctx.data.classes)
    cfg = ctx.cfg.to_dict()
    return nan_to_none(
        {
            "schema": ATLAS_SCHEMA,
            "kind": ATLAS_KIND,
            "run_id": run_id,
            "strategy": strategy,
            "classes": covered,
            "class_names": [names[c] for c in covered],
            "n_directions": len(directions),
            "dataset": full_fp,
            "classifier": {
                "sha256": identity["weights"],
                "structure": identity["structure"],
                "class": type(unwrap(ctx.f)).__name__,
                "embedding_layer": embedding_layer,
            },
            "config": cfg,
            "generators": gens,
            "directions": rows,
        }
    )


def _timings(ctx, outs, gen_units, dir_units, phase_seconds, world) -> dict:
    units = {}
    stages: dict[str, float] = {"generator_training": 0.0}
    forwards = {"engine": 0, "trajectory": 0}

    def info(name):
        if name in ctx.store.timings:
            return ctx.store.timings[name]
        return {"seconds": ctx.store.stored(name).get("seconds"), "reused": True}  # finished by an earlier run

    for name in gen_units:
        units[name] = info(name)
        stages["generator_training"] += float(outs[name]["stats"]["train_seconds"] or 0.0)
    for u in dir_units:
        units[u.name] = info(u.name)
        out = outs[u.name]
        for k, v in out["times"].items():
            stages[k] = stages.get(k, 0.0) + v
        forwards["engine"] += int(out["row"]["forwards"] or 0)
        forwards["trajectory"] += int(out.get("trajectory_forwards", 0))
    reused = sum(1 for v in units.values() if v.get("reused"))
    return {
        "world_size": world,
        "phases": dict(phase_seconds),
        "stages": stages,
        "forwards": forwards,
        "units_computed": len(units) - reused,
        "units_reused": reused,
        "units": units,
    }


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in ROW_FIELDS})
    return buf.getvalue()


def _write(root: Path, atlas, timings) -> dict[str, Path]:
    write_json(root / "atlas.json", atlas)
    write_json(root / "timings.json", timings)
    atomic_write_text(root / "atlas.csv", _csv(atlas["directions"]))
    return {n: root / n for n in ("atlas.json", "atlas.csv", "timings.json", "manifest.json")}
