"""The borderline engine against what a user would otherwise run, on real MNIST pairs.

  (a) reference  the public code's per-pair loop: batch 1, three forwards per step
  (b) torch      plain batched torch bisection with boolean masks, no custom ops, no batch cap
  (c) engine     deepdig_fast.refine_borderline (bisect), measured live-batch size
  (d) forwards   the bare model forwards alone: as many images as (c) used, at the fastest batch size
  (e) illinois   the engine with the Illinois root finder (fewer forwards for the same success test)

Run:  .venv/bin/python -m pytest benchmarks/bench_bisect.py -s   (the last test prints the summary)
Env:  DEEPDIG_BENCH_PAIRS (default 2000 on CPU, 100000 on a GPU), DEEPDIG_BENCH_REF_PAIRS (pairs for
      the slow reference loop; its pairs/s is what is compared), DEEPDIG_BENCH_DEVICE.
A summary table with the ratios is printed at the end and written to .benchmarks/bisect-summary.json.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

import deepdig_fast as dd
from deepdig_fast import reference as R
from deepdig_fast.engine import choose_batch_size

from conftest import bench_device, pairs_of

S, T = 4, 9  # a pair of MNIST classes with a long shared boundary
GPU = bench_device().type == "cuda"
N_PAIRS = int(os.environ.get("DEEPDIG_BENCH_PAIRS", 100_000 if GPU else 2000))
N_REF = int(os.environ.get("DEEPDIG_BENCH_REF_PAIRS", 2000 if not GPU else 500))
RESULTS: dict[str, dict] = {}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def bench_pairs(mnist_cnn, device):
    model, data = mnist_cnn
    a, b = pairs_of(model, data, S, T, device)
    if a.shape[0] < N_PAIRS:  # repeat real pairs (GPU sizes exceed one class pair of MNIST)
        reps = -(-N_PAIRS // a.shape[0])
        a, b = a.repeat(reps, 1, 1, 1), b.repeat(reps, 1, 1, 1)
    return model, a[:N_PAIRS].contiguous(), b[:N_PAIRS].contiguous()


def _record(name, benchmark, pairs, **extra):
    st = benchmark.stats.stats
    RESULTS[name] = {"pairs": pairs, "seconds": st.min, "pairs_per_s": pairs / st.min, **extra}


@pytest.mark.benchmark(group="bisect")
def test_a_reference_loop(benchmark, bench_pairs, device):
    model, a, b = bench_pairs
    n = min(N_REF, a.shape[0])
    out = {}

    def run():
        out["r"] = [R.bisect_pair_reference(model, a[i], b[i], S, T) for i in range(n)]

    benchmark.pedantic(run, rounds=1, iterations=1)
    ok = sum(r[0] == 0 for r in out["r"])
    _record("a_reference", benchmark, n, success_rate=ok / n, forwards=sum(r[4] for r in out["r"]))


@pytest.mark.benchmark(group="bisect")
def test_b_plain_torch(benchmark, bench_pairs, device):
    model, a, b = bench_pairs
    out = {}

    def run():
        out["r"] = R.bisect_batched_torch(model, a, b, S, T)
        _sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    status = out["r"][0]
    _record("b_plain_torch", benchmark, a.shape[0], success_rate=float((status == 0).float().mean()), forwards=out["r"][3])


@pytest.mark.benchmark(group="bisect")
@pytest.mark.parametrize("method", ["bisect", "illinois"])
def test_c_engine(benchmark, bench_pairs, device, method):
    model, a, b = bench_pairs
    choose_batch_size(model, a[:64], limit=a.shape[0])  # measured once, outside the timing
    out = {}

    def run():
        out["r"] = dd.refine_borderline(model, a, b, S, T, method=method)
        _sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    s = out["r"].summary()
    _record(
        "c_engine" if method == "bisect" else "e_illinois", benchmark, a.shape[0],
        success_rate=s["success_rate"], forwards=s["forwards"], batch_size=s["batch_size"],
        forwards_per_success=s["forwards_per_success"], mean_attempts=s["mean_attempts_all"],
    )


@pytest.mark.benchmark(group="bisect")
def test_d_bare_forwards(benchmark, bench_pairs, device):
    model, a, b = bench_pairs
    n_images = RESULTS.get("c_engine", {}).get("forwards", 10 * a.shape[0])
    candidates = [64, 128, 256, 512, 1024, 2048] + ([4096, 16384, 65536] if GPU else [])
    x_all = torch.cat([a, b])
    best, best_t = None, float("inf")
    with torch.no_grad():
        for bs in candidates:  # the fastest batch size for this model on this device
            x = x_all[:bs].contiguous()
            model(x)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(3):
                model(x)
            _sync(device)
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
        _sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    _record("d_bare_forwards", benchmark, a.shape[0], images=n_images, batch_size=best)


def test_z_summary(device):
    if not {"a_reference", "b_plain_torch", "c_engine", "d_bare_forwards"} <= RESULTS.keys():
        pytest.skip("run the whole file to get the summary")
    c = RESULTS["c_engine"]
    summary = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else os.uname().machine,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "pairs": N_PAIRS,
        "rows": RESULTS,
        "engine_over_reference": c["pairs_per_s"] / RESULTS["a_reference"]["pairs_per_s"],
        "engine_over_plain_torch": c["pairs_per_s"] / RESULTS["b_plain_torch"]["pairs_per_s"],
        "engine_time_over_bare_forwards": c["seconds"] / RESULTS["d_bare_forwards"]["seconds"],
    }
    if "e_illinois" in RESULTS:
        e = RESULTS["e_illinois"]
        summary["bisect_over_illinois_forwards_per_success"] = c["forwards_per_success"] / e["forwards_per_success"]
    lines = [f"{'row':<18}{'pairs':>8}{'seconds':>10}{'pairs/s':>12}{'success':>9}{'forwards':>11}"]
    for k, v in RESULTS.items():
        sr = v.get("success_rate")
        fw = v.get("forwards", v.get("images"))
        lines.append(
            f"{k:<18}{v['pairs']:>8}{v['seconds']:>10.3f}{v['pairs_per_s']:>12.1f}"
            f"{'' if sr is None else f'{sr:.3f}':>9}{'' if fw is None else fw:>11}"
        )
    for k in ("engine_over_reference", "engine_over_plain_torch", "engine_time_over_bare_forwards",
              "bisect_over_illinois_forwards_per_success"):
        if k in summary:
            lines.append(f"{k}: {summary[k]:.3f}")
    print("\n" + "\n".join(lines))
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "bisect-summary.json").write_text(json.dumps(summary, indent=2))
