"""The atlas's generators and the state a process computes atlas units with.

A strategy names the generators a direction s -> t uses (generator_name) and what each trains on
(generator_inputs): "pairwise", the paper's AE_I(s->t) on the class-s training inputs; "per-target",
one generator G_t per target class on the correctly classified training inputs of every other
class; "per-target-refine", the same generators, and in each direction s -> t a component-II
autoencoder that starts from G_s and trains a few hundred steps on that direction's adversarial
samples (atlas._direction). A generator is a unit: trained under its own seed, alone or in a joint-training group
(generator_groups), and stored with its weights and how often its outputs reach the target.
A new strategy adds its names and inputs here; the directions compose the method's stages on the
generators it names (atlas._direction).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import torch
from torch import Tensor, nn

from deepdig_fast.adversarial import (
    AdversarialConfig,
    GeneratorOutput,
    JointTraining,
    apply_generator,
    build_autoencoder,
    train_adversarial_autoencoder,
    train_until_sound,
)
from deepdig_fast.configs import PER_TARGET
from deepdig_fast.context import RunContext
from deepdig_fast.data import as_unit
from deepdig_fast.forward import predict
from deepdig_fast.rundir import StageStore, stage_seed
from deepdig_fast.stages import TrajectorySettings


class AtlasState:
    """The state one process needs to compute units: the run context, settings, the store, cached
    predictions and generators."""

    def __init__(self, ctx: RunContext, config: Any, strategy: str, store: StageStore, progress: bool):
        self.ctx = ctx
        self.f = ctx.classifier
        self.data = ctx.data
        self.cfg = config
        self.strategy = strategy
        self.embedding_layer = ctx.embedding_layer
        self.autoencoder = ctx.autoencoder
        self.engine = ctx.engine
        self.trajectory = TrajectorySettings(
            config.trajectory_K, config.trajectory_T, config.trajectory_segments, config.band
        )
        self.store = store
        self.progress = progress
        self.device = ctx.device
        self.memory: dict[str, dict] = {}  # unit outputs when there is no out_dir
        self._pred: Tensor | None = None
        self._gen_cache: dict[str, nn.Module] = {}
        self.bs = config.adversarial.infer_batch_size
        self.gen_specs: dict[str, dict] = {}  # generator unit -> its spec (set by run_atlas)
        self.gen_dirs: dict[str, tuple[int | None, int]] = {}  # generator unit -> (source or None, target)
        self.gen_groups: dict[str, JointTraining] = {}  # generator unit -> its joint-training group

    # ---- data
    def train_pred(self) -> Tensor:
        """Predicted labels of every training input (computed once per process)."""
        if self._pred is None:
            self._pred = predict(self.f, self.data.x_train.to(self.device), self.bs).argmax(dim=1).cpu()
        return self._pred

    def class_train(self, c: int) -> tuple[Tensor, Tensor]:
        mask = self.data.y_train == c
        return as_unit(self.data.x_train[mask]).to(self.device), self.train_pred()[mask]

    # ---- generators
    def adv_config(self, unit: str) -> AdversarialConfig:
        return dataclasses.replace(self.cfg.adversarial, seed=stage_seed(self.cfg.seed, unit))

    def output(self, name: str, spec: dict) -> dict:
        """A finished unit's output (verified against the key of `spec`)."""
        if name in self.memory:
            return self.memory[name]
        return self.store.load(name, spec)

    def generator(self, name: str) -> nn.Module:
        if name not in self._gen_cache:
            state = self.output(name, self.gen_specs[name])["state_dict"]
            ae = build_autoencoder(self.autoencoder, tuple(self.data.x_train.shape[1:]))
            ae.load_state_dict(state)
            ae.to(device=self.device, dtype=self.data.dtype).eval()
            if len(self._gen_cache) >= 4:
                self._gen_cache.pop(next(iter(self._gen_cache)))
            self._gen_cache[name] = ae
        return self._gen_cache[name]


def generator_name(strategy: str, s: int, t: int) -> str:
    return f"generators/to_{t}" if strategy in PER_TARGET else f"generators/ae1_{s}-{t}"


