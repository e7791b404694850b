"""Helpers shared by the benchmarks (imported by name; benchmarks/conftest.py holds the fixtures and
the end-of-session summary).

Every benchmark measures what it needs by itself and records its row twice: in
`benchmark.extra_info` (kept in pytest-benchmark's JSON) and through pytest's `record_property`
(read back by the summary hook). No benchmark reads another's results, so each runs alone
(`pytest benchmarks/bench_bisect.py::test_d_bare_forwards`) and in any order. Ratios between rows —
and the goal each is compared with — are printed at the end of the session from the rows that ran,
never asserted: a slow shared machine must not fail a test run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
ROW_PROPERTY = "bench_row"

# Goals stated in benchmarks/RESULTS.md, as (comparison, value, what). Reported, not asserted.
GOALS = {
    "engine_time_over_bare_forwards": ("<=", 1.10, "the engine within 10% of the bare model forwards"),
    "stage_over_bare_forwards": ("<=", 1.15, "the trajectory stage within 15% of the bare forwards"),
    "pairwise_over_per_target": (">", 2.0, "per-target atlas clearly cheaper than pairwise (12 vs 3 autoencoders)"),
    "engine_fast_over_eager": (">=", 3.0, "engine pairs/s with the prepared classifier, issue 12"),
    "engine_default_over_eager": (">=", 3.5, "refine_borderline with default arguments on an eager module, issue 25"),
    "trajectory_fast_over_eager": (">=", 3.0, "trajectory images/s with the prepared classifier, issue 12"),
    "train_default_over_eager": (">=", 1.5, "autoencoder training steps/s, issue 12"),
}

# Ratios printed at the end of a session: name -> (suite, (row, key) numerator, (row, key) denominator).
RATIOS = {
    "engine_over_reference": ("bisect", ("c_engine", "pairs_per_s"), ("a_reference", "pairs_per_s")),
    "engine_over_plain_torch": ("bisect", ("c_engine", "pairs_per_s"), ("b_plain_torch", "pairs_per_s")),
    "engine_time_over_bare_forwards": ("bisect", ("c_engine", "seconds"), ("d_bare_forwards", "seconds")),
    "bisect_over_illinois_forwards_per_success": (
        "bisect",
        ("c_engine", "forwards_per_success"),
        ("e_illinois", "forwards_per_success"),
    ),
    "static_over_compact_loop": ("bisect", ("f_static", "pairs_per_s"), ("f_compact", "pairs_per_s")),
    "graph_over_compact_loop": ("bisect", ("f_graph", "pairs_per_s"), ("f_compact", "pairs_per_s")),
    "stage_over_bare_forwards": ("trajectory", ("stage", "seconds"), ("bare_forwards", "seconds")),
    "engine_fast_over_eager": ("fast", ("engine_fast", "pairs_per_s"), ("engine_eager", "pairs_per_s")),
    "engine_default_over_eager": ("fast", ("engine_default", "pairs_per_s"), ("engine_eager", "pairs_per_s")),
    "engine_default_cold_over_eager": ("fast", ("engine_default_cold", "pairs_per_s"), ("engine_eager", "pairs_per_s")),
    "trajectory_fast_over_eager": ("fast", ("traj_fast", "images_per_s"), ("traj_eager", "images_per_s")),
    "trajectory_default_over_eager": ("fast", ("traj_default", "images_per_s"), ("traj_eager", "images_per_s")),
    "train_compiled_over_eager": ("fast", ("train_compiled", "steps_per_s"), ("train_eager", "steps_per_s")),
    "train_default_over_eager": ("fast", ("train_default", "steps_per_s"), ("train_eager", "steps_per_s")),
    "aten_over_kernel_nhwc_c10": ("max_pool2d", ("aten_nhwc_c10", "seconds"), ("kernel_nhwc_c10", "seconds")),
    "aten_over_kernel_nchw_c10": ("max_pool2d", ("aten_nchw_c10", "seconds"), ("kernel_nchw_c10", "seconds")),
    "aten_over_kernel_nhwc_c64": ("max_pool2d", ("aten_nhwc_c64", "seconds"), ("kernel_nhwc_c64", "seconds")),
    "aten_over_kernel_nchw_c64": ("max_pool2d", ("aten_nchw_c64", "seconds"), ("kernel_nchw_c64", "seconds")),
    "aten_over_op_mnist": ("conv2d", ("aten_mnist", "seconds"), ("op_mnist", "seconds")),
    "aten_over_op_mnist5x5": ("conv2d", ("aten_mnist5x5", "seconds"), ("op_mnist5x5", "seconds")),
    "aten_over_op_rgb": ("conv2d", ("aten_rgb", "seconds"), ("op_rgb", "seconds")),
    "aten_over_op_rgb64": ("conv2d", ("aten_rgb64", "seconds"), ("op_rgb64", "seconds")),
    "aten_over_op_vit_patch": ("conv2d", ("aten_vit_patch", "seconds"), ("op_vit_patch", "seconds")),
    "aten_over_op_10ch": ("conv2d", ("aten_10ch", "seconds"), ("op_10ch", "seconds")),
    "aten_over_op_bce": ("binary_cross_entropy", ("aten", "seconds"), ("op", "seconds")),
    "train_two_vectorized_over_sequential": (
        "fast",
        ("train_two_vectorized", "steps_per_s"),
        ("train_two_sequential", "steps_per_s"),
    ),
}


def bench_device() -> torch.device:
    return torch.device(os.environ.get("DEEPDIG_BENCH_DEVICE", "cuda" if torch.cuda.is_available() else "cpu"))


def env_int(name: str, default: int) -> int:
    """A positive integer from the environment, with a message naming the variable when it is not."""
    v = os.environ.get(name)
    if v is None:
        return default
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {v!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return n


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def pairs_of(model, data, s: int, t: int, device, n: int | None = None):
    """RPBS pairs (docs/METHOD-NOTES.md): training images of class s predicted s and of class t predicted t,
    shuffled with a fixed seed, truncated to the shorter list."""
    from deepdig_fast.baselines import random_pairs

    p = random_pairs(model, data.x_train, data.y_train, s, t, seed=0, compile=False)  # the same pairs for every row
    a, b = p.a, p.b
    if n is not None:
        a, b = a[:n], b[:n]
    return a.to(device), b.to(device)


def record(benchmark, record_property, suite: str, row: str, **values) -> dict:
    """Records one benchmark's row: its best round (seconds) and the given values; pairs_per_s when
    `pairs` is given. Returns the row."""
    seconds = benchmark.stats.stats.min
    out = {"seconds": seconds, **values}
    if "pairs" in values:
        out["pairs_per_s"] = values["pairs"] / seconds
    benchmark.extra_info.update(out)
    record_property(ROW_PROPERTY, {"suite": suite, "row": row, **out})
    return out


def goal_text(name: str, value: float) -> str:
    """'value (goal <= 1.10: met)' for a ratio with a goal, else the value."""
    if name not in GOALS:
        return f"{value:.3f}"
    op, target, what = GOALS[name]
    met = value <= target if op == "<=" else value >= target if op == ">=" else value > target
    return f"{value:.3f} (goal {op} {target:g}, {what}: {'met' if met else 'NOT met'})"


def summarize(rows: list[dict]) -> dict[str, dict]:
    """{suite: {"rows": {row: values}, "ratios": {name: value}}} from the recorded rows; a ratio
    appears only when both of its rows ran in this session."""
    out: dict[str, dict] = {}
    for r in rows:
        suite = out.setdefault(r["suite"], {"rows": {}, "ratios": {}})
        suite["rows"][r["row"]] = {k: v for k, v in r.items() if k not in ("suite", "row")}
    for name, (suite, (nr, nk), (dr, dk)) in RATIOS.items():
        got = out.get(suite, {}).get("rows", {})
        if nr in got and dr in got and got[nr].get(nk) is not None and got[dr].get(dk):
            out[suite]["ratios"][name] = got[nr][nk] / got[dr][dk]
    return out


def write_summary(suite: str, summary: dict) -> Path:
    out = ROOT / ".benchmarks" / f"{suite}-summary.json"
    out.parent.mkdir(exist_ok=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(bench_device())}
    out.write_text(json.dumps({**meta, **summary}, indent=2))
    return out
