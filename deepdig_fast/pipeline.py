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

from torch import Tensor, nn

from deepdig_fast.adversarial import (
    JOINT_TRAINING,
    AdversarialConfig,
    JointTraining,
    autoencoder_key,
    component_one,
    component_two,
    joint_training_mode,
    training_key,
)
from deepdig_fast.baselines import embedding_nearest_pairs, random_pairs
from deepdig_fast.checkpoint import check_accuracy, check_fits
from deepdig_fast.data import ClassificationData
from deepdig_fast.engine import BorderlineResult, choose_batch_size, default_batch_size, default_loop, refine_borderline
from deepdig_fast.fast import COMPILE, inference_record, prepare_classifier, probe_inputs
from deepdig_fast.identity import data_fingerprint, model_identity
from deepdig_fast.rundir import (
    KEY_SCHEMA,
    RESULTS_SCHEMA,
    RUN_KIND,
    StageStore,
    claim_folder,
    digest,
    environment,
    model_device,
    stage_seed,
    write_json,
)
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


@dataclass
class PairConfig:
    """Settings of one pair run (defaults: the paper's).

    adversarial: training of the four autoencoders (AdversarialConfig: alpha 0.8, Adam 0.01,
    StepLR(1000, 0.95), 5000 steps, batch 128). beta, max_steps, method: the engine's (see
    refine_borderline). seed: the run's seed; every stage derives its own from it and its name.
    baselines: also run RPBS and EPBS. engine_batch_size: the engine's live batch (None: fixed per
    device, 512 on a CPU and 16384 on an accelerator, so results do not depend on timing; "auto":
    measured for the model and device, faster but machine-dependent in the last bits; the value
    used is part of every engine stage's key). compile: how the classifier's inference-only forwards
    run (deepdig_fast.fast.prepare_classifier: True the device's optimised backend, checked
    against eager; False eager; or a backend name); the mode that ran enters every stage's key.
    joint_training: how the two directions' AE_I (and then their AE_II) are trained: "vectorized"
    as one vmapped model (adversarial.train_adversarial_autoencoders), "processes" side by side in
    two single-thread worker processes (adversarial.train_in_processes), "sequential" one after the
    other in this process; "auto": vectorized on a GPU, processes on a CPU with >= 2 torch threads
    (when the classifier and autoencoder pickle), else sequential. The mode enters the components'
    keys.
    """

    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    beta: float = BETA
    max_steps: int = 64
    method: str = "bisect"
    seed: int = 0
    baselines: bool = True
    engine_batch_size: int | str | None = None
    characterize: bool = True
    trajectory_K: int = 50
    trajectory_T: int = 50
    trajectory_segments: int | None = None
    band: tuple = (-0.1, 0.1)
    compile: bool | str = True
    joint_training: str = "auto"

    CONSTRAINTS = {
        "beta": BETA_RULE,
        "max_steps": Int(1, MAX_STEPS_MAX),
        "method": Options(("bisect", "illinois")),
        "compile": COMPILE,
        "joint_training": Options(JOINT_TRAINING),
        "seed": Int(0, SEED_MAX),
        "trajectory_K": Int(1),
        "trajectory_T": Int(1),
        "trajectory_segments": Optional(Int(1)),
        "band": BAND,
    }

    def __post_init__(self) -> None:
        if isinstance(self.adversarial, dict):
            self.adversarial = AdversarialConfig(**self.adversarial)
        if not isinstance(self.adversarial, AdversarialConfig):
            raise TypeError(
                f"PairConfig.adversarial must be an AdversarialConfig, got {type(self.adversarial).__name__}"
            )
        validate_fields(self, self.CONSTRAINTS)
        if self.engine_batch_size != "auto":
            Optional(Int(1, BATCH_MAX)).check(self.engine_batch_size, "PairConfig.engine_batch_size (or 'auto')")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
# serialisation of engine results
# --------------------------------------------------------------------------------------------------


def _result_to_dict(r: BorderlineResult, a_index: Tensor, b_index: Tensor) -> dict:
    return {
        "points": r.points.cpu(),
        "status": r.status.cpu(),
        "intruder": r.intruder.cpu(),
        "attempts": r.attempts.cpu(),
        "probs": r.probs.cpu(),
        "lam": r.lam.cpu(),
        "embeddings": None if r.embeddings is None else r.embeddings.cpu(),
        "source": r.source.cpu(),
        "target": r.target.cpu(),
        "a_index": a_index.cpu(),
        "b_index": b_index.cpu(),
        "forwards": r.forwards,
        "method": r.method,
        "beta": r.beta,
        "max_steps": r.max_steps,
        "batch_size": r.batch_size,
        "seconds": r.seconds,
        "steps": r.steps,
        "inference": r.inference,
    }


