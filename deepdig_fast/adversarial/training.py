"""Training adversarial autoencoders: one (train_adversarial_autoencoder) or several
independent ones as one vmapped model (train_adversarial_autoencoders), with the loss

    L = BCE(x', x) + alpha * BCE(softmax(f(x')), onehot(target))

(both terms torch.nn.BCELoss with mean reduction; docs/METHOD-NOTES.md)."""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepdig_fast.adversarial.accelerate import training_view
from deepdig_fast.adversarial.autoencoders import AutoencoderSpec, Classifier, build_autoencoder
from deepdig_fast.adversarial.config import TrainHistory, resolved_lr, training_layout
from deepdig_fast.budget import TRAIN_ELEMENTS, fit_batch
from deepdig_fast.configs import COMPILE_MIN_STEPS, AdversarialConfig
from deepdig_fast.fast import unwrap
from deepdig_fast.forward import check_inputs, check_logits
from deepdig_fast.hooks import eval_mode
from deepdig_fast.precision import full_fp32
from deepdig_fast.progress import progress_bar
from deepdig_fast.validation import ParameterError, check_class_id


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
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
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global CPU (and ``device``'s) RNG inside the block; restore both afterwards."""
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def check_unit_range(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        return
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{name} must have values in [0, 1] (BCE reconstruction loss), got min {lo:g}, max {hi:g}")


def check_class(value: object, name: str) -> int:
    return check_class_id(value, name)


def check_classifier_device(classifier: object, device: torch.device) -> None:
    if isinstance(classifier, nn.Module):
        p = next(classifier.parameters(), None)
        if p is not None and p.device != device:
            raise ValueError(
                f"classifier parameters are on {p.device} but the inputs are on {device}; "
                f"move the classifier to {device} (everything runs on the inputs' device)"
            )


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


class _StopRule:
    """The checks of one training every ``auto.every`` steps on a fixed probe of its training
    inputs: the kept share, the reconstruction and the outputs' diversity. With steps "auto" they
    drive the stopping rule (AutoStop); with either, the collapse watch of
    AdversarialConfig.on_collapse. ``restored`` is the step whose weights "restore" put back
    (None: none)."""

    def __init__(self, classifier: Classifier, ae: nn.Module, x: torch.Tensor, target: int, cfg: AdversarialConfig):
        self.classifier, self.ae, self.target, self.cfg, self.rule = classifier, ae, target, cfg, cfg.auto
        self.auto = cfg.steps == "auto"
        # a generator of its own: the batches draw exactly what the fixed-step training draws
        g = torch.Generator().manual_seed((cfg.seed * 1_000_003 + 0x5EED) % (2**31 - 1))
        n = x.shape[0]
        pick = torch.randperm(n, generator=g)[: min(n, self.rule.probe)].sort().values
        self.probe = x.index_select(0, pick.to(x.device))
        with torch.no_grad():
            self.counted = self._predict(self.probe) != target  # inputs not already classified target
        self.best_share, self.best_rec = -1.0, math.inf
        self.stale, self.collapsed = 0, 0
        self.checks: list[dict] = []
        self.reason: str | None = None
        self.sound: tuple[int, dict] | None = None  # (step, weights) of the last sound check ("restore")
        self.restored: int | None = None

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.cat([self.classifier(x[i : i + 1024]) for i in range(0, x.shape[0], 1024)])
        return logits.argmax(dim=1)

    def done(self, step: int) -> bool:
        rule = self.rule
        if step % rule.every:
            return False
        with torch.no_grad(), eval_mode(self.ae):
            out = torch.cat([self.ae(self.probe[i : i + 1024]) for i in range(0, self.probe.shape[0], 1024)])
            hit = self._predict(out) == self.target
            share = float(hit[self.counted].double().mean()) if bool(self.counted.any()) else 1.0
            rec = float(F.binary_cross_entropy(out.double(), self.probe.double()))
            diversity = float(out.flatten(1).std(dim=0).mean()) if out.shape[0] >= 2 else None
        self.checks.append({"step": step, "share": share, "reconstruction": rec, "diversity": diversity})
        # collapsed: nearly identical outputs (one input: no spread), or none classified as the
        # target any more after some were
        identical = diversity is not None and diversity < self.cfg.collapse_std
        lost = share == 0.0 and self.best_share > 0.0
        self.collapsed = self.collapsed + 1 if identical or lost else 0
        improved = share > self.best_share + rule.share_tolerance or rec < self.best_rec * (
            1 - rule.reconstruction_tolerance
        )
        self.best_share, self.best_rec = max(self.best_share, share), min(self.best_rec, rec)
        self.stale = 0 if improved else self.stale + 1
        on_collapse = self.cfg.on_collapse
        if not self.collapsed and on_collapse == "restore":
            self.sound = (step, {k: v.detach().clone() for k, v in self.ae.state_dict().items()})
        if self.collapsed >= 2 and on_collapse != "continue":
            self._collapse(step, diversity, identical)
        elif self.auto and step >= rule.floor and self.stale >= rule.window:
            self.reason = (
                f"plateau at step {step}: kept share {share:.4f}, reconstruction {rec:.4f}; no gain over "
                f"{rule.share_tolerance:g} (share) or {rule.reconstruction_tolerance:.0%} (reconstruction) "
                f"in {rule.window} checks"
            )
        elif self.auto and step >= rule.ceiling:
            self.reason = f"ceiling: {step} steps"
        return self.reason is not None

    def _collapse(self, step: int, diversity: float | None, identical: bool) -> None:
        if identical:
            why = f"outputs nearly identical (mean per-feature std {diversity:.2e} < {self.cfg.collapse_std:g})"
        else:
            why = f"no probe output classified as {self.target} any more (the share had reached {self.best_share:.4f})"
        self.reason = f"collapsed at step {step}: {why} at two checks in a row"
        if self.sound is not None:  # on_collapse "restore"
            self.restored, state = self.sound
            self.ae.load_state_dict(state)
            self.reason += f"; the weights of step {self.restored} restored"


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
    x = check_inputs(x, "x")
    if x.shape[0] == 0:
        raise ValueError("x must contain at least one input, got an empty tensor")
    check_unit_range(x, "x")
    target = check_class(target, "target")
    device = x.device
    check_classifier_device(classifier, device)

    with seeded(cfg.seed, device):
        ae = build_autoencoder(autoencoder, tuple(x.shape[1:]))
        ae.to(device=device, dtype=x.dtype)
        gen = torch.Generator().manual_seed(cfg.seed)
        with training_view(classifier, training_layout(cfg, device, classifier)) as (view, layout):
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
    check_logits(logits, 1)
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
    lr = resolved_lr(cfg, ae)
    opt = torch.optim.Adam(params, lr=lr, fused=fused or None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)

    hist = TrainHistory()
    acc_rec = torch.zeros((), device=device, dtype=torch.float32)
    acc_adv = torch.zeros((), device=device, dtype=torch.float32)
    window = 0
    limit, step = cfg.step_limit, 0
    rule = _StopRule(classifier, ae, x, target, cfg)
    bar = progress_bar(limit, f"AE → class {target}", "step", enabled=progress)

    compiled = wants_compile(cfg, device, layout)
    eager = _view_loss_terms if layout == "channels_last" and device.type == "cpu" else _loss_terms
    loss_fn = _compiled_loss() if compiled else eager
    with gc_paused():
        t0 = time.perf_counter()
        try:
            for step, idx in enumerate(_batch_indices(n, batch, limit, gen, device), start=1):
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
                stop = rule.done(step)
                if step % cfg.log_every == 0 or step == limit or stop:
                    r, a = (torch.stack([acc_rec, acc_adv]) / window).tolist()
                    total = r + alpha * a
                    if not math.isfinite(total):
                        raise FloatingPointError(
                            f"adversarial autoencoder loss became non-finite ({total}) by step {step}; "
                            f"try a smaller AdversarialConfig.lr (now {lr:g})"
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
                if stop:
                    break
        finally:
            bar.close()
    hist.seconds = time.perf_counter() - t0
    hist.steps = step
    hist.checks = rule.checks
    if rule.auto:
        hist.stop_reason = rule.reason or f"ceiling: {limit} steps"
    elif rule.reason is not None:
        hist.stop_reason = rule.reason
    hist.restored_step = rule.restored
    hist.lr = lr
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
        if c.steps == "auto":
            raise ParameterError(
                f"configs[{i}].steps is 'auto': a vectorised training runs one fixed step count for all; "
                f"train them one at a time (joint_training 'sequential' or 'processes') to stop each on its own"
            )
        cfgs.append(c)
    shared = {
        f: getattr(cfgs[0], f) for f in ("alpha", "lr", "step_size", "gamma", "steps", "log_every", "channels_last")
    }
    for i, c in enumerate(cfgs):
        for f, v in shared.items():
            if getattr(c, f) != v:
                raise ValueError(f"configs[{i}].{f} must equal configs[0].{f} ({v!r}) for a vectorised training")
    xs = [check_inputs(x, f"xs[{i}]") for i, x in enumerate(xs)]
    for i, x in enumerate(xs):
        if x.shape[0] == 0:
            raise ValueError(f"xs[{i}] must contain at least one input, got an empty tensor")
        if x.shape[1:] != xs[0].shape[1:] or x.dtype != xs[0].dtype or x.device != xs[0].device:
            raise ValueError(f"xs[{i}] must match xs[0]'s sample shape, dtype and device")
        check_unit_range(x, f"xs[{i}]")
    batches = {min(c.batch_size, x.shape[0]) for c, x in zip(cfgs, xs)}
    if len(batches) != 1:
        raise ValueError(f"min(batch_size, N_k) must be the same for every training, got {sorted(batches)}")
    batch = batches.pop()
    tgts = [check_class(t, f"targets[{i}]") for i, t in enumerate(targets)]
    device, dtype = xs[0].device, xs[0].dtype
    check_classifier_device(classifier, device)

    aes = []
    for c in cfgs:
        with seeded(c.seed, device):
            ae = build_autoencoder(autoencoder, tuple(xs[0].shape[1:]))
        if any(isinstance(m, nn.Dropout) and m.p > 0 for m in ae.modules()):
            raise ValueError("a vectorised training needs autoencoders without dropout")
        aes.append(ae.to(device=device, dtype=dtype).train())
    with torch.no_grad(), eval_mode(classifier):
        logits = classifier(aes[0](xs[0][:1]))
    check_logits(logits, 1)
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
    lr = resolved_lr(cfgs[0], aes[0])
    opt = torch.optim.Adam(plist, lr=lr, fused=fused or None)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=shared["step_size"], gamma=shared["gamma"])
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    streams = [_batch_indices(x.shape[0], batch, shared["steps"], g, device) for x, g in zip(xs, gens)]
    hists = [TrainHistory() for _ in range(k)]
    acc = torch.zeros(2, k, device=device, dtype=torch.float32)
    window = 0
    steps = shared["steps"]
    t0 = time.perf_counter()
    with training_view(classifier, training_layout(cfgs[0], device, classifier)) as (classifier, layout), gc_paused():
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
                            f"try a smaller AdversarialConfig.lr (now {lr:g})"
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
            h.seconds, h.steps, h.final_loss, h.layout, h.lr = seconds, steps, h.loss[-1], layout, lr
            result.append((ae, h))
    return result


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
    """_loss_terms with both BCEs from train_ops.binary_cross_entropy (ATen's values; its CPU kernel is a
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


def wants_compile(cfg: AdversarialConfig, device: torch.device, layout: str = "contiguous") -> bool:
    if device.type not in ("cpu", "cuda"):
        return False
    if cfg.compile == "auto":
        # a channels_last classifier on a CPU ran slower compiled than eager (AdversarialConfig)
        return cfg.step_limit >= COMPILE_MIN_STEPS and not (layout == "channels_last" and device.type == "cpu")
    return bool(cfg.compile)
