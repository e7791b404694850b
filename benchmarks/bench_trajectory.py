"""The trajectory stage on a real MNIST pair: its cost against bare forwards, and exact vs estimate.

  (1) overhead   characterize.trajectory_oscillation (exact, K = T = 50) on the first
                 DEEPDIG_BENCH_OVERHEAD_SAMPLES borderline samples, against the bare model forwards
                 alone on the same number of images at the same batch size (a pre-made 64k-image
                 buffer forwarded repeatedly). Rounds alternate the two; the best round of each is
                 compared (the goal: the stage within 15% of the bare forwards; reported, not asserted).
  (2) estimate   the exact oscillation on the first DEEPDIG_BENCH_TRAJ_SAMPLES samples against the
                 estimate mode's 95% interval with DEEPDIG_BENCH_SEGMENTS segments on the same
                 samples (the exact value should lie inside).

Run:  .venv/bin/python -m pytest benchmarks/bench_trajectory.py -s   (1: pytest-benchmark, stage vs forwards;
                                                                  each test runs alone too)
      .venv/bin/python benchmarks/bench_trajectory.py                 (1 and 2, summary JSON)
Env:  DEEPDIG_BENCH_RUN         run folder with borderline/deepdig_S-T.pt (default runs/mnist-cnn-1-2)
      DEEPDIG_BENCH_CLASSIFIER  checkpoint (default checkpoints/mnist-cnn.pt)
      DEEPDIG_BENCH_THREADS     torch threads (default: torch's; use 1 on a shared machine)
      DEEPDIG_BENCH_DEVICE      cpu / cuda (default cuda when available)
      DEEPDIG_BENCH_OVERHEAD_SAMPLES (default 100), DEEPDIG_BENCH_ROUNDS (default 3),
      DEEPDIG_BENCH_TRAJ_SAMPLES (default 1000), DEEPDIG_BENCH_SEGMENTS (default "5000,20000"),
      DEEPDIG_BENCH_PARTS       "overhead,estimate" (default both)
The summary is printed and written to .benchmarks/trajectory-summary.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from bench_utils import ROOT, bench_device, env_int, record, sync


def load_inputs():
    from deepdig_fast.checkpoint import load_classifier

    device = bench_device()
    run = Path(os.environ.get("DEEPDIG_BENCH_RUN", ROOT / "runs" / "mnist-cnn-1-2"))
    manifest = json.loads((run / "manifest.json").read_text())
    s, t = manifest["pair"]
    saved = torch.load(run / "borderline" / f"deepdig_{s}-{t}.pt", weights_only=True)
    ok = saved["status"] == 0
    points = saved["points"][ok].contiguous()
    model, _ = load_classifier(
        os.environ.get("DEEPDIG_BENCH_CLASSIFIER", ROOT / "checkpoints" / "mnist-cnn.pt"), device=device
    )
    return model, points, s, t, device, run


@torch.no_grad()
def bare_forwards(model, buffer, n_images: int, batch_size: int, device) -> float:
    """Seconds to push n_images through the model in batches of batch_size (no other work)."""
    sync(device)
    t0 = time.perf_counter()
    done = 0
    while done < n_images:
        for b in range(0, buffer.shape[0], batch_size):
            k = min(batch_size, n_images - done, buffer.shape[0] - b)
            if k <= 0:
                break
            model(buffer[b : b + k])
            done += k
    sync(device)
    return time.perf_counter() - t0


def overhead(model, points, s, t, device) -> dict:
    from deepdig_fast.characterize import trajectory_oscillation

    n = min(env_int("DEEPDIG_BENCH_OVERHEAD_SAMPLES", 100), points.shape[0])
    rounds = env_int("DEEPDIG_BENCH_ROUNDS", 3)
    sub = points[:n].to(device)
    g = torch.Generator().manual_seed(0)
    buffer = points[torch.randint(0, points.shape[0], (65536,), generator=g)].to(device)
    trajectory_oscillation(model, sub[:10], s, t, K=5, T=50)  # warm-up
    stage, bare, r = [], [], None
    for _ in range(rounds):
        sync(device)
        r = trajectory_oscillation(model, sub, s, t, K=50, T=50)
        sync(device)
        stage.append(r.seconds)
        bare.append(bare_forwards(model, buffer, r.forwards, r.batch_size, device))
    out = {
        "samples": n,
        "images": r.forwards,
        "batch_size": r.batch_size,
        "rounds": rounds,
        "stage_seconds": stage,
        "bare_seconds": bare,
        "stage_us_per_image": 1e6 * min(stage) / r.forwards,
        "bare_us_per_image": 1e6 * min(bare) / r.forwards,
        "ratio_best": min(stage) / min(bare),
        "ratio_median": sorted(stage)[rounds // 2] / sorted(bare)[rounds // 2],
    }
    print(
        f"[overhead] {n} samples, {r.forwards} images, batch {r.batch_size}: stage {out['stage_us_per_image']:.1f} us/img, "
        f"bare forwards {out['bare_us_per_image']:.1f} us/img, ratio best {out['ratio_best']:.3f} "
        f"median {out['ratio_median']:.3f}",
        flush=True,
    )
    return out


def estimate(model, points, s, t, device) -> dict:
    from deepdig_fast.characterize import trajectory_oscillation

    n = min(env_int("DEEPDIG_BENCH_TRAJ_SAMPLES", 1000), points.shape[0])
    sub = points[:n].to(device)
    exact = trajectory_oscillation(model, sub, s, t, K=50, T=50)
    print(
        f"[estimate] exact: {n} samples, {exact.n_segments} segments, {exact.forwards} images, "
        f"oscillation {exact.oscillation:.5f} ({exact.seconds:.0f} s)",
        flush=True,
    )
    out = {"samples": n, "exact": exact.to_dict(), "estimates": []}
    for seg in (int(v) for v in os.environ.get("DEEPDIG_BENCH_SEGMENTS", "5000,20000").split(",")):
        est = trajectory_oscillation(model, sub, s, t, T=50, segments=seg, seed=1)
        lo, hi = est.ci95
        inside = lo <= exact.oscillation <= hi
        print(
            f"[estimate] {seg} segments: {est.oscillation:.5f}, 95% CI [{lo:.5f}, {hi:.5f}], exact inside: {inside} "
            f"({est.seconds:.0f} s, {est.forwards} images)",
            flush=True,
        )
        out["estimates"].append({**est.to_dict(), "exact_inside": inside})
    return out


def main() -> dict:
    threads = os.environ.get("DEEPDIG_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    model, points, s, t, device, run = load_inputs()
    parts = os.environ.get("DEEPDIG_BENCH_PARTS", "overhead,estimate").split(",")
    print(
        f"[bench] {run}: pair {s}->{t}, {points.shape[0]} successful borderline samples, device {device}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    summary = {
        "run": str(run),
        "pair": [s, t],
        "device": str(device),
        "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if "overhead" in parts:
        summary["overhead"] = overhead(model, points, s, t, device)
    if "estimate" in parts:
        summary["estimate"] = estimate(model, points, s, t, device)
    summary["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = ROOT / ".benchmarks" / "trajectory-summary.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return summary


# --- pytest-benchmark: the stage and the bare forwards; their ratio is printed at the session's end


@pytest.fixture(scope="module")
def traj_inputs():
    run = Path(os.environ.get("DEEPDIG_BENCH_RUN", ROOT / "runs" / "mnist-cnn-1-2"))
    if not (run / "manifest.json").is_file():
        pytest.skip(f"needs the run folder {run} (run the README's main job first)")
    model, points, s, t, device, _ = load_inputs()
    n = min(env_int("DEEPDIG_BENCH_OVERHEAD_SAMPLES", 100), points.shape[0])
    g = torch.Generator().manual_seed(0)
    buffer = points[torch.randint(0, points.shape[0], (65536,), generator=g)].to(device)
    return model, points[:n].to(device), s, t, device, buffer


def _stage_plan(sub, s, t, device) -> tuple[int, int]:
    """(images, batch size) of the exact stage on these samples: the design and the batch size do not
    depend on the model, so a model that returns zeros gives them cheaply, without timing anything."""
    from deepdig_fast.characterize import trajectory_oscillation

    n_classes = max(s, t) + 1
    r = trajectory_oscillation(lambda x: x.new_zeros(x.shape[0], n_classes), sub, s, t, K=50, T=50)
    return r.forwards, r.batch_size


@pytest.mark.benchmark(group="trajectory")
def test_stage(benchmark, record_property, traj_inputs):
    from deepdig_fast.characterize import trajectory_oscillation

    model, sub, s, t, device, _ = traj_inputs
    out = {}

    def run():
        out["r"] = trajectory_oscillation(model, sub, s, t, K=50, T=50)
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
    record(
        benchmark,
        record_property,
        "trajectory",
        "stage",
        images=out["r"].forwards,
        batch_size=out["r"].batch_size,
        threads=torch.get_num_threads(),
    )


@pytest.mark.benchmark(group="trajectory")
def test_bare_forwards(benchmark, record_property, traj_inputs):
    model, sub, s, t, device, buffer = traj_inputs
    images, batch_size = _stage_plan(sub, s, t, device)
    benchmark.pedantic(
        bare_forwards, args=(model, buffer, images, batch_size, device), rounds=2, iterations=1, warmup_rounds=1
    )
    record(
        benchmark,
        record_property,
        "trajectory",
        "bare_forwards",
        images=images,
        batch_size=batch_size,
        threads=torch.get_num_threads(),
    )


if __name__ == "__main__":
    main()
