"""Components I and II: apply a trained generator, keep what crosses, count and diagnose a
collapse (apply_generator), and the two components built on it."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepdig_fast.adversarial.autoencoders import AutoencoderSpec, Classifier, apply_autoencoder
from deepdig_fast.adversarial.config import AdversarialConfig, TrainHistory
from deepdig_fast.adversarial.training import check_class, check_unit_range, train_adversarial_autoencoder
from deepdig_fast.forward import check_inputs, predict
from deepdig_fast.precision import full_fp32
from deepdig_fast.validation import check_int


def _frac(num: int, den: int) -> float:
    return num / den if den else float("nan")


@dataclass
class SplitStats:
    """Counts for one split of inputs run through a generator pushing class ``from`` to ``to``.

    n_inputs: inputs run. inputs_correct: inputs with f(x) = from. outputs_target: outputs with
    f(x') = to (whatever the input's prediction). kept: both hold (the adversarial samples).
    """

    n_inputs: int
    inputs_correct: int
    outputs_target: int
    kept: int

    @property
    def accuracy(self) -> float:
        """Share of inputs f classifies as the source class (NaN when there are none)."""
        return _frac(self.inputs_correct, self.n_inputs)

    @property
    def fraction_of_correct(self) -> float:
        """kept / inputs_correct (NaN when f classifies no input correctly)."""
        return _frac(self.kept, self.inputs_correct)

    @property
    def fraction_of_all(self) -> float:
        """kept / n_inputs."""
        return _frac(self.kept, self.n_inputs)


@dataclass
class ComponentOneResult:
    """Output of :func:`component_one` (adversarial set A(source→target)).

    adversarial: kept outputs x' ``[K, *in_shape]`` with f(x) = source and f(x') = target.
    source_index: ``[K]`` int64 indices into ``x_train_s`` of their originals.
    train / test: :class:`SplitStats` of the train split and (when given) the test split.
    collapse: human-readable diagnosis when the generator failed (nothing kept, no output classified
    as target, outputs nearly identical, ...), else None. tries: one record per training (seed,
    steps, why it stopped, collapse), more than one when a collapsed generator was retrained.
    """

    source: int
    target: int
    autoencoder: nn.Module
    adversarial: torch.Tensor
    source_index: torch.Tensor
    train: SplitStats
    test: SplitStats | None
    history: TrainHistory | None
    collapse: str | None
    tries: list[dict] = field(default_factory=list)

    @property
    def originals_correct(self) -> int:
        """Number of training inputs with f(x) = source."""
        return self.train.inputs_correct

    @property
    def fraction_of_correct(self) -> float:
        """Train: kept / correctly classified originals."""
        return self.train.fraction_of_correct

    @property
    def fraction_of_all(self) -> float:
        """Train: kept / all class-source inputs."""
        return self.train.fraction_of_all

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy of f on the test originals (None without a test split)."""
        return None if self.test is None else self.test.accuracy

    @property
    def test_fraction_of_correct(self) -> float | None:
        return None if self.test is None else self.test.fraction_of_correct

    @property
    def test_fraction_of_all(self) -> float | None:
        return None if self.test is None else self.test.fraction_of_all


@dataclass
class ComponentTwoResult:
    """Output of :func:`component_two`: pairs straddling the source|target boundary.

    a: kept adversarial inputs ``[P, *in_shape]`` (f(a) = target). a2: their images a'' = AE_II(a)
    ``[P, *in_shape]`` (f(a'') = source). index: ``[P]`` int64 indices into the ``adversarial``
    argument. stats: :class:`SplitStats` with from = target, to = source. collapse: diagnosis or None.
    tries: as ComponentOneResult's.

    For the engine's bisection (end a of class ``source``, end b of class ``target``) pass
    ``a=result.a2, b=result.a``.
    """

    source: int
    target: int
    autoencoder: nn.Module
    a: torch.Tensor
    a2: torch.Tensor
    index: torch.Tensor
    stats: SplitStats
    history: TrainHistory | None
    collapse: str | None
    tries: list[dict] = field(default_factory=list)

    @property
    def n_pairs(self) -> int:
        return self.stats.kept

    @property
    def n_inputs(self) -> int:
        return self.stats.n_inputs

    @property
    def fraction(self) -> float:
        """Pairs / adversarial inputs."""
        return self.stats.fraction_of_all


