"""Benchmark fixtures (the trained MNIST CNN, shared with the CLI's cache) and the end-of-session
summary: each suite's rows and the ratios between them, with their goals (reported, not asserted)."""

from __future__ import annotations

import pytest
from bench_utils import ROOT, ROW_PROPERTY, bench_device, goal_text, summarize, write_summary


@pytest.fixture(scope="session")
def device():
    return bench_device()


@pytest.fixture(scope="session")
def mnist_cnn(device):
    """(model on device, data): the MNIST CNN at checkpoints/mnist-cnn (trained on first use)."""
    from deepdig_fast.checkpoint import load_or_train_classifier
    from deepdig_fast.data import load_mnist

    data = load_mnist()
    model, meta = load_or_train_classifier(ROOT / "checkpoints" / "mnist-cnn", "cnn", data, device=device)
    print(f"\n[bench] MNIST CNN test accuracy {meta['accuracy']:.4f} on {device}")
    return model.eval(), data


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = [
        value
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == ROW_PROPERTY
    ]
    if not rows:
        return
    tr = terminalreporter
    for suite, summary in summarize(rows).items():
        tr.write_sep("-", f"{suite} benchmark summary")
        tr.write_line(f"{'row':<20}{'seconds':>10}{'pairs/s':>12}  other")
        for row, v in summary["rows"].items():
            pps = v.get("pairs_per_s")
            other = ", ".join(
                f"{k} {x:.4g}" if isinstance(x, float) else f"{k} {x}"
                for k, x in v.items()
                if k not in ("seconds", "pairs_per_s")
            )
            tr.write_line(f"{row:<20}{v['seconds']:>10.3f}{'' if pps is None else f'{pps:.1f}':>12}  {other}")
        for name, value in summary["ratios"].items():
            tr.write_line(f"{name}: {goal_text(name, value)}")
        tr.write_line(f"written to {write_summary(suite, summary)}")