def _result_from_dict(d: dict) -> BorderlineResult:
    names = {f.name for f in dataclasses.fields(BorderlineResult)}
    return BorderlineResult(**{k: v for k, v in d.items() if k in names})


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
        pool: a TrainingPool (deepdig_fast.train_worker) to train the autoencoders in when the
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
    embedding_layer = resolve_embedding_layer(classifier, embedding_layer, data.probe_inputs(2))
    # everything that can be checked is checked before the first stage: the classifier's fit to
    # the data and the embedding layer (one forward), then the folder (lock, kind, scope)
    check_fits(classifier, data, embedding_layer=embedding_layer)
    accuracy = check_accuracy(classifier, data, (source, target), min_accuracy)
    if config.compile in (False, "eager"):  # everything eager, the autoencoders' training loss too
        config = dataclasses.replace(config, adversarial=dataclasses.replace(config.adversarial, compile=False))
    device = model_device(classifier)
    # one prepared classifier for every inference-only forward (paid once per model and process)
    fast = prepare_classifier(
        classifier,
        probe_inputs(data, (source, target), device),
        embedding_layer=embedding_layer,
        compile=config.compile,
    )
    if config.engine_batch_size is None:
        config = dataclasses.replace(config, engine_batch_size=default_batch_size(device, data.sample_shape))
    elif config.engine_batch_size == "auto":  # measured once, here, so the value enters every key
        probe = data.class_inputs(source, "train")[:64].to(device)
        config = dataclasses.replace(config, engine_batch_size=choose_batch_size(fast, probe, limit=1 << 16))
    root = None if out_dir is None else Path(out_dir)
    say = log or (lambda msg: None)
    identity = model_identity(classifier)  # the function, not only its weights (docs/RELIABILITY.md)
    data_fp = data_fingerprint(data)
    base_spec = {
        "key_schema": KEY_SCHEMA,
        "classifier": identity,
        "data": data_fp,
        "embedding_layer": embedding_layer,
        "autoencoder": autoencoder_key(autoencoder, data.sample_shape),
    }
    base_spec["inference"] = fast.key()  # optimised logits differ from eager in the last bits: never mixed
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
            _write_manifest(
                root,
                classifier,
                identity,
                data_fp,
                data,
                source,
                target,
                config,
                embedding_layer,
                {"class_accuracy": {str(c): a for c, a in accuracy.items()}},
                {
                    "inference": {**inference_record(fast), "engine_loop": default_loop(device, config.compile)},
                    "joint_training": joint_training_mode(config.joint_training, device, classifier, autoencoder),
                    **(manifest_extra or {}),
                },
                run_id,
            )
        result = _run(
            fast,
            data,
            source,
            target,
            config,
            StageStore(root, say),
            base_spec,
            autoencoder,
            embedding_layer,
            device,
            progress,
            run_id,
            inputs,
            t_run,
            pool,
        )
        result.timings["inference"] = {"mode": fast.mode, "prepare_seconds": fast.seconds}
        if root is not None:
            write_json(root / "timings.json", result.timings)
            write_json(root / "results.json", result.results)
    return result


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


def _run(
    classifier,
    data,
    source,
    target,
    config,
    store,
    base_spec,
    autoencoder,
    embedding_layer,
    device,
    progress,
    run_id,
    inputs,
    t_run,
    pool,
) -> PairResult:
    directions: dict[str, DirectionResult] = {}
    both = ((source, target), (target, source))
    mode = joint_training_mode(config.joint_training, device, classifier, autoencoder)

    def finish(s, t, one, two):  # component III, the baselines and the trajectory of s -> t
        d = _stage_rest(classifier, data, s, t, config, store, base_spec, embedding_layer, device, one, two)
        if config.characterize:
            _trajectory(classifier, d, config, store)
        directions[f"{s}->{t}"] = d

    if mode == "sequential":
        for s, t in both:
            one = _stage_one(classifier, data, s, t, config, store, base_spec, autoencoder, device, progress)
            finish(s, t, one, _stage_two(classifier, s, t, config, store, autoencoder, progress, one))
    else:  # the two directions' AE_I, then their AE_II, each pair trained together
        with contextlib.ExitStack() as stack:
            # processes: two persistent single-thread workers; each direction's AE_II starts as soon
            # as its AE_I is stored, and each direction is finished as soon as its AE_II is, while
            # the other worker may still train
            if mode != "processes":
                pool = None
            elif pool is None:
                pool = stack.enter_context(TrainingPool(len(both)))
            for (s, t), one, two in _train_directions(
                classifier, data, both, config, store, base_spec, autoencoder, device, progress, mode, pool
            ):
                finish(s, t, one, two)
    directions = {f"{s}->{t}": directions[f"{s}->{t}"] for s, t in both}  # one order, whichever finished first
    linearity = None
    if config.characterize:
        linearity = _characterize(
            classifier, data, source, target, directions, config, store, base_spec, embedding_layer
        )
    results, timings = split_timings(_results_json(source, target, directions, config, linearity))
    results = {"schema": RESULTS_SCHEMA, "kind": RUN_KIND, "run_id": run_id, "inputs": inputs, **results}
    timings = {"run_id": run_id, **(timings or {}), "stages": store.timings, "seconds": time.perf_counter() - t_run}
    return PairResult(source, target, directions, results, store.root, timings)


