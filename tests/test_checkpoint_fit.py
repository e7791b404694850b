"""A classifier must fit the data it is run on, and a user's checkpoint is only ever read.

check_fits (metadata and one forward), load_or_train_classifier (trains only where nothing is), and
the command line: a checkpoint that does not fit ends with status 2 and one line naming both sides,
and the user's files keep their bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from deepdig_fast.checkpoint import check_fits, load_classifier, load_or_train_classifier, save_classifier
from deepdig_fast.cli import main
from deepdig_fast.data import from_tensors, load_mnist
from deepdig_fast.models import build_classifier

TINY_RUN = ["--device", "cpu", "--quiet", "--steps", "5", "--no-baselines", "--no-characterize", "--no-report"]


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder (the set of files too)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


@pytest.fixture(scope="module")
def tiny_fcn(mnist):
    """An MNIST FCN trained for a few seconds: good enough to tell 0 from 1."""
    torch.manual_seed(0)
    model = build_classifier("fcn", seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = mnist.x_train[:3000], mnist.y_train[:3000]
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        i = torch.randint(0, x.shape[0], (128,), generator=g)
        loss = nn.functional.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def save(folder: Path, model, **kw) -> Path:
    """A checkpoint at folder/user/mine.{pt,json}; returns the stem (no suffix), as a user types it."""
    args = dict(arch="fcn", dataset="mnist", classes=[str(i) for i in range(10)], accuracy=None)
    args.update(kw)
    pt = save_classifier(folder / "user" / "mine.pt", model, **args)
    return pt.with_suffix("")


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --------------------------------------------------------------------------------------------------
# check_fits
# --------------------------------------------------------------------------------------------------


def toy(n=40, shape=(1, 28, 28), classes=3, name="toy"):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, *shape, generator=g)
    y = torch.arange(n) % classes
    return from_tensors(x, y, x[:10], y[:10], classes=[f"c{i}" for i in range(classes)], name=name)


def test_check_fits_accepts_a_fitting_classifier_and_its_metadata(tmp_path):
    data = toy()
    model = build_classifier("fcn", num_classes=3, seed=0)
    pt = save_classifier(tmp_path / "m.pt", model, arch="fcn", dataset="toy", classes=data.classes, accuracy=None)
    loaded, meta = load_classifier(pt)
    assert check_fits(loaded, data, meta, arch="fcn") is None
    assert check_fits(lambda x: x.flatten(1)[:, :3], data) is None  # any callable returning logits


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset": "mnist"}, "the classifier was trained on data set 'mnist', but the data set is 'toy'"),
        ({"num_classes": 10}, "the classifier has 10 classes, but data set 'toy' has 3"),
        ({"classes": ["a", "b", "c"]}, "the classifier has classes [a, b, c], but data set 'toy' has [c0, c1, c2]"),
        (
            {"in_shape": [3, 32, 32]},
            "the classifier takes inputs of shape [3, 32, 32], but data set 'toy' has inputs of shape [1, 28, 28]",
        ),
        ({"arch": "cnn"}, "the classifier is a MnistFCN, but its metadata names arch 'cnn' (MnistCNN)"),
    ],
)
def test_check_fits_names_both_sides_of_a_metadata_mismatch(tmp_path, change, message):
    data = toy()
    model = build_classifier("fcn", num_classes=3, seed=0)
    pt = save_classifier(tmp_path / "m.pt", model, arch="fcn", dataset="toy", classes=data.classes, accuracy=None)
    _, meta = load_classifier(pt)
    with pytest.raises(ValueError) as info:
        check_fits(model, data, {**meta, **change})
    assert str(info.value) == message


def test_check_fits_runs_one_forward(tmp_path):
    data = toy()
    with pytest.raises(ValueError, match=r"^--classifier x holds a 'fcn' classifier, but arch 'cnn' was asked for$"):
        check_fits(build_classifier("fcn", num_classes=3), data, {"arch": "fcn"}, arch="cnn", name="--classifier x")
    with pytest.raises(
        ValueError, match=r"returned logits of shape \[2, 10\] for 2 inputs, but data set 'toy' has 3 classes"
    ):
        check_fits(build_classifier("fcn", num_classes=10), data)
    wrong_input = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 3))
    with pytest.raises(
        ValueError,
        match=r"does not accept inputs of data set 'toy' \(shape \[2, 1, 28, 28\], torch.float32\): RuntimeError: ",
    ):
        check_fits(wrong_input, data)
    with pytest.raises(ValueError, match="returned tuple for a batch of data set 'toy'"):
        check_fits(lambda x: (x, x), data)
    with pytest.raises(TypeError, match="data must be a ClassificationData"):
        check_fits(wrong_input, data.x_train)


def test_load_or_train_trains_only_where_nothing_is(tmp_path):
    data = toy(n=64)
    stem = tmp_path / "cache" / "toy-fcn"
    model, meta = load_or_train_classifier(stem, "fcn", data, epochs=1, progress=False)
    assert meta["arch"] == "fcn" and meta["dataset"] == "toy"
    before = digest(tmp_path)
    again, _ = load_or_train_classifier(stem, "fcn", data, epochs=1, progress=False)  # reused as it is
    assert digest(tmp_path) == before
    with pytest.raises(
        ValueError, match=r"checkpoint .*toy-fcn\.pt holds a 'fcn' classifier, but arch 'cnn' was asked for"
    ):
        load_or_train_classifier(stem, "cnn", data, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"was trained on data set 'toy', but the data set is 'other'"):
        load_or_train_classifier(stem, "fcn", toy(n=64, name="other"), epochs=1, progress=False)
    assert digest(tmp_path) == before
    (tmp_path / "cache" / "toy-fcn.json").unlink()
    with pytest.raises(ValueError, match=r"toy-fcn\.pt exists but .*toy-fcn\.json does not"):
        load_or_train_classifier(stem, "fcn", data, epochs=1, progress=False)
    assert (tmp_path / "cache" / "toy-fcn.pt").read_bytes() and not (tmp_path / "cache" / "toy-fcn.json").exists()


# --------------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--pair", "0,1", *TINY_RUN],
        ["atlas", "--classes", "0,1", "--device", "cpu", "--quiet", "--steps", "5", "--no-report"],
    ],
)
def test_cli_refuses_a_checkpoint_of_another_arch_and_keeps_it(tmp_path, capsys, tiny_fcn, command):
    stem = save(tmp_path, tiny_fcn)
    before = digest(tmp_path)
    code = main([*command, "--out", str(tmp_path / "out"), "--classifier", str(stem), "--arch", "cnn"])
    assert code == 2
    line = one_error_line(capsys)
    assert (
        line
        == f"deepdig {command[0]}: error: --classifier {stem} holds a 'fcn' classifier, but arch 'cnn' was asked for"
    )
    assert digest(tmp_path) == before  # same files, same bytes; no run folder either


@pytest.mark.filterwarnings("ignore:.*generator collapsed")  # 5 autoencoder steps: expected
def test_cli_runs_a_checkpoint_given_without_suffix_and_never_writes_it(tmp_path, capsys, tiny_fcn):
    """The reproducer: --classifier STEM holding an fcn (the default arch is cnn) used to train a
    cnn and save it over the user's files."""
    stem = save(tmp_path, tiny_fcn)
    user = tmp_path / "user"
    before = digest(user)
    code = main(["run", "--pair", "0,1", "--out", str(tmp_path / "run"), "--classifier", str(stem), *TINY_RUN])
    assert code == 0, capsys.readouterr().err
    assert digest(user) == before
    assert (tmp_path / "run" / "results.json").is_file()


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"dataset": "fashion_mnist"}, "was trained on data set 'fashion_mnist', but the data set is 'mnist'"),
        ({"classes": ["0", "1", "2"]}, "has 3 classes, but data set 'mnist' has 10"),
    ],
)
def test_cli_refuses_a_checkpoint_of_another_data_set(tmp_path, capsys, kw, message):
    model = build_classifier("fcn", num_classes=len(kw.get("classes", range(10))), seed=0)
    stem = save(tmp_path, model, **kw)
    before = digest(tmp_path)
    code = main(
        ["run", "--pair", "0,1", "--out", str(tmp_path / "out"), "--classifier", str(stem) + ".json", *TINY_RUN]
    )
    assert code == 2
    assert one_error_line(capsys) == f"deepdig run: error: --classifier {stem}.json {message}"
    assert digest(tmp_path) == before


