"""Training several independent autoencoders together: as one vmapped model, in single-thread
worker processes (TrainingPool, on workers.WorkerPool), or one after the other; the mode a run uses
(joint_training_mode) is a function of its settings, never of a timing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from deepdig_fast.adversarial.autoencoders import AutoencoderSpec, Classifier, build_autoencoder
from deepdig_fast.adversarial.config import AdversarialConfig, TrainHistory
from deepdig_fast.adversarial.training import train_adversarial_autoencoder, train_adversarial_autoencoders
from deepdig_fast.configs import JOINT_TRAINING
from deepdig_fast.fast import unwrap
from deepdig_fast.userfiles import defining_modules, user_files
from deepdig_fast.validation import (
    ParameterError,
    check_int,
)
from deepdig_fast.workers import WorkerJob, WorkerPool


def joint_training_mode(
    requested: str, device: torch.device | str, classifier: Classifier, autoencoder, steps: int | str = 5000
) -> str:
    """The joint-training mode that runs for ``requested`` (one of JOINT_TRAINING): a function of the
    setting, the device, torch's thread count and whether the objects pickle -- never of a timing, so
    the choice (which enters stage keys) is the same on every run of the same settings.

    "auto": "vectorized" on CUDA (one vmapped model fills the device), "processes" on a CPU with at
    least two torch threads when classifier and autoencoder pickle (single-thread worker processes;
    small training steps scale badly over threads), otherwise "sequential". With ``steps="auto"``
    each training stops on its own, which one vmapped model cannot: "vectorized" is refused and
    "auto" on CUDA is "sequential"."""
    if requested not in JOINT_TRAINING:
        raise ParameterError(f"joint_training must be one of {', '.join(JOINT_TRAINING)}, got {requested!r}")
    if requested == "vectorized" and steps == "auto":
        raise ParameterError(
            "joint_training 'vectorized' trains a fixed step count: with steps 'auto' use 'auto', 'processes' "
            "or 'sequential'"
        )
    if requested != "auto":
        return requested
    kind = torch.device(device).type
    if kind == "cuda":
        return "sequential" if steps == "auto" else "vectorized"
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
    in "processes" mode. pool: a :class:`TrainingPool` for "processes"
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


def train_one_thread(classifier, x, target, cfg, autoencoder) -> tuple[dict, TrainHistory]:
    """One training of a TrainingPool, run in a worker process with one torch thread: the trained
    autoencoder's state_dict (on the CPU) and its history."""
    torch.set_num_threads(1)
    ae, hist = train_adversarial_autoencoder(classifier, x, target, cfg, autoencoder=autoencoder)
    return {k: v.cpu() for k, v in ae.state_dict().items()}, hist


class TrainingJob:
    """One training submitted to a :class:`TrainingPool`. ``result()`` gives ``(autoencoder,
    TrainHistory)``, the autoencoder rebuilt in the calling thread on the inputs' device and dtype,
    in eval mode; or raises the training's exception. ``done()``: whether the worker has replied."""

    def __init__(self, job: WorkerJob, device: Any, dtype: Any, autoencoder: AutoencoderSpec, shape: Any) -> None:
        self.job = job
        self.future = job.future
        self._spec = (device, dtype, autoencoder, tuple(shape))
        self._result: tuple[nn.Module, TrainHistory] | None = None

    def done(self) -> bool:
        return self.job.done()

    def result(self, timeout: float | None = None) -> tuple[nn.Module, TrainHistory]:
        if self._result is None:
            state, hist = self.job.result(timeout)
            device, dtype, autoencoder, shape = self._spec
            ae = build_autoencoder(autoencoder, shape).to(dtype=dtype)  # the dtype first: a float64 state stays exact
            ae.load_state_dict(state)
            self._result = (ae.to(device=device).eval(), hist)
        return self._result


class TrainingPool:
    """Adversarial-autoencoder trainings in persistent single-thread worker processes
    (workers.WorkerPool: ``processes`` when given -- e.g. started before torch was imported --,
    else ``workers`` new ones; a given pool is the caller's to close).

    ``submit(classifier, x, target, config, autoencoder)`` returns a :class:`TrainingJob` whose
    ``result()`` is :func:`train_adversarial_autoencoder`'s result with one torch thread; jobs wait
    in order for a free worker. A training that raises in the worker raises the same exception
    from ``result()``; a worker that dies is replaced for the next job. The classifier must be a
    CPU ``nn.Module`` that pickles, like the autoencoder spec (:func:`can_train_in_processes`). Use
    as a context manager or call :meth:`close`."""

    def __init__(self, workers: int = 2, *, processes: WorkerPool | None = None) -> None:
        self._owned = processes is None
        self.processes = WorkerPool(workers) if processes is None else processes
        self.workers = self.processes.workers

    def submit(
        self,
        classifier: Classifier,
        x: torch.Tensor,
        target: int,
        config: AdversarialConfig,
        autoencoder: AutoencoderSpec = None,
    ) -> TrainingJob:
        if self.processes.closed:
            raise RuntimeError("this TrainingPool is closed")
        model = unwrap(classifier)
        files = user_files(model, autoencoder)  # the worker imports these before it unpickles the job
        job = self.processes.submit(train_one_thread, (model, x.detach().cpu(), target, config, autoencoder), files)
        return TrainingJob(job, x.device, x.dtype, autoencoder, x.shape[1:])

    def close(self, kill: bool = False) -> None:
        """End the workers (pools made here; a given one only with ``kill``)."""
        if self._owned or kill:
            self.processes.close(kill=kill)

    def __enter__(self) -> TrainingPool:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(kill=exc_type is not None)


def can_train_in_processes(classifier: Classifier, autoencoder: AutoencoderSpec) -> bool:
    """Whether train_in_processes can ship these to worker processes (both must pickle; a CPU
    classifier). A property of the objects, not of timing, so the choice is deterministic."""
    import pickle

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
    with one torch thread (:class:`TrainingPool`: ``pool`` when given,
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
