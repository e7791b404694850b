"""deepdig_fast.sweep.summary on synthetic results rows: means, intervals, None and skipped values,
groups and covariates. make_rows / make_cells are the synthetic sweep test_sweep_report.py draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepdig_fast.sweep import summary as sm
from deepdig_fast.sweep.summary import (
    METRICS,
    covariate_columns,
    flatten_summary,
    summarize_rows,
    summarize_values,
    t_quantile,
)

CLASSES = [0, 1, 2]
NAMES = ["zero", "one", "two"]
#: model -> (test accuracy, robust accuracy, base success rate, base oscillation)
MODELS = {
    "cnn-a": (0.99, 0.10, 0.80, 0.020),
    "cnn-b": (0.98, 0.45, 0.70, 0.050),
    "fcn": (0.95, 0.00, 0.60, 0.090),
}
SKIPPED = ("cnn-b", 1, 2)  # this direction was skipped
OUTLIER = ("fcn", 2, 0, 0.05)  # this direction's success rate is far below the reference's


def success(model: str, s: int, t: int) -> float:
    if (model, s, t) == OUTLIER[:3]:
        return OUTLIER[3]
    return MODELS[model][2] + 0.01 * s + 0.02 * t


def make_row(model: str, s: int, t: int, settings: str = "default") -> dict:
    """One direction's row in the results schema; fcn has no m1 at all, cnn-a no oscillation on 0 -> 1."""
    test_acc, robust, _, osc = MODELS[model]
    skipped = "generator to_2 collapsed" if (model, s, t) == SKIPPED else None
    metrics = {
        "success_rate": success(model, s, t),
        "oscillation": None if (model, s, t) == ("cnn-a", 0, 1) else osc + 0.001 * (s + 2 * t),
        "m1_borderline": None if model == "fcn" else 0.3 + 0.01 * s - 0.005 * t,
        "margin_l2_mean": 2.0 + s + 0.5 * t,
        "mean_attempts": 10.0 + s + t,
        "successes": 50 + s,
        "pairs": 80,
    }
    if skipped:
        metrics = dict.fromkeys(metrics)
    return {
        "cell": f"{model}--{settings}",
        "model": model,
        "kind": "atlas",
        "folder": f"cells/{model}--{settings}",
        "dataset": "mnist",
        "arch": "cnn",
        "test_accuracy": test_acc,
        "robust_accuracy": robust,
        "family": "conv" if model.startswith("cnn") else "dense",
        "settings": settings,
        "setting_steps": 100,
        "strategy": "per-target",
        "seed": 0,
        "steps": 100,
        "beta": 1e-3,
        "source": s,
        "target": t,
        "source_name": NAMES[s],
        "target_name": NAMES[t],
        "skipped": skipped,
        "direction_seconds": 1.5,
        "cell_seconds": {"cnn-a": 30.0, "cnn-b": 45.0, "fcn": 12.0}[model],
        **metrics,
    }


def make_rows(models=tuple(MODELS), settings=("default",)) -> list[dict]:
    return [make_row(m, s, t, st) for m in models for st in settings for s in CLASSES for t in CLASSES if s != t]


def make_cells(models=tuple(MODELS), settings=("default",), running: str | None = "mlp") -> list[dict]:
    """The cells of make_rows, plus one still running (no rows) when `running` names its model."""
    out = []
    for m in models:
        for st in settings:
            out.append(
                {
                    "cell": f"{m}--{st}",
                    "model": m,
                    "kind": "atlas",
                    "folder": f"cells/{m}--{st}",
                    "settings": st,
                    "settings_values": {"steps": 100},
                    "covariates": {"robust_accuracy": MODELS[m][1], "family": "conv"},
                    "classes": CLASSES,
                    "class_names": NAMES,
                    "seconds": make_row(m, 0, 1)["cell_seconds"],
                    "generator_seconds": 10.0,
                    "direction_seconds": 9.0,
                    "size_bytes": 3_500_000,
                    "status": "complete",
                }
            )
    if running:
        out.append(
            {
                "cell": f"{running}--default",
                "model": running,
                "kind": "atlas",
                "folder": f"cells/{running}--default",
                "settings": "default",
                "settings_values": {},
                "covariates": {},
                "classes": CLASSES,
                "class_names": NAMES,
                "seconds": None,
                "generator_seconds": None,
                "direction_seconds": None,
                "size_bytes": 1_000,
                "status": "running",
            }
        )
    return out


