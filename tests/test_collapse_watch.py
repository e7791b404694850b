"""AdversarialConfig.on_collapse: every auto.every steps -- fixed step counts too -- a training
checks its outputs on a fixed probe; two collapsed checks in a row stop it ("stop"), stop it and
put back the weights of the last sound check ("restore"), or not ("continue", the paper). A
training that never collapses is the same under every setting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepdig_fast.adversarial import AdversarialConfig, AutoStop, component_one, train_adversarial_autoencoder
from deepdig_fast.adversarial.config import training_key
from deepdig_fast.validation import ParameterError

EVERY = 5


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).eval()


def _inputs() -> torch.Tensor:
    return torch.rand(60, 1, 6, 6, generator=torch.Generator().manual_seed(2))


class _LateCollapse(nn.Module):
    """An autoencoder that collapses after `after` training forwards: from then on its output is
    one constant image. Whether it has collapsed is a buffer, so restored weights undo it."""

    def __init__(self, after: int = 23) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(36, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6)))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.after = after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = self.net(x)
        if int(self.calls) > self.after:
            return out.mean(dim=0, keepdim=True).detach().expand_as(out) + 0.0 * out
        return out


def _sound() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6)))


def _cfg(**kw) -> AdversarialConfig:
    settings = dict(steps=60, batch_size=16, log_every=5, compile=False, lr=0.01, auto=AutoStop(every=EVERY))
    return AdversarialConfig(**{**settings, **kw})


def test_a_fixed_training_stops_at_the_collapse():
    ae, hist = train_adversarial_autoencoder(_classifier(), _inputs(), 2, _cfg(), autoencoder=_LateCollapse)
    # collapsed from forward 24 on: the checks at steps 25 and 30 see it, the training ends at 30
    assert hist.steps == 30 and hist.stop_reason.startswith("collapsed at step 30: outputs nearly identical")
    assert [c["step"] for c in hist.checks] == [5, 10, 15, 20, 25, 30] and hist.restored_step is None
    assert hist.checks[-1]["diversity"] < 1e-3 < hist.checks[3]["diversity"]


def test_restore_puts_back_the_weights_of_the_last_sound_check():
    clf, x = _classifier(), _inputs()
    ae, hist = train_adversarial_autoencoder(clf, x, 2, _cfg(on_collapse="restore"), autoencoder=_LateCollapse)
    assert hist.steps == 30 and hist.restored_step == 20
    assert hist.stop_reason.endswith("the weights of step 20 restored")
    # the weights are those of the 20-step training, and its outputs are not collapsed
    ref, _ = train_adversarial_autoencoder(clf, x, 2, _cfg(on_collapse="continue", steps=20), autoencoder=_LateCollapse)
    for a, b in zip(ae.state_dict().values(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert float(ae(x).flatten(1).std(dim=0).mean()) > 1e-3


def test_continue_trains_to_the_end_and_a_sound_training_is_the_same_under_every_setting():
    clf, x = _classifier(), _inputs()
    hist = train_adversarial_autoencoder(clf, x, 2, _cfg(on_collapse="continue"), autoencoder=_LateCollapse)[1]
    assert hist.steps == 60 and hist.stop_reason == "fixed" and len(hist.checks) == 12
    trained = [
        train_adversarial_autoencoder(clf, x, 2, _cfg(on_collapse=o), autoencoder=_sound)
        for o in ("stop", "restore", "continue")
    ]
    for ae, h in trained:
        assert h.steps == 60 and h.stop_reason == "fixed" and h.restored_step is None
        for a, b in zip(ae.state_dict().values(), trained[0][0].state_dict().values(), strict=True):
            assert torch.equal(a, b)


def test_a_restored_component_keeps_samples_and_records_the_step():
    clf, x = _classifier(), _inputs()
    with torch.no_grad():
        source = int(clf(x).argmax(dim=1).mode().values)
    target = (source + 1) % 3
    r = component_one(clf, x, source, target, _cfg(on_collapse="restore"), autoencoder=_LateCollapse, retries=1)
    assert len(r.tries) == 1 and r.tries[0]["collapse"] is None and r.tries[0]["steps"] == 30
    assert r.history is not None and r.history.restored_step == 20
    with pytest.warns(RuntimeWarning, match="nearly identical"):
        stopped = component_one(clf, x, source, target, _cfg(), autoencoder=_LateCollapse, retries=1)
    assert stopped.collapse is not None and [t["steps"] for t in stopped.tries] == [30, 30]


def test_the_setting_is_checked_enters_the_keys_and_the_command_line(tmp_path):
    with pytest.raises(ParameterError, match="on_collapse must be one of"):
        AdversarialConfig(on_collapse="retry")
    keys = [training_key(AdversarialConfig(on_collapse=o), "cpu", _classifier()) for o in ("stop", "restore")]
    assert keys[0] != keys[1] and keys[0]["collapse_every"] == AutoStop().every
    from deepdig_fast.cli import build_parser
    from deepdig_fast.cli.atlas import _atlas_config
    from deepdig_fast.cli.run import _pair_config

    run = build_parser("run").parse_args(["run", "--pair", "3,5", "--out", str(tmp_path / "r")])
    assert _pair_config(run).adversarial.on_collapse == "stop"
    atlas = build_parser("atlas").parse_args(["atlas", "--out", str(tmp_path / "a"), "--on-collapse", "restore"])
    assert _atlas_config(atlas).adversarial.on_collapse == "restore"
    with pytest.raises(SystemExit):
        build_parser("run").parse_args(["run", "--pair", "3,5", "--out", str(tmp_path / "r"), "--on-collapse", "x"])


class _Bright(nn.Module):
    """Classifier: class 2 for images brighter than 0.8 on average, class 0 otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.flatten(1).mean(dim=1, keepdim=True)
        return torch.cat([torch.zeros_like(m), torch.full_like(m, -1.0), 10 * (m - 0.8)], dim=1)