def _train_directions(classifier, data, both, config, store, base_spec, autoencoder, device, progress, mode, pool):
    """Components I and II of both directions with jointly trained autoencoders, yielding
    (direction, component I, component II) for each as soon as its component II is done. With a
    pool ("processes") every pending AE_I is submitted at once, and each direction's AE_II as soon
    as its component I is stored; otherwise (or for what is not pending) the trainings run as
    groups at their first use (JointTraining)."""

    def stage_one_job(d):
        _, cfg1, _ = _stage_one_spec(classifier, *d, config, base_spec, device, mode)
        return data.class_inputs(d[0], "train").to(device), d[1], cfg1

    def pending_one(d):
        name1, _, spec1 = _stage_one_spec(classifier, *d, config, base_spec, device, mode)
        return not store.finished(name1, spec1)

    def pending_two(d):
        job = jobs2[d]
        return not store.finished(
            f"components/ae2_{d[0]}-{d[1]}", _stage_two_spec(classifier, ones[d], job[2], device, mode)
        )

    jobs2: dict = {}
    kw = dict(autoencoder=autoencoder, pool=pool)
    train1 = JointTraining(classifier, {d: partial(stage_one_job, d) for d in both}, mode, pending=pending_one, **kw)
    train2 = JointTraining(classifier, {}, mode, pending=pending_two, **kw)
    ones: dict = {}
    for d in both:
        ones[d] = _stage_one(
            classifier, data, *d, config, store, base_spec, autoencoder, device, progress, partial(train1.get, d), mode
        )
        job = _stage_two_job(*d, config, ones[d])
        if job is not None:
            jobs2[d] = (job[0].to(device), job[1], job[2])
            train2.jobs[d] = partial(jobs2.get, d)
            train2.start(d)
    left = list(both)
    while left:  # each direction's component II as soon as its AE_II is trained (processes)
        d = train2.first_done(left)
        left.remove(d)
        two = _stage_two(
            classifier,
            *d,
            config,
            store,
            autoencoder,
            progress,
            ones[d],
            partial(train2.get, d) if d in jobs2 else None,
            mode,
        )
        yield d, ones[d], two


def _stage_one(
    classifier, data, s, t, config, store, base_spec, autoencoder, device, progress, trained=None, mode="sequential"
):
    """Component I of s -> t: (c1, key1, x_s). `trained`: a callable giving an already trained
    (autoencoder, history), called only when the stage is computed."""
    x_s = data.class_inputs(s, "train").to(device)
    x_s_test = data.class_inputs(s, "test").to(device)
    name1, adv_cfg1, spec = _stage_one_spec(classifier, s, t, config, base_spec, device, mode)

    def comp1():
        r = component_one(
            classifier,
            x_s,
            s,
            t,
            adv_cfg1,
            x_test_s=x_s_test,
            autoencoder=autoencoder,
            progress=progress,
            trained=None if trained is None else trained(),
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
                "final_loss": r.history.final_loss,
                "train_seconds": r.history.seconds,
            },
        }

    c1, key1 = store.run(name1, spec, comp1)
    return {"c1": c1, "key1": key1, "cfg1": adv_cfg1, "x_s": x_s}


