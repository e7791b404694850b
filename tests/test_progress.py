"""Progress output: a tqdm bar on a terminal, a few plain lines (no carriage returns) in a log."""

from __future__ import annotations

import io

import pytest
import torch

from deepdig_fast.progress import ENV_VAR, progress_bar, progress_mode


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_mode_follows_the_stream_and_the_environment(monkeypatch):
    assert progress_mode(FakeTTY()) == "bar"
    assert progress_mode(io.StringIO()) == "plain"
    monkeypatch.setenv(ENV_VAR, "plain")
    assert progress_mode(FakeTTY()) == "plain"
    monkeypatch.setenv(ENV_VAR, "bar")
    assert progress_mode(io.StringIO()) == "bar"
    monkeypatch.setenv(ENV_VAR, "fancy")
    with pytest.raises(ValueError, match=f"{ENV_VAR} must be one of bar, plain, off"):
        progress_mode(io.StringIO())


def test_terminal_gets_a_tqdm_bar():
    out = FakeTTY()
    with progress_bar(100, "work", "step", stream=out) as bar:
        for _ in range(100):
            bar.update(1)
        bar.set_postfix(loss="0.5")
    text = out.getvalue()
    assert bar.mode == "bar" and "\r" in text and "work" in text


def test_log_gets_a_line_per_tenth_when_30_s_have_passed():
    out, clock = io.StringIO(), Clock()
    bar = progress_bar(1000, "work", "step", stream=out, clock=clock)
    for _ in range(1000):
        clock.now += 0.5  # 500 s in all: every 10% (50 s) is also past 30 s
        bar.set_postfix(loss="0.1")
        bar.update(1)
    bar.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10, lines  # 10%, 20%, ..., 90% and the final line
    assert lines[0] == "work: 100/1000 step (10%), 50.0 s elapsed, about 7 min 30 s left, loss=0.1"
    assert lines[-1] == "work: 1000/1000 step (100%), done in 8 min 20 s, loss=0.1"


def test_log_lines_are_at_least_30_s_apart_on_a_fast_loop():
    out, clock = io.StringIO(), Clock()
    bar = progress_bar(1000, "work", stream=out, clock=clock)
    for _ in range(1000):
        clock.now += 0.125  # 125 s in all: 10% takes only 12.5 s, so the 30 s decide
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" ")[1] for line in lines] == ["240/1000", "480/1000", "720/1000", "960/1000", "1000/1000"]


def test_short_loop_writes_one_line_and_off_writes_nothing():
    out = io.StringIO()
    with progress_bar(50, "quick", stream=out) as bar:
        bar.update(50)
    assert out.getvalue().count("\n") == 1 and "quick: 50/50 it (100%), done in" in out.getvalue()
    out = io.StringIO()
    with progress_bar(50, "quiet", stream=FakeTTY(), enabled=False) as bar:
        bar.update(50)
    assert bar.n == 50 and out.getvalue() == ""


def test_a_loop_that_stops_early_says_so():
    out = io.StringIO()
    bar = progress_bar(10, "work", stream=out)
    bar.update(3)
    bar.close()
    bar.close()  # idempotent
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert "work: 3/10 it (30%), stopped after" in out.getvalue()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="total must be a non-negative int"):
        progress_bar(-1, "x", stream=io.StringIO())
    with pytest.raises(ValueError, match="every_fraction must be in"):
        progress_bar(10, "x", stream=io.StringIO(), every_fraction=0)


def test_library_loops_write_plain_lines_to_a_log(monkeypatch):
    """The autoencoder and classifier training loops use the helper: no '\\r' when stderr is a file."""
    from deepdig_fast.adversarial import AdversarialConfig, train_adversarial_autoencoder
    from deepdig_fast.data import from_tensors
    from deepdig_fast.models import train_classifier

    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    torch.manual_seed(0)
    x = torch.rand(64, 1, 4, 4)
    y = torch.arange(64) % 2
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    train_adversarial_autoencoder(net, x, 1, AdversarialConfig(steps=20, log_every=5, batch_size=16), progress=True)
    data = from_tensors(x, y, x[:8], y[:8], classes=["a", "b"], name="toy")
    train_classifier(net, data, epochs=1, batch_size=16, progress=True)
    text = log.getvalue()
    assert "\r" not in text
    assert text.splitlines()[0].startswith("AE → class 1: 20/20 step (100%), done in")
    assert text.splitlines()[1].startswith("train Sequential: 4/4 batch (100%), done in")
    assert len(text.splitlines()) == 2
