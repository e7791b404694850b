"""DeepDIG for one class pair, end to end: components I -> II -> III in both directions, then the
RPBS and EPBS baselines refined by the same engine.

    result = run_pair(classifier, data, s, t, PairConfig(), out_dir="runs/x")

With `out_dir`, every stage's output is written atomically to the run folder together with a key
(a digest of its settings and of its inputs); a rerun reuses each finished stage whose key still
matches and recomputes the rest, so an interrupted run resumes where it stopped.

Run folder:
    manifest.json                 versions, seed, every setting, the classifier's checksum
    results.json                  per direction and method: pairs, success rate, attempts, failures,
                                  forwards (deterministic; schema in docs/RESULTS-SCHEMA.md)
    timings.json                  wall time per stage and whether it was reused (varies by run)
    components/ae1_S-T.pt         AE_I state_dict, the adversarial set A(S->T) and its counts
    components/ae2_S-T.pt         AE_II state_dict and the kept pairs (a, a'')
    borderline/<method>_S-T.pt    borderline points, probs, embeddings, status, attempts, pair indices
    characterize/trajectory_S-T.pt  per-segment statistics (changes, distinct, third-class, in band), i, j
    characterize/linearity_S-T.pt   signed SVM distances and true labels of train / test / borderline
    (each .pt holds, under rundir.STAGE_KEY, the record of its key, settings and wall time; load the
    .pt files with torch.load(path, weights_only=True))
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from deepdig_fast.adversarial import (
    AdversarialConfig,
    JointTraining,
    TrainingPool,
    component_one,
    component_two,
    training_key,
)
from deepdig_fast.configs import PairConfig
from deepdig_fast.context import RunContext, prepare_run
from deepdig_fast.data import ClassificationData
from deepdig_fast.engine import BorderlineResult
from deepdig_fast.rundir import (
    RESULTS_SCHEMA,
    RUN_KIND,
    StageStore,
    claim_folder,
    digest,
    environment,
    stage_seed,
    write_json,
)
from deepdig_fast.stages import BASELINES, TrajectorySettings, baseline_borderline, pair_linearity, trajectory
from deepdig_fast.validation import (
    check_class_id,
)


@dataclass
class DirectionResult:
    """One direction source -> target. `borderline` maps a method ("deepdig", "rpbs", "epbs") to
    its BorderlineResult (missing when the method had no pairs; `skipped` says why)."""

    source: int
    target: int
    component_one: dict
    component_two: dict | None
    borderline: dict[str, BorderlineResult]
    skipped: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict)  # stage keys, for downstream stages
    trajectory: dict | None = None  # TrajectoryResult.to_dict() or {"skipped": why}


@dataclass
class PairResult:
    source: int
    target: int
    directions: dict[str, DirectionResult]
    results: dict  # what results.json holds (deterministic: no timings)
    out_dir: Path | None
    timings: dict = field(default_factory=dict)  # what timings.json holds: wall times, reuse

    def summary_rows(self) -> list[dict]:
        """One row per (direction, method): success rate and mean attempts, for tables."""
        rows = []
        for key, d in self.results["directions"].items():
            for method, m in d["methods"].items():
                rows.append(
                    {
                        "direction": key,
                        "method": method,
                        **{
                            k: m.get(k)
                            for k in ("pairs", "success_rate", "mean_attempts_success", "mean_attempts_all", "forwards")
                        },
                        "skipped": m.get("skipped"),
                    }
                )
        return rows


# --------------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------------


def run_pair(
    classifier: nn.Module,
    data: ClassificationData,
    source: int,
    target: int,
    config: PairConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    embedding_layer: str | None = None,
    autoencoder: Callable[[], nn.Module] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    manifest_extra: dict | None = None,
    min_accuracy: float | None = 0.5,
    pool: TrainingPool | None = None,
) -> PairResult:
    """Run DeepDIG on classes (source, target) of `data` with `classifier`, both directions.

    Args:
        classifier: nn.Module mapping [N, *sample_shape] to logits [N, C]; runs on its own device
            (inputs are moved there).
        data: the data set (ClassificationData); training inputs feed every stage, test inputs are
            only reported (component I's share made adversarial).
        source, target: class ids, different, in [0, C).
        config: PairConfig (the paper's defaults when None).
        out_dir: run folder (resumable, see the module docstring); None keeps everything in memory.
        embedding_layer: submodule holding the embedding ("NAME" or "NAME:input"); "auto" finds the
            penultimate representation (zoo.find_embedding_layer); None (default) takes
            classifier.EMBEDDING_LAYER when the classifier defines it; "none" uses none. Without
            one, embeddings are not recorded and EPBS and the linearity metric are skipped.
        autoencoder: a factory returning a fresh autoencoder (default: default_autoencoder, the
            paper's MLP for 28x28 grey images, the convolutional family for colour or larger ones;
            adversarial.autoencoder_from_spec("mlp" | "conv" | "module:factory", shape) makes one).
        progress: progress bars on the long stages; log: called with one line per stage.
        min_accuracy: the input-contract guard (checkpoint.check_accuracy): refuse, before any work,
            a classifier that assigns less than this share of the test inputs of `source` or of
            `target` to their class -- usually a model that expects normalised inputs and gets
            [0, 1] ones. 0 or None studies any classifier. The accuracies go to the manifest.
        pool: a TrainingPool (deepdig_fast.adversarial.TrainingPool) to train the autoencoders in when the
            joint-training mode is "processes"; the caller keeps it (and may start it early, as the
            command line does, so its workers import while the caller loads data). None: the run
            makes one of two workers for its trainings.
    Returns:
        PairResult; `results` is what results.json holds.
    """
    config = config or PairConfig()
    if not isinstance(config, PairConfig):
        raise TypeError(f"config must be a PairConfig, got {type(config).__name__}")
    if not isinstance(data, ClassificationData):
        raise TypeError(f"data must be a ClassificationData, got {type(data).__name__}")
    C = data.num_classes
    check_class_id(source, "source", C)
    check_class_id(target, "target", C)
    if source == target:
        raise ValueError(f"source and target must differ, got {source} and {target}")
    # everything that can be checked is checked before the first stage (prepare_run), then the
    # folder (lock, kind, scope)
    ctx, config = prepare_run(
        classifier,
        data,
        (source, target),
        config,
        embedding_layer=embedding_layer,
        autoencoder=autoencoder,
        min_accuracy=min_accuracy,
    )
    root = None if out_dir is None else Path(out_dir)
    base_spec = {**ctx.key(), "embedding_layer": ctx.embedding_layer}
    inputs = {**base_spec, "pair": [source, target], "config": config.to_dict()}
    run_id = digest(inputs)
    t_run = time.perf_counter()
    claim = contextlib.nullcontext(None) if root is None else claim_folder(root, RUN_KIND, {"pair": [source, target]})
    with claim as old_manifest:
        if root is not None:
            if old_manifest is not None and old_manifest.get("run_id") != run_id:
                # another run's results must never sit beside this run's manifest
                for name in ("results.json", "timings.json"):
                    (root / name).unlink(missing_ok=True)
            write_json(root / "manifest.json", _manifest(ctx, source, target, config, run_id, manifest_extra))
        run = _PairRun(ctx, config, StageStore(root, log or (lambda msg: None)), base_spec, progress)
        directions, linearity = _run(run, source, target, pool)
        results, timings = split_timings(_results_json(source, target, directions, config, linearity))
        results = {"schema": RESULTS_SCHEMA, "kind": RUN_KIND, "run_id": run_id, "inputs": inputs, **results}
        timings = {
            "run_id": run_id,
            **(timings or {}),
            "stages": run.store.timings,
            "seconds": time.perf_counter() - t_run,
            "inference": ctx.inference_timing(),
        }
        if root is not None:
            write_json(root / "timings.json", timings)
            write_json(root / "results.json", results)
    return PairResult(source, target, directions, results, root, timings)


#: result entries that are wall-clock measurements: they go to timings.json, never results.json
TIMING_KEYS = ("seconds", "train_seconds")


def split_timings(obj):
    """(obj without TIMING_KEYS entries, the removed entries in the same nesting)."""
    if not isinstance(obj, dict):
        return obj, None
    kept, times = {}, {}
    for k, v in obj.items():
        if k in TIMING_KEYS:
            times[k] = v
            continue
        kept[k], sub = split_timings(v)
        if sub:
            times[k] = sub
    return kept, times


@dataclass
class _PairRun:
    """What every stage of one pair run reads: the run context, the resolved settings, the store
    of its stages and the spec every independent stage's key starts from."""

    ctx: RunContext
    config: PairConfig
    store: StageStore
    base_spec: dict
    progress: bool

    @property
    def f(self):
        return self.ctx.classifier

    def trajectory_settings(self) -> TrajectorySettings:
        c = self.config
        return TrajectorySettings(c.trajectory_K, c.trajectory_T, c.trajectory_segments, c.band)


@dataclass
class _StageOne:
    """Component I of one direction, as stored (c1), with its key and settings."""

    c1: dict
    key: str
    config: AdversarialConfig
    x_s: Tensor


@dataclass
class _StageTwo:
    """Component II of one direction, as stored (None when skipped, and why)."""

    c2: dict | None
    key: str | None
    skipped: str | None


def _run(run: _PairRun, source: int, target: int, pool: TrainingPool | None):
    """Both directions of the pair, then the pair's linearity: (directions, linearity entry)."""
    directions: dict[str, DirectionResult] = {}
    both: tuple[tuple[int, int], ...] = ((source, target), (target, source))
    mode = run.ctx.joint_training

    def finish(s, t, one, two):  # component III, the baselines and the trajectory of s -> t
        d = _stage_rest(run, s, t, one, two)
        if run.config.characterize:
            _trajectory(run, d)
        directions[f"{s}->{t}"] = d

    if mode == "sequential":
        for s, t in both:
            one = _stage_one(run, s, t)
            finish(s, t, one, _stage_two(run, s, t, one))
    else:  # the two directions' AE_I, then their AE_II, each pair trained together
        with contextlib.ExitStack() as stack:
            # processes: two persistent single-thread workers; each direction's AE_II starts as soon
            # as its AE_I is stored, and each direction is finished as soon as its AE_II is, while
            # the other worker may still train
            if mode != "processes":
                pool = None
            elif pool is None:
                pool = stack.enter_context(TrainingPool(len(both)))
            for (s, t), one, two in _train_directions(run, both, pool):
                finish(s, t, one, two)
    directions = {f"{s}->{t}": directions[f"{s}->{t}"] for s, t in both}  # one order, whichever finished first
    linearity = _characterize(run, source, target, directions) if run.config.characterize else None
    return directions, linearity


def _train_directions(run: _PairRun, both: tuple[tuple[int, int], ...], pool: TrainingPool | None):
    """Components I and II of both directions with jointly trained autoencoders, yielding
    (direction, component I, component II) for each as soon as its component II is done. With a
    pool ("processes") every pending AE_I is submitted at once, and each direction's AE_II as soon
    as its component I is stored; otherwise (or for what is not pending) the trainings run as
    groups at their first use (JointTraining)."""
    ctx, mode = run.ctx, run.ctx.joint_training

    def stage_one_job(d):
        _, cfg1, _ = _stage_one_spec(run, *d)
        return ctx.data.class_inputs(d[0], "train").to(ctx.device), d[1], cfg1

    def pending_one(d):
        name1, _, spec1 = _stage_one_spec(run, *d)
        return not run.store.finished(name1, spec1)

    def pending_two(d):
        return not run.store.finished(f"components/ae2_{d[0]}-{d[1]}", _stage_two_spec(run, ones[d], jobs2[d][2]))

    jobs2: dict = {}
    kw: dict[str, Any] = dict(autoencoder=ctx.autoencoder, pool=pool)
    train1 = JointTraining(run.f, {d: partial(stage_one_job, d) for d in both}, mode, pending=pending_one, **kw)
    train2 = JointTraining(run.f, {}, mode, pending=pending_two, **kw)
    ones: dict = {}
    for d in both:
        ones[d] = _stage_one(run, *d, partial(train1.get, d))
        job = _stage_two_job(run, *d, ones[d])
        if job is not None:
            jobs2[d] = (job[0].to(ctx.device), job[1], job[2])
            train2.jobs[d] = partial(jobs2.get, d)
            train2.start(d)
    left = list(both)
    while left:  # each direction's component II as soon as its AE_II is trained (processes)
        d = train2.first_done(left)
        left.remove(d)
        s, t = d
        yield d, ones[d], _stage_two(run, s, t, ones[d], partial(train2.get, d) if d in jobs2 else None)


def _stage_one(run: _PairRun, s: int, t: int, trained=None) -> _StageOne:
    """Component I of s -> t. `trained`: a callable giving an already trained (autoencoder,
    history), called only when the stage is computed."""
    ctx = run.ctx
    x_s = ctx.data.class_inputs(s, "train").to(ctx.device)
    name1, adv_cfg1, spec = _stage_one_spec(run, s, t)

    def comp1():
        r = component_one(
            run.f,
            x_s,
            s,
            t,
            adv_cfg1,
            x_test_s=ctx.data.class_inputs(s, "test").to(ctx.device),
            autoencoder=ctx.autoencoder,
            progress=run.progress,
            trained=None if trained is None else trained(),
            retries=run.config.retry_collapsed,
        )
        return {
            "state_dict": {k: v.cpu() for k, v in r.autoencoder.state_dict().items()},
            "adversarial": r.adversarial.cpu(),
            "source_index": r.source_index.cpu(),
            "stats": {
                "train": dataclasses.asdict(r.train),
                "test": None if r.test is None else dataclasses.asdict(r.test),
                "fraction_of_correct": r.fraction_of_correct,
                "fraction_of_all": r.fraction_of_all,
                "test_accuracy": r.test_accuracy,
                "test_fraction_of_correct": r.test_fraction_of_correct,
                "test_fraction_of_all": r.test_fraction_of_all,
                "collapse": r.collapse,
                "tries": r.tries,
                **_history_stats(r.history),
            },
        }

    c1, key1 = run.store.run(name1, spec, comp1)
    return _StageOne(c1, key1, adv_cfg1, x_s)


def _history_stats(history) -> dict:
    """A training's entries in a component's stats: the steps it took and why it stopped (steps
    "auto", or a collapse), the step whose weights on_collapse "restore" put back, its last loss and its wall time (which goes to timings.json)."""
    return {
        "lr": history.lr,  # Adam's learning rate (AdversarialConfig.lr resolved)
        "steps": history.steps,
        "stop": history.stop_reason,
        **({"checks": history.checks} if history.checks else {}),  # the checks' measurements
        **({"restored_step": history.restored_step} if history.restored_step is not None else {}),
        "final_loss": history.final_loss,
        "train_seconds": history.seconds,
    }


def _training_spec(run: _PairRun, cfg: AdversarialConfig) -> dict:
    """The key entries of an autoencoder training: its settings and, for joint training (which
    rounds differently), the mode -- never mixed with sequential training."""
    spec: dict[str, Any] = {"adversarial": training_key(cfg, run.ctx.device, run.f)}
    if run.config.retry_collapsed:  # absent at 0, its neutral value: such keys stay as they were
        spec["retries"] = run.config.retry_collapsed
    if run.ctx.joint_training != "sequential":
        spec["training"] = run.ctx.joint_training
    return spec


def _stage_one_spec(run: _PairRun, s: int, t: int) -> tuple[str, AdversarialConfig, dict]:
    """Component I of s -> t: (stage name, its AdversarialConfig, its stage spec)."""
    name1 = f"components/ae1_{s}-{t}"
    adv_cfg1 = dataclasses.replace(run.config.adversarial, seed=stage_seed(run.config.seed, name1))
    return name1, adv_cfg1, {**run.base_spec, "s": s, "t": t, **_training_spec(run, adv_cfg1)}


def _stage_two_spec(run: _PairRun, one: _StageOne, adv_cfg2: AdversarialConfig) -> dict:
    """Component II's stage spec, given its component I and its AdversarialConfig."""
    return {"upstream": one.key, **_training_spec(run, adv_cfg2)}


def _stage_two_job(run: _PairRun, s: int, t: int, one: _StageOne):
    """(adversarial set, its target, config) of component II of s -> t, or None when it is skipped."""
    adversarial = one.c1["adversarial"]
    if adversarial.shape[0] == 0 or one.c1["stats"]["collapse"]:
        return None
    name2 = f"components/ae2_{s}-{t}"
    return adversarial, s, dataclasses.replace(run.config.adversarial, seed=stage_seed(run.config.seed, name2))


def _stage_two(run: _PairRun, s: int, t: int, one: _StageOne, trained=None) -> _StageTwo:
    """Component II of s -> t."""
    job = _stage_two_job(run, s, t, one)
    if job is None:
        # A collapsed generator's outputs (e.g. all nearly identical) make no meaningful pairs.
        return _StageTwo(None, None, one.c1["stats"]["collapse"] or "component I produced no adversarial samples")
    adversarial = job[0].to(one.x_s.device)
    adv_cfg2 = job[2]

    def comp2():
        r = component_two(
            run.f,
            adversarial,
            s,
            t,
            adv_cfg2,
            autoencoder=run.ctx.autoencoder,
            progress=run.progress,
            trained=None if trained is None else trained(),
            retries=run.config.retry_collapsed,
        )
        return {
            "state_dict": {k: v.cpu() for k, v in r.autoencoder.state_dict().items()},
            "a": r.a.cpu(),
            "a2": r.a2.cpu(),
            "index": r.index.cpu(),
            "stats": {
                "pairs": int(r.a.shape[0]),
                "counts": dataclasses.asdict(r.stats),
                "collapse": r.collapse,
                "tries": r.tries,
                **_history_stats(r.history),
            },
        }

    c2, key2 = run.store.run(f"components/ae2_{s}-{t}", _stage_two_spec(run, one, adv_cfg2), comp2)
    skipped = None
    if c2["a"].shape[0] == 0 or c2["stats"]["collapse"]:
        skipped = c2["stats"]["collapse"] or "component II kept no pairs"
    return _StageTwo(c2, key2, skipped)


def _stage_rest(run: _PairRun, s: int, t: int, one: _StageOne, two: _StageTwo) -> DirectionResult:
    """Component III on the pairs of s -> t, and the baselines."""
    ctx, config, store = run.ctx, run.config, run.store
    tag = f"{s}-{t}"
    skipped: dict[str, str] = {}
    borderline: dict[str, BorderlineResult] = {}
    keys: dict[str, str] = {}
    layer = ctx.embedding_layer
    # every engine setting enters the key, the live batch too: batched forwards round differently
    engine_spec = {**ctx.engine.key(), "embedding_layer": layer}

    if two.skipped is not None or two.c2 is None:
        skipped["deepdig"] = two.skipped or "component II was skipped"
    else:
        c2 = two.c2

        def comp3():  # a'' (predicted s) -> a (predicted t); pair i: a = AE_II(A[index[i]]), b = A[index[i]]
            a, b = c2["a2"].to(ctx.device), c2["a"].to(ctx.device)
            r = ctx.engine.refine(run.f, a, b, s, t, embedding_layer=layer)
            return r.to_record(c2["index"], c2["index"])

        out, key3 = store.run(f"borderline/deepdig_{tag}", {"upstream": two.key, "engine": engine_spec}, comp3)
        borderline["deepdig"] = BorderlineResult.from_record(out)
        keys["deepdig"] = key3

    if config.baselines:
        for kind in BASELINES:
            if kind == "epbs" and layer is None:
                skipped["epbs"] = "no embedding layer: pass embedding_layer (or --embedding-layer)"
                continue
            seed = stage_seed(config.seed, f"{kind}_{tag}")

            def baseline(kind=kind, seed=seed):
                r, p = baseline_borderline(kind, run.f, ctx.data, s, t, ctx.engine, seed=seed, embedding_layer=layer)
                d = r.to_record(p.a_index, p.b_index)
                if p.distance is not None:
                    d["pair_distance"] = p.distance.cpu()
                return d

            spec = {**run.base_spec, "s": s, "t": t, "engine": engine_spec}
            if kind == "rpbs":  # drawn with the run's seed
                spec["seed"] = config.seed
            out, _ = store.run(f"borderline/{kind}_{tag}", spec, baseline)
            borderline[kind] = BorderlineResult.from_record(out)

    c2_stats = None if two.c2 is None else two.c2["stats"]
    return DirectionResult(s, t, one.c1["stats"], c2_stats, borderline, skipped, keys)


def _successes(d: DirectionResult) -> Tensor | None:
    r = d.borderline.get("deepdig")
    return None if r is None else r.points[r.success]


def _trajectory(run: _PairRun, d: DirectionResult) -> None:
    """Trajectory oscillation of one direction (docs/METHOD-NOTES.md "Characterization") on its
    successful DeepDIG borderline samples: fills ``d.trajectory``."""
    points = _successes(d)
    if points is None or points.shape[0] < 2:
        d.trajectory = {"skipped": "fewer than 2 successful DeepDIG borderline samples"}
        return
    name = f"characterize/trajectory_{d.source}-{d.target}"
    settings = run.trajectory_settings()

    def traj():
        r = trajectory(run.f, points, d.source, d.target, settings, seed=stage_seed(run.config.seed, name))
        assert r is not None  # two samples or more
        return {**r.tensors(), "summary": r.to_dict()}

    out, _ = run.store.run(name, {"upstream": d.keys["deepdig"], **settings.key()}, traj)
    d.trajectory = out["summary"]


def _characterize(run: _PairRun, source: int, target: int, directions: dict[str, DirectionResult]) -> dict:
    """Embedding linearity of the pair (docs/METHOD-NOTES.md "Characterization") on the successful
    DeepDIG borderline samples of both directions: results.json's "linearity" entry."""
    layer = run.ctx.embedding_layer
    if layer is None:
        return {"skipped": "no embedding layer: pass embedding_layer (or --embedding-layer)"}
    st, ts = directions[f"{source}->{target}"], directions[f"{target}->{source}"]
    name = f"characterize/linearity_{source}-{target}"

    def lin():
        r = pair_linearity(
            run.f,
            run.ctx.data,
            layer,
            source,
            target,
            _successes(st),
            _successes(ts),
            seed=stage_seed(run.config.seed, name),
        )
        return {**r.tensors(), "summary": r.to_dict()}

    spec = {**run.base_spec, "s": source, "t": target, "upstream": [st.keys.get("deepdig"), ts.keys.get("deepdig")]}
    out, _ = run.store.run(name, spec, lin)
    return out["summary"]


def _results_json(source, target, directions, config, linearity=None) -> dict:
    out = {
        "pair": [source, target],
        "config": config.to_dict(),
        "directions": {},
    }
    if linearity is not None:
        out["linearity"] = linearity
    for key, d in directions.items():
        methods = {}
        for m in ("deepdig", "rpbs", "epbs"):
            if m in d.borderline:
                methods[m] = d.borderline[m].summary()
            elif m in d.skipped:
                methods[m] = {"pairs": 0, "skipped": d.skipped[m]}
        out["directions"][key] = {
            "source": d.source,
            "target": d.target,
            "component_one": d.component_one,
            "component_two": d.component_two,
            "methods": methods,
        }
        if d.trajectory is not None:
            out["directions"][key]["trajectory"] = d.trajectory
    return out


def _manifest(ctx: RunContext, s: int, t: int, config: PairConfig, run_id: str, extra: dict | None) -> dict:
    return {
        **environment(),
        "kind": RUN_KIND,
        "scope": {"pair": [s, t]},
        "run_id": run_id,
        "pair": [s, t],
        "seed": config.seed,
        "config": config.to_dict(),
        "classifier": ctx.classifier_record(),
        "data": ctx.data_print,
        "classes": list(ctx.data.classes),
        "inference": ctx.inference_record(),
        "joint_training": ctx.joint_training,
        **(extra or {}),
    }
