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
import copy
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
from torch import nn

from deepdig_fast.adversarial import (
    TrainingPool,
    component_one,
    component_two,
    training_key,
)
from deepdig_fast.configs import PER_TARGET, AtlasConfig
from deepdig_fast.context import prepare_run
from deepdig_fast.data import ClassificationData
from deepdig_fast.engine import DEFAULT_BATCH_SIZE
from deepdig_fast.generators import AtlasState, generator_groups, generator_name, train_generator
from deepdig_fast.io import atomic_write_text
from deepdig_fast.ranks import Unit, broadcast, claim, run_phase, world_of
from deepdig_fast.rundir import (
    ATLAS_KIND,
    ATLAS_ROW_FIELDS,
    ATLAS_SCHEMA,
    StageStore,
    digest,
    environment,
    nan_to_none,
    ratio,
    stage_seed,
    write_json,
)
from deepdig_fast.stages import margin_l2, pair_linearity, trajectory
from deepdig_fast.status import FAILURES
from deepdig_fast.validation import (
    check_class_id,
)

ENGINE_BATCH_CPU = DEFAULT_BATCH_SIZE["cpu"]
ENGINE_BATCH_ACCELERATOR = DEFAULT_BATCH_SIZE["accelerator"]

#: the columns of atlas.csv / the keys of every row of atlas.json["directions"]
ROW_FIELDS = ATLAS_ROW_FIELDS
#: row column of each failure status (the Status name in lower case)
_FAILURES = {status.name: status.name.lower() for status in FAILURES}


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


def _empty_row(s: int, t: int) -> dict[str, Any]:
    row: dict[str, Any] = {k: None for k in ROW_FIELDS}
    row.update(source=s, target=t)
    return row


