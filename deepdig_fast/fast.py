"""One place that prepares a classifier for the many inference-only forwards of DeepDIG.

    fast = prepare_classifier(model, probe, embedding_layer="embedding")
    fast(x)                                   # logits, like model(x), always without autograd
    with capture_embeddings(fast, "embedding") as cap:   # the embedding still works
        fast(x); cap.take()
    fast.info()                               # what ran: {"mode": "torchscript", ...}

The engine, components I/II's filtering (adversarial.predict / apply_generator), the baselines,
the trajectory stage and the SVM's embeddings all take the returned object wherever they take a
model. Autoencoder training needs gradients through the classifier: it unwraps `fast.module`.

Backends (chosen from the device and dtype alone, never from a timing, so results do not depend
on the machine's load):

    "torchscript"  CPU, float32: torch.jit.trace + freeze + optimize_for_inference (oneDNN
                   convolution + ReLU fusion, weights pre-packed). One trace serves every batch size,
                   run in chunks of CHUNK rows. Chosen over inductor on a CPU because it is faster
                   per image and costs no seconds of compiling per process (benchmarks/RESULTS.md,
                   "Inference").
    "inductor"     CUDA (any floating dtype): torch.compile with inductor freezing (set for this
                   compiled function only, through `options`, never in the global config), dynamic
                   batch dimension. Selectable on a CPU too (`compile="inductor"`), which is how the
                   tests exercise it.
    "eager"        everything else (float64 on a CPU: oneDNN has no faster double path), and the
                   fallback.

The embedding is not read with a hook on a compiled module: the traced / compiled function itself
returns (logits, embedding), built from the layer name (a hook on a private copy of the model is
active only while that function is traced or compiled). Two functions are prepared, logits only
(no embedding copy) and logits + embedding; `capture_embeddings(fast, layer)` switches to the latter.

Numerical guard. After preparing, the optimised function and the eager model run on a probe batch
(the caller's inputs, plus midpoints between them so that points off the data manifold are covered,
at two batch sizes so that a batch size baked into a trace is caught). The prepared path is used only
when every logit agrees within `tolerance(z)` = 1e-4 * max(1, max |z_eager|) (float32; 1e-9 * ...
in float64), every argmax is the same, and the embeddings agree within the same bound. Why 1e-4:
the optimised kernels only reassociate float32 sums (fused conv + ReLU, blocked GEMMs); that moves a
logit by a few ulps of the terms summed -- measured at most 6e-6 on the MNIST CNN
(benchmarks/RESULTS.md); reordering a length-n float32 sum typically moves it by ~sqrt(n) * 2^-24 of
the summed magnitudes (4e-6 for n = 4096), well below 1e-4 of the logit scale -- while a wrong trace
(data-dependent control flow, a batch size baked in) moves logits by O(1). A failure of any kind
falls back to eager with one warning, and `info()` says why.

Preparation is paid once per (model, layer, device, dtype, backend, sample shape) and process: the
result is cached on the model (weakly) and reused as long as none of the model's parameters or
buffers was modified in place since (their version counters are compared). A later call with
another probe reuses the prepared functions after running the guard on that probe (a few forwards).

The library's entry points (refine_borderline, trajectory_oscillation, the baselines, embed) prepare a
plain nn.Module this way by default (`prepared_for`, with their own inputs as the probe);
`compile=False` runs the model as it is.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from deepdig_fast.configs import BACKENDS, COMPILE
from deepdig_fast.hooks import EmbeddingCapture, capture_embeddings, eval_mode, resolve_layer
from deepdig_fast.precision import full_fp32

__all__ = [
    "BACKENDS",
    "CHUNK",
    "COMPILE",
    "PreparedClassifier",
    "prepare_classifier",
    "prepared_for",
    "default_backend",
    "inference_record",
    "probe_inputs",
    "tolerance",
    "unwrap",
]


def tolerance(z: Tensor) -> float:
    """The guard's bound on |optimised - eager| for logits `z` (see the module docstring)."""
    rel = 1e-4 if z.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9
    scale = float(z.detach().abs().amax()) if z.numel() else 0.0
    return rel * max(1.0, scale)


#: rows per call of a backend's optimised function; bigger batches are split into chunks of this
#: size. TorchScript on a CPU is fastest per image at small batches, whose activations stay in the
#: cache (benchmarks/RESULTS.md, "Inference"), so the engine's live batch of 512 and the
#: trajectory's 512-image batches run as chunks of 128.
#: Logits can differ from one whole-batch call in the last bits (oneDNN picks kernels by batch size;
#: up to 2e-6 measured), so the chunk enters the stage keys with the backend.
CHUNK: dict[str, int] = {"torchscript": 128}