def test_cli_never_trains_into_a_missing_classifier_path(tmp_path, capsys):
    stem = tmp_path / "user" / "absent"
    code = main(["run", "--pair", "0,1", "--out", str(tmp_path / "out"), "--classifier", str(stem), *TINY_RUN])
    assert code == 2
    line = one_error_line(capsys)
    assert line.startswith(
        f"deepdig run: error: --classifier {stem}: no checkpoint there (expected {stem}.pt and {stem}.json)"
    )
    assert "deepdig train" in line
    assert digest(tmp_path) == {} and not (tmp_path / "user").exists()


def test_cli_keeps_a_misfit_in_the_default_location(tmp_path, capsys, monkeypatch, tiny_fcn):
    """checkpoints/mnist-cnn holding an fcn: an error, not a new cnn trained over it."""
    monkeypatch.chdir(tmp_path)
    save_classifier(
        tmp_path / "checkpoints" / "mnist-cnn.pt",
        tiny_fcn,
        arch="fcn",
        dataset="mnist",
        classes=[str(i) for i in range(10)],
        accuracy=None,
    )
    before = digest(tmp_path)
    assert main(["run", "--pair", "0,1", "--out", "out", *TINY_RUN]) == 2
    line = one_error_line(capsys)
    assert line.startswith(
        "deepdig run: error: checkpoint checkpoints/mnist-cnn.pt holds a 'fcn' classifier, "
        "but arch 'cnn' was asked for; "
    )
    assert digest(tmp_path) == before
    (tmp_path / "checkpoints" / "mnist-cnn.json").unlink()  # half a checkpoint is not "nothing there"
    assert main(["run", "--pair", "0,1", "--out", "out", *TINY_RUN]) == 2
    assert "checkpoints/mnist-cnn.pt exists but checkpoints/mnist-cnn.json does not" in one_error_line(capsys)
    assert sorted(digest(tmp_path)) == ["checkpoints/mnist-cnn.pt"]


def test_cli_checks_a_users_model_before_running(tmp_path, capsys):
    model = build_classifier("fcn", num_classes=3, seed=0)
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    (tmp_path / "three.py").write_text(
        "from deepdig_fast.models import MnistFCN\n\ndef make():\n    return MnistFCN(num_classes=3)\n"
    )
    before = digest(tmp_path)
    spec = f"{tmp_path / 'three.py'}:make"
    code = main(
        ["run", "--pair", "0,1", "--out", str(tmp_path / "out"), "--model", spec, "--weights", str(weights), *TINY_RUN]
    )
    assert code == 2
    assert one_error_line(capsys) == (
        f"deepdig run: error: --model {spec} returned logits of shape [2, 3] for 2 inputs, "
        "but data set 'mnist' has 10 classes (expected [2, 10])"
    )
    after = digest(tmp_path)
    assert {k: after[k] for k in before} == before and not (tmp_path / "out").exists()
