"""DeepDIG Components I and II: adversarial autoencoders that push inputs across a decision boundary.

Component I trains an autoencoder AE_I on the training inputs of a source class s so that its
outputs x' = AE_I(x) stay close to x (reconstruction BCE) while the classifier f assigns them to a
target class t (BCE between softmax(f(x')) and onehot(t)). The outputs with f(x) = s and f(x') = t
form the adversarial set A(s→t).

Component II trains a fresh autoencoder AE_II of the same shape on A(s→t) with target s; the pairs
(a, a'') with a'' = AE_II(a), f(a) = t and f(a'') = s straddle the s|t boundary and feed the
bisection of Component III.

Loss (docs/METHOD-NOTES.md, both terms ``torch.nn.BCELoss`` with mean reduction)::

    L = BCE(x', x) + alpha * BCE(softmax(f(x')), onehot(target))

Shapes: the classifier maps ``[N, *in_shape] -> [N, C]`` logits; autoencoders map
``[N, *in_shape] -> [N, *in_shape]`` with outputs in (0, 1). All inputs must lie in [0, 1].
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from deepdig_fast import ops
from deepdig_fast.budget import FORWARD_ELEMENTS, TRAIN_ELEMENTS, fit_batch
from deepdig_fast.data import as_unit
from deepdig_fast.fast import unwrap
from deepdig_fast.hooks import eval_mode, inference, private
from deepdig_fast.precision import full_fp32
from deepdig_fast.progress import progress_bar
from deepdig_fast.train_worker import TrainingPool
from deepdig_fast.validation import (
    SEED_MAX,
    STEPS_MAX,
    Int,
    Number,
    ParameterError,
    check_class_id,
    check_input_dtype,
    check_int,
    validate_fields,
)

__all__ = [
    "MLPAutoencoder",
    "ConvAutoencoder",
    "default_autoencoder",
    "conv_plan",
    "autoencoder_key",
    "autoencoder_from_spec",
    "AdversarialConfig",
    "TrainHistory",
    "JOINT_TRAINING",
    "JointTraining",
    "training_layout",
    "training_key",
    "joint_training_mode",
    "train_jointly",
    "train_adversarial_autoencoders",
    "train_in_processes",
    "can_train_in_processes",
    "train_one_thread",
    "train_adversarial_autoencoder",
    "apply_autoencoder",
    "predict",
    "SplitStats",
    "GeneratorOutput",
    "apply_generator",
    "build_autoencoder",
    "ComponentOneResult",
    "ComponentTwoResult",
    "component_one",
    "component_two",
]

Classifier = Callable[[torch.Tensor], torch.Tensor]
AutoencoderSpec = nn.Module | Callable[[], nn.Module] | None


# --------------------------------------------------------------------------------------------------
# Autoencoders
# --------------------------------------------------------------------------------------------------
def _check_shape(in_shape: Sequence[int], name: str = "in_shape") -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in in_shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive ints, got {in_shape!r}") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {in_shape!r}")
    return shape


def _dropout(p: float) -> nn.Module:
    # nn.Identity at p = 0 keeps the forward free of dropout calls; the module indices (and so the
    # state_dict keys) are the same for every p.
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _check_dropout(dropout: float) -> float:
    if not (0.0 <= float(dropout) < 1.0):
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


class MLPAutoencoder(nn.Module):
    """The paper's MNIST autoencoder: Linear(D→hidden), ReLU | Linear(hidden→bottleneck), ReLU,
    Linear(bottleneck→D), Sigmoid, with D = prod(in_shape).

    ``encoder`` holds the part before the paper's "|" and ``decoder`` the rest; the narrowest layer
    has ``bottleneck`` units. Dropout (default 0, as in the paper) follows each ReLU.

    forward: ``[N, *in_shape] -> [N, *in_shape]``, values in (0, 1).
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        hidden: int = 100,
        bottleneck: int = 50,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_shape = _check_shape(in_shape)
        if int(hidden) <= 0:
            raise ValueError(f"hidden must be a positive int, got {hidden!r}")
        if int(bottleneck) <= 0:
            raise ValueError(f"bottleneck must be a positive int, got {bottleneck!r}")
        p = _check_dropout(dropout)
        d = math.prod(self.in_shape)
        self.encoder = nn.Sequential(nn.Linear(d, int(hidden)), nn.ReLU(), _dropout(p))
        self.decoder = nn.Sequential(
            nn.Linear(int(hidden), int(bottleneck)),
            nn.ReLU(),
            _dropout(p),
            nn.Linear(int(bottleneck), d),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return self.decoder(self.encoder(x.reshape(n, -1))).reshape(n, *self.in_shape)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder with a real (under-complete) bottleneck for image inputs.

    Encoder: Conv3x3(C→c0) + ReLU, then one stride-2 Conv4x4 + ReLU per entry of ``channels``
    (each halves H and W), then Conv1x1(→code_channels) + ReLU. Decoder mirrors it with stride-2
    ConvTranspose4x4 layers and ends in Conv3x3(→C) + Sigmoid.

    With the defaults and a 3×32×32 input: 32×32 → 16×16 (32 ch) → 8×8 (64 ch) → code 8×8×8
    = 512 values, 6× fewer than the 3072 input values. ``code_shape`` / ``code_size`` give the
    bottleneck for the configured input.

    H and W must be divisible by 2**len(channels), unless ``pad=True``: then the input is padded
    (replicating its border) up to the next multiple and the output cropped back, so any size
    works; the padding is done in ``forward`` and adds no parameters. :meth:`for_shape` picks the
    depth, widths and code size for an input shape (the family ``default_autoencoder`` uses).

    forward: ``[N, C, H, W] -> [N, C, H, W]``, values in (0, 1).
    """

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 32, 32),
        channels: Sequence[int] = (32, 64),
        code_channels: int = 8,
        dropout: float = 0.0,
        pad: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = _check_shape(in_shape)
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W) for ConvAutoencoder, got {in_shape!r}")
        chans = tuple(int(c) for c in channels)
        if not chans or any(c <= 0 for c in chans):
            raise ValueError(f"channels must be a non-empty sequence of positive ints, got {channels!r}")
        if int(code_channels) <= 0:
            raise ValueError(f"code_channels must be a positive int, got {code_channels!r}")
        p = _check_dropout(dropout)
        c, h, w = self.in_shape
        factor = 2 ** len(chans)
        if (h % factor or w % factor) and not pad:
            raise ValueError(
                f"in_shape {self.in_shape}: H and W must be divisible by {factor} "
                f"(2**len(channels)) for ConvAutoencoder, or pass pad=True"
            )
        ph, pw = -h % factor, -w % factor
        self.channels, self.code_channels, self.dropout, self.pad = chans, int(code_channels), p, bool(pad)
        # F.pad order (left, right, top, bottom); all zero when the size divides
        self._padding = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        self.code_shape = (int(code_channels), (h + ph) // factor, (w + pw) // factor)
        self.code_size = math.prod(self.code_shape)

        enc: list[nn.Module] = [nn.Conv2d(c, chans[0], 3, padding=1), nn.ReLU()]
        prev = chans[0]
        for ch in chans:
            enc += [nn.Conv2d(prev, ch, 4, stride=2, padding=1), nn.ReLU(), _dropout(p)]
            prev = ch
        enc += [nn.Conv2d(prev, int(code_channels), 1), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [nn.Conv2d(int(code_channels), chans[-1], 3, padding=1), nn.ReLU()]
        prev = chans[-1]
        for ch in reversed(chans):
            dec += [nn.ConvTranspose2d(prev, ch, 4, stride=2, padding=1), nn.ReLU(), _dropout(p)]
            prev = ch
        dec += [nn.Conv2d(prev, c, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*dec)

    @classmethod
    def for_shape(cls, in_shape: Sequence[int], dropout: float = 0.0) -> ConvAutoencoder:
        """The member of the scaling family for ``in_shape`` (C, H, W); see :func:`conv_plan`."""
        return cls(_check_shape(in_shape), dropout=dropout, **conv_plan(in_shape))

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this architecture."""
        return {
            "in_shape": list(self.in_shape),
            "channels": list(self.channels),
            "code_channels": self.code_channels,
            "dropout": self.dropout,
            "pad": self.pad,
        }

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``[N, *code_shape]`` of ``x`` ``[N, C, H, W]`` (padded first when needed)."""
        if any(self._padding):
            x = F.pad(x, self._padding, mode="replicate")
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self._padding):
            return self.decoder(self.encoder(x))
        y = self.decoder(self.encode(x))
        left, _, top, _ = self._padding
        h, w = x.shape[-2:]
        return y[..., top : top + h, left : left + w]


#: the scaling family's settings (docs/METHOD-NOTES.md, "Autoencoders for colour images")
CONV_MIN_GRID = 7  # stride-2 stages while the code grid's shorter side stays >= this
CONV_BASE_CHANNELS = 32  # channels of the first stage; doubled per stage ...
CONV_MAX_CHANNELS = 256  # ... up to this
CONV_MIN_RATIO = 6  # code at least this many times smaller than the input ...
CONV_MAX_CODE_CHANNELS = 64  # ... with at most this many code channels


def conv_plan(in_shape: Sequence[int]) -> dict[str, Any]:
    """ConvAutoencoder settings for inputs shaped (C, H, W): channels, code_channels and pad.

    * stages k: as many stride-2 halvings as keep the shorter side of the code grid at >= 7 px
      (at least one): 28 and 32 px get 2 (a 7×7 / 8×8 grid), 64 px 3, 96 px 3 (12×12), 224 px 5
      (7×7);
    * channels: 32 · 2**i for stage i, at most 256;
    * code_channels: the most that keep the code at least 6× smaller than the input (at least 1,
      at most 64), so the ratio input/code is 6 for CIFAR-sized images and grows with the
      resolution once the cap is reached (48× at 3×224×224: code 64×7×7 = 3136 values for 150528);
    * pad: True when H or W is not divisible by 2**k (replicate-padded, output cropped).

    For 3×32×32 this is exactly ``ConvAutoencoder()``'s defaults, so existing checkpoints and
    results keep their architecture and state_dict keys.
    """
    shape = _check_shape(in_shape)
    if len(shape) != 3:
        raise ValueError(f"in_shape must be (C, H, W) for a convolutional autoencoder, got {in_shape!r}")
    c, h, w = shape
    k = 1
    while min(h, w) / 2 ** (k + 1) >= CONV_MIN_GRID:
        k += 1
    channels = [min(CONV_BASE_CHANNELS * 2**i, CONV_MAX_CHANNELS) for i in range(k)]
    gh, gw = -(-h // 2**k), -(-w // 2**k)
    code = (c * h * w) // (CONV_MIN_RATIO * gh * gw)
    code = max(1, min(code, CONV_MAX_CODE_CHANNELS))
    return {"channels": channels, "code_channels": code, "pad": bool(h % 2**k or w % 2**k)}


def _default_plan(shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """("mlp" | "conv", constructor arguments) of the default autoencoder for ``shape``."""
    if len(shape) == 3 and not (shape[0] == 1 and shape[1] <= 28 and shape[2] <= 28):
        return "conv", {"in_shape": list(shape), **conv_plan(shape)}
    return "mlp", {"in_shape": list(shape)}


def default_autoencoder(in_shape: Sequence[int], dropout: float = 0.0) -> nn.Module:
    """The autoencoder DeepDIG uses for inputs shaped ``in_shape`` (without the batch dimension).

    The paper's :class:`MLPAutoencoder` for flat vectors and for 1-channel images of at most 28×28
    (MNIST, Fashion-MNIST); a :class:`ConvAutoencoder` of the scaling family (:func:`conv_plan`)
    for colour images and larger ones, at any size. Override it with ``autoencoder=`` (a module or
    a factory) or, on the command line, ``--autoencoder mlp|conv|module:factory``.
    """
    shape = _check_shape(in_shape)
    kind, kwargs = _default_plan(shape)
    if kind == "conv":
        return ConvAutoencoder(dropout=dropout, **kwargs)
    return MLPAutoencoder(dropout=dropout, **kwargs)


def autoencoder_key(spec: AutoencoderSpec, in_shape: Sequence[int]) -> str:
    """What identifies the autoencoder of ``spec`` in stage keys (a changed one recomputes stages).

    None (the default) is "default " plus the architecture it builds for ``in_shape``; a factory is
    named by its ``__qualname__`` (the spec's for :func:`autoencoder_from_spec`), anything else by
    its repr.
    """
    if spec is None:
        kind, kwargs = _default_plan(_check_shape(in_shape))
        return f"default {kind}{kwargs}"
    return str(getattr(spec, "__qualname__", repr(spec)))


def autoencoder_from_spec(spec: str, in_shape: Sequence[int]) -> Callable[[], nn.Module] | None:
    """A zero-argument autoencoder factory from a command-line spec, checked for ``in_shape``.

    ``"auto"`` returns None (:func:`default_autoencoder`); ``"mlp"`` the paper's
    :class:`MLPAutoencoder`; ``"conv"`` the :class:`ConvAutoencoder` of :func:`conv_plan`;
    ``"package.module:factory"`` or ``"path/file.py:factory"`` a callable that is given the input
    shape (a tuple such as (3, 224, 224)) and returns an nn.Module mapping ``[N, *in_shape]`` to the
    same shape with values in [0, 1]. The factory is built once here (under a private RNG) and run
    on one zero input, so a bad spec fails before any training. The returned factory's
    ``__qualname__`` names the spec (and for mlp/conv the architecture), which enters stage keys.
    """
    shape = _check_shape(in_shape)
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"autoencoder must be auto, mlp, conv or module:factory, got {spec!r}")
    spec = spec.strip()
    if spec == "auto":
        return None
    if spec == "mlp":
        build: Callable[[], nn.Module] = lambda: MLPAutoencoder(shape)
        name = f"mlp in_shape={list(shape)}"
    elif spec == "conv":
        if len(shape) != 3:
            raise ValueError(f"autoencoder conv needs image inputs (C, H, W), but the inputs are shaped {list(shape)}")
        build = lambda: ConvAutoencoder.for_shape(shape)
        name = f"conv in_shape={list(shape)} {conv_plan(shape)}"
    elif ":" in spec:
        from deepdig_fast.checkpoint import resolve_factory

        obj = resolve_factory(spec, "autoencoder")
        if not callable(obj):
            raise ValueError(
                f"autoencoder {spec!r} is a {type(obj).__name__}, expected a callable taking the input shape"
            )
        user = obj
        build = lambda: user(shape)
        name = spec
    else:
        raise ValueError(f"autoencoder must be auto, mlp, conv or module:factory, got {spec!r}")

    with torch.random.fork_rng(devices=[]):
        ae = build()
        if not isinstance(ae, nn.Module):
            raise TypeError(f"autoencoder {spec!r} returned {type(ae).__name__}, expected an nn.Module")
        with torch.no_grad(), eval_mode(ae):
            x = torch.zeros(1, *shape, dtype=next((p.dtype for p in ae.parameters()), torch.float32))
            try:
                out = ae(x)
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ValueError(
                    f"autoencoder {spec!r} does not accept inputs shaped {[1, *shape]}: {type(e).__name__}: {first}"
                ) from e
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, *shape):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"autoencoder {spec!r} must map inputs shaped {[1, *shape]} to the same shape, got {got}")

    def factory() -> nn.Module:
        return build()

    factory.__qualname__ = name
    return factory


# --------------------------------------------------------------------------------------------------
# Configuration and history
# --------------------------------------------------------------------------------------------------
#: "auto" compiles the training loss from this many steps on (the compile costs ~10-40 s on 2 cores)
COMPILE_MIN_STEPS = 1000


@dataclass(frozen=True)
class _Tristate:
    def check(self, value: Any, name: str) -> bool | str:
        if isinstance(value, bool) or value == "auto":
            return value
        raise ParameterError(f"{name} must be True, False or 'auto', got {value!r}")


@dataclass
class AdversarialConfig:
    """Training settings of one adversarial autoencoder (defaults: docs/METHOD-NOTES.md / the paper).

    alpha: weight of the adversarial BCE term. lr: Adam learning rate. step_size, gamma: StepLR,
    stepped every iteration. steps: training iterations, each on a random batch of ``batch_size``
    distinct inputs (the whole set when it is smaller). seed: seeds weight initialisation (when
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
    convolutions of one input channel taking ops.conv2d's input gradient, and on a CPU the loss's
    BCEs from ops.binary_cross_entropy -- True, False, or "auto" (on a CPU, when the classifier is an
    nn.Module with 2-d convolutions: a step at the paper's settings against the MNIST CNN takes
    about 0.55 of the contiguous eager step's time, benchmarks/RESULTS.md). The classifier itself
    is never modified; the same loss, with float sums reassociated (loss curves equal within float
    tolerance, tests/test_adversarial.py). "auto" compile stays eager when the copy is
    channels_last on a CPU (compiled, it was slower than eager there).
    See :func:`training_layout`.
    """

    alpha: float = 0.8
    lr: float = 0.01
    step_size: int = 1000
    gamma: float = 0.95
    steps: int = 5000
    batch_size: int = 128
    seed: int = 0
    infer_batch_size: int = 4096
    log_every: int = 100
    collapse_std: float = 1e-3
    compile: bool | str = "auto"
    channels_last: bool | str = "auto"

    def __post_init__(self) -> None:
        self.validate()

    CONSTRAINTS = {
        "alpha": Number(low=0),
        "lr": Number(0, None, "neither"),
        "step_size": Int(1),
        "gamma": Number(0, 1, "right"),
        "steps": Int(1, STEPS_MAX),
        "batch_size": Int(1),
        "seed": Int(0, SEED_MAX),
        "infer_batch_size": Int(1),
        "log_every": Int(1),
        "collapse_std": Number(low=0),
        "compile": _Tristate(),
        "channels_last": _Tristate(),
    }

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        validate_fields(self, self.CONSTRAINTS)


@dataclass
class TrainHistory:
    """Loss trace of one autoencoder training run.

    ``step[k]`` is the last step (1-based) of logging window k and ``loss[k]``,
    ``reconstruction[k]``, ``adversarial[k]`` the mean of the total loss and of its two BCE terms
    over that window. ``final_loss`` is the mean total loss of the last window; ``seconds`` the wall
    time of the training loop (a compile included); ``compiled`` whether the loss ran compiled;
    ``layout`` the memory format of the classifier it ran against ("contiguous" or "channels_last").
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    adversarial: list[float] = field(default_factory=list)
    final_loss: float = float("nan")
    seconds: float = 0.0
    steps: int = 0
    compiled: bool = False
    layout: str = "contiguous"


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _frozen(classifier: object) -> Iterator[None]:
    """Eval mode and requires_grad=False on the classifier's parameters; both restored afterwards.

    Gradients still flow through the classifier to its input, but none is computed for its weights.
    """
    with eval_mode(classifier):
        if not isinstance(classifier, nn.Module):
            yield
            return
        flags = [(p, p.requires_grad) for p in classifier.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)


def training_layout(config: AdversarialConfig, device: torch.device | str, classifier: Classifier) -> str:
    """The memory format of the classifier a training with ``config`` runs against on ``device``:
    "channels_last" or "contiguous". A function of the setting, the device and the classifier's
    modules -- never of a timing -- so it can enter stage keys.

    "channels_last" needs an nn.Module classifier with an nn.Conv2d (otherwise there is nothing to
    lay out: "contiguous", whatever the setting); then True gives it, False never, "auto" on a CPU.
    """
    classifier = unwrap(classifier)
    if config.channels_last is False or not isinstance(classifier, nn.Module):
        return "contiguous"
    if not any(isinstance(m, nn.Conv2d) for m in classifier.modules()):
        return "contiguous"
    if config.channels_last is True or torch.device(device).type == "cpu":
        return "channels_last"
    return "contiguous"


def training_key(config: AdversarialConfig, device: torch.device | str, classifier: Classifier) -> dict:
    """``config`` as it enters a stage key: its fields, with the ``channels_last`` setting replaced by
    the layout it resolves to here (``"layout"``: :func:`training_layout`)."""
    spec = dataclasses.asdict(config)
    spec.pop("channels_last")
    spec["layout"] = training_layout(config, device, classifier)
    return spec


# The max_pool2d kernel runs a training copy's pools of at most this many channels. ATen / kernel,
# forward + backward, channels_last: 1.5 at 10 channels; at 64 channels 1.0-1.4 with 2 threads
# (benchmarks/bench_max_pool2d.py) and 0.68 with 1: no clear gain from 16 on (the values are the
# same either way).
KERNEL_POOL_MAX_CHANNELS = 15


class _KernelMaxPool2d(nn.MaxPool2d):
    """An nn.MaxPool2d computed by deepdig_fast's max_pool2d kernel (ops.max_pool2d) for inputs of at
    most KERNEL_POOL_MAX_CHANNELS channels on a CPU, by nn.MaxPool2d's own forward otherwise: the
    same values and gradients bit for bit either way (tests/test_max_pool2d.py), so the choice is
    free. Inputs the kernel does not take (not 4-d, not float32 / 64, not on a CPU) go to
    nn.MaxPool2d's forward too. A subclass, so a model that reads its pools' attributes still
    finds them; the training copy's pools become one in place (:func:`_kernel_pools`)."""

    # a pool of a _KernelConv2d's output returns that output's gradient in NCHW planes (_PLANES_GRAD)
    grad_to_planes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare()

    def _prepare(self) -> None:
        # checked and normalised once: the forward (twice per training step) calls the raw op
        self._settings = ops.pool_settings(self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dim() == 4
            and x.shape[1] <= KERNEL_POOL_MAX_CHANNELS
            and x.dtype in (torch.float32, torch.float64)
            and x.device.type == "cpu"
        ):
            if self.grad_to_planes and getattr(x, _PLANES_GRAD, False) and x.requires_grad and torch.is_grad_enabled():
                return _PoolGradToPlanes.apply(x, self._settings)
            return torch.ops.deepdig_fast.max_pool2d(x, *self._settings)[0]
        return super().forward(x)


# Set on a _KernelConv2d's output (a tensor attribute): its gradient goes to ops.conv2d's input
# gradient, which takes NCHW operands, so a _KernelMaxPool2d that pools this very tensor returns
# its input gradient in NCHW planes instead of channels_last (_PoolGradToPlanes): one transposing
# copy of the largest gradient of the paper's CNN's step less. Only a layout: values bit for bit.
_PLANES_GRAD = "_deepdig_grad_to_planes"


class _PoolGradToPlanes(torch.autograd.Function):
    """ops.max_pool2d's output of a channels_last x whose gradient with respect to x comes back in
    NCHW planes: max_pool2d_backward returns its gradient in the layout of the x it is given and
    reads only that x's shape, dtype and layout, so the backward gives it an NCHW one (the CPU
    kernel then scatters the channels_last gradients straight into planes)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, settings: tuple) -> torch.Tensor:
        out, idx = torch.ops.deepdig_fast.max_pool2d(x, *settings)
        ctx.save_for_backward(idx)
        ctx.settings, ctx.shape = settings, x.shape
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (idx,) = ctx.saved_tensors
        planes = grad.new_empty(ctx.shape)  # NCHW, never read: the layout the gradient comes back in
        return torch.ops.deepdig_fast.max_pool2d_backward(grad, planes, idx, *ctx.settings), None


class _KernelConv2d(nn.Conv2d):
    """An nn.Conv2d whose input gradient on a CPU takes ops.conv2d's route (ATen's unfold + GEMM
    instead of oneDNN's data-gradient kernel: benchmarks/bench_conv2d.py); the forward is
    F.conv2d's, bit for bit. Inputs the op does not take (not 4-d, not float32 / 64, not on a CPU)
    go to nn.Conv2d's own forward. A subclass, so a model that reads its convolutions' attributes
    (a Hugging Face ViT reads its patch embedding's weight dtype) still finds them; the training
    copy's convolutions become one in place (:func:`_kernel_convs`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prepare()

    def _prepare(self) -> None:
        self._op_ok = _op_takes(self)  # anything else runs nn.Conv2d's forward
        self._op_stride = list(self.stride)
        self._op_padding = [] if isinstance(self.padding, str) else list(self.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._op_ok and x.dim() == 4 and x.dtype in (torch.float32, torch.float64) and x.device.type == "cpu":
            out = torch.ops.deepdig_fast.conv2d(x, self.weight, self.bias, self._op_stride, self._op_padding)
            setattr(out, _PLANES_GRAD, True)  # a pool of `out` may hand back NCHW gradients
            return out
        return super().forward(x)


def _op_takes(m: nn.Conv2d) -> bool:
    """Whether ops.conv2d computes convolution m: groups 1, dilation 1, zero padding given as numbers."""
    return (
        m.groups == 1 and tuple(m.dilation) == (1, 1) and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    )


def _takes_kernel_conv(m: nn.Conv2d) -> bool:
    """Whether the training copy gives convolution m ops.conv2d's input gradient: one input channel,
    where that gradient is faster than oneDNN's (with more input channels it is not:
    benchmarks/bench_conv2d.py, RESULTS.md "The ops"), and a convolution the op takes."""
    return m.in_channels == 1 and _op_takes(m)


def _kernel_convs(model: nn.Module) -> int:
    """Turn every plain nn.Conv2d of `model` (a private copy) that :func:`_takes_kernel_conv` into a
    _KernelConv2d, in place (every attribute stays); returns how many."""
    convs = [m for m in model.modules() if type(m) is nn.Conv2d and _takes_kernel_conv(m)]
    for m in convs:
        m.__class__ = _KernelConv2d
        cast(_KernelConv2d, m)._prepare()
    return len(convs)


def _kernel_pools(model: nn.Module) -> int:
    """Turn every plain nn.MaxPool2d of `model` (a private copy) into a _KernelMaxPool2d, in place
    (every attribute stays); returns how many."""
    pools = [m for m in model.modules() if type(m) is nn.MaxPool2d and not m.return_indices]
    for m in pools:
        m.__class__ = _KernelMaxPool2d
        cast(_KernelMaxPool2d, m)._prepare()
    return len(pools)


@contextlib.contextmanager
def _training_view(classifier: Classifier, layout: str) -> Iterator[tuple[Classifier, str]]:
    """(the classifier to train against, its layout): for "channels_last" a frozen eval-mode copy in
    that memory format whose max pools run through deepdig_fast's kernel (_KernelMaxPool2d) and
    whose image convolutions take ops.conv2d's input gradient (_KernelConv2d; the caller's model is
    not touched); otherwise the classifier itself, frozen (_frozen). A model that
    cannot be copied trains contiguous, with one warning."""
    if layout == "channels_last":
        try:
            view = copy.deepcopy(classifier)
        except Exception as e:
            warnings.warn(
                f"autoencoder training runs against the contiguous classifier: it could not be copied "
                f"for channels_last ({type(e).__name__})",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            assert isinstance(view, nn.Module)
            view.eval().requires_grad_(False)
            view.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (4-d tensors; not in the stubs)
            _kernel_pools(view)
            _kernel_convs(view)
            yield view, layout
            return
    with _frozen(classifier):
        yield classifier, "contiguous"


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's garbage collector off inside the block (a training loop), back as it was afterwards.

    A training step allocates a few hundred tracked objects (tensors, autograd nodes) and frees
    them all, in no reference cycle; yet they set off a collection every few steps that walks every
    object of the process, a measurable share of a small step (benchmarks/RESULTS.md, "Where a step
    goes"). Nothing is lost: cycles made inside wait for the next collection."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global CPU (and ``device``'s) RNG inside the block; restore both afterwards."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def _check_inputs(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    check_input_dtype(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must be shaped [N, *in_shape], got shape {tuple(x.shape)}")
    return x


def _check_unit_range(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        return
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must have values in [0, 1] (BCE reconstruction loss), got min {lo:g}, max {hi:g}")


def _check_class(value: object, name: str) -> int:
    return check_class_id(value, name)


def _check_classifier_device(classifier: object, device: torch.device) -> None:
    if isinstance(classifier, nn.Module):
        p = next(classifier.parameters(), None)
        if p is not None and p.device != device:
            raise ValueError(
                f"classifier parameters are on {p.device} but the inputs are on {device}; "
                f"move the classifier to {device} (everything runs on the inputs' device)"
            )


def build_autoencoder(spec: AutoencoderSpec, in_shape: tuple[int, ...]) -> nn.Module:
    """An autoencoder from a spec: None (default_autoencoder for in_shape), a module (returned as
    is) or a zero-argument factory (called)."""
    if spec is None:
        return default_autoencoder(in_shape)
    if isinstance(spec, nn.Module):
        return spec
    if callable(spec):
        ae = spec()
        if not isinstance(ae, nn.Module):
            raise TypeError(f"autoencoder factory must return an nn.Module, got {type(ae).__name__}")
        return ae
    raise TypeError(f"autoencoder must be None, an nn.Module or a zero-argument factory, got {type(spec).__name__}")


def _check_logits(out: object, n: int) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"classifier must return a logits tensor [N, C], got {type(out).__name__} "
            f"(wrap models that return tuples so they return only the logits)"
        )
    if out.dim() != 2 or out.shape[0] != n:
        raise ValueError(f"classifier must return logits shaped [N, C]; got {tuple(out.shape)} for N={n}")


def _check_batch_size(batch_size: object) -> int:
    return check_int(batch_size, "batch_size", low=1)


# --------------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------------
@full_fp32()
def predict(classifier: Classifier, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits ``[N, C]`` of ``classifier`` on ``x`` ``[N, *in_shape]``, in batches, without grad.

    An nn.Module classifier runs in eval mode; its own modes are restored afterwards. It sees
    copies of ``x``'s batches, so ``x`` is never modified. uint8 pixels (a data set's storage) are
    converted a batch at a time (data.as_unit).
    """
    pixels = isinstance(x, torch.Tensor) and x.dtype == torch.uint8
    x = x if pixels else _check_inputs(x, "x")
    bs = fit_batch(_check_batch_size(batch_size), x.shape[1:], FORWARD_ELEMENTS)  # bounded at any input size
    with inference(classifier):
        # max(N, 1): an empty x still gets one (empty) forward, which gives the logits' shape [0, C]
        outs = [
            classifier(as_unit(x[i : i + bs]) if pixels else private(x[i : i + bs]))
            for i in range(0, max(x.shape[0], 1), bs)
        ]
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    _check_logits(out, x.shape[0])
    return out


@full_fp32()
def apply_autoencoder(ae: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``ae(x)`` in batches, without grad and in eval mode (modes restored): ``[N, *s] -> [N, *s]``."""
    x = _check_inputs(x, "x")
    bs = fit_batch(_check_batch_size(batch_size), x.shape[1:], FORWARD_ELEMENTS)  # bounded at any input size
    with torch.no_grad(), eval_mode(ae):
        if x.shape[0] <= bs:
            return ae(x)
        return torch.cat([ae(x[i : i + bs]) for i in range(0, x.shape[0], bs)])


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
def _batch_indices(
    n: int, batch: int, steps: int, gen: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Yield ``steps`` index tensors [batch], each batch of distinct indices drawn uniformly from
    range(n); produced a chunk of steps at a time (one RNG call and one device copy per chunk)."""
    if batch >= n:
        all_idx = torch.arange(n, device=device)
        for _ in range(steps):
            yield all_idx
        return
    chunk = max(1, min(steps, (1 << 22) // n))  # bounds the [chunk, n] key matrix to ~16 MB
    done = 0
    while done < steps:
        k = min(chunk, steps - done)
        # the `batch` smallest of n iid uniform keys: a uniform sample without replacement
        idx = torch.rand(k, n, generator=gen).topk(batch, dim=1, largest=False, sorted=False).indices
        idx = idx.to(device)
        yield from idx
        done += k


def train_adversarial_autoencoder(
    classifier: Classifier,
    x: torch.Tensor,
    target: int,
    config: AdversarialConfig | None = None,
    *,
    autoencoder: AutoencoderSpec = None,
    progress: bool = False,
) -> tuple[nn.Module, TrainHistory]:
    """Train an autoencoder so that its outputs reconstruct ``x`` and are classified as ``target``.

    Args:
        classifier: frozen model ``[N, *in_shape] -> [N, C]`` logits (nn.Module or any callable),
            on ``x``'s device. It runs in eval mode with requires_grad off for its parameters
            during training; both are restored afterwards.
        x: training inputs ``[N, *in_shape]``, floating point, values in [0, 1].
        target: class index the outputs should be pushed to (0 <= target < C).
        config: :class:`AdversarialConfig` (defaults when None).
        autoencoder: None (build :func:`default_autoencoder` for ``x.shape[1:]``), a module (trained
            in place from its current weights), or a zero-argument factory (called under the seed).
        progress: show progress (a bar on a terminal, plain lines in a log; see deepdig_fast.progress).

    Returns:
        ``(autoencoder, history)``: the trained autoencoder, on ``x``'s device in eval mode, and its
        :class:`TrainHistory`.

    Loss per step on a batch xb: ``BCE(ae(xb), xb) + alpha * BCE(softmax(f(ae(xb))), onehot(target))``
    (mean reductions), Adam(lr), StepLR(step_size, gamma) stepped every step.
    """
    cfg = AdversarialConfig() if config is None else config
    if not isinstance(cfg, AdversarialConfig):
        raise TypeError(f"config must be an AdversarialConfig, got {type(cfg).__name__}")
    cfg.validate()
    classifier = unwrap(classifier)  # training needs gradients through the eager model
    x = _check_inputs(x, "x")
    if x.shape[0] == 0:
        raise ValueError("x must contain at least one input, got an empty tensor")
    _check_unit_range(x, "x")
    target = _check_class(target, "target")
    device = x.device
    _check_classifier_device(classifier, device)

    with _seeded(cfg.seed, device):
        ae = build_autoencoder(autoencoder, tuple(x.shape[1:]))
        ae.to(device=device, dtype=x.dtype)
        gen = torch.Generator().manual_seed(cfg.seed)
        with _training_view(classifier, training_layout(cfg, device, classifier)) as (view, layout):
            history = _train_loop(view, ae, x, target, cfg, gen, progress, layout)
    ae.eval()
    return ae, history


@full_fp32()
def _train_loop(
    classifier: Classifier,
    ae: nn.Module,
    x: torch.Tensor,
    target: int,
    cfg: AdversarialConfig,
    gen: torch.Generator,
    progress: bool,
    layout: str = "contiguous",
) -> TrainHistory:
    n = x.shape[0]
    device = x.device
    with torch.no_grad(), eval_mode(ae):
        probe = ae(x[:1])
        if not isinstance(probe, torch.Tensor) or probe.shape != x[:1].shape:
            got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
            raise ValueError(
                f"autoencoder must map [N, *in_shape] to the same shape; got {got} for {tuple(x[:1].shape)}"
            )
        logits = classifier(probe)
    _check_logits(logits, 1)
    num_classes = logits.shape[1]
    if target >= num_classes:
        raise ValueError(f"target must be < the classifier's number of classes ({num_classes}), got {target}")
    del probe, logits

    batch = min(cfg.batch_size, n)
    # forward+backward in micro-batches for large inputs (bounded memory; the same gradient: the
    # loss is a mean over the batch, so the micro-batches' losses are weighted by their share)
    micro = fit_batch(batch, x.shape[1:], TRAIN_ELEMENTS)
    onehot = torch.zeros(batch, num_classes, device=device, dtype=x.dtype)
    onehot[:, target] = 1.0
    alpha = float(cfg.alpha)

    ae.train()
    params = [p for p in ae.parameters() if p.requires_grad]
    if not params:
        raise ValueError("autoencoder has no trainable parameters")
    # fused Adam: one kernel for all parameters (the fastest variant on CPU as well as CUDA)
    fused = device.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params)
    opt = torch.optim.Adam(params, lr=cfg.lr, fused=fused or None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)

    hist = TrainHistory()
    acc_rec = torch.zeros((), device=device, dtype=torch.float32)
    acc_adv = torch.zeros((), device=device, dtype=torch.float32)
    window = 0
    bar = progress_bar(cfg.steps, f"AE → class {target}", "step", enabled=progress)

    compiled = _wants_compile(cfg, device, layout)
    eager = _view_loss_terms if layout == "channels_last" and device.type == "cpu" else _loss_terms
    loss_fn = _compiled_loss() if compiled else eager
    with _gc_paused():
        t0 = time.perf_counter()
        try:
            for step, idx in enumerate(_batch_indices(n, batch, cfg.steps, gen, device), start=1):
                xb = x.index_select(0, idx)
                opt.zero_grad(set_to_none=True)
                if step == 1 and compiled:
                    try:  # compiles here (forward and backward); any failure means eager, never a failed run
                        rec, adv = _backward(loss_fn, ae, classifier, xb, onehot, alpha, micro)
                    except Exception as e:
                        warnings.warn(
                            f"autoencoder training runs eager: torch.compile failed ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                        loss_fn, compiled = eager, False
                        opt.zero_grad(set_to_none=True)
                        rec, adv = _backward(loss_fn, ae, classifier, xb, onehot, alpha, micro)
                else:
                    rec, adv = _backward(loss_fn, ae, classifier, xb, onehot, alpha, micro)
                opt.step()
                sched.step()
                acc_rec += rec.detach()
                acc_adv += adv.detach()
                window += 1
                if step % cfg.log_every == 0 or step == cfg.steps:
                    r, a = (torch.stack([acc_rec, acc_adv]) / window).tolist()
                    total = r + alpha * a
                    if not math.isfinite(total):
                        raise FloatingPointError(
                            f"adversarial autoencoder loss became non-finite ({total}) by step {step}; "
                            f"try a smaller AdversarialConfig.lr (now {cfg.lr})"
                        )
                    hist.step.append(step)
                    hist.loss.append(total)
                    hist.reconstruction.append(r)
                    hist.adversarial.append(a)
                    acc_rec.zero_()
                    acc_adv.zero_()
                    bar.set_postfix(loss=f"{total:.4f}")
                    bar.update(step - bar.n)
                    window = 0
        finally:
            bar.close()
    hist.seconds = time.perf_counter() - t0
    hist.steps = cfg.steps
    hist.final_loss = hist.loss[-1]
    hist.compiled = compiled
    hist.layout = layout
    return hist


@full_fp32()
def train_adversarial_autoencoders(
    classifier: Classifier,
    xs: Sequence[torch.Tensor],
    targets: Sequence[int],
    configs: Sequence[AdversarialConfig],
    *,
    autoencoder: AutoencoderSpec = None,
) -> list[tuple[nn.Module, TrainHistory]]:
    """Train K independent adversarial autoencoders as one vectorised model (torch.func).

    The same K trainings as K calls of :func:`train_adversarial_autoencoder` (each autoencoder built
    under its own config's seed, its own batches from its own seed, the same loss, Adam and StepLR),
    run together: the K autoencoders' parameters are stacked ([K, ...]), their forwards run under
    ``torch.func.vmap``, the classifier sees the K batches as one batch of K x batch_size, and one
    Adam steps the stacked parameters (Adam is elementwise, so this is K Adams). On a GPU this fills
    the device with K small models at once; on a CPU it runs too (the tests compare it with the
    sequential trainings) but is not faster (benchmarks/RESULTS.md).

    Args:
        classifier: as in train_adversarial_autoencoder (a PreparedClassifier is unwrapped).
        xs: K training sets ``[N_k, *in_shape]``, same sample shape, dtype and device, values in [0, 1].
        targets: K target classes. configs: K AdversarialConfigs that differ at most in their seeds
            (steps, batch size, optimiser and schedule are shared); min(batch_size, N_k) must be
            the same for every k.
        autoencoder: None or a zero-argument factory (called once per model under its seed); the
            autoencoders must not use dropout (vmap would draw it differently from a sequential run).
    Returns:
        K ``(autoencoder, history)`` pairs, in order; histories as in train_adversarial_autoencoder.
    """
    from torch.func import functional_call, stack_module_state, vmap

    k = len(xs)
    if k == 0 or len(targets) != k or len(configs) != k:
        raise ValueError(
            f"xs, targets and configs must have the same non-zero length, got {k}, {len(targets)}, {len(configs)}"
        )
    if isinstance(autoencoder, nn.Module):
        raise TypeError("autoencoder must be None or a zero-argument factory here (one model is built per training)")
    classifier = unwrap(classifier)
    cfgs = []
    for i, c in enumerate(configs):
        if not isinstance(c, AdversarialConfig):
            raise TypeError(f"configs[{i}] must be an AdversarialConfig, got {type(c).__name__}")
        c.validate()
        cfgs.append(c)
    shared = {
        f: getattr(cfgs[0], f) for f in ("alpha", "lr", "step_size", "gamma", "steps", "log_every", "channels_last")
    }
    for i, c in enumerate(cfgs):
        for f, v in shared.items():
            if getattr(c, f) != v:
                raise ValueError(f"configs[{i}].{f} must equal configs[0].{f} ({v!r}) for a vectorised training")
    xs = [_check_inputs(x, f"xs[{i}]") for i, x in enumerate(xs)]
    for i, x in enumerate(xs):
        if x.shape[0] == 0:
            raise ValueError(f"xs[{i}] must contain at least one input, got an empty tensor")
        if x.shape[1:] != xs[0].shape[1:] or x.dtype != xs[0].dtype or x.device != xs[0].device:
            raise ValueError(f"xs[{i}] must match xs[0]'s sample shape, dtype and device")
        _check_unit_range(x, f"xs[{i}]")
    batches = {min(c.batch_size, x.shape[0]) for c, x in zip(cfgs, xs)}
    if len(batches) != 1:
        raise ValueError(f"min(batch_size, N_k) must be the same for every training, got {sorted(batches)}")
    batch = batches.pop()
    tgts = [_check_class(t, f"targets[{i}]") for i, t in enumerate(targets)]
    device, dtype = xs[0].device, xs[0].dtype
    _check_classifier_device(classifier, device)

    aes = []
    for c in cfgs:
        with _seeded(c.seed, device):
            ae = build_autoencoder(autoencoder, tuple(xs[0].shape[1:]))
        if any(isinstance(m, nn.Dropout) and m.p > 0 for m in ae.modules()):
            raise ValueError("a vectorised training needs autoencoders without dropout")
        aes.append(ae.to(device=device, dtype=dtype).train())
    with torch.no_grad(), eval_mode(classifier):
        logits = classifier(aes[0](xs[0][:1]))
    _check_logits(logits, 1)
    num_classes = logits.shape[1]
    for i, t in enumerate(tgts):
        if t >= num_classes:
            raise ValueError(f"targets[{i}] must be < the classifier's number of classes ({num_classes}), got {t}")

    params, buffers = stack_module_state(aes)  # leaves [K, ...] that require grad
    base = copy.deepcopy(aes[0]).to("meta")

    def one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    forward = vmap(one)
    onehot = torch.zeros(k, batch, num_classes, device=device, dtype=dtype)
    for i, t in enumerate(tgts):
        onehot[i, :, t] = 1.0
    alpha = float(shared["alpha"])
    plist = list(params.values())
    fused = device.type in ("cpu", "cuda")
    opt = torch.optim.Adam(plist, lr=shared["lr"], fused=fused or None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=shared["step_size"], gamma=shared["gamma"])
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    streams = [_batch_indices(x.shape[0], batch, shared["steps"], g, device) for x, g in zip(xs, gens)]
    hists = [TrainHistory() for _ in range(k)]
    acc = torch.zeros(2, k, device=device, dtype=torch.float32)
    window = 0
    steps = shared["steps"]
    t0 = time.perf_counter()
    with _training_view(classifier, training_layout(cfgs[0], device, classifier)) as (classifier, layout), _gc_paused():
        for step in range(1, steps + 1):
            xb = torch.stack([x.index_select(0, next(it)) for x, it in zip(xs, streams)])  # [K, B, ...]
            out = forward(params, buffers, xb)
            prob = classifier(out.flatten(0, 1)).softmax(dim=1).view(k, batch, num_classes)
            # per-model mean BCEs, as F.binary_cross_entropy(reduction="mean") computes them
            rec = F.binary_cross_entropy(out, xb, reduction="none").flatten(1).mean(1)
            adv = F.binary_cross_entropy(prob, onehot, reduction="none").flatten(1).mean(1)
            loss = (rec + alpha * adv).sum()  # model k's parameters see only its own term
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            acc[0] += rec.detach()
            acc[1] += adv.detach()
            window += 1
            if step % shared["log_every"] == 0 or step == steps:
                r_all, a_all = (acc / window).tolist()
                for i, h in enumerate(hists):
                    total = r_all[i] + alpha * a_all[i]
                    if not math.isfinite(total):
                        raise FloatingPointError(
                            f"adversarial autoencoder {i} loss became non-finite ({total}) by step {step}; "
                            f"try a smaller AdversarialConfig.lr (now {shared['lr']})"
                        )
                    h.step.append(step)
                    h.loss.append(total)
                    h.reconstruction.append(r_all[i])
                    h.adversarial.append(a_all[i])
                acc.zero_()
                window = 0
    seconds = time.perf_counter() - t0
    result = []
    with torch.no_grad():
        for i, ae in enumerate(aes):
            for name, p in ae.named_parameters():
                p.copy_(params[name][i])
            for name, b in ae.named_buffers():
                b.copy_(buffers[name][i])
            ae.eval()
            h = hists[i]
            h.seconds, h.steps, h.final_loss, h.layout = seconds, steps, h.loss[-1], layout
            result.append((ae, h))
    return result


#: ways of training several independent autoencoders (PairConfig / AtlasConfig.joint_training)
JOINT_TRAINING = ("auto", "vectorized", "processes", "sequential")


def joint_training_mode(requested: str, device: torch.device | str, classifier: Classifier, autoencoder) -> str:
    """The joint-training mode that runs for ``requested`` (one of JOINT_TRAINING): a function of the
    setting, the device, torch's thread count and whether the objects pickle -- never of a timing, so
    the choice (which enters stage keys) is the same on every run of the same settings.

    "auto": "vectorized" on CUDA (one vmapped model fills the device), "processes" on a CPU with at
    least two torch threads when classifier and autoencoder pickle (single-thread worker processes;
    small training steps scale badly over threads), otherwise "sequential"."""
    if requested not in JOINT_TRAINING:
        raise ParameterError(f"joint_training must be one of {', '.join(JOINT_TRAINING)}, got {requested!r}")
    if requested != "auto":
        return requested
    kind = torch.device(device).type
    if kind == "cuda":
        return "vectorized"
    if kind == "cpu" and torch.get_num_threads() >= 2 and can_train_in_processes(classifier, autoencoder):
        return "processes"
    return "sequential"


def train_jointly(
    classifier: Classifier,
    xs: Sequence[torch.Tensor],
    targets: Sequence[int],
    configs: Sequence[AdversarialConfig],
    mode: str,
    *,
    autoencoder: AutoencoderSpec = None,
    workers: int = 2,
    pool: TrainingPool | None = None,
) -> list[tuple[nn.Module, TrainHistory]]:
    """K independent trainings in joint-training ``mode`` ("vectorized": train_adversarial_autoencoders;
    "processes": train_in_processes, in ``pool`` or with ``workers`` processes at a time;
    "sequential": one train_adversarial_autoencoder call after the other), K ``(autoencoder,
    history)`` pairs in order."""
    if mode == "vectorized":
        return train_adversarial_autoencoders(classifier, xs, targets, configs, autoencoder=autoencoder)
    if mode == "processes":
        return train_in_processes(classifier, xs, targets, configs, autoencoder=autoencoder, workers=workers, pool=pool)
    if mode == "sequential":
        return [
            train_adversarial_autoencoder(classifier, x, t, c, autoencoder=autoencoder)
            for x, t, c in zip(xs, targets, configs)
        ]
    raise ParameterError(f"mode must be one of vectorized, processes, sequential, got {mode!r}")


class JointTraining:
    """Independent trainings run together in a joint-training ``mode``, lazily: nothing trains until
    a member is asked for (``get``) or started (``start``); then the group trains at once -- in
    "vectorized" mode one vmapped model per effective batch size (min(batch_size, N)), every member
    (a vmapped training's rounding depends on its members, so each member comes out the same
    whichever were needed); otherwise the members for which ``pending(key)`` is true, and the one
    asked for (each is exactly its own training, whatever the group).

    jobs: {key: zero-argument callable giving (x, target, AdversarialConfig)}, called only when the
    member trains (so the inputs are materialised only then); members may be added to it until the
    first ``get``. pending: None (every member) or a predicate on keys. workers: processes at a time
    in "processes" mode. pool: a :class:`~deepdig_fast.train_worker.TrainingPool` for "processes"
    mode: members are then submitted to it and ``get`` waits for its own member only, so the
    caller can use a member while the others still train (and ``start`` one early).
    """

    def __init__(
        self,
        classifier: Classifier,
        jobs: dict,
        mode: str,
        *,
        autoencoder: AutoencoderSpec = None,
        pending: Callable[[Any], bool] | None = None,
        workers: int = 2,
        pool: TrainingPool | None = None,
    ):
        self.classifier, self.jobs, self.mode = classifier, jobs, mode
        self.autoencoder, self.pending, self.workers = autoencoder, pending, workers
        self.pool = pool if mode == "processes" else None
        self.done: dict = {}
        self._futures: dict = {}

    def _wanted(self, k, key=None) -> bool:
        return k not in self.done and (self.mode == "vectorized" or k == key or self.pending is None or self.pending(k))

    def _submit(self, key) -> None:
        assert self.pool is not None
        x, target, cfg = self.jobs[key]()
        self._futures[key] = self.pool.submit(self.classifier, x, target, cfg, self.autoencoder)

    def start(self, key) -> None:
        """With a pool: submit member ``key`` now unless it is trained, under way or not pending
        (without one, nothing: it trains with its group at the first ``get``)."""
        if self.pool is not None and key not in self._futures and self._wanted(key):
            self._submit(key)

    def first_done(self, keys: Sequence) -> Any:
        """The first of ``keys`` (in order) that ``get`` can give without waiting on the pool,
        waiting for the first of them to finish there when none can: lets a caller take members
        in the order they finish. Members without a pool, trained, or not under way count as
        ready (``get`` then trains them itself)."""
        import concurrent.futures

        futures = {k: self._futures[k] for k in keys if k in self._futures}
        for k in keys:
            if k not in futures or futures[k].done():
                return k
        concurrent.futures.wait([f.future for f in futures.values()], return_when=concurrent.futures.FIRST_COMPLETED)
        return next(k for k in keys if futures[k].done())

    def get(self, key) -> tuple[nn.Module, TrainHistory]:
        """The trained (autoencoder, history) of member ``key``."""
        if key in self.done:
            return self.done[key]
        if self.pool is not None:  # this member first, then every other pending one
            if key not in self._futures:
                self._submit(key)
            for k in self.jobs:
                self.start(k)
            self.done[key] = self._futures.pop(key).result()
            return self.done[key]
        groups: dict[int, list] = {}
        for k in (k for k in self.jobs if self._wanted(k, key)):
            x, target, cfg = self.jobs[k]()
            group = min(cfg.batch_size, int(x.shape[0])) if self.mode == "vectorized" else 0
            groups.setdefault(group, []).append((k, x, target, cfg))
        for jobs in groups.values():
            keys, xs, targets, cfgs = (list(v) for v in zip(*jobs))
            trained = train_jointly(
                self.classifier, xs, targets, cfgs, self.mode, autoencoder=self.autoencoder, workers=self.workers
            )
            self.done.update(zip(keys, trained))
        return self.done[key]


def train_one_thread(job: tuple) -> tuple[dict, TrainHistory]:
    """One job of train_in_processes, (classifier, x, target, config, autoencoder), trained with one
    torch thread (run by deepdig_fast.train_worker, in a process of its own)."""
    classifier, x, target, cfg, autoencoder = job
    torch.set_num_threads(1)
    ae, hist = train_adversarial_autoencoder(classifier, x, target, cfg, autoencoder=autoencoder)
    return {k: v.cpu() for k, v in ae.state_dict().items()}, hist


def can_train_in_processes(classifier: Classifier, autoencoder: AutoencoderSpec) -> bool:
    """Whether train_in_processes can ship these to worker processes (both must pickle; a CPU
    classifier). A property of the objects, not of timing, so the choice is deterministic."""
    import pickle

    from deepdig_fast.checkpoint import defining_modules

    classifier = unwrap(classifier)
    if isinstance(classifier, nn.Module) and any(p.device.type != "cpu" for p in classifier.parameters()):
        return False
    if "__main__" in defining_modules(classifier, autoencoder):  # a script's classes: no worker imports them
        return False
    try:
        pickle.dumps((classifier, autoencoder))
    except Exception:
        return False
    return True


def train_in_processes(
    classifier: Classifier,
    xs: Sequence[torch.Tensor],
    targets: Sequence[int],
    configs: Sequence[AdversarialConfig],
    *,
    autoencoder: AutoencoderSpec = None,
    workers: int = 2,
    pool: TrainingPool | None = None,
) -> list[tuple[nn.Module, TrainHistory]]:
    """K independent :func:`train_adversarial_autoencoder` calls on a CPU, each in a worker process
    with one torch thread (:class:`~deepdig_fast.train_worker.TrainingPool`: ``pool`` when given,
    else a pool of ``workers`` processes made for this call; classifier, inputs and autoencoder spec
    are pickled to them, the results back). Small autoencoder steps scale badly over threads, so on
    a 2-core machine two single-thread trainings side by side finish sooner than two 2-thread
    trainings one after the other (benchmarks/RESULTS.md). Each training is the same as
    ``train_adversarial_autoencoder`` run with one torch thread, whatever the caller's thread count.
    Returns the K ``(autoencoder, history)`` pairs in order, autoencoders in eval mode."""
    check_int(workers, "workers", low=1)
    if not xs:
        return []
    # a pool made here ends with the call (its workers killed if a training fails); a given one stays
    with TrainingPool(min(workers, len(xs))) if pool is None else contextlib.nullcontext(pool) as p:
        futures = [p.submit(classifier, x, t, c, autoencoder) for x, t, c in zip(xs, targets, configs)]
        return [f.result() for f in futures]


def _backward(loss_fn, ae, classifier, xb: torch.Tensor, onehot: torch.Tensor, alpha: float, micro: int):
    """Backward of one batch's loss, in micro-batches of at most `micro` inputs; returns the batch's
    (reconstruction BCE, adversarial BCE), detached."""
    n = xb.shape[0]
    if micro >= n:
        loss, rec, adv = loss_fn(ae, classifier, xb, onehot, alpha)
        loss.backward()
        return rec.detach(), adv.detach()
    rec_sum = adv_sum = None
    for i in range(0, n, micro):
        share = min(micro, n - i) / n
        loss, rec, adv = loss_fn(ae, classifier, xb[i : i + micro], onehot[i : i + micro], alpha)
        (loss * share).backward()
        r, a = rec.detach() * share, adv.detach() * share
        rec_sum = r if rec_sum is None else rec_sum + r
        adv_sum = a if adv_sum is None else adv_sum + a
    return rec_sum, adv_sum


def _loss_terms(ae: nn.Module, classifier: Classifier, xb: torch.Tensor, onehot: torch.Tensor, alpha: float):
    """(loss, reconstruction BCE, adversarial BCE) of one batch: the paper's loss, in one function so
    torch.compile can fuse its forward and backward."""
    out = ae(xb)
    prob = classifier(out).softmax(dim=1)
    rec = F.binary_cross_entropy(out, xb)
    adv = F.binary_cross_entropy(prob, onehot)
    return rec + alpha * adv, rec, adv


def _view_loss_terms(ae: nn.Module, classifier: Classifier, xb: torch.Tensor, onehot: torch.Tensor, alpha: float):
    """_loss_terms with both BCEs from ops.binary_cross_entropy (ATen's values; its CPU kernel is a
    scalar loop of two logarithms per pixel, a tenth of a step, benchmarks/bench_binary_cross_entropy.py):
    the eager loss of trainings against the channels_last copy on a CPU."""
    out = ae(xb)
    prob = classifier(out).softmax(dim=1)
    rec = torch.ops.deepdig_fast.binary_cross_entropy(out, xb)
    adv = torch.ops.deepdig_fast.binary_cross_entropy(prob, onehot)
    return rec + alpha * adv, rec, adv


_COMPILED: list[Callable] = []


def _compiled_loss() -> Callable:
    """_loss_terms through torch.compile, built once per process: modules are arguments, so every
    autoencoder of one architecture (and the same classifier) reuses one compiled graph."""
    if not _COMPILED:
        _COMPILED.append(torch.compile(_loss_terms, dynamic=False))
    return _COMPILED[0]


def _wants_compile(cfg: AdversarialConfig, device: torch.device, layout: str = "contiguous") -> bool:
    if device.type not in ("cpu", "cuda"):
        return False
    if cfg.compile == "auto":
        # a channels_last classifier on a CPU ran slower compiled than eager (AdversarialConfig)
        return cfg.steps >= COMPILE_MIN_STEPS and not (layout == "channels_last" and device.type == "cpu")
    return bool(cfg.compile)


# --------------------------------------------------------------------------------------------------
# Components I and II
# --------------------------------------------------------------------------------------------------
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
    as target, outputs nearly identical, ...), else None.
    """

    source: int
    target: int
    autoencoder: nn.Module
    adversarial: torch.Tensor
    source_index: torch.Tensor
    train: SplitStats
    test: SplitStats | None
    history: TrainHistory
    collapse: str | None

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
    history: TrainHistory
    collapse: str | None

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
    x = _check_inputs(x, "x")
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
    trained: tuple[nn.Module, TrainHistory] | None = None,
) -> ComponentOneResult:
    """DeepDIG Component I: adversarial set A(source→target).

    Trains AE_I on ``x_train_s`` ``[N, *in_shape]`` (all training inputs labelled ``source``,
    unfiltered, values in [0, 1]) with target ``target``, runs it over ``x_train_s`` and keeps
    x' = AE_I(x) where f(x) = source and f(x') = target. ``x_test_s`` ``[M, *in_shape]``, when
    given, is only reported (``result.test``). See :func:`train_adversarial_autoencoder` for
    ``config``, ``autoencoder`` and ``progress``. ``trained``: an ``(autoencoder, history)`` already
    trained on ``x_train_s`` towards ``target`` (e.g. by train_adversarial_autoencoders), used
    instead of training one.

    When the generator collapsed (see :class:`ComponentOneResult`) ``result.collapse`` says how and
    a warning with the same text is emitted; the (possibly empty) set is still returned.
    """
    source = _check_class(source, "source")
    target = _check_class(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    cfg = AdversarialConfig() if config is None else config
    x_train_s = _check_inputs(x_train_s, "x_train_s")
    if x_train_s.shape[0] == 0:
        raise ValueError("x_train_s must contain at least one input of the source class, got none")
    _check_unit_range(x_train_s, "x_train_s")
    if x_test_s is not None:
        x_test_s = _check_inputs(x_test_s, "x_test_s")
        if x_test_s.shape[1:] != x_train_s.shape[1:]:
            raise ValueError(
                f"x_test_s must be shaped [M, {', '.join(map(str, x_train_s.shape[1:]))}] like x_train_s, "
                f"got {tuple(x_test_s.shape)}"
            )
        if x_test_s.device != x_train_s.device:
            raise ValueError(f"x_test_s must be on {x_train_s.device} like x_train_s, got {x_test_s.device}")

    if trained is None:
        ae, history = train_adversarial_autoencoder(
            classifier, x_train_s, target, cfg, autoencoder=autoencoder, progress=progress
        )
    else:  # trained elsewhere on the same inputs (train_adversarial_autoencoders, several at once)
        ae, history = trained
    kw: dict[str, Any] = dict(batch_size=cfg.infer_batch_size, collapse_std=cfg.collapse_std)
    train = apply_generator(classifier, ae, x_train_s, source, target, **kw)
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
    trained: tuple[nn.Module, TrainHistory] | None = None,
) -> ComponentTwoResult:
    """DeepDIG Component II: boundary-straddling pairs for the source→target direction.

    Trains a fresh AE_II on ``adversarial`` ``[K, *in_shape]`` (A(source→target) from
    :func:`component_one`) with target ``source``, computes a'' = AE_II(a) and keeps the pairs with
    f(a) = target and f(a'') = source. Pass a new module or a factory as ``autoencoder`` for a custom
    architecture (None builds :func:`default_autoencoder`, the same shape component I uses by default).
    ``trained``: an ``(autoencoder, history)`` already trained on ``adversarial`` towards ``source``.

    Raises ValueError when ``adversarial`` is empty. Collapse is reported as in component_one.
    """
    source = _check_class(source, "source")
    target = _check_class(target, "target")
    if source == target:
        raise ValueError(f"source and target must differ, got {source} for both")
    adversarial = _check_inputs(adversarial, "adversarial")
    if adversarial.shape[0] == 0:
        raise ValueError(
            f"adversarial is empty: component I produced no adversarial samples for {source}→{target}, "
            f"so component II has nothing to train on"
        )
    cfg = AdversarialConfig() if config is None else config
    if trained is None:
        ae, history = train_adversarial_autoencoder(
            classifier, adversarial, source, cfg, autoencoder=autoencoder, progress=progress
        )
    else:  # trained elsewhere on `adversarial` (train_adversarial_autoencoders, several at once)
        ae, history = trained
    back = apply_generator(
        classifier, ae, adversarial, target, source, batch_size=cfg.infer_batch_size, collapse_std=cfg.collapse_std
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
    )