class _LateLoss(nn.Module):
    """Its outputs are bright (class 2) for `after` training forwards, then the inputs themselves:
    diverse, but none classified as the target any more."""

    def __init__(self, after: int = 23) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.after = after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = 0.9 + 0.05 * x if int(self.calls) <= self.after else x.clamp(0.01, 0.99)
        return out + 0.0 * self.w


def test_outputs_no_longer_classified_as_the_target_are_a_collapse_too():
    x = _inputs()
    hist = train_adversarial_autoencoder(_Bright(), x, 2, _cfg(), autoencoder=_LateLoss)[1]
    assert hist.steps == 30 and "no probe output classified as 2 any more" in hist.stop_reason
    assert [c["share"] for c in hist.checks] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    ae, restored = train_adversarial_autoencoder(_Bright(), x, 2, _cfg(on_collapse="restore"), autoencoder=_LateLoss)
    assert restored.restored_step == 20
    with torch.no_grad():
        assert bool((_Bright()(ae.eval()(x)).argmax(dim=1) == 2).all())


def test_the_reports_say_which_steps_were_restored():
    from deepdig_fast.report.shared import training_steps

    stop = "collapsed at step 1250: outputs nearly identical (...) at two checks in a row; the weights of step 750 restored"
    assert training_steps({"steps": 1250, "stop": stop, "restored_step": 750}) == "1,250 (collapsed, step 750 restored)"
    assert training_steps({"steps": 1000, "stop": stop.split(";")[0]}) == "1,000 (collapsed)"
    assert training_steps({"steps": 5000, "stop": "fixed"}) == "5,000"
    assert training_steps({"steps": 300, "stop": "fixed", "lr": 0.001}) == "300 at lr 0.001"
    assert training_steps({"steps": 300, "stop": "fixed", "lr": 0.001, "tries": [{}, {}]}) == "300, 2 tries at lr 0.001"
