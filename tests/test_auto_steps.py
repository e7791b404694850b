"""steps="auto" (AdversarialConfig.auto, AutoStop): a training stops when what its component keeps
has stopped improving, or when its outputs collapsed; a collapsed autoencoder can be retrained
with the next seed (retry_collapsed), every try recorded."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from deepdig_fast.adversarial import (
    AdversarialConfig,
    AutoStop,
    component_one,
    retry_seed,
    train_adversarial_autoencoder,
)
from deepdig_fast.validation import ParameterError

RULE = AutoStop(every=5, floor=10, ceiling=80, window=2, probe=24)


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).eval()


def _ae() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6)))


class _Constant(nn.Module):
    """An autoencoder whose output ignores its input: collapsed by construction."""

    def __init__(self) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.zeros(1, 1, 6, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.level).expand(x.shape[0], -1, -1, -1)


def _inputs() -> torch.Tensor:
    return torch.rand(60, 1, 6, 6, generator=torch.Generator().manual_seed(2))


def test_an_auto_training_is_the_fixed_training_stopped_early():
    """The rule only reads the training: an auto training's weights are, bit for bit, those of the
    fixed-step training of as many steps (the probe draws from a generator of its own)."""
    clf, x = _classifier(), _inputs()
    cfg = AdversarialConfig(steps="auto", auto=RULE, batch_size=16, log_every=5, compile=False)
    ae, hist = train_adversarial_autoencoder(clf, x, 2, cfg, autoencoder=_ae)
    assert RULE.floor <= hist.steps <= RULE.ceiling and hist.steps % RULE.every == 0
    assert hist.stop_reason.startswith(("plateau at step", "ceiling")), hist.stop_reason
    assert [c["step"] for c in hist.checks] == list(range(RULE.every, hist.steps + 1, RULE.every))
    assert all(0.0 <= c["share"] <= 1.0 and c["reconstruction"] > 0 for c in hist.checks)
    fixed, fixed_hist = train_adversarial_autoencoder(
        clf, x, 2, AdversarialConfig(steps=hist.steps, batch_size=16, log_every=5, compile=False), autoencoder=_ae
    )
    assert fixed_hist.stop_reason == "fixed" and fixed_hist.steps == hist.steps
    for a, b in zip(ae.state_dict().values(), fixed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    # the same settings stop at the same step: nothing measured in time enters the rule
    again = train_adversarial_autoencoder(clf, x, 2, cfg, autoencoder=_ae)[1]
    assert (again.steps, again.checks) == (hist.steps, hist.checks)


def test_a_collapsed_training_stops_early_and_is_retried_with_the_next_seed():
    clf, x = _classifier(), _inputs()
    cfg = AdversarialConfig(steps="auto", auto=RULE, batch_size=16, seed=4, compile=False, lr=0.01)
    with pytest.warns(RuntimeWarning, match="nearly identical"):
        r = component_one(clf, x, 0, 2, cfg, autoencoder=_Constant, retries=2)
    assert r.collapse is not None and len(r.tries) == 3
    assert [t["seed"] for t in r.tries] == [4, retry_seed(4, 1), retry_seed(4, 2)]
    for t in r.tries:  # each stopped at its second check, long before the ceiling
        assert t["steps"] == 2 * RULE.every and t["stop"].startswith("collapsed at step 10")
        assert "nearly identical" in t["collapse"]
    sound = component_one(clf, x, 0, 2, cfg, autoencoder=_ae, retries=2)
    assert len(sound.tries) == 1 and sound.tries[0]["collapse"] is None


def test_auto_is_refused_where_it_cannot_act():
    from deepdig_fast.adversarial import joint_training_mode, train_adversarial_autoencoders
    from deepdig_fast.configs import PairConfig

    cfg = AdversarialConfig(steps="auto")
    with pytest.raises(ParameterError, match=r"configs\[0\].steps is 'auto'"):
        train_adversarial_autoencoders(_classifier(), [_inputs()], [1], [cfg])
    with pytest.raises(ParameterError, match="'vectorized' trains a fixed step count"):
        joint_training_mode("vectorized", "cpu", _classifier(), None, steps="auto")
    assert joint_training_mode("auto", "cuda", _classifier(), None, steps="auto") == "sequential"
    with pytest.raises(ValueError, match=r"steps \(or 'auto'\) must be a positive int"):
        AdversarialConfig(steps="sometimes")
    with pytest.raises(ValueError, match="AutoStop.floor must be <= ceiling"):
        AutoStop(floor=600, ceiling=500)
    with pytest.raises(ValueError, match="PairConfig.retry_collapsed must be"):
        PairConfig(retry_collapsed=11)
    # from a results.json's config (nested dicts) back to the same settings
    assert AdversarialConfig(**json.loads(json.dumps(cfg.__dict__, default=vars))) == cfg


def test_a_run_records_each_trainings_steps_stop_and_tries(tmp_path, tiny_fcn_checkpoint):
    """run_pair with steps="auto": every component's stats say how long it trained and why it
    stopped; the rule's settings and the retries enter the keys (a fixed-step run is not reused)."""
    from deepdig_fast.checkpoint import load_classifier
    from deepdig_fast.data import load_mnist
    from deepdig_fast.pipeline import PairConfig, run_pair

    model, _ = load_classifier(tiny_fcn_checkpoint)
    data = load_mnist().take(1200, 300)
    rule = AutoStop(every=10, floor=20, ceiling=40, window=1, probe=64)
    cfg = PairConfig(
        adversarial=AdversarialConfig(steps="auto", auto=rule, infer_batch_size=1024),
        characterize=False,
        baselines=False,
        retry_collapsed=1,
    )
    res = run_pair(model, data, 3, 5, cfg, out_dir=tmp_path / "auto").results
    for d in res["directions"].values():
        for stats in (d["component_one"], d["component_two"]):
            if stats is None:
                continue
            assert rule.floor <= stats["steps"] <= rule.ceiling
            assert stats["stop"].startswith(("plateau", "ceiling", "collapsed"))
            assert 1 <= len(stats["tries"]) <= 2 and stats["tries"][-1]["steps"] == stats["steps"]
    assert res["config"]["adversarial"]["steps"] == "auto" and res["config"]["retry_collapsed"] == 1
    # the same folder with the ceiling as a fixed count: no auto-trained component is reused
    fixed = PairConfig(
        adversarial=AdversarialConfig(steps=40, infer_batch_size=1024), characterize=False, baselines=False
    )
    lines: list[str] = []
    run_pair(model, data, 3, 5, fixed, out_dir=tmp_path / "auto", log=lines.append)
    assert [line for line in lines if "reused" in line] == []
    assert sum("components/ae1_" in line and "running" in line for line in lines) == 2
    fixed_res = json.loads((tmp_path / "auto" / "results.json").read_text())
    assert {d["component_one"]["stop"] for d in fixed_res["directions"].values()} == {"fixed"}
    # and rerun as it was, everything is reused
    lines.clear()
    run_pair(model, data, 3, 5, fixed, out_dir=tmp_path / "auto", log=lines.append)
    assert lines and all("reused" in line for line in lines if ": " in line and "/" in line.split(":")[0])


