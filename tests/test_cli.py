"""The deepdig command line: help on every command, one-line errors with a non-zero status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepdig_fast.cli import main


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "deepdig_fast", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("command", [[], ["train"], ["run"], ["report"], ["info"]])
def test_help(command):
    r = run_cli(*command, "--help")
    assert r.returncode == 0 and "usage: deepdig" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--pair", "1,1", "--out", "x"], "the two classes must differ"),
        (["run", "--pair", "1,2,3", "--out", "x"], "expected two classes like 1,2 or cat,dog"),
        (["run", "--pair", "1,2"], "the following arguments are required: --out"),
        (["run", "--pair", "1,2", "--out", "x", "--steps", "0"], "expected a positive integer"),
        (["run", "--pair", "1,2", "--out", "x", "--dataset", "imagenet"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_give_one_line(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_library_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--pair", "1,12", "--out", str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["deepdig run: error: --pair classes must lie in [0, 10) for mnist, got 12"]
    assert main(["run", "--pair", "1,2", "--out", str(tmp_path / "r"), "--dataset", "cifar10"]) == 2
    assert "needs --data-root" in capsys.readouterr().err
    assert main(["run", "--pair", "1,2", "--out", str(tmp_path / "r"), "--device", "cuda:7"]) == 2


def test_train_layout_choices_map_to_the_config_setting():
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.cli import build_parser
    from deepdig_fast.cli.argtypes import _LAYOUTS

    parser = build_parser()
    for cmd in ("run", "atlas"):
        sub = next(a for a in parser._subparsers._group_actions if cmd in a.choices).choices[cmd]
        opt = next(a for a in sub._actions if "--train-layout" in a.option_strings)
        assert tuple(opt.choices) == ("auto", "channels_last", "contiguous") and opt.default == "auto"
    assert {k: AdversarialConfig(channels_last=v).channels_last for k, v in _LAYOUTS.items()} == {
        "auto": "auto",
        "channels_last": True,
        "contiguous": False,
    }


def test_run_and_atlas_share_their_engine_options():
    """One definition (cli.parser._engine_options): the same names, types and defaults in both commands,
    except the trajectory default, whose help says why it differs."""
    from deepdig_fast.atlas import AtlasConfig
    from deepdig_fast.cli import TRAJECTORY_SEGMENTS, build_parser

    parser = build_parser()
    sub = {c: next(a for a in parser._subparsers._group_actions if c in a.choices).choices[c] for c in ("run", "atlas")}
    names = ("--method", "--beta", "--max-steps", "--engine-batch-size", "--trajectory-exact", "--no-compile")
    for name in names:
        run, atlas = (next(a for a in sub[c]._actions if name in a.option_strings) for c in ("run", "atlas"))
        assert (run.type, run.default, run.choices, run.help) == (atlas.type, atlas.default, atlas.choices, atlas.help)
    seg = {c: next(a for a in sub[c]._actions if "--trajectory-segments" in a.option_strings) for c in sub}
    assert (seg["run"].default, seg["atlas"].default) == (TRAJECTORY_SEGMENTS, AtlasConfig().trajectory_segments)
    assert "K(K-1) directions" in seg["atlas"].help
    args = parser.parse_args(["run", "--pair", "1,2", "--out", "x", "--engine-batch-size", "64"])
    assert args.engine_batch_size == 64


#: the shortest command line of every command
MINIMAL_ARGS = {
    "train": ["train"],
    "run": ["run", "--pair", "1,2", "--out", "x"],
    "report": ["report", "d"],
    "atlas": ["atlas", "--out", "x"],
    "compare": ["compare", "a", "b"],
    "table": ["table", "d", "--out", "x"],
    "info": ["info"],
}


def test_defaults_are_the_library_configs():
    """An option that sets a config field defaults to the field's default, except run's
    --trajectory-segments (an estimate, where PairConfig's None is the exact design)."""
    from deepdig_fast.atlas import AtlasConfig
    from deepdig_fast.cli import TRAJECTORY_SEGMENTS, build_parser
    from deepdig_fast.cli.atlas import _atlas_config
    from deepdig_fast.cli.run import _pair_config
    from deepdig_fast.cli.train import _train_recipe
    from deepdig_fast.pipeline import PairConfig
    from deepdig_fast.training import TrainRecipe

    parser = build_parser()
    args = {c: parser.parse_args(MINIMAL_ARGS[c]) for c in ("run", "atlas", "train")}
    assert PairConfig().trajectory_segments is None
    assert _pair_config(args["run"]) == PairConfig(trajectory_segments=TRAJECTORY_SEGMENTS)
    assert _atlas_config(args["atlas"]) == AtlasConfig()
    assert _train_recipe(args["train"], None) == TrainRecipe()
    assert (args["run"].seed, args["atlas"].seed) == (PairConfig().seed, AtlasConfig().seed)
    run = next(a for a in parser._subparsers._group_actions if "run" in a.choices).choices["run"]
    assert "PairConfig defaults to the exact design" in " ".join(run.format_help().split())


@pytest.mark.parametrize("command", sorted(MINIMAL_ARGS))
def test_main_builds_only_the_given_commands_options(command):
    """main's parser (only the given command's options) parses and helps as the full parser does."""
    from deepdig_fast.cli import build_parser

    own, full = build_parser(command), build_parser()
    assert own.parse_args(MINIMAL_ARGS[command]) == full.parse_args(MINIMAL_ARGS[command])
    sub = [next(a for a in p._subparsers._group_actions if command in a.choices).choices[command] for p in (own, full)]
    assert sub[0].format_help() == sub[1].format_help()
    others = [c for c in MINIMAL_ARGS if c != command]
    assert all(len(a.choices[c]._actions) == 1 for a in own._subparsers._group_actions for c in others)


def test_top_level_help_imports_no_torch():
    code = (
        "import sys\nfrom deepdig_fast.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: deepdig" in r.stdout, r.stderr


def test_info():
    r = run_cli("info")
    assert r.returncode == 0 and '"kernels"' in r.stdout


def test_run_with_a_users_model(tmp_path, small_fcn):
    """--model file.py:factory --weights --embedding-layer: any nn.Module, weights_only loading."""
    import json

    import torch

    model, _ = small_fcn
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    (tmp_path / "mymodel.py").write_text(
        "from deepdig_fast.models import MnistFCN\n\ndef make():\n    return MnistFCN()\n"
    )
    out = tmp_path / "run"
    r = run_cli(
        "run",
        "--pair",
        "3,5",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--steps",
        "40",
        "--quiet",
        "--model",
        f"{tmp_path / 'mymodel.py'}:make",
        "--weights",
        str(weights),
        "--embedding-layer",
        "embedding",
        "--no-characterize",
        "--no-report",
        "--no-compile",
        "--train-layout",
        "contiguous",
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "deepdig" in r.stdout and "epbs" in r.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classifier_meta"]["model"].endswith("mymodel.py:make")
    # --no-compile: every forward eager, the autoencoders' loss too, and the manifest says so
    assert manifest["inference"]["mode"] == "eager" and manifest["config"]["compile"] is False
    assert manifest["config"]["adversarial"]["compile"] is False
    assert manifest["config"]["adversarial"]["channels_last"] is False  # --train-layout contiguous
    results = json.loads((out / "results.json").read_text())
    assert set(results["directions"]) == {"3->5", "5->3"}
    assert results["directions"]["3->5"]["methods"]["epbs"]["pairs"] > 0


def test_train_writes_a_checkpoint(tmp_path):
    out = tmp_path / "fcn"
    r = run_cli("train", "--arch", "fcn", "--epochs", "1", "--out", str(out), "--device", "cpu", "--quiet", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "fcn on mnist: test accuracy 0.9" in r.stdout
    from deepdig_fast.checkpoint import load_classifier

    model, meta = load_classifier(str(out) + ".pt")
    assert meta["arch"] == "fcn" and meta["accuracy"] > 0.9 and meta["embedding_layer"] == "embedding"
    # the fast recipe is the default, and the checkpoint says so
    assert meta["extra"]["training"]["recipe"]["name"] == "fast" and "(recipe fast, regime standard;" in r.stdout
