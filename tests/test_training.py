"""Training recipes and regimes (deepdig_fast.training): the paper's schedule, PGD, regularisers,
what a checkpoint records, and the `deepdig train` options that choose them."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from deepdig_fast.checkpoint import load_classifier, load_or_train_classifier
from deepdig_fast.cli import main
from deepdig_fast.data import from_tensors, load_mnist
from deepdig_fast.models import build_classifier, train_classifier
from deepdig_fast.training import (
    PGD_PRESETS,
    PGDConfig,
    TrainRecipe,
    describe_training,
    pgd_attack,
    pgd_preset,
    recipe,
)
from deepdig_fast.validation import ParameterError


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mnist_small():
    return load_mnist().take(256, 128)


def _frozen(**kw) -> TrainRecipe:
    """A recipe whose steps do not move the weights measurably (lr 1e-30): every epoch's mean loss
    is then the loss of the initial model under the recipe's objective."""
    return recipe("fast", epochs=1, lr=1e-30, batch_size=64, **kw)


def test_named_recipes():
    paper = recipe("paper", "mnist")
    assert (paper.name, paper.epochs, paper.lr, paper.batch_size) == ("paper", 40, 0.01, 64)
    assert (paper.schedule_step, paper.schedule_gamma, paper.regime, paper.pgd) == (100, 0.99, "standard", None)
    assert recipe("paper", "fashion-mnist").epochs == 40 and recipe("paper", "cifar10").epochs == 10
    fast = recipe("fast")
    assert (fast.epochs, fast.lr, fast.batch_size, fast.schedule_step) == (5, 0.01, 128, None)
    assert recipe("paper", "mnist", epochs=3, lr=None).epochs == 3  # None keeps the recipe's value
    assert TrainRecipe.from_dict(paper.to_dict()) == paper
    with pytest.raises(ParameterError, match="recipe must be one of 'fast', 'paper', got 'slow'"):
        recipe("slow")
    with pytest.raises(ParameterError, match="TrainRecipe.pgd must be a PGDConfig"):
        TrainRecipe(regime="adversarial")
    with pytest.raises(ParameterError, match="TrainRecipe.label_smoothing must be a number in \\[0, 1\\), got 1"):
        TrainRecipe(label_smoothing=1)
    with pytest.raises(ParameterError, match="PGDConfig.eps must be a number in \\(0, 1\\], got 0"):
        PGDConfig(eps=0)
    assert pgd_preset("mnist") == PGD_PRESETS["mnist"] == PGDConfig(0.3, 0.01, 40)
    assert pgd_preset("cifar10") == PGDConfig(8 / 255, 2 / 255, 10)
    assert pgd_preset("tensors", (1, 28, 28)).eps == 0.3 and pgd_preset("tensors", (3, 64, 64)).eps == 8 / 255


def test_paper_schedule_decays_every_100_iterations():
    paper = recipe("paper", "mnist")
    assert paper.lr_after(99) == 0.01
    assert paper.lr_after(100) == pytest.approx(0.01 * 0.99)
    assert paper.lr_after(250) == pytest.approx(0.01 * 0.99**2)
    # the loop steps the schedule once per iteration: 6 epochs of 2 batches = 12 iterations, step 5
    x, y = torch.rand(20, 1, 28, 28), torch.arange(20) % 2
    data = from_tensors(x, y, x[:4], y[:4], classes=["a", "b"])
    model = build_classifier("fcn", num_classes=2, seed=0)
    r = train_classifier(
        model, data, TrainRecipe(epochs=6, batch_size=10, schedule_step=5, schedule_gamma=0.5), progress=False
    )
    assert r["iterations"] == 12
    assert r["final_lr"] == pytest.approx(0.01 * 0.5**2)
    assert r["recipe"]["schedule_step"] == 5 and r["epochs"] == 6 and r["batch_size"] == 10
    # the paper recipe itself: 25 epochs of 10 batches of 64 = 250 iterations -> two decays
    x, y = torch.rand(640, 1, 28, 28), torch.arange(640) % 2
    data = from_tensors(x, y, x[:4], y[:4], classes=["a", "b"])
    r = train_classifier(
        build_classifier("fcn", num_classes=2, seed=0),
        data,
        recipe("paper", "mnist", epochs=25),
        progress=False,
        eval_train=False,
    )
    assert r["iterations"] == 250 and r["batch_size"] == 64
    assert r["final_lr"] == pytest.approx(0.01 * 0.99**2) == pytest.approx(paper.lr_after(250))
    data = from_tensors(x[:20], y[:20], x[:4], y[:4], classes=["a", "b"])
    # without a schedule the rate stays where it started
    r = train_classifier(build_classifier("fcn", num_classes=2, seed=0), data, TrainRecipe(epochs=1), progress=False)
    assert r["final_lr"] == 0.01