def _direction(ctx: AtlasState, s: int, t: int, name: str) -> dict:
    """One direction s -> t, composed of the method's stages (deepdig_fast.stages): components I
    and II with the stored generators (pairwise: a fresh AE_II), III, characterization; its row."""
    cfg, f = ctx.cfg, ctx.f
    times: dict[str, float] = {}
    row = _empty_row(s, t)
    result: dict[str, Any] = {"row": row, "times": times}
    tic = time.perf_counter()
    x_s, pred_in = ctx.class_train(s)
    if x_s.shape[0] == 0:
        row["skipped"] = f"the data set has no training input of class {s}"
        return result
    g1 = ctx.generator(generator_name(ctx.strategy, s, t))
    one = component_one(f, x_s, s, t, cfg.adversarial, trained=(g1, None), pred_in=pred_in)
    st1 = one.train
    row.update(
        inputs=st1.n_inputs,
        inputs_correct=st1.inputs_correct,
        adversarial=st1.kept,
        adversarial_rate=ratio(st1.kept, st1.inputs_correct),
    )
    times["component_one"] = time.perf_counter() - tic
    if st1.kept == 0 or one.collapse:
        row["skipped"] = one.collapse or f"component I kept no adversarial sample for {s}->{t}"
        return result

    # component II: back to s with G_s (per-target), an AE_II that starts from G_s and trains
    # refine_steps on this direction's adversarial samples (per-target-refine), or a fresh AE_II
    # (pairwise); every kept adversarial sample is classified t
    tic = time.perf_counter()
    kw: dict[str, Any] = dict(autoencoder=ctx.autoencoder, pred_in=torch.full_like(one.source_index, t))
    if ctx.strategy == "per-target":
        g2 = ctx.generator(generator_name(ctx.strategy, t, s))
        two = component_two(f, one.adversarial, s, t, cfg.adversarial, trained=(g2, None), **kw)
    else:
        cfg2 = ctx.adv_config(f"{name}/ae2")
        if ctx.strategy == "per-target-refine":
            g_s = ctx.generator(generator_name(ctx.strategy, t, s))
            kw["autoencoder"] = functools.partial(copy.deepcopy, g_s)  # each try starts from G_s again
            cfg2 = dataclasses.replace(cfg2, steps=cfg.refine_steps)
        two = component_two(f, one.adversarial, s, t, cfg2, progress=ctx.progress, retries=cfg.retry_collapsed, **kw)
        assert two.history is not None  # trained here
        result["ae2_final_loss"] = two.history.final_loss
        result["ae2"] = {"steps": two.history.steps, "stop": two.history.stop_reason, "tries": two.tries}
    row.update(pairs=two.stats.kept, pair_rate=ratio(two.stats.kept, two.stats.n_inputs))
    times["component_two"] = time.perf_counter() - tic
    if two.stats.kept == 0 or two.collapse:
        row["skipped"] = two.collapse or f"component II kept no pair for {s}->{t}"
        return result

    # component III
    tic = time.perf_counter()
    r = ctx.engine.refine(f, two.a2, two.a, s, t)
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
    source_index = one.source_index[two.index]
    dist = margin_l2(points, x_s[source_index][ok.to(x_s.device)])
    if dist.numel():
        row.update(margin_l2_mean=float(dist.mean()), margin_l2_median=float(dist.median()))
    times["engine"] = time.perf_counter() - tic
    result.update(status=r.status.cpu(), attempts=r.attempts.cpu(), source_index=source_index.cpu(), margin_l2=dist)
    if cfg.save_points:
        result["points"] = points.cpu()

    # characterization
    if cfg.trajectory:
        tic = time.perf_counter()
        tr = trajectory(f, points, s, t, ctx.trajectory, seed=stage_seed(cfg.seed, f"{name}/trajectory"))
        if tr is not None:
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
    if cfg.linearity and ctx.embedding_layer is not None and points.shape[0] >= 1:
        tic = time.perf_counter()
        seed = stage_seed(cfg.seed, f"{name}/linearity")
        sets = pair_linearity(f, ctx.data, ctx.embedding_layer, s, t, points, None, seed=seed).sets
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
    rank, world = world_of()
    if world > 1 and out_dir is None:
        raise ValueError("out_dir is required when running on more than one process (the ranks share units through it)")
    # every check before any expensive work; one prepared classifier for every inference-only forward
    run, config = prepare_run(
        classifier,
        data,
        covered,
        config,
        embedding_layer=embedding_layer,
        autoencoder=autoencoder,
        min_accuracy=min_accuracy,
        processes=world,  # several ranks already share the generators: each trains its own one at a time
        probe_per_class=max(4, 64 // len(covered)),
    )
    embedding_layer, joint = run.embedding_layer, run.joint_training
    prefix = f"[rank {rank}] " if world > 1 else ""
    say = (lambda m: log(prefix + m)) if log else (lambda m: None)
    root = None if out_dir is None else Path(out_dir)
    t_start = time.perf_counter()

    adv = training_key(config.adversarial, run.device, classifier)
    adv.pop("seed")  # each unit seeds itself
    base = {
        **run.key(),
        "max_inputs_per_class": config.max_inputs_per_class,
        "data_seed": config.seed if config.max_inputs_per_class else None,
        "seed": config.seed,
        "adversarial": adv,
        "dtype": str(data.dtype),
        "engine_loop": run.engine.loop,
    }
    if config.retry_collapsed:  # absent at 0, its neutral value: such keys stay as they were
        base["retry_collapsed"] = config.retry_collapsed
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
        "classifier": run.classifier_record(),
        "inference": run.inference_record(),
        "joint_training": joint,
        **(manifest_extra or {}),
    }
    with claim(root, ATLAS_KIND, manifest, ("atlas.json", "atlas.csv", "timings.json"), rank, world):
        if config.max_inputs_per_class is not None:  # keys and identity are the full data set's
            run = dataclasses.replace(run, data=data.subset(per_class=config.max_inputs_per_class, seed=config.seed))
        store = StageStore(None if root is None else root / "units", say)
        ctx = AtlasState(run, config, strategy, store, progress and rank == 0)

        # phase 1: generators
        gen_units: dict[str, Unit] = {}
        training = {} if joint == "sequential" else {"training": joint}  # joint training rounds differently
        for s, t in directions:
            if strategy in PER_TARGET:
                for c in (t, s):  # s -> t needs G_t and G_s
                    name = generator_name(strategy, 0, c)
                    if name not in gen_units:
                        ctx.gen_dirs[name] = (None, c)
                        gspec = {**base, "target": c, "pool": "all-other-classes-correct", **training}
                        gen_units[name] = Unit(name, gspec, functools.partial(train_generator, ctx, name))
            else:
                name = generator_name(strategy, s, t)
                ctx.gen_dirs[name] = (s, t)
                gspec = {**base, "source": s, "target": t, **training}
                gen_units[name] = Unit(name, gspec, functools.partial(train_generator, ctx, name))
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
                    ctx.gen_groups.update(generator_groups(ctx, list(gen_units), joint))
                elif mine:
                    pool = stack.enter_context(TrainingPool(max(2, torch.get_num_threads())))
                    ctx.gen_groups.update(generator_groups(ctx, mine, joint, pool))

            run_phase("generators", list(gen_units.values()), ctx, rank, world, say, mine=groups)
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
            ups = [generator_name(strategy, s, t)] + (
                [generator_name(strategy, t, s)] if strategy in PER_TARGET else []
            )
            spec = {
                "strategy": strategy,
                "s": s,
                "t": t,
                "engine": engine,
                "characterize": charact,
                "upstream": [store.key(u, gen_units[u].spec) for u in ups],
            }
            if strategy != "per-target":  # the direction trains its own AE_II
                spec["base"] = base
            if strategy == "per-target-refine":
                spec["refine_steps"] = config.refine_steps
            dir_units.append(Unit(name, spec, functools.partial(_direction, ctx, s, t, name)))
        tic = time.perf_counter()
        run_phase("directions", dir_units, ctx, rank, world, say)
        phase_seconds["directions"] = time.perf_counter() - tic

        # merge (rank 0), then everyone reads the result
        paths: dict[str, Path] = {}
        merged = None
        if rank == 0:
            tic = time.perf_counter()
            units = [*gen_units.values(), *dir_units]
            outs = {u.name: ctx.output(u.name, u.spec) for u in units}  # read once
            atlas = _merge(ctx, outs, [u.name for u in dir_units], covered, run_id)
            timings = _timings(ctx, outs, gen_units, dir_units, phase_seconds, world)
            timings["run_id"] = run_id
            timings["inference"] = run.inference_timing()
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
        atlas, timings = broadcast(merged, world)
    return AtlasResult(atlas, timings, root, paths)


