"""Reference classifiers (docs/METHOD-NOTES.md, "Reference classifiers") and a small training loop.

Every model here follows one convention so the DeepDIG engine can read its embedding with a forward
hook (`deepdig_fast.hooks`) instead of returning a (logits, features) tuple:

- `model(x)` returns logits [N, num_classes] for inputs x [N, C, H, W] in [0, 1];
- `model.embedding` is a submodule whose output is the embedding h(x) [N, E]: the input of the last
  linear layer, after its activation; `model.head` is that last linear layer;
- the class attribute `EMBEDDING_LAYER = "embedding"` names it for `dict(model.named_modules())`;
- `model.config()` returns the constructor arguments, so a checkpoint can rebuild the model;
- attributes `num_classes`, `in_shape` (C, H, W) and `embedding_dim` (E) describe it;
- `dropout=p` (default 0) puts a dropout layer between the embedding and the head (no parameters,
  so the state_dict is the same as without it; the embedding is read before the dropout).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepdig_fast.data import ClassificationData, as_unit
from deepdig_fast.hooks import model_device
from deepdig_fast.validation import ParameterError, check_int, check_number

if TYPE_CHECKING:
    from deepdig_fast.training import TrainRecipe

__all__ = [
    "MnistCNN",
    "MnistFCN",
    "CifarResNet",
    "CifarResNet18",
    "CifarResNet34",
    "CifarGoogLeNet",
    "ARCHITECTURES",
    "build_classifier",
    "train_classifier",
    "evaluate_accuracy",
    "predict_labels",
]


def _check_shape(in_shape: Sequence[int], arg: str = "in_shape") -> tuple[int, int, int]:
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or any(s <= 0 for s in shape):
        raise ValueError(f"{arg} must be (C, H, W) with positive sizes, got {tuple(in_shape)}")
    return shape


def _check_classes(num_classes: int) -> int:
    return check_int(num_classes, "num_classes", low=2)


def _dropout(p: float) -> nn.Module:
    """The layer between embedding and head: nn.Dropout(p), or nn.Identity for p = 0."""
    p = check_number(p, "dropout", low=0, high=1, closed="left")
    return nn.Dropout(p) if p > 0 else nn.Identity()


class MnistCNN(nn.Module):
    """The paper's MNIST / Fashion-MNIST CNN.

    Conv(C→10, k3) → maxpool 2 → ReLU → Conv(10→10, k3) → maxpool 2 → ReLU → flatten (250 for
    28×28) → Linear(250→50) → ReLU [embedding, 50-d] → Linear(50→num_classes).

    Input [N, C, H, W] (default [N, 1, 28, 28]); output logits [N, num_classes]; `embedding` outputs
    [N, 50].
    """

    EMBEDDING_LAYER = "embedding"

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: Sequence[int] = (1, 28, 28),
        channels: int = 10,
        hidden: int = 50,
        dropout: float = 0.0,
    ):
        super().__init__()
        c, h, w = _check_shape(in_shape)
        self.num_classes = _check_classes(num_classes)
        self.in_shape = (c, h, w)
        self.channels, self.hidden = int(channels), int(hidden)
        fh, fw = ((h - 2) // 2 - 2) // 2, ((w - 2) // 2 - 2) // 2
        if fh <= 0 or fw <= 0:
            raise ValueError(f"in_shape {self.in_shape} is too small for MnistCNN; expected H, W >= 10")
        self.features = nn.Sequential(
            nn.Conv2d(c, self.channels, kernel_size=3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(self.channels, self.channels, kernel_size=3),
            nn.MaxPool2d(2),
            nn.ReLU(),
        )
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(self.channels * fh * fw, self.hidden), nn.ReLU())
        self.dropout, self.p_dropout = _dropout(dropout), float(dropout)
        self.head = nn.Linear(self.hidden, self.num_classes)
        self.embedding_dim = self.hidden

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_shape": list(self.in_shape),
            "channels": self.channels,
            "hidden": self.hidden,
            "dropout": self.p_dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.dropout(self.embedding(self.features(x))))


class MnistFCN(nn.Module):
    """The paper's fully connected MNIST / Fashion-MNIST classifier.

    flatten (784) → Linear(784→50) → ReLU → Linear(50→50) → ReLU [embedding, 50-d] →
    Linear(50→num_classes). Input [N, C, H, W] (any shape whose sample has C·H·W values); output
    logits [N, num_classes]; `embedding` outputs [N, 50].
    """

    EMBEDDING_LAYER = "embedding"

    def __init__(
        self, num_classes: int = 10, in_shape: Sequence[int] = (1, 28, 28), hidden: int = 50, dropout: float = 0.0
    ):
        super().__init__()
        self.in_shape = _check_shape(in_shape)
        self.num_classes = _check_classes(num_classes)
        self.hidden = int(hidden)
        d = math.prod(self.in_shape)
        self.embedding = nn.Sequential(
            nn.Flatten(), nn.Linear(d, self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden), nn.ReLU()
        )
        self.dropout, self.p_dropout = _dropout(dropout), float(dropout)
        self.head = nn.Linear(self.hidden, self.num_classes)
        self.embedding_dim = self.hidden

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_shape": list(self.in_shape),
            "hidden": self.hidden,
            "dropout": self.p_dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.dropout(self.embedding(x)))


class _BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR-style ResNet (3×3 stem, no initial max-pool) with basic blocks.

    `depth` 18 → blocks (2, 2, 2, 2), 34 → (3, 4, 6, 3) (the paper's CIFAR-10 model); `blocks`
    overrides it with any per-stage block counts (e.g. (1, 1) for a tiny test model). Stage i has
    `width · 2**i` channels and stride 2 from the second stage on. The embedding is the global
    average of the last stage's ReLU feature map, [N, width · 2**(len(blocks) − 1)] (512 for the
    default width 64 and four stages).

    Input [N, C, H, W] (default [N, 3, 32, 32]); output logits [N, num_classes]. Uses BatchNorm:
    call `.eval()` before analysing the model.
    """

    EMBEDDING_LAYER = "embedding"
    DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: Sequence[int] = (3, 32, 32),
        depth: int = 18,
        width: int = 64,
        blocks: Sequence[int] | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_shape = _check_shape(in_shape)
        self.num_classes = _check_classes(num_classes)
        if blocks is None:
            if depth not in self.DEPTHS:
                raise ValueError(f"depth must be one of {sorted(self.DEPTHS)} (or pass blocks=), got {depth!r}")
            blocks = self.DEPTHS[depth]
        self.blocks = tuple(int(b) for b in blocks)
        if not self.blocks or any(b < 1 for b in self.blocks):
            raise ValueError(f"blocks must be a non-empty sequence of positive ints, got {tuple(blocks)}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.depth, self.width = int(depth), width
        layers: list[nn.Module] = [
            nn.Conv2d(self.in_shape[0], width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        c_in = width
        for i, n in enumerate(self.blocks):
            c_out = width * 2**i
            for j in range(n):
                layers.append(_BasicBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout, self.p_dropout = _dropout(dropout), float(dropout)
        self.head = nn.Linear(c_in, self.num_classes)
        self.embedding_dim = c_in

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_shape": list(self.in_shape),
            "depth": self.depth,
            "width": self.width,
            "blocks": list(self.blocks),
            "dropout": self.p_dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.dropout(self.embedding(self.features(x))))


class CifarResNet18(CifarResNet):
    """CifarResNet with depth 18 (blocks 2, 2, 2, 2; 512-d embedding) by default."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32), depth: int = 18, **kwargs: Any):
        super().__init__(num_classes, in_shape, depth=depth, **kwargs)


class CifarResNet34(CifarResNet):
    """The paper's CIFAR-10 ResNet-34: CifarResNet with depth 34 (blocks 3, 4, 6, 3; 512-d embedding)."""

    def __init__(self, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32), depth: int = 34, **kwargs: Any):
        super().__init__(num_classes, in_shape, depth=depth, **kwargs)


def _conv_bn(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU()]


class _Inception(nn.Module):
    """An Inception block: four branches concatenated along channels — 1×1; 1×1 → 3×3; 1×1 → 3×3 →
    3×3 (the CIFAR variant's stand-in for 5×5); 3×3 max-pool (stride 1) → 1×1. Each conv is followed
    by BatchNorm and ReLU; spatial size is kept. Output channels: n1 + n3 + n5 + pool."""

    def __init__(self, c_in: int, n1: int, n3_red: int, n3: int, n5_red: int, n5: int, pool: int):
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_bn(c_in, n1, 1))
        self.branch3 = nn.Sequential(*_conv_bn(c_in, n3_red, 1), *_conv_bn(n3_red, n3, 3))
        self.branch5 = nn.Sequential(*_conv_bn(c_in, n5_red, 1), *_conv_bn(n5_red, n5, 3), *_conv_bn(n5, n5, 3))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *_conv_bn(c_in, pool, 1))
        self.out_channels = n1 + n3 + n5 + pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