def test_pgd_increases_the_loss_and_stays_in_the_ball():
    data = load_mnist().take(1000, 64)
    model = build_classifier("fcn", seed=0)
    train_classifier(model, data, recipe("fast", epochs=1, batch_size=64), progress=False, eval_train=False)
    x, y = data.x_test[:64], data.y_test[:64]
    before = [p.detach().clone() for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    cfg = PGDConfig(eps=0.1, step_size=0.02, steps=10)
    adv = pgd_attack(model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean_loss = F.cross_entropy(model(x), y).item()
        adv_loss = F.cross_entropy(model(adv), y).item()
        start = pgd_attack(model, x, y, PGDConfig(eps=0.1, step_size=0.02, steps=1), generator=torch.Generator())
        one_step = F.cross_entropy(model(start), y).item()
    assert adv_loss > one_step > clean_loss  # more steps, higher loss
    assert (adv - x).abs().max().item() <= 0.1 + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert not adv.requires_grad
    # the model's parameters are untouched and still trainable
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))
    # without the random start the first step moves every pixel by a full step (or to a bound)
    det = pgd_attack(model, x, y, PGDConfig(eps=0.1, step_size=0.02, steps=1, random_start=False))
    moved = (det - x).abs()
    assert ((moved - 0.02).abs() < 1e-6).float().mean() > 0.5
    with pytest.raises(ValueError, match="x has 64 samples but y has 3 labels"):
        pgd_attack(model, x, y[:3], cfg)


def test_adversarial_training_is_recorded_and_more_robust(tmp_path, mnist_small):
    rec = recipe("fast", epochs=2, batch_size=64, regime="adversarial", pgd=PGDConfig(0.1, 0.02, 5))
    model, meta = load_or_train_classifier(
        tmp_path / "adv", "fcn", mnist_small, recipe=rec, arch_kwargs={"dropout": 0.25}, progress=False
    )
    stored = json.loads((tmp_path / "adv.json").read_text())
    assert stored["extra"]["training"]["recipe"] == rec.to_dict()
    assert stored["extra"]["training"]["recipe"]["pgd"] == {
        "eps": 0.1,
        "step_size": 0.02,
        "steps": 5,
        "random_start": True,
    }
    assert stored["arch_kwargs"]["dropout"] == 0.25
    assert load_classifier(tmp_path / "adv")[0].p_dropout == 0.25
    how = describe_training(meta)
    assert how["recipe"] == "fast"
    assert how["regime"] == "adversarial (PGD ε 0.1, 5 steps of 0.02)"
    assert "dropout 0.25" in how["settings"] and "2 epochs" in how["settings"]
    assert describe_training(None) == {"recipe": "unrecorded", "regime": "unrecorded", "settings": "unrecorded"}


