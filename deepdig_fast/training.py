"""How a reference classifier is trained: recipes, training regimes and PGD adversarial examples.

A `TrainRecipe` names everything `models.train_classifier` does to fit a model, so that a checkpoint
can record it (`TrainRecipe.to_dict()` goes into the checkpoint's metadata) and two checkpoints can
be compared by it (`describe_training`):

- the optimiser (Adam, learning rate, L2 weight decay) and its schedule (StepLR stepped every
  iteration, or a constant rate);
- epochs and batch size;
- regularisers: label smoothing, mixup (dropout is part of the architecture: `dropout=` of the
  built-in models, recorded in the checkpoint's `arch_kwargs`);
- the regime: "standard" (clean inputs) or "adversarial" (every batch replaced by its PGD
  adversarial examples, Madry et al. 2018).

Two named recipes (`recipe(name, dataset)`):

- "fast" (the default of `deepdig train` and of the classifier `deepdig run` trains when none is
  cached): Adam lr 0.01 at a constant rate, 5 epochs, batch 128. The paper's CNN reaches 98.4% MNIST
  test accuracy with it in about 12 s on a 2-core CPU.
- "paper": the authors' public code: Adam lr 0.01, StepLR(step_size=100, gamma=0.99) stepped after
  every iteration, cross-entropy, 40 epochs for MNIST / Fashion-MNIST and 10 for CIFAR-10, no
  augmentation. The public loop starts a batch every 64 inputs but takes 100 inputs from there, so
  consecutive batches overlap; here batches are disjoint, of 64 inputs, which keeps the public
  code's number of iterations per epoch (938 on MNIST) and so its learning-rate schedule.

PGD (`pgd_attack`): untargeted L∞ projected gradient ascent on the cross-entropy, from a uniform
random start in the ε-ball, each step x ← clip_[0,1](Π_ε(x + step · sign(∇ loss))). The usual
settings (`PGD_PRESETS`): MNIST ε = 0.3, 40 steps of 0.01; CIFAR-10 ε = 8/255, 10 steps of 2/255
(7 steps is also common).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from deepdig_fast.validation import (
    STEPS_MAX,
    Int,
    Number,
    Optional,
    Options,
    ParameterError,
    check_options,
    validate_fields,
)

__all__ = [
    "PGDConfig",
    "TrainRecipe",
    "RECIPES",
    "REGIMES",
    "PGD_PRESETS",
    "recipe",
    "pgd_preset",
    "pgd_attack",
    "describe_training",
]

RECIPES = ("fast", "paper")
REGIMES = ("standard", "adversarial")


@dataclass(frozen=True)
class PGDConfig:
    """L∞ PGD: radius `eps`, `steps` steps of size `step_size`, from a uniform random start in the
    ball when `random_start` (inputs stay in [0, 1])."""

    eps: float = 0.3
    step_size: float = 0.01
    steps: int = 40
    random_start: bool = True

    CONSTRAINTS = {"eps": Number(0, 1, "right"), "step_size": Number(0, 1, "right"), "steps": Int(1, STEPS_MAX)}

    def __post_init__(self) -> None:
        validate_fields(self, self.CONSTRAINTS)
        if not isinstance(self.random_start, bool):
            raise ParameterError(f"PGDConfig.random_start must be a bool, got {self.random_start!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the customary PGD settings per data set family
PGD_PRESETS: dict[str, PGDConfig] = {
    "mnist": PGDConfig(eps=0.3, step_size=0.01, steps=40),
    "cifar10": PGDConfig(eps=8 / 255, step_size=2 / 255, steps=10),
}


def pgd_preset(dataset: str, sample_shape: tuple[int, ...] | None = None) -> PGDConfig:
    """The usual PGD settings for a data set: MNIST's for mnist / fashion-mnist and any grey-image
    data, CIFAR-10's for cifar10 and any colour data."""
    if dataset in ("mnist", "fashion-mnist"):
        return PGD_PRESETS["mnist"]
    if dataset == "cifar10":
        return PGD_PRESETS["cifar10"]
    grey = sample_shape is not None and len(sample_shape) == 3 and sample_shape[0] == 1
    return PGD_PRESETS["mnist" if grey else "cifar10"]