def _class_histogram(labels: torch.Tensor, top: int = 3) -> str:
    counts = torch.bincount(labels)
    order = torch.argsort(counts, descending=True)[:top]
    return ", ".join(f"class {int(c)}: {int(counts[c])}" for c in order if counts[c] > 0)


def _diagnose(
    name: str,
    from_cls: int | None,
    to_cls: int,
    outputs: torch.Tensor,
    inputs: torch.Tensor,
    pred_in: torch.Tensor,
    pred_out: torch.Tensor,
    stats: SplitStats,
    collapse_std: float,
) -> str | None:
    """Reasons the generator `name` (e.g. "1→2 generator") failed, joined by '; ' (None when it did
    not). from_cls None: the inputs come from several classes and are all counted as correct."""
    n = stats.n_inputs
    reasons: list[str] = []
    if stats.outputs_target == 0:
        reasons.append(
            f"no output of the {name} is classified as {to_cls} (0 of {n}); "
            f"outputs are classified as {_class_histogram(pred_out)}"
        )
    if stats.inputs_correct == 0 and from_cls is not None:
        reasons.append(
            f"the classifier assigns none of the {n} inputs to class {from_cls} "
            f"(inputs are classified as {_class_histogram(pred_in)})"
        )
    if stats.kept == 0 and stats.outputs_target > 0 and stats.inputs_correct > 0:
        reasons.append(
            f"{stats.outputs_target} of {n} outputs are classified as {to_cls} but none of them comes "
            f"from one of the {stats.inputs_correct} inputs classified as {from_cls}"
        )
    if n >= 2:
        out_std = float(outputs.reshape(n, -1).std(dim=0).mean())
        if out_std < collapse_std:
            in_std = float(inputs.reshape(n, -1).std(dim=0).mean())
            reasons.append(
                f"the {name}'s outputs are nearly identical (mean per-feature std across "
                f"outputs {out_std:.2e} < {collapse_std:g}; inputs: {in_std:.2e})"
            )
    if not reasons:
        return None
    return f"{name} collapsed: " + "; ".join(reasons)


@dataclass
class GeneratorOutput:
    """A generator applied to inputs and classified (:func:`apply_generator`), all on the inputs'
    device: outputs ``[N, *in_shape]``, pred_in / pred_out ``[N]`` int64 predicted classes of the
    inputs and outputs, keep ``[N]`` bool (input predicted from_cls and output predicted to_cls),
    index ``[K]`` int64 = keep.nonzero(), stats (:class:`SplitStats`), collapse (diagnosis or None)."""

    outputs: torch.Tensor
    pred_in: torch.Tensor
    pred_out: torch.Tensor
    keep: torch.Tensor
    index: torch.Tensor
    stats: SplitStats
    collapse: str | None

    @property
    def kept(self) -> torch.Tensor:
        """The kept outputs ``[K, *in_shape]``."""
        return self.outputs.index_select(0, self.index)


