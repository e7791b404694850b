"""The settings of the method, each default declared once: AdversarialConfig (an autoencoder
training, with its stopping rule AutoStop), PairConfig (a run of one class pair) and AtlasConfig
(an atlas), with the choices they accept. This module imports neither torch nor the rest of the
method, so the command line derives its options and help from these dataclasses at no cost.
Every constraint is checked when a config is made (validation.validate_fields): a bad setting
fails before any work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from deepdig_fast.validation import (
    BAND,
    BATCH_MAX,
    BETA,
    BETA_RULE,
    MAX_STEPS_MAX,
    SEED_MAX,
    STEPS_MAX,
    Int,
    Number,
    Optional,
    Options,
    ParameterError,
    validate_fields,
)

#: values of `compile`: True picks the device's default backend, False (or "eager") turns it off
BACKENDS = ("torchscript", "inductor", "eager")


@dataclass(frozen=True)
class _CompileChoice:
    """The `compile` constraint of the configs: True, False or a backend name."""

    def check(self, value: Any, name: str) -> bool | str:
        if isinstance(value, bool) or value in BACKENDS:
            return value
        raise ParameterError(f"{name} must be True, False or one of {', '.join(map(repr, BACKENDS))}, got {value!r}")


COMPILE = _CompileChoice()


#: the most retrainings of a collapsed generator a run may ask for (PairConfig / AtlasConfig.retry_collapsed)
RETRIES_MAX = 10

#: ways of training several independent autoencoders (PairConfig / AtlasConfig.joint_training)
JOINT_TRAINING = ("auto", "vectorized", "processes", "sequential")


STRATEGIES = ("per-target", "per-target-refine", "pairwise")

#: the strategies whose generators are one per target class (G_t)
PER_TARGET = ("per-target", "per-target-refine")

#: what a training does when its outputs collapse (AdversarialConfig.on_collapse)
ON_COLLAPSE = ("stop", "restore", "continue")


#: the live batch when none is given: fixed per device type, never measured, so that results do
#: not depend on timing (the MNIST CNN's fastest per-image batch on the 2-core dev CPU, and a size
#: that fills a GPU; benchmarks/RESULTS.md)
DEFAULT_BATCH_SIZE = {"cpu": 512, "accelerator": 16384}


#: "auto" compiles the training loss from this many steps on (the compile costs ~10-40 s on 2 cores)
COMPILE_MIN_STEPS = 1000


@dataclass(frozen=True)
class _Tristate:
    def check(self, value: Any, name: str) -> bool | str:
        if isinstance(value, bool) or value == "auto":
            return value
        raise ParameterError(f"{name} must be True, False or 'auto', got {value!r}")


#: AdversarialConfig.lr "auto": Adam's learning rate for the paper's MLP autoencoder (the paper's) and
#: for every other autoencoder (the convolutional family, a user's): docs/METHOD-NOTES.md, "The
#: learning rate of the convolutional autoencoders"
PAPER_LR = 0.01
CONV_LR = 0.001


@dataclass(frozen=True)
class _Lr:
    def check(self, value: Any, name: str) -> float | str:
        if value == "auto":
            return value
        return Number(0, None, "neither").check(value, f"{name} (or 'auto')")


@dataclass(frozen=True)
class _Steps:
    def check(self, value: Any, name: str) -> int | str:
        if value == "auto":
            return value
        return Int(1, STEPS_MAX).check(value, f"{name} (or 'auto')")


@dataclass(frozen=True)
class AutoStop:
    """The stopping rule of ``steps="auto"``: train until what the component keeps has stopped
    improving, between a floor and a ceiling (the paper's 5000 steps).

    Every ``every`` steps the autoencoder (in eval mode) is applied to a fixed probe of at most
    ``probe`` of its training inputs, drawn with the training's seed (apart from the batches: the
    training is step for step the fixed-step training, so an auto training's weights are the
    ones the ``ceiling``-step training has at that step). Measured on the probe: the kept share
    (outputs classified as the target, among the probe inputs not already classified as it) and
    the reconstruction BCE. A check improves when the share exceeds the best so far by more than
    ``share_tolerance`` (absolute) or the reconstruction falls below the best by more than
    ``reconstruction_tolerance`` (relative). The training stops at the first check from
    ``floor`` steps on that follows ``window`` checks without improvement, or when the outputs
    have been nearly identical (collapsed: mean per-feature std below AdversarialConfig's
    collapse_std) at two checks in a row, or at ``ceiling``. The rule reads only the training's
    own numbers, never a time, so an auto training is as deterministic as a fixed one.
    """

    every: int = 250
    floor: int = 1000
    ceiling: int = 5000
    window: int = 3
    share_tolerance: float = 0.005
    reconstruction_tolerance: float = 0.01
    probe: int = 512

    CONSTRAINTS = {
        "every": Int(1, STEPS_MAX),
        "floor": Int(1, STEPS_MAX),
        "ceiling": Int(1, STEPS_MAX),
        "window": Int(1),
        "share_tolerance": Number(low=0),
        "reconstruction_tolerance": Number(low=0),
        "probe": Int(1),
    }

    def __post_init__(self) -> None:
        validate_fields(self, self.CONSTRAINTS)
        if self.floor > self.ceiling:
            raise ParameterError(f"AutoStop.floor must be <= ceiling ({self.ceiling}), got {self.floor}")


@dataclass
class AdversarialConfig:
    """Training settings of one adversarial autoencoder (defaults: docs/METHOD-NOTES.md / the paper).

    alpha: weight of the adversarial BCE term. lr: Adam learning rate, or "auto": the paper's
    0.01 (PAPER_LR) for the paper's MLPAutoencoder, 0.001 (CONV_LR) for every other autoencoder
    (against zoo classifiers the convolutional family collapsed to constant outputs at 0.01, which
    was tuned for the paper's MLP; benchmarks/RESULTS.md). A run resolves "auto" to the number
    before anything is keyed, so run folders record the rate that trained. step_size, gamma: StepLR,
    stepped every iteration. steps: training iterations, each on a random batch of ``batch_size``
    distinct inputs (the whole set when it is smaller), or "auto": as many as help, by the
    stopping rule ``auto`` (:class:`AutoStop`; its settings matter only then). seed: seeds weight initialisation (when
    the autoencoder is built here), dropout and batch sampling. infer_batch_size: batch size of
    the inference passes. log_every: history records the mean loss of every window of this many
    steps. collapse_std: outputs whose mean per-feature std across samples is below this are
    diagnosed as collapsed (all nearly identical). compile: run the loss (autoencoder + classifier,
    forward and backward) through torch.compile -- True, False, or "auto" (when steps >= 1000, where
    the one-time compile, paid once per architecture pair and process, is repaid); the same loss,
    optimiser and schedule, with float32 sums reassociated (loss curves equal to eager within float
    tolerance, tests/test_adversarial.py). Falls back to eager with one warning if compiling fails.
    channels_last: train against a copy of the classifier in the channels_last memory format: its nn.MaxPool2d layers of fewer than 16 channels computed by
    deepdig_fast's max_pool2d kernel (ATen's values and gradients bit for bit), its image
    convolutions of one input channel taking train_ops.conv2d's input gradient, and on a CPU the loss's
    BCEs from train_ops.binary_cross_entropy -- True, False, or "auto" (on a CPU, when the classifier is an
    nn.Module with 2-d convolutions: a step at the paper's settings against the MNIST CNN takes
    about 0.55 of the contiguous eager step's time, benchmarks/RESULTS.md). The classifier itself
    is never modified; the same loss, with float sums reassociated (loss curves equal within float
    tolerance, tests/test_adversarial.py). "auto" compile stays eager when the copy is
    channels_last on a CPU (compiled, it was slower than eager there).
    See :func:`training_layout`.
    on_collapse: what a training does when its outputs collapse. Every ``auto.every`` steps (fixed
    step counts too) the autoencoder is applied to the stopping rule's probe of its inputs; when
    its outputs are nearly identical (mean per-feature std below ``collapse_std``), or none is
    classified as the target any more after some were, at two checks in a row, the training has
    collapsed: "stop" ends it there, with the diagnosis as its stop reason
    (the default: a collapsed autoencoder is diagnosed at the collapse, not after every remaining
    step); "restore" ends it and puts back the weights of the last check before the collapse
    whose outputs were not collapsed (none: as "stop") -- an autoencoder trained for fewer steps
    than asked, so not the paper's recipe; "continue" trains on to the end, as the paper does.
    A training that never collapses is the same whatever the setting (the checks read its
    weights only). Vectorised joint trainings are diagnosed after training only.
    """

    alpha: float = 0.8
    lr: float | str = "auto"
    step_size: int = 1000
    gamma: float = 0.95
    steps: int | str = 5000
    batch_size: int = 128
    seed: int = 0
    infer_batch_size: int = 4096
    log_every: int = 100
    collapse_std: float = 1e-3
    compile: bool | str = "auto"
    channels_last: bool | str = "auto"
    auto: AutoStop = field(default_factory=AutoStop)
    on_collapse: str = "stop"

    def __post_init__(self) -> None:
        if isinstance(self.auto, dict):
            self.auto = AutoStop(**self.auto)
        if not isinstance(self.auto, AutoStop):
            raise ParameterError(f"AdversarialConfig.auto must be an AutoStop, got {type(self.auto).__name__}")
        self.validate()

    @property
    def step_limit(self) -> int:
        """The most steps the training takes: ``steps``, or the auto rule's ceiling."""
        return self.auto.ceiling if self.steps == "auto" else int(self.steps)

    CONSTRAINTS = {
        "alpha": Number(low=0),
        "lr": _Lr(),
        "step_size": Int(1),
        "gamma": Number(0, 1, "right"),
        "steps": _Steps(),
        "batch_size": Int(1),
        "seed": Int(0, SEED_MAX),
        "infer_batch_size": Int(1),
        "log_every": Int(1),
        "collapse_std": Number(low=0),
        "compile": _Tristate(),
        "channels_last": _Tristate(),
        "on_collapse": Options(ON_COLLAPSE),
    }

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        validate_fields(self, self.CONSTRAINTS)


@dataclass
class PairConfig:
    """Settings of one pair run (defaults: the paper's).

    adversarial: training of the four autoencoders (AdversarialConfig: alpha 0.8, Adam 0.01,
    StepLR(1000, 0.95), 5000 steps, batch 128; its seed stays 0: each training seeds itself from
    seed). beta, max_steps, method: the engine's (see
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
    (when the classifier and autoencoder pickle), else sequential; with adversarial.steps "auto"
    each training stops on its own, so "auto" is never vectorized. The mode enters the components'
    keys. retry_collapsed: retrain a collapsed autoencoder (component I or II) with the next seed
    up to this many times; every try is recorded (results.json: "tries").
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
    retry_collapsed: int = 0

    CONSTRAINTS = {
        "retry_collapsed": Int(0, RETRIES_MAX),
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
        if self.adversarial.seed != AdversarialConfig.seed:
            # every training seeds itself from PairConfig.seed and its stage's name
            raise ParameterError(
                f"PairConfig.adversarial.seed is not used (got {self.adversarial.seed}): every autoencoder "
                f"training seeds itself from PairConfig.seed; set seed= there"
            )
        validate_fields(self, self.CONSTRAINTS)
        if self.engine_batch_size != "auto":
            Optional(Int(1, BATCH_MAX)).check(self.engine_batch_size, "PairConfig.engine_batch_size (or 'auto')")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class AtlasConfig:
    """Settings of an atlas (defaults: the paper's where it has one).

    strategy: "auto" (per-target when the atlas covers more than 3 classes, else pairwise),
        "per-target", "per-target-refine" or "pairwise" (see deepdig_fast.generators).
    refine_steps: with "per-target-refine", the steps of each direction's component-II
        autoencoder, which starts from the weights of G_s and trains on the direction's
        adversarial samples with the paper's loss and optimiser (docs/ATLAS.md).
    adversarial: training of every autoencoder (AdversarialConfig; its seed stays 0, each
        unit seeds itself from seed). beta, max_steps, method: the engine's (refine_borderline).
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
    retry_collapsed: retrain a collapsed generator (or pairwise AE_II) with the next seed up to this
        many times; every try is recorded (atlas.json's generators: "tries").
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
    retry_collapsed: int = 0
    refine_steps: int = 500

    CONSTRAINTS = {
        "retry_collapsed": Int(0, RETRIES_MAX),
        "refine_steps": Int(1, STEPS_MAX),
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
        if self.adversarial.seed != AdversarialConfig.seed:
            # every training seeds itself from AtlasConfig.seed and its stage's name
            raise ParameterError(
                f"AtlasConfig.adversarial.seed is not used (got {self.adversarial.seed}): every autoencoder "
                f"training seeds itself from AtlasConfig.seed; set seed= there"
            )
        validate_fields(self, self.CONSTRAINTS)

    def resolved_strategy(self, n_classes: int) -> str:
        if self.strategy != "auto":
            return self.strategy
        return "per-target" if n_classes > 3 else "pairwise"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
