"""How an AdversarialConfig (declared in deepdig_fast.configs) acts on a training here: the memory
layout of the classifier it trains against (training_layout), how it enters stage keys
(training_key), the learning rate its "auto" stands for (resolved_lr, resolve_lr), and the history
a training returns (TrainHistory)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from deepdig_fast.adversarial.autoencoders import AutoencoderSpec, Classifier, MLPAutoencoder, build_autoencoder
from deepdig_fast.configs import CONV_LR, PAPER_LR, AdversarialConfig
from deepdig_fast.fast import unwrap


@dataclass
class TrainHistory:
    """Loss trace of one autoencoder training run.

    ``step[k]`` is the last step (1-based) of logging window k and ``loss[k]``,
    ``reconstruction[k]``, ``adversarial[k]`` the mean of the total loss and of its two BCE terms
    over that window. ``final_loss`` is the mean total loss of the last window; ``seconds`` the wall
    time of the training loop (a compile included); ``steps`` the steps trained; ``compiled``
    whether the loss ran compiled; ``layout`` the memory format of the classifier it ran against
    ("contiguous" or "channels_last"). ``stop_reason``: "fixed" (``steps`` was a number), or why
    an auto training stopped ("plateau", "collapsed" or "ceiling", with the step), or why a fixed
    one stopped early ("collapsed", AdversarialConfig.on_collapse); ``checks``: the measurements of
    the checks every ``auto.every`` steps (step, kept share, reconstruction, diversity);
    ``restored_step``: the step whose weights on_collapse "restore" put back
    (None: the weights of the last step); ``lr``: Adam's learning rate (``AdversarialConfig.lr``
    resolved, :func:`resolved_lr`).
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
    stop_reason: str = "fixed"
    checks: list[dict] = field(default_factory=list)
    restored_step: int | None = None
    lr: float = float("nan")


def resolved_lr(config: AdversarialConfig, autoencoder: nn.Module) -> float:
    """Adam's learning rate of a training of ``autoencoder`` with ``config``: ``config.lr``, or for
    "auto" the paper's 0.01 when it is the paper's MLPAutoencoder and 0.001 for any other."""
    if config.lr != "auto":
        return float(config.lr)
    return PAPER_LR if isinstance(autoencoder, MLPAutoencoder) else CONV_LR


def resolve_lr(config: AdversarialConfig, autoencoder: AutoencoderSpec, in_shape: tuple[int, ...]) -> AdversarialConfig:
    """``config`` with an "auto" learning rate replaced by the number it stands for with the
    autoencoders of ``autoencoder`` (a spec as the components take it) for inputs shaped
    ``in_shape``. A factory is built once to see what it builds (under a private RNG state, so
    nothing else draws differently). Runs and atlases resolve their config with this before any
    key is made: a folder records, and is keyed by, the rate that trained."""
    if config.lr != "auto":
        return config
    if isinstance(autoencoder, nn.Module):
        ae = autoencoder
    else:
        with torch.random.fork_rng(devices=[]):
            ae = build_autoencoder(autoencoder, tuple(in_shape))
    return dataclasses.replace(config, lr=resolved_lr(config, ae))


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
    the layout it resolves to here (``"layout"``: :func:`training_layout`); the stopping rule's
    settings only when they act (``steps="auto"``)."""
    spec = dataclasses.asdict(config)
    spec.pop("channels_last")
    if config.steps != "auto":
        spec.pop("auto")
        spec["collapse_every"] = config.auto.every  # the collapse watch's checks (on_collapse)
        spec["collapse_probe"] = config.auto.probe
    spec["layout"] = training_layout(config, device, classifier)
    return spec
