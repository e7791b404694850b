"""refine_borderline's loops: the fixed-slot "static" loop (and its CUDA-graph form) against the
host-compacted "compact" loop -- the same pairs live at every step, so the same points."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch
from common_utils import correct_pairs, cpu_and_cuda, needs_cuda
from torch import nn

import deepdig_fast as dd
from deepdig_fast.engine import LOOPS, default_loop

FIELDS = ("points", "status", "intruder", "attempts", "probs", "lam", "embeddings", "source", "target")


class RowWise(nn.Module):
    """A classifier whose rows never see each other: elementwise products and sums over each row's
    own contiguous features, so a row's logits are the same bits at any position in any batch (a
    batched GEMM may round a row differently by its position, which would hide what is tested)."""

    def __init__(self, d: int, hidden: int, classes: int, dtype, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(hidden, d, generator=g, dtype=dtype) / d**0.5)
        self.w2 = nn.Parameter(torch.randn(classes, hidden, generator=g, dtype=dtype) / hidden**0.5)
        self.embedding = nn.Tanh()

    def forward(self, x):
        h = self.embedding((x[:, None, :] * self.w1).sum(-1))
        return (h[:, None, :] * self.w2).sum(-1)


def _pairs(model, n: int, d: int, s: int, t: int, dtype, device, seed: int = 0):
    """n pairs (a predicted s, b predicted t), the last three of them invalid (ends swapped)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(40 * n, d, generator=g, dtype=dtype).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    a, b = x[y == s][:n], x[y == t][:n]
    k = min(len(a), len(b))
    assert k >= 20, k
    a, b = a[:k].clone(), b[:k].clone()
    a[-3:], b[-3:] = b[-3:].clone(), a[-3:].clone()
    return a, b


def assert_same_result(r1, r2, exact: bool = True):
    """Equal results. exact=False (on a GPU) for the logits' last bits: a CUDA reduction may sum a
    row in another order at another batch size (the compact loop's batch shrinks as the queue
    drains), which moves the recorded probabilities and embeddings, but not a bisection's
    decisions, points or counts."""
    for f in FIELDS:
        u, v = getattr(r1, f), getattr(r2, f)
        if exact or f not in ("probs", "embeddings"):
            assert torch.equal(u.nan_to_num(7.0), v.nan_to_num(7.0)), f
        else:
            torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6, equal_nan=True, msg=f)
    assert (r1.forwards, r1.steps, r1.batch_size) == (r2.forwards, r2.steps, r2.batch_size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["bisect", "illinois"])
@pytest.mark.parametrize("batch_size", [1, 6, 512])
def test_static_loop_equals_compact_loop(dtype, method, batch_size):
    model = RowWise(12, 16, 4, dtype).eval()
    a, b = _pairs(model, 60, 12, 1, 2, dtype, "cpu")
    kw = dict(method=method, batch_size=batch_size, embedding_layer="embedding")
    compact = dd.refine_borderline(model, a, b, 1, 2, loop="compact", **kw)
    static = dd.refine_borderline(model, a, b, 1, 2, loop="static", **kw)
    assert (compact.loop, static.loop) == ("compact", "static")
    assert_same_result(compact, static)
    counts = compact.summary()["counts"]
    assert counts["SUCCESS"] > 0 and counts["INVALID_BRACKET"] == 3
    assert static.forwards == 2 * len(a) + int(static.attempts.sum())


def test_static_loop_on_a_trained_model(small_fcn):
    """A real classifier (batched GEMMs): the same outcome for every pair, and under bisection the
    same points (a midpoint depends only on the decisions, not on the logits' last bits)."""
    model, data = small_fcn
    a, b = correct_pairs(model, data, 4, 9, 150)
    kw = dict(batch_size=32, embedding_layer="embedding")
    compact = dd.refine_borderline(model, a, b, 4, 9, **kw)
    static = dd.refine_borderline(model, a, b, 4, 9, loop="static", **kw)
    assert compact.loop == "compact"  # the default on a CPU
    for f in ("status", "attempts", "intruder", "points", "lam"):
        assert torch.equal(getattr(compact, f).nan_to_num(), getattr(static, f).nan_to_num()), f
    torch.testing.assert_close(static.embeddings, compact.embeddings, atol=1e-5, rtol=0, equal_nan=True)
    assert (compact.forwards, compact.steps) == (static.forwards, static.steps)


def test_static_loop_edges():
    model = RowWise(3, 4, 3, torch.float64).eval()
    for loop in ("compact", "static"):
        z = torch.zeros(0, 3, dtype=torch.float64)
        empty = dd.refine_borderline(model, z, z.clone(), 0, 1, loop=loop)
        assert len(empty) == 0 and empty.forwards == 0
    # no valid bracket at all: nothing is bisected, the ends alone are counted
    a = torch.zeros(4, 3, dtype=torch.float64)
    r = dd.refine_borderline(model, a, a.clone(), 0, 1, loop="static")
    assert r.steps == 0 and r.forwards == 8 and bool((r.attempts == 0).all())


