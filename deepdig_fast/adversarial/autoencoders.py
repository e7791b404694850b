"""The autoencoders of components I and II: the paper's MLP for 28x28 grey images, a
convolutional family sized from the input shape for colour or larger ones, user factories
("module:factory" / "file.py:attr"), and the key that names an architecture in stage keys."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepdig_fast.budget import FORWARD_ELEMENTS, fit_batch
from deepdig_fast.forward import check_inputs
from deepdig_fast.hooks import eval_mode
from deepdig_fast.precision import full_fp32
from deepdig_fast.userfiles import resolve_factory
from deepdig_fast.validation import check_int

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


@full_fp32()
def apply_autoencoder(ae: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """``ae(x)`` in batches, without grad and in eval mode (modes restored): ``[N, *s] -> [N, *s]``."""
    x = check_inputs(x, "x")
    bs = fit_batch(
        check_int(batch_size, "batch_size", low=1), x.shape[1:], FORWARD_ELEMENTS
    )  # bounded at any input size
    with torch.no_grad(), eval_mode(ae):
        if x.shape[0] <= bs:
            return ae(x)
        return torch.cat([ae(x[i : i + bs]) for i in range(0, x.shape[0], bs)])