def _stage_one_spec(classifier, s, t, config, base_spec, device, mode) -> tuple[str, AdversarialConfig, dict]:
    """Component I of s -> t: (stage name, its AdversarialConfig, its stage spec)."""
    name1 = f"components/ae1_{s}-{t}"
    adv_cfg1 = dataclasses.replace(config.adversarial, seed=stage_seed(config.seed, name1))
    spec = {**base_spec, "s": s, "t": t, "adversarial": training_key(adv_cfg1, device, classifier)}
    if mode != "sequential":  # joint training rounds differently: never mixed with sequential
        spec["training"] = mode
    return name1, adv_cfg1, spec


def _stage_two_spec(classifier, one, adv_cfg2, device, mode) -> dict:
    """Component II's stage spec, given its component I (`one`) and its AdversarialConfig."""
    spec = {"upstream": one["key1"], "adversarial": training_key(adv_cfg2, device, classifier)}
    if mode != "sequential":
        spec["training"] = mode
    return spec


def _stage_two_job(s, t, config, one):
    """(adversarial set, its target, config) of component II of s -> t, or None when it is skipped."""
    c1 = one["c1"]
    adversarial = c1["adversarial"]
    if adversarial.shape[0] == 0 or c1["stats"]["collapse"]:
        return None
    name2 = f"components/ae2_{s}-{t}"
    return adversarial, s, dataclasses.replace(config.adversarial, seed=stage_seed(config.seed, name2))


def _stage_two(classifier, s, t, config, store, autoencoder, progress, one, trained=None, mode="sequential"):
    """Component II of s -> t: {"c2", "key2", "skipped"}."""
    c1 = one["c1"]
    job = _stage_two_job(s, t, config, one)
    if job is None:
        # A collapsed generator's outputs (e.g. all nearly identical) make no meaningful pairs.
        return {
            "c2": None,
            "key2": None,
            "skipped": c1["stats"]["collapse"] or "component I produced no adversarial samples",
        }
    device = one["x_s"].device
    adversarial = job[0].to(device)
    adv_cfg2 = job[2]
    name2 = f"components/ae2_{s}-{t}"

    def comp2():
        r = component_two(
            classifier,
            adversarial,
            s,
            t,
            adv_cfg2,
            autoencoder=autoencoder,
            progress=progress,
            trained=None if trained is None else trained(),
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
                "final_loss": r.history.final_loss,
                "train_seconds": r.history.seconds,
            },
        }

    c2, key2 = store.run(name2, _stage_two_spec(classifier, one, adv_cfg2, device, mode), comp2)
    skipped = None
    if c2["a"].shape[0] == 0 or c2["stats"]["collapse"]:
        skipped = c2["stats"]["collapse"] or "component II kept no pairs"
    return {"c2": c2, "key2": key2, "skipped": skipped}


def _stage_rest(classifier, data, s, t, config, store, base_spec, embedding_layer, device, one, two):
    """Component III on the pairs of s -> t, and the baselines."""
    tag = f"{s}-{t}"
    c1, c2 = one["c1"], two["c2"]
    skipped: dict[str, str] = {}
    borderline: dict[str, BorderlineResult] = {}
    keys: dict[str, str] = {}
    engine_kw = dict(
        beta=config.beta,
        max_steps=config.max_steps,
        method=config.method,
        embedding_layer=embedding_layer,
        batch_size=config.engine_batch_size,
        loop=default_loop(device, config.compile),
    )
    engine_spec = dict(engine_kw)  # the live batch too: batched forwards round differently at other sizes

    if two["skipped"] is not None:
        skipped["deepdig"] = two["skipped"]
    else:
        # Component III: a'' (predicted s) -> a (predicted t)
        a_end, b_end = c2["a2"].to(device), c2["a"].to(device)
        index = c2["index"]

        def comp3():
            r = refine_borderline(classifier, a_end, b_end, s, t, **engine_kw)
            # pair i: a = AE_II(adversarial[index[i]]), b = adversarial[index[i]]
            return _result_to_dict(r, index, index)

        out, key3 = store.run(f"borderline/deepdig_{tag}", {"upstream": two["key2"], "engine": engine_spec}, comp3)
        borderline["deepdig"] = _result_from_dict(out)
        keys["deepdig"] = key3

    # Baselines
    if config.baselines:
        x_all, y_all = data.x_train.to(device), data.y_train.to(device)

        def rpbs():
            p = random_pairs(classifier, x_all, y_all, s, t, seed=stage_seed(config.seed, f"rpbs_{tag}"))
            return _result_to_dict(refine_borderline(classifier, p.a, p.b, s, t, **engine_kw), p.a_index, p.b_index)

        out, _ = store.run(
            f"borderline/rpbs_{tag}", {**base_spec, "s": s, "t": t, "seed": config.seed, "engine": engine_spec}, rpbs
        )
        borderline["rpbs"] = _result_from_dict(out)
        if embedding_layer is None:
            skipped["epbs"] = "no embedding layer: pass embedding_layer (or --embedding-layer)"
        else:

            def epbs():
                p = embedding_nearest_pairs(classifier, x_all, y_all, s, t, embedding_layer)
                d = _result_to_dict(refine_borderline(classifier, p.a, p.b, s, t, **engine_kw), p.a_index, p.b_index)
                d["pair_distance"] = p.distance.cpu()
                return d

            out, _ = store.run(f"borderline/epbs_{tag}", {**base_spec, "s": s, "t": t, "engine": engine_spec}, epbs)
            borderline["epbs"] = _result_from_dict(out)

    return DirectionResult(s, t, c1["stats"], None if c2 is None else c2["stats"], borderline, skipped, keys)