# --------------------------------------------------------------------------------------------------


def test_metrics_table():
    cols = [m.column for m in METRICS]
    for needed in ("success_rate", "oscillation", "m1_borderline", "margin_l2_mean", "mean_attempts"):
        assert needed in cols
    assert cols[0] == "success_rate" and sm.metric_spec("success_rate").higher == "better"
    assert {sm.metric_spec(c).higher for c in ("oscillation", "m1_borderline", "margin_l2_mean")} == {"neutral"}
    for m in METRICS:
        assert format(0.5, m.fmt) and m.label and m.reading
    with pytest.raises(KeyError, match="success_rate"):
        sm.metric_spec("nope")


def test_t_quantile_matches_scipy_and_table(monkeypatch):
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 5, 29, 30, 31, 200):
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-9)
        # the fallback agrees with scipy: the table to its 3 decimals, the expansion beyond df = 30
        want = stats.t.ppf(0.975, df)
        fallback = sm._T975[df - 1] if df <= 30 else sm._t_expansion(df)
        assert fallback == pytest.approx(want, abs=5e-4 if df <= 30 else 1e-4)
    with pytest.raises(ValueError):
        t_quantile(0)


def test_t_quantile_without_scipy(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError("no scipy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert t_quantile(4) == 2.776 and t_quantile(30) == 2.042
    assert t_quantile(31) == pytest.approx(2.0395, abs=1e-4) and t_quantile(10**6) == pytest.approx(1.96, abs=1e-4)


def test_summarize_values_against_numpy():
    stats = pytest.importorskip("scipy.stats")
    xs = [0.3, 0.5, 0.9, 0.4, 0.65]
    out = summarize_values(xs + [None, float("nan"), "text", True])  # none of these counts
    a = np.array(xs)
    assert out["n"] == 5
    assert out["mean"] == pytest.approx(a.mean()) and out["std"] == pytest.approx(a.std(ddof=1))
    lo, hi = stats.t.interval(0.95, len(a) - 1, loc=a.mean(), scale=stats.sem(a))
    assert out["ci_low"] == pytest.approx(lo) and out["ci_high"] == pytest.approx(hi)
    assert (out["min"], out["max"]) == (0.3, 0.9)
    one = summarize_values([0.7])
    assert one == {"n": 1, "mean": 0.7, "std": None, "ci_low": None, "ci_high": None, "min": 0.7, "max": 0.7}
    none = summarize_values([None, None])
    assert none["n"] == 0 and all(none[k] is None for k in ("mean", "std", "ci_low", "ci_high", "min", "max"))
    same = summarize_values([2.0, 2.0, 2.0])
    assert same["std"] == 0.0 and same["ci_low"] == same["ci_high"] == 2.0


def test_summarize_rows_groups_and_numbers():
    rows = make_rows()
    groups = summarize_rows(rows)
    assert [(g["model"], g["settings"]) for g in groups] == [(m, "default") for m in MODELS]
    by = {g["model"]: g for g in groups}
    # cnn-b: 6 directions, one skipped, so 5 values of each metric
    b = by["cnn-b"]
    assert (b["directions"], b["skipped"]) == (6, 1)
    vals = [success("cnn-b", s, t) for s in CLASSES for t in CLASSES if s != t and (s, t) != (1, 2)]
    st = b["metrics"]["success_rate"]
    assert st["n"] == 5 and st["mean"] == pytest.approx(np.mean(vals))
    half = t_quantile(4) * np.std(vals, ddof=1) / math.sqrt(5)
    assert st["ci_low"] == pytest.approx(np.mean(vals) - half) and st["ci_high"] == pytest.approx(np.mean(vals) + half)
    assert (st["min"], st["max"]) == (pytest.approx(min(vals)), pytest.approx(max(vals)))
    # cnn-a lacks one oscillation value; fcn has no m1 at all
    assert by["cnn-a"]["metrics"]["oscillation"]["n"] == 5 and by["cnn-a"]["metrics"]["success_rate"]["n"] == 6
    m1 = by["fcn"]["metrics"]["m1_borderline"]
    assert m1["n"] == 0 and m1["mean"] is None and m1["ci_low"] is None
    # cost: one cell per group, its time once (not once per direction)
    assert by["cnn-a"]["cell_seconds"] == 30.0 and by["cnn-a"]["cells"] == ["cnn-a--default"]
    # covariates: test accuracy first, then the spec's, with strings kept
    assert list(by["fcn"]["covariates"]) == ["test_accuracy", "robust_accuracy", "family"]
    assert by["fcn"]["covariates"] == {"test_accuracy": 0.95, "robust_accuracy": 0.0, "family": "dense"}


def test_summarize_rows_other_groupings_and_edges():
    assert summarize_rows([]) == []
    assert covariate_columns([]) == []
    rows = make_rows(models=("cnn-a", "fcn"), settings=("seed=0", "seed=1"))
    per_setting = summarize_rows(rows)
    assert [(g["model"], g["settings"]) for g in per_setting] == [
        ("cnn-a", "seed=0"),
        ("cnn-a", "seed=1"),
        ("fcn", "seed=0"),
        ("fcn", "seed=1"),
    ]
    per_model = summarize_rows(rows, by=("model",))
    assert [g["model"] for g in per_model] == ["cnn-a", "fcn"]
    assert per_model[0]["directions"] == 12 and per_model[0]["cells"] == ["cnn-a--seed=0", "cnn-a--seed=1"]
    assert per_model[0]["cell_seconds"] == 60.0  # two cells of 30 s
    # one direction: a mean, no interval; unknown cell times: no cost
    one = [{**make_row("cnn-a", 0, 1), "cell_seconds": None}]
    g = summarize_rows(one, covariates=["robust_accuracy"])[0]
    assert g["metrics"]["success_rate"]["mean"] == pytest.approx(success("cnn-a", 0, 1))
    assert g["metrics"]["success_rate"]["ci_low"] is None and g["metrics"]["success_rate"]["std"] is None
    assert g["cell_seconds"] is None and g["covariates"] == {"robust_accuracy": 0.1}


def test_flatten_summary():
    g = summarize_rows(make_rows())[1]
    flat = flatten_summary(g)
    assert (flat["model"], flat["settings"], flat["directions"], flat["skipped"]) == ("cnn-b", "default", 6, 1)
    assert flat["cells"] == "cnn-b--default" and flat["cell_seconds"] == 45.0
    assert flat["success_rate_n"] == 5 and flat["success_rate_mean"] == g["metrics"]["success_rate"]["mean"]
    assert flat["oscillation_ci_high"] == g["metrics"]["oscillation"]["ci_high"]
    assert flat["robust_accuracy"] == 0.45 and flat["family"] == "conv"
    assert not any(isinstance(v, (dict, list)) for v in flat.values())
    assert len([k for k in flat if k.startswith("mean_attempts_")]) == 7


def test_summary_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, deepdig_fast.sweep.summary; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_rate_s_interval_stays_within_0_and_1():
    rows = [{"model": "m", "settings": "default", "success_rate": v, "oscillation": v} for v in (0.0, 1.0, 1.0)]
    (s,) = summarize_rows(rows)
    rate, osc = s["metrics"]["success_rate"], s["metrics"]["oscillation"]
    assert rate["ci_low"] == 0.0 and rate["ci_high"] == 1.0  # the unclipped t-interval reaches past both
    assert osc["ci_high"] > 1.0  # not a rate: not clipped
    assert rate["mean"] == pytest.approx(2 / 3)