def test_loop_argument():
    lin = nn.Linear(3, 4)
    a, b = torch.rand(5, 3), torch.rand(5, 3)
    with pytest.raises(ValueError, match="loop must be one of 'auto', 'compact', 'static', 'graph', got 'fast'"):
        dd.refine_borderline(lin, a, b, 0, 1, loop="fast")
    with pytest.raises(ValueError, match=r"loop='graph' needs CUDA tensors \(CUDA graphs\), got a and b on cpu"):
        dd.refine_borderline(lin, a, b, 0, 1, loop="graph")
    assert LOOPS[0] == "auto"
    assert default_loop("cpu") == "compact" and default_loop("cuda:0") == "graph"


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_every_loop_of_the_device_agrees(device):
    """On a GPU: the CUDA graph replays the same steps as the compact loop."""
    model = RowWise(20, 24, 5, torch.float32).to(device).eval()
    a, b = _pairs(model, 300, 20, 0, 3, torch.float32, device, seed=1)
    loops = ["compact", "static"] + (["graph"] if device == "cuda" else [])
    results = [
        dd.refine_borderline(model, a, b, 0, 3, loop=lp, batch_size=64, embedding_layer="embedding") for lp in loops
    ]
    assert [r.loop for r in results] == loops
    for r in results[1:]:
        assert_same_result(results[0], r, exact=device == "cpu")
    if device == "cuda":
        assert dd.refine_borderline(model, a, b, 0, 3).loop == "graph"  # the default there


@needs_cuda
def test_graph_capture_failure_falls_back_to_eager_steps():
    """A model that synchronises with the host cannot be captured: one warning, then eager steps."""

    class Syncing(RowWise):
        def forward(self, x):
            if float(x.sum()) != float(x.sum()):  # a host read: illegal while capturing
                raise AssertionError("NaN input")
            return super().forward(x)

    model = Syncing(8, 8, 3, torch.float32).cuda().eval()
    a, b = _pairs(model, 200, 8, 0, 1, torch.float32, "cuda", seed=2)
    want = dd.refine_borderline(model, a, b, 0, 1, loop="compact", batch_size=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = dd.refine_borderline(model, a, b, 0, 1, loop="graph", batch_size=16)
    msgs = [str(w.message) for w in caught if "CUDA graph" in str(w.message)]
    assert len(msgs) == 1, msgs
    assert got.loop == "static"
    assert_same_result(want, got, exact=False)


class _FakeStream:
    def wait_stream(self, other):
        pass

    def synchronize(self):
        pass


class _FakeGraph:
    """A CUDA graph's contract: capturing records the step without running it; each replay runs it
    and rewrites the captured output in place."""

    def __init__(self):
        self.step = None
        self.out = None
        self.replays = 0

    def replay(self):
        self.replays += 1
        self.out.copy_(self.step())


@pytest.fixture
def fake_cuda(monkeypatch):
    """The CUDA calls of engine._replay, faked on the CPU, so its host-side control flow is tested
    where no GPU is (on a GPU, test_every_loop_of_the_device_agrees runs the real thing)."""
    from deepdig_fast import engine

    made, log = [], {"set_stream": [], "capture_fails": None}
    caller = _FakeStream()

    def graph():
        g = _FakeGraph()
        made.append(g)
        return g

    def capture(g, step):
        if log["capture_fails"]:
            raise RuntimeError(log["capture_fails"])
        g.step, g.out = step, torch.zeros((), dtype=torch.bool)
        return g.out

    class Event:
        def record(self):
            pass

        def synchronize(self):
            pass

    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: caller)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", graph)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: log["set_stream"].append(s))
    monkeypatch.setattr(engine, "_capture", capture)
    monkeypatch.setattr(engine, "_pinned_flags", lambda n: [torch.zeros((), dtype=torch.bool) for _ in range(n)])
    log["graphs"], log["caller"] = made, caller
    return log


def _counting_step(live_steps: int):
    """A step that is live for `live_steps` calls; counts its calls."""
    left = torch.tensor(live_steps)
    calls = [0]

    def step():
        calls[0] += 1
        left.sub_(1).clamp_(min=0)
        return left > 0

    return step, calls, left


@pytest.mark.parametrize("live_steps", [1, 3, 4, 10, 57])
def test_replay_runs_every_live_step_and_at_most_one_more(fake_cuda, live_steps):
    from deepdig_fast.engine import GRAPH_WARMUP, _replay

    step, calls, left = _counting_step(live_steps)
    assert _replay(step) == "graph"
    assert int(left) == 0  # every live step ran
    if live_steps <= GRAPH_WARMUP:  # done within the warm-up: nothing captured
        assert calls[0] == GRAPH_WARMUP and not fake_cuda["graphs"]
    else:  # warm-up, the live replays, and one replay past the last (it reads the flag one behind)
        assert calls[0] == live_steps + 1
        assert fake_cuda["graphs"][0].replays == live_steps + 1 - GRAPH_WARMUP


def test_replay_falls_back_when_the_capture_fails(fake_cuda):
    from deepdig_fast.engine import GRAPH_WARMUP, _replay

    fake_cuda["capture_fails"] = "operation not permitted when stream is capturing"
    step, calls, left = _counting_step(10)
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph.*operation not permitted"):
        assert _replay(step) == "static"
    assert calls[0] == GRAPH_WARMUP and int(left) == 10 - GRAPH_WARMUP  # the caller goes on eagerly
    assert fake_cuda["set_stream"] == [fake_cuda["caller"]]  # its stream restored