def _successes(d: DirectionResult) -> Tensor | None:
    r = d.borderline.get("deepdig")
    return None if r is None else r.points[r.success]


def _trajectory(classifier, d: DirectionResult, config, store) -> None:
    """Trajectory oscillation of one direction (docs/METHOD-NOTES.md "Characterization") on its
    successful DeepDIG borderline samples: fills ``d.trajectory``."""
    from deepdig_fast.characterize import trajectory_oscillation

    points = _successes(d)
    if points is None or points.shape[0] < 2:
        d.trajectory = {"skipped": "fewer than 2 successful DeepDIG borderline samples"}
        return
    name = f"characterize/trajectory_{d.source}-{d.target}"

    def traj():
        r = trajectory_oscillation(
            classifier,
            points.to(model_device(classifier)),
            d.source,
            d.target,
            K=config.trajectory_K,
            T=config.trajectory_T,
            segments=config.trajectory_segments,
            seed=stage_seed(config.seed, name),
            band=config.band,
        )
        return {**r.tensors(), "summary": r.to_dict()}

    spec = {
        "upstream": d.keys["deepdig"],
        "K": config.trajectory_K,
        "T": config.trajectory_T,
        "segments": config.trajectory_segments,
        "band": list(config.band),
    }
    out, _ = store.run(name, spec, traj)
    d.trajectory = out["summary"]


def _characterize(classifier, data, source, target, directions, config, store, base_spec, embedding_layer) -> dict:
    """Embedding linearity of the pair (docs/METHOD-NOTES.md "Characterization") on the successful
    DeepDIG borderline samples of both directions: results.json's "linearity" entry."""
    from deepdig_fast.characterize import linearity

    device = model_device(classifier)
    if embedding_layer is None:
        return {"skipped": "no embedding layer: pass embedding_layer (or --embedding-layer)"}
    st, ts = directions[f"{source}->{target}"], directions[f"{target}->{source}"]
    empty = data.probe_inputs(0)
    b_st = _successes(st)
    b_ts = _successes(ts)
    name = f"characterize/linearity_{source}-{target}"

    def lin():
        # only the pair's rows are materialised (linearity selects the same rows, in the same order)
        x_tr, y_tr = data.inputs("train", (source, target))
        x_te, y_te = data.inputs("test", (source, target))
        r = linearity(
            classifier,
            embedding_layer,
            x_tr.to(device),
            y_tr.to(device),
            x_te.to(device),
            y_te.to(device),
            source,
            target,
            (empty if b_st is None else b_st).to(device),
            (empty if b_ts is None else b_ts).to(device),
            seed=stage_seed(config.seed, name),
        )
        summary, arrays = r.to_dict(), r.tensors()
        return {**arrays, "summary": summary}

    spec = {**base_spec, "s": source, "t": target, "upstream": [st.keys.get("deepdig"), ts.keys.get("deepdig")]}
    out, _ = store.run(name, spec, lin)
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


def _write_manifest(root, classifier, identity, data_fp, data, s, t, config, embedding_layer, checks, extra, run_id):
    manifest = {
        **environment(),
        "kind": RUN_KIND,
        "scope": {"pair": [s, t]},
        "run_id": run_id,
        "pair": [s, t],
        "seed": config.seed,
        "config": config.to_dict(),
        "classifier": {
            "sha256": identity["weights"],
            "structure": identity["structure"],
            "class": type(classifier).__name__,
            "embedding_layer": embedding_layer,
            **checks,
        },
        "data": data_fp,
        "classes": list(data.classes),
        **(extra or {}),
    }
    write_json(root / "manifest.json", manifest)