def test_adversarial_training_makes_a_more_robust_model():
    data = load_mnist().take(2000, 500)
    x, y = data.x_test, data.y_test
    attack = PGDConfig(0.1, 0.02, 10)

    def robust_accuracy(rec: TrainRecipe) -> float:
        model = build_classifier("fcn", seed=0)
        train_classifier(model, data, rec, seed=0, progress=False, eval_train=False)
        adv = pgd_attack(model, x, y, attack, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            return (model(adv).argmax(1) == y).float().mean().item()

    standard = robust_accuracy(recipe("fast", epochs=3, batch_size=64))
    adversarial = robust_accuracy(
        recipe("fast", epochs=3, batch_size=64, regime="adversarial", pgd=PGDConfig(0.1, 0.02, 5))
    )
    assert adversarial > standard + 0.1


def test_label_smoothing_and_mixup_change_the_objective(mnist_small):
    data = mnist_small.take(128, 16)

    def first_loss(**kw) -> float:
        model = build_classifier("fcn", seed=0)
        return train_classifier(model, data, _frozen(**kw), seed=0, progress=False, eval_train=False)["epoch_losses"][0]

    model = build_classifier("fcn", seed=0).eval()
    with torch.no_grad():
        logits = model(data.x_train)
    plain = F.cross_entropy(logits, data.y_train).item()
    smooth = F.cross_entropy(logits, data.y_train, label_smoothing=0.2).item()
    assert first_loss() == pytest.approx(plain, rel=1e-5)
    assert first_loss(label_smoothing=0.2) == pytest.approx(smooth, rel=1e-5)
    assert abs(first_loss(mixup_alpha=0.4) - plain) > 1e-4  # mixed inputs and labels: another loss


def test_weight_decay_and_dropout_take_effect(mnist_small):
    def trained(rec, **arch):
        model = build_classifier("fcn", seed=0, **arch)
        train_classifier(model, mnist_small, rec, seed=0, progress=False, eval_train=False)
        return model

    base = recipe("fast", epochs=1, batch_size=64)
    norm = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()]).norm().item()  # noqa: E731
    assert norm(trained(recipe("fast", epochs=1, batch_size=64, weight_decay=5.0))) < 0.9 * norm(trained(base))
    dropped = trained(base, dropout=0.5)
    assert not torch.equal(dropped.head.weight, trained(base).head.weight)
    x = mnist_small.x_test[:8]
    dropped.train()
    assert not torch.equal(dropped(x), dropped(x))  # stochastic in train mode
    dropped.eval()
    assert torch.equal(dropped(x), dropped(x))
    with pytest.raises(ValueError, match="dropout must be a number in \\[0, 1\\), got 1"):
        build_classifier("fcn", dropout=1)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pgd-eps", "0.3"], "--pgd-eps applies to --regime adversarial, not --regime standard"),
        (["--pgd-eps", "0.3", "--pgd-steps", "2"], "--pgd-eps, --pgd-steps apply to --regime adversarial"),
        (["--regime", "adversarial", "--pgd-eps", "2"], "argument --pgd-eps: expected a number in (0, 1]"),
        (["--recipe", "slow"], "argument --recipe: invalid choice: 'slow'"),
        (["--dropout", "1"], "argument --dropout: expected a number in [0, 1), got '1'"),
        (["--weight-decay", "-1"], "argument --weight-decay: expected a non-negative number"),
        (["--lr", "0"], "argument --lr: expected a positive number, got '0'"),
    ],
)
def test_train_cli_rejects_bad_options(argv, message, capsys, tmp_path):
    try:
        code = main(["train", "--out", str(tmp_path / "x"), "--quiet", *argv])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_train_cli_records_recipe_and_regime(tmp_path, capsys, monkeypatch):
    """`deepdig train` on a tiny tensor file: the options reach the checkpoint's metadata."""
    x = torch.rand(64, 1, 12, 12)
    y = torch.arange(64) % 2
    torch.save({"x": x, "y": y, "x_test": x[:16], "y_test": y[:16]}, tmp_path / "d.pt")
    out = tmp_path / "ck"
    argv = ["train", "--dataset", "tensors", "--data-root", str(tmp_path / "d.pt"), "--arch", "fcn", "--out", str(out)]
    argv += ["--recipe", "paper", "--epochs", "2", "--regime", "adversarial", "--pgd-steps", "2"]
    argv += ["--label-smoothing", "0.1", "--mixup", "0.2", "--weight-decay", "1e-4", "--dropout", "0.1", "--quiet"]
    assert main(argv) == 0
    meta = json.loads((tmp_path / "ck.json").read_text())
    rec = meta["extra"]["training"]["recipe"]
    assert (rec["name"], rec["epochs"], rec["batch_size"], rec["schedule_step"]) == ("paper", 2, 64, 100)
    assert (rec["label_smoothing"], rec["mixup_alpha"], rec["weight_decay"]) == (0.1, 0.2, 1e-4)
    # grey data: MNIST's usual eps and step size, the steps given
    assert rec["regime"] == "adversarial" and rec["pgd"] == {
        "eps": 0.3,
        "step_size": 0.01,
        "steps": 2,
        "random_start": True,
    }
    assert meta["arch_kwargs"]["dropout"] == 0.1
    printed = capsys.readouterr().out
    assert "recipe paper, regime adversarial (PGD ε 0.3, 2 steps of 0.01)" in printed


@pytest.mark.parametrize("arch, cls, dim", [("googlenet", "CifarGoogLeNet", 1024), ("resnet34", "CifarResNet34", 512)])
def test_train_cli_builds_the_papers_cifar_models(tmp_path, arch, cls, dim):
    """`deepdig train --arch googlenet|resnet34` on a tiny colour tensor file: the checkpoint loads
    back as the paper's model with its embedding layer; colour data gets CIFAR's PGD defaults."""
    x = torch.rand(8, 3, 32, 32)
    y = torch.arange(8) % 2
    torch.save({"x": x, "y": y, "x_test": x[:4], "y_test": y[:4]}, tmp_path / "d.pt")
    argv = ["train", "--dataset", "tensors", "--data-root", str(tmp_path / "d.pt"), "--arch", arch]
    argv += ["--out", str(tmp_path / "ck"), "--epochs", "1", "--batch-size", "8", "--regime", "adversarial"]
    assert main([*argv, "--pgd-steps", "1", "--quiet"]) == 0
    model, meta = load_classifier(tmp_path / "ck")
    assert type(model).__name__ == cls and meta["arch"] == arch and meta["embedding_layer"] == "embedding"
    assert model.embedding_dim == dim
    pgd = meta["extra"]["training"]["recipe"]["pgd"]
    assert pgd["eps"] == pytest.approx(8 / 255) and pgd["step_size"] == pytest.approx(2 / 255)
