"""The in-memory data set every loader returns (`ClassificationData`) and `as_unit`, the one rule
for how its stored inputs read as float."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from deepdig_fast.validation import Int, Optional, check_input_dtype

__all__ = ["SPLITS", "ClassificationData", "as_unit"]

#: The split names, in the order loaders build them.
SPLITS = ("train", "test")


def as_unit(x: torch.Tensor) -> torch.Tensor:
    """Inputs as the method sees them: uint8 pixels -> float32 in [0, 1] (value / 255, exactly the
    values a float32 load gives); any floating-point tensor is returned as it is."""
    return x.to(torch.float32).div_(255.0) if x.dtype == torch.uint8 else x


@dataclass(repr=False)
class ClassificationData:
    """A classification data set held in memory.

    Attributes:
        name: a short label ("mnist", "cifar10", ...).
        x_train: [N_train, C, H, W] (or [N_train, *sample_shape]) inputs: float in [0, 1], or uint8
            pixels standing for value / 255. Image folders and torchvision data sets keep their
            decoded uint8 pixels (a quarter of the memory); every reader converts only the rows it
            uses (`class_inputs`, `inputs`, `probe_inputs`, or `as_unit` on a slice), so a pair run
            materialises float32 for its two classes only. Results do not depend on the storage.
        y_train: int64 [N_train] labels in [0, num_classes).
        x_test: [N_test, *sample_shape] inputs, stored like x_train.
        y_test: int64 [N_test] labels.
        classes: the class names; index i names label i.

    Loaders may share tensors between the instances they return (MNIST is cached in-process), so
    treat the tensors as read-only: derive new tensors instead of modifying them in place.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    def __post_init__(self) -> None:
        # Cheap structural checks only; `from_tensors` also checks value ranges.
        self.classes = list(self.classes)
        for split in SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(
                    f"x_{split} and y_{split} must be torch.Tensors, got {type(x).__name__}, {type(y).__name__}"
                )
            if x.dim() < 2:
                raise ValueError(
                    f"x_{split} must be [N, *sample_shape] with at least 2 dims, got shape {tuple(x.shape)}"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{split} must be [N] with N = x_{split}.shape[0] = {x.shape[0]}, got shape {tuple(y.shape)}"
                )
            if y.dtype != torch.int64:
                raise TypeError(f"y_{split} must be int64, got {y.dtype}")
            check_input_dtype(x, f"x_{split}", pixels=True)
        if self.x_train.dtype != self.x_test.dtype:
            raise TypeError(f"x_train and x_test must have one dtype, got {self.x_train.dtype} and {self.x_test.dtype}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"x_train and x_test must have the same sample shape, got {tuple(self.x_train.shape[1:])} "
                f"and {tuple(self.x_test.shape[1:])}"
            )
        if not self.classes:
            raise ValueError("classes must name at least one class")

    # -- descriptors -------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of classes, len(classes)."""
        return len(self.classes)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (1, 28, 28) for MNIST or (3, 32, 32) for CIFAR-10."""
        return tuple(self.x_train.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the inputs as the method sees them (float32 for uint8 storage)."""
        return torch.float32 if self.x_train.dtype == torch.uint8 else self.x_train.dtype

    def __len__(self) -> int:
        """Number of training samples."""
        return int(self.x_train.shape[0])

    def __repr__(self) -> str:
        return (
            f"ClassificationData(name={self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, num_classes={self.num_classes})"
        )

    # -- access --------------------------------------------------------------------------------------

    def split(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """(x [N, *sample_shape], y [N]) of the "train" or "test" split."""
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def class_index(self, c: int | str) -> int:
        """The label of class `c`, given as a label (int) or a class name (str)."""
        if isinstance(c, str):
            try:
                return self.classes.index(c)
            except ValueError:
                raise ValueError(f"class {c!r} is not one of {self.classes}") from None
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise TypeError(f"class must be an int label or a class name, got {type(c).__name__}")
        if not 0 <= int(c) < self.num_classes:
            raise ValueError(f"class label must be in [0, {self.num_classes}), got {int(c)}")
        return int(c)

    def class_inputs(self, c: int | str, split: str = "train") -> torch.Tensor:
        """Inputs [n_c, *sample_shape] of the given split whose (ground-truth) label is `c`."""
        label = self.class_index(c)
        x, y = self.split(split)
        return as_unit(x[y == label])

    def inputs(
        self, split: str = "train", classes: Sequence[int | str] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of a split restricted to `classes` (all when None), rows in their stored order, x as
        the method sees it (float, see as_unit): only those rows are materialised."""
        x, y = self.split(split)
        if classes is None:
            return as_unit(x), y
        labels = torch.tensor([self.class_index(c) for c in classes], dtype=y.dtype)
        keep = torch.isin(y, labels)
        return as_unit(x[keep]), y[keep]

    def probe_inputs(self, n: int = 2) -> torch.Tensor:
        """The first `n` test inputs (training inputs when there is no test split): what one-forward
        checks (check_fits, the embedding-layer search) feed a classifier."""
        return as_unit(self.x_test[:n] if self.x_test.shape[0] else self.x_train[:n])

    def class_counts(self, split: str = "train") -> list[int]:
        """Number of samples per class in a split, a list of length num_classes."""
        _, y = self.split(split)
        return torch.bincount(y, minlength=self.num_classes).tolist()

    # -- derived sets ------------------------------------------------------------------------------

    def take(self, n_train: int | None = None, n_test: int | None = None) -> ClassificationData:
        """Keep the first `n_train` training and `n_test` test samples (None keeps a split whole).

        The tensors are views of this instance's tensors (no copy)."""
        for arg, n in (("n_train", n_train), ("n_test", n_test)):
            Optional(Int(0)).check(n, arg)
        a = len(self.x_train) if n_train is None else n_train
        b = len(self.x_test) if n_test is None else n_test
        return replace(
            self,
            x_train=self.x_train[:a],
            y_train=self.y_train[:a],
            x_test=self.x_test[:b],
            y_test=self.y_test[:b],
        )

    def subset(
        self,
        classes: Iterable[int | str] | None = None,
        per_class: int | None = None,
        per_class_test: int | None = None,
        seed: int = 0,
    ) -> ClassificationData:
        """Keep only some classes and/or at most `per_class` random samples of each class.

        Labels keep their original values and `classes` keeps all names, so a classifier trained on
        the full set still applies. `per_class_test` defaults to `per_class`. The selection is drawn
        with a generator seeded by `seed`; kept samples stay in their original order.
        """
        keep = None if classes is None else sorted({self.class_index(c) for c in classes})
        if per_class_test is None:
            per_class_test = per_class
        for arg, n in (("per_class", per_class), ("per_class_test", per_class_test)):
            Optional(Int(0)).check(n, arg)
        gen = torch.Generator().manual_seed(int(seed))
        out: dict[str, Any] = {}
        for split, limit in (("train", per_class), ("test", per_class_test)):
            x, y = self.split(split)
            labels = range(self.num_classes) if keep is None else keep
            chosen = []
            for c in labels:
                idx = torch.nonzero(y == c, as_tuple=False).flatten()
                if limit is not None and idx.numel() > limit:
                    idx = idx[torch.randperm(idx.numel(), generator=gen)[:limit]]
                chosen.append(idx)
            index = torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.int64)
            out[f"x_{split}"], out[f"y_{split}"] = x[index], y[index]
        return replace(self, **out)

    def to(self, device: str | torch.device) -> ClassificationData:
        """A copy with all tensors moved to `device`."""
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
        )
