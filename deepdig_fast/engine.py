"""The batched borderline engine: DeepDIG component III ("Algorithm 1") on fused C++/CUDA ops.

Every pair (a, b), a predicted `source` and b predicted `target`, is the segment
x(lam) = a + lam * (b - a). Each step costs exactly one model forward on the still-unfinished pairs:

    x, lam, stalled = bracket_propose(...)   # gather the live pairs' ends + interpolate (+ stall test)
    logits = model(x)                          # the only thing that runs in Python
    codes = bracket_update(logits, ...)        # decide, update [lo, hi], record finished pairs

Finished pairs leave the live batch (active-set compaction) and waiting pairs take their places,
so the batch stays at `batch_size` until the queue runs dry.

Three loops run these steps (`loop=`); all give every pair the same sequence of points, the same
`forwards` and `steps`:

    "compact"  the host compacts the live index after every step (reads the codes: one host
               synchronisation per step). The default on a CPU, where that costs nothing.
    "static"   a fixed live batch of `batch_size` slots; a finished pair's slot is refilled from the
               queue on the device (a prefix sum over the free slots), an empty slot is index -1
               (the kernels skip it). Nothing in a step reads a value back to the host.
    "graph"    "static" with one step captured as a CUDA graph after a few eager warm-up steps and
               replayed: one launch per step instead of one per kernel, and the host reads the
               live count one step behind (an extra step on an all-empty batch changes nothing).
               CUDA only; the default there. A capture that fails falls back to "static" with one
               warning; `BorderlineResult.loop` says which ran.

Pairs take the same slots-free-up order in every loop (the survivors, then the queue in order), so
the set of live pairs at each step is the same; only their order inside the batch differs, which
changes a point only where the model's batched forward rounds a row differently by its position.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from deepdig_fast import ops
from deepdig_fast.budget import FORWARD_ELEMENTS, fit_batch
from deepdig_fast.configs import DEFAULT_BATCH_SIZE
from deepdig_fast.fast import inference_mode, prepared_for
from deepdig_fast.hooks import capture_embeddings, eval_mode, private
from deepdig_fast.precision import full_fp32
from deepdig_fast.status import (
    EMPTY_ROW,
    F_G_HI,
    F_G_LO,
    F_HI,
    F_LO,
    I_ATTEMPTS,
    I_INTRUDER,
    I_SIDE,
    I_STATUS,
    Status,
)
from deepdig_fast.validation import BETA, BETA_RULE, MAX_STEPS_MAX, check_input_dtype, check_int


@dataclass
class BorderlineResult:
    """One row per input pair (fixed shapes), in input order.

    points: [P, *sample_shape] the last evaluated point (the borderline instance on SUCCESS; the
        failing point otherwise; NaN when no point was evaluated). status: [P] int64 Status codes.
    intruder: [P] int64 the third class on THIRD_CLASS, else -1. attempts: [P] int64 points
        evaluated (counted as the reference loop counts them). probs: [P, C] float64 softmax at the
        point (NaN if none). lam: [P] float64 position on the segment a -> b. embeddings: [P, E]
        or None. source, target: [P] int64. forwards: images passed through the model (ends + steps).
        loop: the loop that ran ("compact", "static" or "graph"; see the module docstring).
        inference: how the classifier's forwards ran ("torchscript", "inductor" or "eager").
    """

    points: Tensor
    status: Tensor
    intruder: Tensor
    attempts: Tensor
    probs: Tensor
    lam: Tensor
    embeddings: Tensor | None
    source: Tensor
    target: Tensor
    forwards: int
    method: str
    beta: float
    max_steps: int
    batch_size: int
    seconds: float
    steps: int = 0
    loop: str = "compact"
    inference: str = "eager"

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def success(self) -> Tensor:
        """[P] bool mask of the pairs that reached the boundary."""
        return self.status == Status.SUCCESS

    def select(self, mask: Tensor) -> BorderlineResult:
        """The rows where `mask` ([P] bool or index tensor) holds, as a new result (same counters)."""
        kw: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            kw[f.name] = v[mask.to(v.device)] if isinstance(v, Tensor) else v
        return BorderlineResult(**kw)

    def summary(self) -> dict:
        """Success rate, mean attempts over successes / failures / all, counts per status, cost."""
        n = len(self)
        att = self.attempts.double().cpu()
        st = self.status.cpu()
        ok = st == Status.SUCCESS
        bad = ~ok

        def mean(mask):
            return float(att[mask].mean()) if bool(mask.any()) else float("nan")

        counts = {s.name: int((st == s).sum()) for s in Status if s is not Status.PENDING}
        succ = int(ok.sum())
        return {
            "pairs": n,
            "method": self.method,
            "successes": succ,
            "success_rate": succ / n if n else float("nan"),
            "mean_attempts_success": mean(ok),
            "mean_attempts_failure": mean(bad),
            "mean_attempts_all": mean(torch.ones_like(ok)),
            "counts": counts,
            "forwards": self.forwards,
            "forwards_per_success": self.forwards / succ if succ else float("nan"),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seconds": self.seconds,
        }

    def to_record(self, a_index: Tensor, b_index: Tensor) -> dict[str, Any]:
        """What a run folder stores of this result (every field, tensors on the CPU), with the rows
        of the inputs each pair's ends came from (`a_index`, `b_index`: [P] int64)."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record = {k: v.cpu() if isinstance(v, Tensor) else v for k, v in record.items()}
        return {**record, "a_index": a_index.cpu(), "b_index": b_index.cpu()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BorderlineResult:
        """The result a to_record dict holds (its other entries ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})


def default_batch_size(device: torch.device | str, sample_shape: Sequence[int] = ()) -> int:
    """The engine's fixed live batch for a device (512 on a CPU, 16384 on an accelerator), fewer for
    large inputs (budget.fit_batch: e.g. 64 on a CPU at 3x224x224) so that one step's forward has
    bounded memory; it depends on the device type and the input shape only."""
    fixed = DEFAULT_BATCH_SIZE["cpu" if torch.device(device).type == "cpu" else "accelerator"]
    return fit_batch(fixed, sample_shape, FORWARD_ELEMENTS)


#: values of refine_borderline's `loop` ("auto": default_loop of the device)
LOOPS = ("auto", "compact", "static", "graph")


def default_loop(device: torch.device | str, compile: bool | str = True) -> str:
    """The loop `loop="auto"` runs: "graph" on a CUDA device, "compact" elsewhere (a function of the
    device type only). `compile` is the runs' switch (False or "eager": every forward eager, so no
    CUDA graph either: "compact")."""
    if compile in (False, "eager"):
        return "compact"
    return "graph" if torch.device(device).type == "cuda" else "compact"


# --------------------------------------------------------------------------------------------------
# argument handling
# --------------------------------------------------------------------------------------------------


def _class_ids(v, P: int, name: str, device) -> Tensor:
    if isinstance(v, Tensor):
        if v.dtype.is_floating_point or v.dtype == torch.bool or v.is_complex():
            raise TypeError(f"{name} must be an int or an integer tensor, got dtype {v.dtype}")
        if v.dim() == 0:
            v = v.reshape(1).expand(P)
        if v.shape != (P,):
            raise ValueError(
                f"{name} must be an int or a tensor of shape [{P}] (one class per pair), got {list(v.shape)}"
            )
        return v.to(device=device, dtype=torch.int64).contiguous()
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int or an integer tensor, got {type(v).__name__}")
    return torch.full((P,), v, dtype=torch.int64, device=device)


def _check_pairs(a, b) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape [P, ...], got {type(t).__name__}")
        check_input_dtype(t, name)
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have shape [P, ...] with at least one feature dimension, got {list(t.shape)}"
            )
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got a {list(a.shape)} and b {list(b.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")
    for name, t in (("a", a), ("b", b)):
        if t.numel() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or Inf")


def _logits(model, x: Tensor, n_classes: int | None) -> Tensor:
    out = model(x)
    if not isinstance(out, Tensor):
        raise TypeError(
            f"model must return a logits tensor of shape [N, C]; it returned {type(out).__name__} "
            "(for a model returning (logits, features), wrap it and name the embedding layer instead)"
        )
    if out.dim() != 2 or out.shape[0] != x.shape[0] or (n_classes is not None and out.shape[1] != n_classes):
        want = f"[{x.shape[0]}, {n_classes if n_classes is not None else 'C'}]"
        raise ValueError(f"model must return logits of shape {want} for a batch of {x.shape[0]}, got {list(out.shape)}")
    if not out.is_floating_point():
        raise TypeError(f"model must return floating-point logits, got {out.dtype}")
    return out


# --------------------------------------------------------------------------------------------------
# live-batch size, measured per model and device
# --------------------------------------------------------------------------------------------------

_BATCH_CACHE: weakref.WeakKeyDictionary[object, dict] = weakref.WeakKeyDictionary()


@torch.no_grad()
def choose_batch_size(model, sample: Tensor, limit: int) -> int:
    """The live-batch size with the highest measured throughput (images/s) for this model and device.

    Times a forward at powers of two up to `limit` (and up to 1024 on CPU, 65536 on GPUs) on copies
    of `sample` ([n, ...]) and caches the answer per (model, sample shape, dtype, device).
    """
    limit = max(1, int(limit))
    top = 65536 if sample.device.type != "cpu" else 1024
    candidates = [c for c in (32, 64, 128, 256, 512, 1024, 4096, 16384, 65536) if c <= min(limit, top)]
    if not candidates or limit <= candidates[0]:
        return limit
    key = (tuple(sample.shape[1:]), sample.dtype, str(sample.device))
    try:
        cache = _BATCH_CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no cache
        cache = {}
    if key in cache:
        return min(cache[key], limit)
    best, best_rate = candidates[0], 0.0
    sync = torch.cuda.synchronize if sample.device.type == "cuda" else (lambda: None)
    with eval_mode(model):  # `repeat` copies: the model never sees the caller's `sample`
        for c in candidates:
            reps = -(-c // sample.shape[0])
            x = sample.repeat(reps, *([1] * (sample.dim() - 1)))[:c].contiguous()
            model(x)  # warm-up
            sync()
            t0 = time.perf_counter()
            model(x)
            model(x)
            sync()
            rate = 2 * c / (time.perf_counter() - t0)
            if rate > best_rate * 1.03:  # prefer the smaller batch unless the larger is clearly faster
                best, best_rate = c, rate
    cache[key] = best
    return min(best, limit)


# --------------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
@full_fp32()
def refine_borderline(
    model: Callable[[Tensor], Tensor],
    a: Tensor,
    b: Tensor,
    source,
    target,
    *,
    beta: float = BETA,
    max_steps: int = 64,
    embedding_layer: str | None = None,
    batch_size: int | str | None = None,
    method: str = "bisect",
    loop: str = "auto",
    compile: bool | str = True,
) -> BorderlineResult:
    """Refine pairs (a, b) that straddle the source|target boundary to borderline instances.

    Args:
        model: an nn.Module or callable mapping [N, *sample_shape] to logits [N, C]. Modules are
            put in eval mode for the call and restored.
        a: [P, *sample_shape] floating, the ends predicted `source`.
        b: [P, *sample_shape] same shape, dtype and device, the ends predicted `target`.
        source, target: ints, or integer tensors [P] (one class pair per row); source != target.
        beta: success when |p_source - p_target| < beta at an evaluated point (paper: 1e-4).
        max_steps: cap on evaluated points per pair (a pair that hits it ends as MAX_STEPS).
        embedding_layer: name of a submodule whose output is recorded at each returned point
            ("name:input" records its input); see deepdig_fast.hooks.
        batch_size: live-batch cap (bounds memory). None: the fixed default for the device
            (default_batch_size: 512 on a CPU, 16384 on an accelerator), so results never depend on
            timing; "auto": the fastest size measured for this model and device
            (choose_batch_size) -- faster, but batched forwards round differently at other sizes,
            so points and attempts can differ in the last bits between machines or loads.
        method: "bisect" (the paper's Algorithm 1: midpoints; reference-exact) or "illinois"
            (false position on the logit gap z_source - z_target with the Illinois modification;
            same success test and same third-class rule, typically far fewer forwards).
        loop: "compact", "static", "graph" (CUDA only) or "auto" (default_loop: "graph" on CUDA,
            "compact" elsewhere); see the module docstring. Every loop evaluates the same points.
        compile: how a plain nn.Module's forwards run (deepdig_fast.fast.prepared_for): True (the
            default) prepares it for the device -- TorchScript on a CPU in float32, inductor on
            CUDA -- once per process, guarded against eager on the first pairs' ends and
            midpoints (eager with one warning when they disagree); False runs the model as it is.
            A PreparedClassifier is run as given. Prepared logits differ from eager ones in the
            last bits, so a point or an attempt count can differ between the two;
            `result.inference` says which ran.
    Returns:
        BorderlineResult with one row per pair (see its docstring); `summary()` for statistics.
    """
    t_start = time.perf_counter()
    if method not in ops.METHODS:
        raise ValueError(f"method must be one of {sorted(ops.METHODS)}, got {method!r}")
    if not callable(model):
        raise TypeError(f"model must be callable (an nn.Module), got {type(model).__name__}")
    BETA_RULE.check(beta, "beta")
    check_int(max_steps, "max_steps", low=1, high=MAX_STEPS_MAX)
    if batch_size is not None and batch_size != "auto":
        check_int(batch_size, "batch_size", low=1)
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {', '.join(map(repr, LOOPS))}, got {loop!r}")
    _check_pairs(a, b)
    model = prepared_for(
        model, torch.cat([a[:16], b[:16]]).detach(), embedding_layer=embedding_layer or None, compile=compile
    )
    if loop == "graph" and a.device.type != "cuda":
        raise ValueError(f"loop='graph' needs CUDA tensors (CUDA graphs), got a and b on {a.device}")
    run_loop = default_loop(a.device) if loop == "auto" else loop
    P = a.shape[0]
    sample_shape = tuple(a.shape[1:])
    device = a.device
    src = _class_ids(source, P, "source", device)
    tgt = _class_ids(target, P, "target", device)
    if P and bool((src == tgt).any()):
        raise ValueError("source and target must differ for every pair (source == target found)")
    code = ops.METHODS[method]
    D = math.prod(sample_shape)
    a2 = a.reshape(P, D).contiguous()
    b2 = b.reshape(P, D).contiguous()

    hook: contextlib.AbstractContextManager = contextlib.nullcontext()
    if embedding_layer:
        hook = capture_embeddings(model, embedding_layer)  # type: ignore[arg-type]  # checked: needs a Module
    with eval_mode(model), hook as cap:
        live_cap: int
        if batch_size == "auto":
            live_cap = choose_batch_size(model, a[: min(P, 64)], limit=max(P, 1)) if P else 1
        else:
            live_cap = int(batch_size or default_batch_size(device))

        # The ends: validate the bracket and read the logit gap there (for the root finders).
        n_classes: int | None = None
        end_logits: list[Tensor] = []
        emb_dim, emb_dtype = 0, None
        for x in (a, b):
            chunks = []
            for i in range(0, P, live_cap):
                z = _logits(model, private(x[i : i + live_cap]), n_classes)  # a copy: a and b are the caller's
                n_classes = z.shape[1]
                if cap is not None:
                    e = cap.take()
                    emb_dim, emb_dtype = e.shape[1], e.dtype
                chunks.append(z)
            if chunks:
                end_logits.append(torch.cat(chunks))
        forwards = 2 * P
        if P == 0:
            return _empty_result(a, embedding_layer, method, beta, max_steps, live_cap, t_start, inference_mode(model))
        assert n_classes is not None
        C = n_classes
        if int(src.min()) < 0 or int(src.max()) >= C or int(tgt.min()) < 0 or int(tgt.max()) >= C:
            raise ValueError(f"source and target must be class ids in [0, {C}) for this model's {C} classes")
        za, zb = end_logits
        rows = torch.arange(P, device=device)
        # softmax is defined unless a row has NaN or +inf or is all -inf (-inf alone masks a class)
        finite_ends = torch.isfinite(za.amax(1)) & torch.isfinite(zb.amax(1))
        valid = finite_ends & (za.argmax(1) == src) & (zb.argmax(1) == tgt)
        fstate = torch.empty((P, 4), dtype=torch.float64, device=device)
        fstate[:, F_LO] = 0.0
        fstate[:, F_HI] = 1.0
        fstate[:, F_G_LO] = za.double()[rows, src] - za.double()[rows, tgt]
        fstate[:, F_G_HI] = zb.double()[rows, src] - zb.double()[rows, tgt]
        istate = torch.zeros((P, 4), dtype=torch.int64, device=device)
        istate[:, I_STATUS] = torch.where(
            valid, Status.PENDING, torch.where(finite_ends, Status.INVALID_BRACKET, Status.NONFINITE)
        )
        istate[:, I_INTRUDER] = -1
        istate[:, I_SIDE] = -1
        points = torch.full((P, D), float("nan"), dtype=a.dtype, device=device)
        probs = torch.full((P, C), float("nan"), dtype=torch.float64, device=device)
        lam_out = torch.full((P,), float("nan"), dtype=torch.float64, device=device)
        embeddings = torch.full((P, emb_dim), float("nan"), dtype=emb_dtype, device=device) if cap is not None else None

        queue = torch.nonzero(valid).flatten()
        state = _Loop(
            model=model, cap=cap, a=a2, b=b2, src=src, tgt=tgt, fstate=fstate, istate=istate, points=points,
            probs=probs, lam_out=lam_out, embeddings=embeddings, sample_shape=sample_shape, n_classes=C,
            beta=beta, max_steps=max_steps, code=code,
        )  # fmt: skip
        if run_loop == "compact":
            n, steps = _compact_loop(state, queue, live_cap)
        else:
            n, steps, run_loop = _static_loop(state, queue, live_cap, graph=run_loop == "graph")
        forwards += n

    return BorderlineResult(
        points=points.view(P, *sample_shape),
        status=istate[:, I_STATUS].clone(),
        intruder=istate[:, I_INTRUDER].clone(),
        attempts=istate[:, I_ATTEMPTS].clone(),
        probs=probs,
        lam=lam_out,
        embeddings=embeddings,
        source=src,
        target=tgt,
        forwards=forwards,
        method=method,
        beta=float(beta),
        max_steps=max_steps,
        batch_size=live_cap,
        seconds=time.perf_counter() - t_start,
        steps=steps,
        loop=run_loop,
        inference=inference_mode(model),
    )


@dataclass
class _Loop:
    """What one engine step needs: the model, the pairs and their state (see refine_borderline)."""

    model: Callable[[Tensor], Tensor]
    cap: Any  # an EmbeddingCapture, or None
    a: Tensor  # [P, D]
    b: Tensor
    src: Tensor
    tgt: Tensor
    fstate: Tensor
    istate: Tensor
    points: Tensor
    probs: Tensor
    lam_out: Tensor
    embeddings: Tensor | None  # [P, E]
    sample_shape: tuple[int, ...]
    n_classes: int
    beta: float
    max_steps: int
    code: int

    def step(self, idx: Tensor) -> tuple[Tensor, Tensor | None]:
        """Evaluates the next point of the pairs `idx` (-1: an empty slot): (codes [M], emb or None)."""
        x, lam, stalled = ops.bracket_propose(self.a, self.b, idx, self.fstate, self.code)
        # a copy: bracket_update reads the points from x after the forward, and a model that edits
        # its input in place must not change the recorded borderline samples
        logits = _logits(self.model, private(x).view(x.shape[0], *self.sample_shape), self.n_classes)
        emb = self.cap.take() if self.cap is not None else None
        codes = ops.bracket_update(
            logits,
            x,
            idx,
            lam,
            stalled,
            self.src,
            self.tgt,
            self.fstate,
            self.istate,
            self.points,
            self.probs,
            self.lam_out,
            self.beta,
            self.max_steps,
            self.code,
        )
        return codes, emb


def _compact_loop(st: _Loop, queue: Tensor, live_cap: int) -> tuple[int, int]:
    """The host-compacted loop: (forwards, steps)."""
    n_queue = queue.shape[0]
    live = queue[:live_cap]
    taken = live.shape[0]
    forwards = steps = 0
    while live.shape[0] > 0:
        codes, emb = st.step(live)
        forwards += live.shape[0]
        steps += 1
        going = codes == Status.PENDING
        if emb is not None and st.embeddings is not None:
            done = ~going
            st.embeddings[live[done]] = emb[done].to(st.embeddings.dtype)
        live = live[going]
        room = live_cap - live.shape[0]
        if room > 0 and taken < n_queue:
            live = torch.cat([live, queue[taken : taken + room]])
            taken += min(room, n_queue - taken)
    return forwards, steps


#: eager steps of the graph loop before its capture (cuDNN / inductor pick and cache their kernels)
GRAPH_WARMUP = 3


def _static_loop(st: _Loop, queue: Tensor, live_cap: int, graph: bool) -> tuple[int, int, str]:
    """The fixed-slot loop ("static"; "graph": its step captured as a CUDA graph): (forwards, steps,
    the loop that ran)."""
    device = queue.device
    n_queue = queue.shape[0]
    L = max(1, min(live_cap, n_queue))  # never more slots than pairs: the batch stays fixed all the same
    P = st.fstate.shape[0]
    # queue_ext[n_queue] = -1: a position past the queue's end reads "empty"
    queue_ext = torch.cat([queue, queue.new_full((1,), EMPTY_ROW)])
    slots = queue_ext[torch.arange(L, device=device).clamp(max=n_queue)]
    head = torch.full((), min(L, n_queue), dtype=torch.int64, device=device)  # next queue position
    counters = torch.zeros(2, dtype=torch.int64, device=device)  # forwards, steps
    sink = torch.full((), P, dtype=torch.int64, device=device)
    # the embeddings with one spare row (index P), where the writes of unfinished slots land
    spare = None if st.embeddings is None else torch.cat([st.embeddings, st.embeddings[:1]])

    def step() -> Tensor:
        """One step, all on the device with fixed shapes (capturable); returns [] bool: any pair live."""
        codes, emb = st.step(slots)
        live = slots >= 0
        counters.add_(torch.stack([live.sum(), live.any().long()]))
        done = codes != Status.PENDING  # an empty slot reports PENDING
        if emb is not None and spare is not None:
            spare.index_copy_(0, torch.where(done, slots, sink), emb.to(spare.dtype))
        free = done | ~live
        pos = (head + torch.cumsum(free, 0) - 1).clamp(max=n_queue)
        slots.copy_(torch.where(free, queue_ext[pos], slots))
        head.add_(free.sum())
        return (slots >= 0).any()

    ran = "static"
    if graph and n_queue:
        ran = _replay(step)
    if ran == "static":
        while n_queue and bool(step()):
            pass
    if spare is not None and st.embeddings is not None:
        st.embeddings.copy_(spare[:P])
    forwards, steps = counters.tolist()
    return int(forwards), int(steps), ran


def _replay(step: Callable[[], Tensor]) -> str:
    """Runs `step` until it reports no live pair, as a CUDA graph after GRAPH_WARMUP eager steps.
    Returns "graph" (also when every pair finished within the warm-up), or "static" when the capture
    failed (a warning says why; the caller then goes on with eager steps: a capture runs nothing)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        alive = [step() for _ in range(GRAPH_WARMUP)]
    torch.cuda.current_stream().wait_stream(side)
    if not bool(alive[-1]):
        return "graph"
    g = torch.cuda.CUDAGraph()
    caller = torch.cuda.current_stream()
    try:
        flag = _capture(g, step)
    except Exception as e:  # noqa: BLE001 -- any capture failure: go on without the graph
        # a capture that failed to end can leave its capture stream current: back to the caller's
        torch.cuda.synchronize()
        torch.cuda.set_stream(caller)
        warnings.warn(
            f"deepdig_fast: the borderline engine's step could not be captured as a CUDA graph "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); running it eagerly",
            RuntimeWarning,
            stacklevel=3,
        )
        return "static"
    # read the live flag one replay behind: the replay after the last live step sees only empty
    # slots, which reads and writes nothing
    seen = _pinned_flags(2)
    events = [torch.cuda.Event(), torch.cuda.Event()]
    i = 0
    g.replay()
    seen[0].copy_(flag, non_blocking=True)
    events[0].record()
    while True:
        g.replay()
        nxt = (i + 1) % 2
        seen[nxt].copy_(flag, non_blocking=True)
        events[nxt].record()
        events[i].synchronize()
        if not bool(seen[i]):
            break
        i = nxt
    torch.cuda.current_stream().synchronize()
    return "graph"