@dataclass(frozen=True)
class TrainRecipe:
    """Everything `train_classifier` does to fit a model (see the module docstring).

    `schedule_step`: StepLR's step_size in iterations (None: a constant learning rate);
    `schedule_gamma`: its factor. After N iterations the rate is lr · gamma ** (N // schedule_step).
    `weight_decay`: Adam's L2 penalty (torch.optim.Adam(weight_decay=...), not AdamW's decoupled
    decay). `label_smoothing`: passed to the cross-entropy. `mixup_alpha`: 0 for none, else each
    batch is mixed with a shuffled copy of itself with λ ~ Beta(α, α) (inputs and the two losses).
    `regime`: "standard" or "adversarial" (then `pgd` gives the attack; the attack is made in eval
    mode, so BatchNorm statistics and dropout are not touched by it, and the update in train mode).
    """

    name: str = "fast"
    epochs: int = 5
    lr: float = 0.01
    batch_size: int = 128
    schedule_step: int | None = None
    schedule_gamma: float = 1.0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.0
    regime: str = "standard"
    pgd: PGDConfig | None = None

    CONSTRAINTS = {
        "epochs": Int(1, STEPS_MAX),
        "lr": Number(0, None, "neither"),
        "batch_size": Int(1),
        "schedule_step": Optional(Int(1)),
        "schedule_gamma": Number(0, 1, "right"),
        "weight_decay": Number(0, None, "left"),
        "label_smoothing": Number(0, 1, "left"),
        "mixup_alpha": Number(0, None, "left"),
        "regime": Options(REGIMES),
    }

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"TrainRecipe.name must be a non-empty str, got {self.name!r}")
        validate_fields(self, self.CONSTRAINTS)
        if self.regime == "adversarial" and not isinstance(self.pgd, PGDConfig):
            raise ParameterError(f"TrainRecipe.pgd must be a PGDConfig when regime is 'adversarial', got {self.pgd!r}")
        if self.regime == "standard" and self.pgd is not None:
            raise ParameterError(
                "TrainRecipe.pgd must be None when regime is 'standard' (PGD is the adversarial regime)"
            )

    def lr_after(self, iterations: int) -> float:
        """The learning rate in effect after `iterations` optimiser steps."""
        if self.schedule_step is None:
            return self.lr
        return self.lr * self.schedule_gamma ** (iterations // self.schedule_step)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, `pgd` as a dict (or None)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["pgd"] = None if self.pgd is None else self.pgd.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainRecipe:
        """The recipe `to_dict` wrote."""
        kw = dict(d)
        if kw.get("pgd") is not None:
            kw["pgd"] = PGDConfig(**kw["pgd"])
        return cls(**kw)


def recipe(name: str = "fast", dataset: str | None = None, **overrides: Any) -> TrainRecipe:
    """A named recipe ("fast" or "paper"), with fields replaced by `overrides` (None values are
    ignored, so CLI options that were not given keep the recipe's values).

    The paper recipe's epochs depend on the data set: 10 for cifar10, 40 otherwise (MNIST,
    Fashion-MNIST and any other data).
    """
    check_options(name, "recipe", RECIPES)
    if name == "paper":
        base = TrainRecipe(
            name="paper",
            epochs=10 if dataset == "cifar10" else 40,
            lr=0.01,
            batch_size=64,
            schedule_step=100,
            schedule_gamma=0.99,
        )
    else:
        base = TrainRecipe()
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {f.name for f in dataclasses.fields(TrainRecipe)})
    if unknown:
        raise ParameterError(f"recipe(): unknown fields {unknown}")
    return dataclasses.replace(base, **given) if given else base


def pgd_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: PGDConfig,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PGD adversarial examples of x [N, ...] (values in [0, 1]) for labels y [N] (int64).

    Maximises the cross-entropy of `model(x_adv)` within the L∞ ball of radius `config.eps` around x,
    intersected with [0, 1]. The model is called as it is (the caller chooses its mode); its
    parameters' gradients are left untouched, and it works inside `torch.no_grad()` too.
    `generator` draws the random start (a CPU generator; the global RNG when None). Returns a
    detached tensor like x.
    """
    if not isinstance(config, PGDConfig):
        raise TypeError(f"config must be a PGDConfig, got {type(config).__name__}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels; expected equal counts")
    x = x.detach()
    lo, hi = (x - config.eps).clamp_(0, 1), (x + config.eps).clamp_(0, 1)
    if config.random_start:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        adv = lo + noise * (hi - lo)
    else:
        adv = x.clone()
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        for _ in range(config.steps):
            adv.requires_grad_(True)
            with torch.enable_grad():  # also inside a caller's no_grad block
                loss = F.cross_entropy(model(adv), y)
                (grad,) = torch.autograd.grad(loss, adv)
            with torch.no_grad():
                adv = torch.minimum(torch.maximum(adv + config.step_size * grad.sign(), lo), hi)
    finally:
        for p in params:
            p.requires_grad_(True)
    return adv.detach()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        # 8/255 and 2/255 read better as fractions of 255
        k = v * 255
        if v < 0.1 and abs(k - round(k)) < 1e-9 and round(k) >= 1:
            return f"{round(k)}/255"
        return f"{v:g}"
    return str(v)


def describe_training(meta: Mapping[str, Any] | None) -> dict[str, str]:
    """What a checkpoint's metadata says about how the classifier was trained, as short texts:
    {"recipe", "regime", "settings"}. Fields a checkpoint does not record read "unrecorded"
    (checkpoints written before recipes were recorded, or models from elsewhere)."""
    meta = meta if isinstance(meta, Mapping) else {}
    extra = meta.get("extra") if isinstance(meta.get("extra"), Mapping) else {}
    training = extra.get("training") if isinstance(extra, Mapping) else None
    rec = training.get("recipe") if isinstance(training, Mapping) else None
    dropout = (meta.get("arch_kwargs") or {}).get("dropout") if isinstance(meta.get("arch_kwargs"), Mapping) else None
    if not isinstance(rec, Mapping):
        return {"recipe": "unrecorded", "regime": "unrecorded", "settings": "unrecorded"}
    parts = [f"{rec.get('epochs')} epochs", f"batch {rec.get('batch_size')}", f"Adam lr {_fmt(rec.get('lr'))}"]
    if rec.get("schedule_step") is not None:
        parts.append(f"StepLR({rec.get('schedule_step')}, {_fmt(rec.get('schedule_gamma'))}) per iteration")
    for key, label in (
        ("weight_decay", "weight decay"),
        ("label_smoothing", "label smoothing"),
        ("mixup_alpha", "mixup α"),
    ):
        v = rec.get(key)
        if isinstance(v, (int, float)) and v > 0:
            parts.append(f"{label} {_fmt(v)}")
    if isinstance(dropout, (int, float)) and dropout > 0:
        parts.append(f"dropout {_fmt(dropout)}")
    regime = str(rec.get("regime", "standard"))
    pgd = rec.get("pgd")
    if regime == "adversarial" and isinstance(pgd, Mapping):
        regime = f"adversarial (PGD ε {_fmt(pgd.get('eps'))}, {pgd.get('steps')} steps of {_fmt(pgd.get('step_size'))})"
    return {"recipe": str(rec.get("name", "?")), "regime": regime, "settings": ", ".join(parts)}