def _chunked(fn: Callable, x: Tensor, chunk: int | None):
    """fn(x), run on chunks of `chunk` rows when x has more (None: whole); the outputs -- a tensor or
    a tuple of tensors -- concatenated along the rows."""
    if chunk is None or x.shape[0] <= chunk:
        return fn(x)
    parts = [fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(list(col)) for col in zip(*parts))
    return torch.cat(parts)


def default_backend(device: torch.device | str, dtype: torch.dtype) -> str:
    """The backend `compile=True` chooses: a function of the device type and dtype only."""
    kind = torch.device(device).type
    if kind == "cuda":
        return "inductor"
    if kind == "cpu" and dtype == torch.float32:
        return "torchscript"
    return "eager"


class _WithEmbedding(nn.Module):
    """model(x) and the named layer's output (or input) as one function, for tracing / compiling."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        self.model = model
        self.layer = layer

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with capture_embeddings(self.model, self.layer) as cap:
            z = self.model(x)
            return z, cap.take()


class _HookedWithEmbedding(nn.Module):
    """The same for torch.compile: Dynamo inlines hooks registered before compiling (not ones added
    inside the compiled region), so the hook is installed once, on the private copy of the model."""

    def __init__(self, model: nn.Module, layer: str):
        super().__init__()
        self.model = model
        self.layer = layer
        self.captured: list[Tensor] = []
        module, use_input = resolve_layer(model, layer)

        def hook(_mod, inputs, output):
            t = inputs[0] if use_input else output
            self.captured.append(t.detach().reshape(t.shape[0], -1).clone())

        module.register_forward_hook(hook)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.captured.clear()
        z = self.model(x)
        return z, self.captured[-1]


class PreparedClassifier:
    """A classifier prepared for inference-only forwards (see the module docstring).

    Callable like the model: `fast(x)` -> logits [N, C], run without autograd. `module` is the
    original nn.Module (for training through it, state_dict, device); `mode` the backend that runs
    ("torchscript", "inductor" or "eager"); `reason` why eager runs when another was asked for;
    `seconds` the preparation's wall time (0 on a cache hit); `max_abs_diff` the guard's measure.
    """

    def __init__(
        self,
        module: nn.Module,
        embedding_layer: str | None,
        mode: str,
        requested: str,
        logits_fn: Callable[[Tensor], Tensor],
        both_fn: Callable[[Tensor], tuple[Tensor, Tensor]] | None,
        reason: str | None = None,
        seconds: float = 0.0,
        max_abs_diff: float | None = None,
    ):
        self.module = module
        self.embedding_layer = embedding_layer
        self.mode = mode
        self.requested = requested
        self.reason = reason
        self.seconds = seconds
        self.max_abs_diff = max_abs_diff
        self._logits = logits_fn
        self._both = both_fn
        self._tap: EmbeddingCapture | None = None

    def __call__(self, x: Tensor) -> Tensor:
        # the optimised functions run a private eval-mode copy; only eager needs the module in eval mode
        mode = eval_mode(self.module) if self.mode == "eager" else contextlib.nullcontext()
        with torch.no_grad(), mode, full_fp32():
            if self._tap is None:
                return _chunked(self._logits, x, self.chunk)
            assert self._both is not None
            z, e = _chunked(self._both, x, self.chunk)
            self._tap.value = e
            return z

    @property
    def chunk(self) -> int | None:
        """Rows per call of the optimised function (None: the whole batch): larger batches are run
        in chunks of this many. A constant of the backend (CHUNK), never measured at run time."""
        return CHUNK.get(self.mode)

    @contextlib.contextmanager
    def embedding_tap(self, layer: str) -> Iterator[EmbeddingCapture]:
        """While active, every call stores the embedding of `layer` (must be the prepared layer)."""
        if layer != self.embedding_layer or self._both is None:
            raise ValueError(
                f"embedding_layer {layer!r} was not prepared for this classifier "
                f"(prepared: {self.embedding_layer!r}); pass it to prepare_classifier(embedding_layer=...)"
            )
        if self._tap is not None:
            raise RuntimeError("capture_embeddings is already active on this prepared classifier")
        cap = EmbeddingCapture()
        self._tap = cap
        try:
            yield cap
        finally:
            self._tap = None

    def info(self) -> dict[str, Any]:
        """What ran, for manifest.json: mode, requested backend, fallback reason, guard measure."""
        return {
            "mode": self.mode,
            "requested": self.requested,
            "reason": self.reason,
            "max_abs_diff": self.max_abs_diff,
            "embedding_layer": self.embedding_layer,
            "chunk": self.chunk,
            "prepare_seconds": self.seconds,
        }

    def key(self) -> str:
        """What enters the stage keys: the mode (and its chunk). Optimised logits differ from eager
        ones in the last bits, so a resumed run never mixes the two."""
        return self.mode if self.chunk is None else f"{self.mode}/chunk{self.chunk}"

    def __repr__(self) -> str:
        return f"PreparedClassifier({type(self.module).__name__}, mode={self.mode!r})"


def inference_record(fast: PreparedClassifier) -> dict[str, Any]:
    """What manifest.json records about the inference mode (no wall times: those go to timings.json)."""
    return {k: v for k, v in fast.info().items() if k != "prepare_seconds"}


def probe_inputs(data: Any, classes: Sequence[int], device: torch.device, per_class: int = 32) -> Tensor:
    """The guard's probe batch: the first `per_class` training inputs of each of `classes` (a
    ClassificationData), on `device` -- real inputs, fixed, so the choice is deterministic."""
    return torch.cat([data.class_inputs(c, "train")[:per_class] for c in classes]).to(device)


def unwrap(model: Any) -> Any:
    """The original model behind a PreparedClassifier (anything else is returned as is)."""
    return model.module if isinstance(model, PreparedClassifier) else model


# --------------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # torch.jit.* announce their deprecation on every call; tracer warnings are judged by the guard
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _torchscript(fn: nn.Module, example: Tensor) -> Callable:
    with _quiet():
        traced = torch.jit.trace(fn, example, check_trace=False, strict=False)
        frozen = torch.jit.freeze(traced.eval())
        return torch.jit.optimize_for_inference(frozen)


def _inductor(fn: nn.Module, example: Tensor) -> Callable:
    # freezing is an option of this compiled function only (inductor's config is not touched)
    compiled = torch.compile(fn, backend="inductor", dynamic=True, options={"freezing": True})
    compiled(example)  # compile now, so that its cost is counted in the preparation
    return compiled


_BUILDERS = {"torchscript": _torchscript, "inductor": _inductor}


def _probe_batches(probe: Tensor) -> list[Tensor]:
    n = probe.shape[0]
    mids = (probe + probe.roll(1, 0)) / 2 if n > 1 else probe
    full = torch.cat([probe, mids])
    return [full, full[: max(1, min(3, full.shape[0] - 1))]]


def _guard(eager: nn.Module, logits_fn, both_fn, batches: list[Tensor]) -> tuple[str | None, float]:
    """(why the prepared functions disagree with eager, or None; the largest logit difference)."""
    worst = 0.0
    for xb in batches:
        with torch.no_grad():
            if both_fn is not None:
                with capture_embeddings(eager, both_fn.layer) as cap:
                    ref = eager(xb.clone())
                    ref_e = cap.take()
            else:
                ref = eager(xb.clone())
            got = logits_fn(xb.clone())
            if not isinstance(got, Tensor) or got.shape != ref.shape or got.dtype != ref.dtype:
                return f"the optimised function returned {getattr(got, 'shape', type(got).__name__)}", float("nan")
            diff = float((got - ref).abs().amax()) if ref.numel() else 0.0
            worst = max(worst, diff)
            tol = tolerance(ref)
            if not diff <= tol:  # NaN fails too
                return f"logits differ from eager by {diff:.3g} > {tol:.3g} on the probe batch", worst
            if not bool((got.argmax(1) == ref.argmax(1)).all()):
                return "the predicted class differs from eager on the probe batch", worst
            if both_fn is not None:
                z2, e2 = both_fn.fn(xb.clone())
                if e2.shape != ref_e.shape or not float((z2 - ref).abs().amax()) <= tol:
                    return "logits with the embedding differ from eager on the probe batch", worst
                etol = tolerance(ref_e)
                if not float((e2 - ref_e).abs().amax()) <= etol:
                    return f"embeddings differ from eager by more than {etol:.3g} on the probe batch", worst
    return None, worst


class _Both:
    def __init__(self, fn, layer: str):
        self.fn = fn
        self.layer = layer


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _versions(model: nn.Module) -> tuple:
    return tuple((id(t), t._version) for t in [*model.parameters(), *model.buffers()])


def _probe_digest(probe: Tensor) -> str:
    return hashlib.sha256(probe.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@full_fp32()
def prepare_classifier(
    model: nn.Module,
    probe: Tensor,
    *,
    embedding_layer: str | None = None,
    compile: bool | str = True,
) -> PreparedClassifier:
    """Prepare `model` for inference-only forwards on `probe`'s device and dtype.

    Args:
        model: nn.Module mapping [N, *sample_shape] to logits [N, C], on `probe`'s device. It is
            not modified (the optimised functions are built from a private copy).
        probe: [n, *sample_shape] real inputs (n >= 1), the guard's probe batch; a few dozen suffice.
        embedding_layer: the submodule whose output (or "NAME:input") capture_embeddings reads, or None.
        compile: True (the device's default backend, `default_backend`), False / "eager" (off), or
            a backend name ("torchscript", "inductor").
    Returns:
        a PreparedClassifier; eager (with one warning) when the backend fails or the guard rejects it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(probe, Tensor) or probe.dim() < 2 or probe.shape[0] < 1 or not probe.is_floating_point():
        raise ValueError(
            f"probe must be a floating-point tensor [n, *sample_shape] with n >= 1, got {getattr(probe, 'shape', probe)!r}"
        )
    COMPILE.check(compile, "compile")
    requested = (
        (default_backend(probe.device, probe.dtype) if compile else "eager") if isinstance(compile, bool) else compile
    )
    if embedding_layer:
        with capture_embeddings(model, embedding_layer):  # a bad name is the caller's error, not a fallback
            pass

    def eager_both(x):
        with capture_embeddings(model, embedding_layer) as cap:
            z = model(x)
            return z, cap.take()

    def eager_result(reason: str | None, seconds: float) -> PreparedClassifier:
        return PreparedClassifier(
            model, embedding_layer, "eager", requested, model, eager_both if embedding_layer else None, reason, seconds
        )

    if requested == "eager":
        return eager_result(None, 0.0)
    key = (embedding_layer, str(probe.device), probe.dtype, requested, tuple(probe.shape[1:]))
    digest = _probe_digest(probe)
    per_model = _CACHE.setdefault(model, {})
    hit = per_model.get(key)
    t0 = time.perf_counter()
    if hit is not None and hit[0] == _versions(model):
        cached: PreparedClassifier = hit[1]
        guarded: set = hit[2]
        seconds = 0.0
        if cached.mode != "eager" and digest not in guarded:  # the same functions, checked on this probe
            both = _Both(cached._both, embedding_layer) if cached._both is not None and embedding_layer else None
            try:
                with eval_mode(model), torch.no_grad():  # a model in train mode keeps its statistics
                    why, worst = _guard(model, cached._logits, both, _probe_batches(probe))
            except Exception as e:
                why, worst = f"{requested} failed: {type(e).__name__}", float("nan")
            if why is not None:
                warnings.warn(
                    f"inference runs eager for {type(model).__name__}: {why} (compile=False silences this)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return eager_result(why, time.perf_counter() - t0)
            guarded.add(digest)
            worst = max(worst, cached.max_abs_diff or 0.0)
            seconds = time.perf_counter() - t0
        else:
            worst = cached.max_abs_diff  # type: ignore[assignment]
        return PreparedClassifier(
            model,
            embedding_layer,
            cached.mode,
            requested,
            cached._logits,
            cached._both,
            cached.reason,
            seconds,
            worst,
        )

    build = _BUILDERS[requested]
    try:
        with eval_mode(model), torch.no_grad():
            private = copy.deepcopy(model).eval()
            for p in private.parameters():
                p.requires_grad_(False)
            example = probe[: min(8, probe.shape[0])].clone()
            logits_fn = build(private, example)
            both_fn = None
            if embedding_layer:
                wrap = _WithEmbedding if requested == "torchscript" else _HookedWithEmbedding
                # a second private copy: the hooked one must not run under the logits-only function
                owner = private if requested == "torchscript" else copy.deepcopy(private)
                both_fn = _Both(build(wrap(owner, embedding_layer).eval(), example), embedding_layer)
            why, worst = _guard(model, logits_fn, both_fn, _probe_batches(probe))
    except Exception as e:  # any failure of the optimising backend means eager, never a failed run
        why, worst = f"{requested} failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", float("nan")
    seconds = time.perf_counter() - t0
    if why is not None:
        warnings.warn(
            f"inference runs eager for {type(model).__name__}: {why} (compile=False silences this)",
            RuntimeWarning,
            stacklevel=2,
        )
        result = eager_result(why, seconds)
    else:
        result = PreparedClassifier(
            model,
            embedding_layer,
            requested,
            requested,
            logits_fn,
            both_fn.fn if both_fn is not None else None,
            None,
            seconds,
            worst,
        )
    per_model[key] = (_versions(model), result, {digest})
    return result


def prepared_for(
    model: Any, probe: Tensor | None, *, embedding_layer: str | None = None, compile: bool | str = True
) -> Any:
    """What a library entry point runs for `model`: the model itself when it is already prepared (a
    PreparedClassifier), not an nn.Module, when `compile` is off or when there is no probe row;
    else prepare_classifier(model, probe, ...) -- cached, guarded on `probe`, eager with one
    warning when the guard rejects it."""
    COMPILE.check(compile, "compile")
    if isinstance(model, PreparedClassifier) or not isinstance(model, nn.Module) or compile in (False, "eager"):
        return model
    if probe is None or probe.shape[0] == 0 or not probe.is_floating_point():
        return model
    return prepare_classifier(model, probe, embedding_layer=embedding_layer, compile=compile)


def inference_mode(model: Any) -> str:
    """The mode a model passed to an entry point runs in ("eager" unless it is a PreparedClassifier)."""
    return model.mode if isinstance(model, PreparedClassifier) else "eager"