def _capture(graph, step: Callable[[], Tensor]) -> Tensor:
    """Records one call of `step` into the CUDA graph `graph` (a capture runs nothing) and returns
    its output, which every replay rewrites in place."""
    # thread-local: a training in another thread may use the GPU meanwhile
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        return step()


def _pinned_flags(n: int) -> list[Tensor]:
    """n host booleans in pinned memory, for copies from the device that do not block."""
    return [torch.empty((), dtype=torch.bool, pin_memory=True) for _ in range(n)]


def _empty_result(a, embedding_layer, method, beta, max_steps, live_cap, t_start, inference) -> BorderlineResult:
    z64 = torch.empty((0,), dtype=torch.int64, device=a.device)
    return BorderlineResult(
        points=a.new_empty(a.shape),
        status=z64.clone(),
        intruder=z64.clone(),
        attempts=z64.clone(),
        probs=torch.empty((0, 0), dtype=torch.float64, device=a.device),
        lam=torch.empty((0,), dtype=torch.float64, device=a.device),
        embeddings=torch.empty((0, 0), dtype=a.dtype, device=a.device) if embedding_layer else None,
        source=z64.clone(),
        target=z64.clone(),
        forwards=0,
        method=method,
        beta=float(beta),
        max_steps=max_steps,
        batch_size=live_cap,
        seconds=time.perf_counter() - t_start,
        inference=inference,
    )