def _merge(ctx: AtlasState, outs: dict, dir_names: list[str], covered: list[int], run_id: str) -> dict:
    """atlas.json from the units' outputs (`outs`: unit name -> output)."""
    run = ctx.ctx
    gens = []
    for name in sorted(ctx.gen_specs):
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
                        "lr",
                        "steps",
                        "stop",
                        "final_loss",
                        "collapse",
                        "tries",
                    )
                },
            }
        )
    rows = [outs[name]["row"] for name in dir_names]
    # the AE_II of each direction (pairwise, per-target-refine): how long it trained, why it stopped, its tries
    ae2 = {name.split("/", 1)[1]: outs[name]["ae2"] for name in dir_names if "ae2" in outs[name]}
    names = list(ctx.data.classes)
    cfg = ctx.cfg.to_dict()
    return nan_to_none(
        {
            "schema": ATLAS_SCHEMA,
            "kind": ATLAS_KIND,
            "run_id": run_id,
            "strategy": ctx.strategy,
            "classes": covered,
            "class_names": [names[c] for c in covered],
            "n_directions": len(dir_names),
            "dataset": run.data_print,
            "classifier": {k: v for k, v in run.classifier_record().items() if k != "class_accuracy"},
            "config": cfg,
            "generators": gens,
            **({"component_two": ae2} if ae2 else {}),
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