def _apply(ctx: AtlasState, ae: nn.Module, x: Tensor, target: int) -> GeneratorOutput:
    """The trained generator on its own training inputs: how often its outputs are classified
    `target`, and a collapse diagnosis (None when it did not collapse)."""
    return apply_generator(
        ctx.f,
        ae,
        x,
        None,
        target,
        batch_size=ctx.bs,
        collapse_std=ctx.cfg.adversarial.collapse_std,
        name=f"generator into {target}",
    )


def generator_inputs(ctx: AtlasState, name: str) -> tuple[Tensor, int, list[int], int]:
    """(training inputs, target, source classes, correctly classified inputs) of a generator unit."""
    s, t = ctx.gen_dirs[name]
    if s is None:  # per-target: every correctly classified input of another class
        pred = ctx.train_pred()
        y = ctx.data.y_train
        pool = (y != t) & (pred == y)
        if not bool(pool.any()):
            raise ValueError(
                f"no correctly classified training input outside class {t}: cannot train the generator into {t}"
            )
        x = as_unit(ctx.data.x_train[pool]).to(ctx.device)
        # the pool holds correctly classified inputs only
        return x, t, sorted({int(c) for c in y[pool].unique()}), int(x.shape[0])
    x, pred = ctx.class_train(s)
    if x.shape[0] == 0:
        raise ValueError(f"the data set has no training input of class {s}")
    return x, t, [s], int((pred == s).sum())


def train_generator(ctx: AtlasState, name: str) -> dict:
    """Train the generator of unit `name` (alone, or with its group: ctx.gen_groups) under the unit's
    seed, retrained with the next seed while it collapses (AtlasConfig.retry_collapsed); its
    weights and stats."""
    x, t, sources, inputs_correct = generator_inputs(ctx, name)
    group = ctx.gen_groups.get(name)
    ae, hist, g, tries = train_until_sound(
        lambda cfg: train_adversarial_autoencoder(ctx.f, x, t, cfg, autoencoder=ctx.autoencoder, progress=ctx.progress),
        lambda ae: _apply(ctx, ae, x, t),
        ctx.adv_config(name),
        ctx.cfg.retry_collapsed,
        first=None if group is None else group.get(name),
    )
    assert hist is not None  # trained here or by its group
    stats = {
        "inputs": g.stats.n_inputs,
        "outputs_target": g.stats.outputs_target,
        "lr": hist.lr,
        "steps": hist.steps,
        "stop": hist.stop_reason,
        **({"restored_step": hist.restored_step} if hist.restored_step is not None else {}),
        "final_loss": hist.final_loss,
        "train_seconds": hist.seconds,
        "collapse": g.collapse,
        "tries": tries,
    }
    return {
        "state_dict": {k: v.cpu() for k, v in ae.state_dict().items()},
        "stats": {"target": t, "sources": sources, "inputs_correct": inputs_correct, **stats},
    }


def _job(ctx: AtlasState, name: str) -> tuple[Tensor, int, AdversarialConfig]:
    x, t, _, _ = generator_inputs(ctx, name)
    return x, t, ctx.adv_config(name)


def generator_groups(ctx: AtlasState, names: list[str], mode: str, pool=None) -> dict[str, JointTraining]:
    """{unit: its JointTraining} for joint-training `mode` ({} when sequential) of the generators
    `names`: processes, consecutive groups of as many generators as torch has threads (at least
    2), training only the ones not stored yet, in `pool` (a TrainingPool) when given -- `names`
    are this rank's own, so no rank trains another's; vectorized, one group of all (a resumed
    atlas retrains it whole)."""
    if mode == "sequential" or not names:
        return {}
    size = len(names) if mode == "vectorized" else max(2, torch.get_num_threads())
    out = {}
    for i in range(0, len(names), size):
        members = names[i : i + size]
        group = JointTraining(
            ctx.f,
            {n: functools.partial(_job, ctx, n) for n in members},
            mode,
            autoencoder=ctx.autoencoder,
            pending=lambda n: not ctx.store.finished(n, ctx.gen_specs[n]),
            workers=len(members),
            pool=pool,
        )
        out.update({n: group for n in members})
    return out