@full_fp32()
def apply_generator(
    classifier: Classifier,
    generator: nn.Module,
    x: torch.Tensor,
    from_cls: int | None,
    to_cls: int,
    *,
    pred_in: torch.Tensor | None = None,
    batch_size: int = 4096,
    collapse_std: float = 1e-3,
    name: str | None = None,
) -> GeneratorOutput:
    """Apply a trained generator to ``x``, classify inputs and outputs, keep, count and diagnose.

    The one sequence behind components I and II and the atlas's directions and generators: outputs
    = generator(x); keep where f(x) = from_cls (any class when from_cls is None) and f(output) =
    to_cls; a collapse diagnosis (nothing classified to_cls, no correct input, nothing kept, or
    nearly identical outputs). ``pred_in`` ``[N]`` skips classifying the inputs when their
    predicted classes are known. ``name`` words the diagnosis (default "<from>→<to> generator").
    """
    x = check_inputs(x, "x")
    outputs = apply_autoencoder(generator, x, batch_size)
    if pred_in is None:
        pred_in = predict(classifier, x, batch_size).argmax(dim=1)
    pred_in = pred_in.to(x.device)
    pred_out = predict(classifier, outputs, batch_size).argmax(dim=1)
    correct = torch.ones_like(pred_in, dtype=torch.bool) if from_cls is None else pred_in == from_cls
    hit = pred_out == to_cls
    keep = correct & hit
    stats = SplitStats(int(x.shape[0]), int(correct.sum()), int(hit.sum()), int(keep.sum()))
    label = name or f"{from_cls}→{to_cls} generator"
    collapse = _diagnose(label, from_cls, to_cls, outputs, x, pred_in, pred_out, stats, collapse_std)
    return GeneratorOutput(outputs, pred_in, pred_out, keep, keep.nonzero().squeeze(1), stats, collapse)


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of retry `attempt` (1, 2, ...) of a training whose seed is `seed`."""
    return (seed * 1_000_003 + 7919 * attempt) % (2**31 - 1)


def train_until_sound(
    train: Callable[[AdversarialConfig], tuple[nn.Module, TrainHistory | None]],
    apply: Callable[[nn.Module], GeneratorOutput],
    config: AdversarialConfig,
    retries: int,
    first: tuple[nn.Module, TrainHistory | None] | None = None,
) -> tuple[nn.Module, TrainHistory | None, GeneratorOutput, list[dict]]:
    """Train a generator (``first`` when it is already trained), apply it, and while it collapsed
    (GeneratorOutput.collapse) retrain it with the next seed (retry_seed), at most ``retries``
    times. Returns the last (autoencoder, history, output) and one record per try: its seed,
    steps, why its training stopped and its collapse diagnosis (None when sound)."""
    check_int(retries, "retries", low=0)
    tries: list[dict] = []
    cfg = config
    for attempt in range(retries + 1):
        if attempt:
            cfg = dataclasses.replace(config, seed=retry_seed(config.seed, attempt))
        ae, history = first if attempt == 0 and first is not None else train(cfg)
        out = apply(ae)
        tries.append(
            {
                "seed": cfg.seed,
                "steps": None if history is None else history.steps,
                "stop": None if history is None else history.stop_reason,
                "collapse": out.collapse,
            }
        )
        if out.collapse is None:
            break
    return ae, history, out, tries


def component_one(
    classifier: Classifier,
    x_train_s: torch.Tensor,
    source: int,
    target: int,
    config: AdversarialConfig | None = None,
    *,
    x_test_s: torch.Tensor | None = None,
    autoencoder: AutoencoderSpec = None,
    progress: bool = False,
    trained: tuple[nn.Module, TrainHistory | None] | None = None,
    pred_in: torch.Tensor | None = None,
    retries: int = 0,
) -> ComponentOneResult:
    """DeepDIG Component I: adversarial set A(source→target).

    Trains AE_I on ``x_train_s`` ``[N, *in_shape]`` (all training inputs labelled ``source``,
    unfiltered, values in [0, 1]) with target ``target``, runs it over ``x_train_s`` and keeps
    x' = AE_I(x) where f(x) = source and f(x') = target. ``x_test_s`` ``[M, *in_shape]``, when
    given, is only reported (``result.test``). See :func:`train_adversarial_autoencoder` for
    ``config``, ``autoencoder`` and ``progress``. ``trained``: an ``(autoencoder, history)`` already
    trained on ``x_train_s`` towards ``target`` (e.g. by train_adversarial_autoencoders, or a
    generator of the atlas; history None when it was trained by another stage), used instead of
    training one. ``pred_in`` ``[N]``: the classifier's predicted classes of ``x_train_s`` when
    they are known (skips that forward).

    ``retries``: retrain a collapsed generator with the next seed up to this many times
    (train_until_sound; every try in ``result.tries``).

    When the generator collapsed (see :class:`ComponentOneResult`) ``result.collapse`` says how and
    a warning with the same text is emitted; the (possibly empty) set is still returned.
    """
    source = check_class(source, "source")
    target = check_class(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    cfg = AdversarialConfig() if config is None else config
    x_train_s = check_inputs(x_train_s, "x_train_s")
    if x_train_s.shape[0] == 0:
        raise ValueError("x_train_s must contain at least one input of the source class, got none")
    check_unit_range(x_train_s, "x_train_s")
    if x_test_s is not None:
        x_test_s = check_inputs(x_test_s, "x_test_s")
        if x_test_s.shape[1:] != x_train_s.shape[1:]:
            raise ValueError(
                f"x_test_s must be shaped [M, {', '.join(map(str, x_train_s.shape[1:]))}] like x_train_s, "
                f"got {tuple(x_test_s.shape)}"
            )
        if x_test_s.device != x_train_s.device:
            raise ValueError(f"x_test_s must be on {x_train_s.device} like x_train_s, got {x_test_s.device}")

    kw: dict[str, Any] = dict(batch_size=cfg.infer_batch_size, collapse_std=cfg.collapse_std)
    ae, history, train, tries = train_until_sound(
        lambda c: train_adversarial_autoencoder(
            classifier, x_train_s, target, c, autoencoder=autoencoder, progress=progress
        ),
        lambda g: apply_generator(classifier, g, x_train_s, source, target, pred_in=pred_in, **kw),
        cfg,
        retries,
        first=trained,  # trained elsewhere on the same inputs (several at once, or an atlas unit)
    )
    test_stats = None
    if x_test_s is not None and x_test_s.shape[0] > 0:
        test_stats = apply_generator(classifier, ae, x_test_s, source, target, **kw).stats
    if train.collapse is not None:
        warnings.warn(train.collapse, RuntimeWarning, stacklevel=2)
    return ComponentOneResult(
        source=source,
        target=target,
        autoencoder=ae,
        adversarial=train.kept,
        source_index=train.index,
        train=train.stats,
        test=test_stats,
        history=history,
        collapse=train.collapse,
        tries=tries,
    )


def component_two(
    classifier: Classifier,
    adversarial: torch.Tensor,
    source: int,
    target: int,
    config: AdversarialConfig | None = None,
    *,
    autoencoder: AutoencoderSpec = None,
    progress: bool = False,
    trained: tuple[nn.Module, TrainHistory | None] | None = None,
    pred_in: torch.Tensor | None = None,
    retries: int = 0,
) -> ComponentTwoResult:
    """DeepDIG Component II: boundary-straddling pairs for the source→target direction.

    Trains a fresh AE_II on ``adversarial`` ``[K, *in_shape]`` (A(source→target) from
    :func:`component_one`) with target ``source``, computes a'' = AE_II(a) and keeps the pairs with
    f(a) = target and f(a'') = source. Pass a new module or a factory as ``autoencoder`` for a custom
    architecture (None builds :func:`default_autoencoder`, the same shape component I uses by default).
    ``trained``: an ``(autoencoder, history)`` already trained on ``adversarial`` towards ``source``
    (or a generator trained by another stage, history None). ``pred_in`` ``[K]``: the predicted
    classes of ``adversarial`` when they are known.

    Raises ValueError when ``adversarial`` is empty. Collapse is reported, and ``retries`` retrain,
    as in component_one.
    """
    source = check_class(source, "source")
    target = check_class(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    adversarial = check_inputs(adversarial, "adversarial")
    if adversarial.shape[0] == 0:
        raise ValueError(
            f"adversarial is empty: component I produced no adversarial samples for {source}→{target}, "
            f"so component II has nothing to train on"
        )
    cfg = AdversarialConfig() if config is None else config
    kw: dict[str, Any] = dict(pred_in=pred_in, batch_size=cfg.infer_batch_size, collapse_std=cfg.collapse_std)
    ae, history, back, tries = train_until_sound(
        lambda c: train_adversarial_autoencoder(
            classifier, adversarial, source, c, autoencoder=autoencoder, progress=progress
        ),
        lambda g: apply_generator(classifier, g, adversarial, target, source, **kw),
        cfg,
        retries,
        first=trained,
    )
    if back.collapse is not None:
        warnings.warn(back.collapse, RuntimeWarning, stacklevel=2)
    return ComponentTwoResult(
        source=source,
        target=target,
        autoencoder=ae,
        a=adversarial.index_select(0, back.index),
        a2=back.kept,
        index=back.index,
        stats=back.stats,
        history=history,
        collapse=back.collapse,
        tries=tries,
    )