def test_the_command_line_takes_auto_steps_and_retries(tmp_path):
    from deepdig_fast.cli import build_parser
    from deepdig_fast.cli.atlas import _atlas_config
    from deepdig_fast.cli.run import _pair_config

    run = build_parser("run").parse_args(
        ["run", "--pair", "3,5", "--out", str(tmp_path / "r"), "--steps", "auto", "--retry-collapsed", "2"]
    )
    cfg = _pair_config(run)
    assert cfg.adversarial.steps == "auto" and cfg.retry_collapsed == 2 and cfg.adversarial.auto == AutoStop()
    atlas = build_parser("atlas").parse_args(["atlas", "--out", str(tmp_path / "a"), "--steps", "auto"])
    assert _atlas_config(atlas).adversarial.steps == "auto" and _atlas_config(atlas).retry_collapsed == 0
    for bad in (["--steps", "soon"], ["--retry-collapsed", "11"]):
        with pytest.raises(SystemExit):
            build_parser("run").parse_args(["run", "--pair", "3,5", "--out", str(tmp_path / "r"), *bad])


def test_an_atlas_records_each_generators_steps_stop_and_tries(tmp_path, tiny_fcn_checkpoint):
    from deepdig_fast.atlas import AtlasConfig, run_atlas
    from deepdig_fast.checkpoint import load_classifier
    from deepdig_fast.data import load_mnist

    model, _ = load_classifier(tiny_fcn_checkpoint)
    data = load_mnist().take(1200, 300)
    rule = AutoStop(every=10, floor=20, ceiling=40, window=1, probe=64)
    cfg = AtlasConfig(
        strategy="pairwise",
        adversarial=AdversarialConfig(steps="auto", auto=rule, infer_batch_size=1024),
        trajectory_segments=50,
        linearity=False,
        retry_collapsed=1,
    )
    atlas = run_atlas(model, data, cfg, classes=[3, 5], out_dir=tmp_path / "atlas", report=False).atlas
    assert len(atlas["generators"]) == 2
    for g in atlas["generators"]:
        assert rule.floor <= g["steps"] <= rule.ceiling and g["stop"].startswith(("plateau", "ceiling", "collapsed"))
        assert 1 <= len(g["tries"]) <= 2 and g["tries"][-1]["steps"] == g["steps"]
    for key, ae2 in atlas.get("component_two", {}).items():  # the pairwise AE_II of each direction
        assert key in ("3-5", "5-3") and rule.floor <= ae2["steps"] <= rule.ceiling
