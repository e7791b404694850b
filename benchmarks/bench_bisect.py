"""The borderline engine against what a user would otherwise run, on real MNIST pairs.

  (a) reference  the public code's per-pair loop: batch 1, three forwards per step
  (b) torch      plain batched torch bisection with boolean masks, no custom ops, no batch cap
  (c) engine     deepdig_fast.refine_borderline (bisect), its default fixed live batch (512 on a CPU)
  (d) forwards   the bare model forwards alone: as many images as (c) used, at the fastest batch size
  (e) illinois   the engine with the Illinois root finder (fewer forwards for the same success test)
  (f) loops      the engine (bisect) with each of its loops: "compact" (host compaction, the CPU
                 default), "static" (fixed slots refilled on the device) and, on a GPU, "graph"
                 (the static step replayed as a CUDA graph, the GPU default); rows c and e run the
                 device's default loop

Run:  .venv/bin/python -m pytest benchmarks/bench_bisect.py -s
      (or one row: .venv/bin/python -m pytest benchmarks/bench_bisect.py::test_d_bare_forwards)
Env:  DEEPDIG_BENCH_PAIRS (default 2000 on CPU, 100000 on a GPU), DEEPDIG_BENCH_REF_PAIRS (pairs for
      the slow reference loop; its pairs/s is what is compared), DEEPDIG_BENCH_DEVICE.
Each test measures and records its own row (benchmark.extra_info); the rows and the ratios between
those that ran (c/a, c/b, c/d against its goal, bisect/illinois forwards per success) are printed at
the end of the session and written to .benchmarks/bisect-summary.json. Nothing is asserted on times.
"""

from __future__ import annotations

import os
import time

import pytest
import torch
from bench_utils import bench_device, pairs_of, record, sync

import deepdig_fast as dd
from deepdig_fast import reference as R

S, T = 4, 9  # a pair of MNIST classes with a long shared boundary
GPU = bench_device().type == "cuda"
N_PAIRS = int(os.environ.get("DEEPDIG_BENCH_PAIRS", 100_000 if GPU else 2000))
N_REF = int(os.environ.get("DEEPDIG_BENCH_REF_PAIRS", 2000 if not GPU else 500))


@pytest.fixture(scope="module")
def bench_pairs(mnist_cnn, device):
    model, data = mnist_cnn
    a, b = pairs_of(model, data, S, T, device)
    if a.shape[0] < N_PAIRS:  # repeat real pairs (GPU sizes exceed one class pair of MNIST)
        reps = -(-N_PAIRS // a.shape[0])
        a, b = a.repeat(reps, 1, 1, 1), b.repeat(reps, 1, 1, 1)
    return model, a[:N_PAIRS].contiguous(), b[:N_PAIRS].contiguous()


@pytest.fixture(scope="module")
def engine_images(bench_pairs):
    """Images the engine (bisection) forwards for these pairs: what row (d) pushes through the bare
    model. Counted with one untimed run here, so test_d_bare_forwards needs no other test."""
    model, a, b = bench_pairs
    return dd.refine_borderline(model, a, b, S, T, method="bisect").forwards


@pytest.mark.benchmark(group="bisect")
def test_a_reference_loop(benchmark, record_property, bench_pairs, device):
    model, a, b = bench_pairs
    n = min(N_REF, a.shape[0])
    out = {}

    def run():
        out["r"] = [R.bisect_pair_reference(model, a[i], b[i], S, T) for i in range(n)]

    benchmark.pedantic(run, rounds=1, iterations=1)
    ok = sum(r[0] == 0 for r in out["r"])
    record(
        benchmark,
        record_property,
        "bisect",
        "a_reference",
        pairs=n,
        success_rate=ok / n,
        forwards=sum(r[4] for r in out["r"]),
    )


@pytest.mark.benchmark(group="bisect")
def test_b_plain_torch(benchmark, record_property, bench_pairs, device):
    model, a, b = bench_pairs
    out = {}

    def run():
        out["r"] = R.bisect_batched_torch(model, a, b, S, T)
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    status = out["r"][0]
    record(
        benchmark,
        record_property,
        "bisect",
        "b_plain_torch",
        pairs=a.shape[0],
        success_rate=float((status == 0).float().mean()),
        forwards=out["r"][3],
    )


@pytest.mark.benchmark(group="bisect")
@pytest.mark.parametrize("method", ["bisect", "illinois"])
def test_c_engine(benchmark, record_property, bench_pairs, device, method):
    model, a, b = bench_pairs
    out = {}

    def run():
        out["r"] = dd.refine_borderline(model, a, b, S, T, method=method)
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    s = out["r"].summary()
    record(
        benchmark,
        record_property,
        "bisect",
        "c_engine" if method == "bisect" else "e_illinois",
        pairs=a.shape[0],
        success_rate=s["success_rate"],
        forwards=s["forwards"],
        batch_size=s["batch_size"],
        forwards_per_success=s["forwards_per_success"],
        mean_attempts=s["mean_attempts_all"],
    )


@pytest.mark.benchmark(group="bisect")
def test_d_bare_forwards(benchmark, record_property, bench_pairs, engine_images, device):
    model, a, b = bench_pairs
    n_images = engine_images
    candidates = [64, 128, 256, 512, 1024, 2048] + ([4096, 16384, 65536] if GPU else [])
    x_all = torch.cat([a, b])
    best, best_t = None, float("inf")
    with torch.no_grad():
        for bs in candidates:  # the fastest batch size for this model on this device
            x = x_all[:bs].contiguous()
            model(x)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(3):
                model(x)
            sync(device)
            per_image = (time.perf_counter() - t0) / (3 * bs)
            if per_image < best_t:
                best, best_t = bs, per_image
    x = x_all[:best].contiguous()
    full, rest = divmod(n_images, best)

    @torch.no_grad()
    def run():
        for _ in range(full):
            model(x)
        if rest:
            model(x[:rest])
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    record(benchmark, record_property, "bisect", "d_bare_forwards", pairs=a.shape[0], images=n_images, batch_size=best)


@pytest.mark.benchmark(group="bisect")
@pytest.mark.parametrize("loop", ["compact", "static", "graph"])
def test_f_engine_loops(benchmark, record_property, bench_pairs, device, loop):
    if loop == "graph" and not GPU:
        pytest.skip("CUDA graphs need a GPU")
    model, a, b = bench_pairs
    out = {}

    def run():
        out["r"] = dd.refine_borderline(model, a, b, S, T, method="bisect", loop=loop)
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1 if loop == "graph" else 0)
    s = out["r"].summary()
    record(
        benchmark,
        record_property,
        "bisect",
        f"f_{loop}",
        pairs=a.shape[0],
        success_rate=s["success_rate"],
        forwards=s["forwards"],
        steps=s["steps"],
        batch_size=s["batch_size"],
        loop_ran=out["r"].loop,
    )