class CifarGoogLeNet(nn.Module):
    """The CIFAR GoogLeNet of the paper's CIFAR-10 experiments (1024-d embedding).

    A 3×3 stem (192 channels, BatchNorm, ReLU), Inception blocks 3a, 3b, max-pool (3, stride 2),
    4a–4e, max-pool, 5a, 5b with the channel plan of Szegedy et al.'s GoogLeNet (3b: 480, 4e: 832,
    5b: 1024 channels), then global average pooling: the embedding [N, 1024]. `width` scales every
    channel count (rounded, at least 1; 1.0 is the paper's model, smaller values give test-sized
    models). No auxiliary classifiers.

    Input [N, C, H, W] (default [N, 3, 32, 32]); output logits [N, num_classes]. Uses BatchNorm:
    call `.eval()` before analysing the model.
    """

    EMBEDDING_LAYER = "embedding"
    #: (n1, n3_red, n3, n5_red, n5, pool) of blocks 3a, 3b | 4a–4e | 5a, 5b
    PLAN = (
        ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
        (
            (192, 96, 208, 16, 48, 64),
            (160, 112, 224, 24, 64, 64),
            (128, 128, 256, 24, 64, 64),
            (112, 144, 288, 32, 64, 64),
            (256, 160, 320, 32, 128, 128),
        ),
        ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
    )

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: Sequence[int] = (3, 32, 32),
        width: float = 1.0,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_shape = _check_shape(in_shape)
        self.num_classes = _check_classes(num_classes)
        self.width = check_number(width, "width", low=0, high=1, closed="right")

        def w(n: int) -> int:
            return max(1, round(n * self.width))

        layers: list[nn.Module] = _conv_bn(self.in_shape[0], w(192), 3)
        c = w(192)
        for stage, blocks in enumerate(self.PLAN):
            if stage > 0:
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            for plan in blocks:
                block = _Inception(c, *(w(n) for n in plan))
                layers.append(block)
                c = block.out_channels
        self.features = nn.Sequential(*layers)
        self.embedding = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dropout, self.p_dropout = _dropout(dropout), float(dropout)
        self.head = nn.Linear(c, self.num_classes)
        self.embedding_dim = c

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this architecture."""
        return {
            "num_classes": self.num_classes,
            "in_shape": list(self.in_shape),
            "width": self.width,
            "dropout": self.p_dropout,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.dropout(self.embedding(self.features(x))))


#: Built-in architectures by name.
ARCHITECTURES: dict[str, type[nn.Module]] = {
    "cnn": MnistCNN,
    "fcn": MnistFCN,
    "resnet": CifarResNet,
    "resnet18": CifarResNet18,
    "resnet34": CifarResNet34,
    "googlenet": CifarGoogLeNet,
}

_DEFAULT_SHAPES = {
    "cnn": (1, 28, 28),
    "fcn": (1, 28, 28),
    "resnet": (3, 32, 32),
    "resnet18": (3, 32, 32),
    "resnet34": (3, 32, 32),
    "googlenet": (3, 32, 32),
}


def build_classifier(
    arch: str,
    num_classes: int = 10,
    in_shape: Sequence[int] | None = None,
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a fresh built-in classifier.

    Args:
        arch: "cnn" (MnistCNN), "fcn" (MnistFCN), "resnet" (CifarResNet, depth 18 unless given),
            "resnet18" / "resnet34" (CifarResNet18 / CifarResNet34; 34 is the paper's CIFAR-10 model)
            or "googlenet" (CifarGoogLeNet).
        num_classes: number of output logits.
        in_shape: (C, H, W) of one input; None means the architecture's default ((1, 28, 28) for
            cnn/fcn, (3, 32, 32) for the CIFAR models).
        seed: if given, the weights are initialised from this seed without touching the global RNG.
        **kwargs: further constructor arguments (dropout= for every one; width=, blocks= for resnet).
    """
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    shape = _DEFAULT_SHAPES[arch] if in_shape is None else tuple(in_shape)
    cls = ARCHITECTURES[arch]
    try:
        if seed is None:
            return cls(num_classes=num_classes, in_shape=shape, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return cls(num_classes=num_classes, in_shape=shape, **kwargs)
    except ParameterError:
        raise
    except TypeError as e:
        raise TypeError(f"build_classifier({arch!r}): bad keyword arguments {sorted(kwargs)} ({e})") from e


def predict_labels(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels int64 [N] (on x's device) for inputs x [N, *sample_shape]; the model runs
    without grad in eval mode (every module's mode restored after) on copies of x's batches."""
    from deepdig_fast.hooks import inference

    check_int(batch_size, "batch_size", low=1)
    device = model_device(model)
    with inference(model):  # copy=True: the model may edit its input in place, x stays as it is
        out = [
            model(as_unit(x[i : i + batch_size]).to(device, copy=True)).argmax(1).to(x.device)
            for i in range(0, x.shape[0], batch_size)
        ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64, device=x.device)


def evaluate_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Share of inputs x [N, *sample_shape] whose predicted label equals y [N] (eval mode; NaN if N = 0)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels; expected equal counts")
    if x.shape[0] == 0:
        return float("nan")
    return float((predict_labels(model, x, batch_size) == y.to(x.device)).double().mean())


def train_classifier(
    model: nn.Module,
    data: ClassificationData,
    recipe: TrainRecipe | None = None,
    *,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    eval_train: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train `model` on data's train split as `recipe` says (default: the "fast" recipe, Adam lr
    0.01, 5 epochs, batch 128; `deepdig_fast.training.recipe("paper", dataset)` is the paper's).

    `epochs`, `lr` and `batch_size`, when given, replace the recipe's. Each epoch visits the training
    set once in a random order drawn from `seed` (the global RNG is left untouched), in disjoint
    mini-batches (the last one may be smaller); the learning-rate schedule, label smoothing, mixup
    and the adversarial regime (PGD examples replace each batch) are applied as the recipe's fields
    describe (`deepdig_fast.training.TrainRecipe`). The model ends on `device` in eval mode.
    `on_epoch_end(epoch, mean_loss)`, if given, is called after each epoch (epoch counts from 1).

    Returns:
        {"test_accuracy", "train_accuracy" (None unless eval_train), "epochs", "seconds" (training
        time, excluding evaluation), "epoch_losses" (mean loss per epoch), "lr", "batch_size", "seed",
        "iterations" (optimiser steps), "final_lr" (the rate after the last step), "recipe"
        (TrainRecipe.to_dict(), what a checkpoint records)}.
    """
    from deepdig_fast.training import TrainRecipe, pgd_attack
    from deepdig_fast.training import recipe as named_recipe

    if recipe is None:
        recipe = named_recipe("fast")
    elif not isinstance(recipe, TrainRecipe):
        raise TypeError(f"recipe must be a TrainRecipe or None, got {type(recipe).__name__}")
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=check_int(epochs, "epochs", low=1))
    if batch_size is not None:
        recipe = dataclasses.replace(recipe, batch_size=check_int(batch_size, "batch_size", low=1))
    if lr is not None:
        recipe = dataclasses.replace(recipe, lr=check_number(lr, "lr", low=0, closed="neither"))
    if not isinstance(data, ClassificationData):
        raise TypeError(f"data must be a ClassificationData, got {type(data).__name__}")
    n = data.x_train.shape[0]
    if n == 0:
        raise ValueError("data has no training samples")
    dev = torch.device(device)
    model.to(dev)
    x_train, y_train = data.x_train.to(dev), data.y_train.to(dev)  # one copy up front on an accelerator
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = (
        torch.optim.lr_scheduler.StepLR(opt, step_size=recipe.schedule_step, gamma=recipe.schedule_gamma)
        if recipe.schedule_step is not None
        else None
    )
    gen = torch.Generator().manual_seed(int(seed))
    mix_rng = np.random.default_rng(int(seed))  # mixup's λ ~ Beta(α, α)
    bs = recipe.batch_size
    steps = math.ceil(n / bs)

    from deepdig_fast.progress import progress_bar

    bar = progress_bar(recipe.epochs * steps, f"train {type(model).__name__}", "batch", enabled=progress)
    losses: list[float] = []
    rng_devices = [dev] if dev.type == "cuda" else []
    iterations = 0
    start = time.perf_counter()
    with torch.random.fork_rng(devices=rng_devices):  # dropout etc. draw from a seeded, private stream
        torch.manual_seed(int(seed))
        model.train()
        try:
            for epoch in range(recipe.epochs):
                order = torch.randperm(n, generator=gen).to(dev)
                total = torch.zeros((), dtype=torch.float64, device=dev)
                for i in range(steps):
                    idx = order[i * bs : (i + 1) * bs]
                    xb, yb = as_unit(x_train[idx]), y_train[idx]  # uint8 pixels: converted per batch
                    if recipe.pgd is not None:  # the adversarial regime: the batch's PGD examples
                        model.eval()
                        xb = pgd_attack(model, xb, yb, recipe.pgd, generator=gen)
                        model.train()
                    if recipe.mixup_alpha > 0:
                        lam = float(mix_rng.beta(recipe.mixup_alpha, recipe.mixup_alpha))
                        perm = torch.randperm(xb.shape[0], generator=gen).to(dev)
                        out = model(lam * xb + (1 - lam) * xb[perm])
                        loss = lam * F.cross_entropy(out, yb, label_smoothing=recipe.label_smoothing) + (
                            1 - lam
                        ) * F.cross_entropy(out, yb[perm], label_smoothing=recipe.label_smoothing)
                    else:
                        loss = F.cross_entropy(model(xb), yb, label_smoothing=recipe.label_smoothing)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()  # every iteration, as the public code does
                    iterations += 1
                    total += loss.detach() * idx.numel()
                    if i % 20 == 0 and bar.mode != "off":
                        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}")
                    bar.update(1)
                losses.append(float(total) / n)
                if on_epoch_end is not None:
                    on_epoch_end(epoch + 1, losses[-1])
        finally:
            bar.close()
            model.eval()
    seconds = time.perf_counter() - start
    test_acc = evaluate_accuracy(model, data.x_test, data.y_test)
    train_acc = evaluate_accuracy(model, x_train, y_train) if eval_train else None
    return {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "epochs": recipe.epochs,
        "seconds": seconds,
        "epoch_losses": losses,
        "lr": recipe.lr,
        "batch_size": recipe.batch_size,
        "seed": seed,
        "iterations": iterations,
        "final_lr": float(opt.param_groups[0]["lr"]),
        "recipe": recipe.to_dict(),
    }
