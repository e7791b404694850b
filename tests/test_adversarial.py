"""Tests of deepdig_fast.adversarial (DeepDIG Components I and II) on small real-MNIST slices."""

from __future__ import annotations

import dataclasses
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepdig_fast.adversarial import (
    AdversarialConfig,
    ConvAutoencoder,
    MLPAutoencoder,
    apply_autoencoder,
    can_train_in_processes,
    component_one,
    component_two,
    default_autoencoder,
    joint_training_mode,
    resolve_lr,
    resolved_lr,
    train_adversarial_autoencoder,
    train_adversarial_autoencoders,
    train_in_processes,
    train_jointly,
    training_key,
    training_layout,
)
from deepdig_fast.forward import predict
from deepdig_fast.models import MnistCNN

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"
S, T = 1, 7


def _read_idx(name: str, header: int, count: int, item: int) -> np.ndarray:
    with gzip.open(MNIST / name, "rb") as f:
        raw = f.read(header + count * item)
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def _mnist_slice(split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n images [n, 1, 28, 28] in [0, 1] and labels [n] of a split."""
    prefix = "train" if split == "train" else "t10k"
    x = _read_idx(f"{prefix}-images-idx3-ubyte.gz", 16, n, 784).reshape(n, 1, 28, 28)
    y = _read_idx(f"{prefix}-labels-idx1-ubyte.gz", 8, n, 1)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def _fcn() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU(), nn.Linear(50, 10))


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """One intra-op thread while this module runs (restored afterwards): these batches are tiny, and
    on a 2-core machine shared with other jobs two OpenMP threads can make a step 10-30x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def mnist():
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found in {MNIST}")
    x, y = _mnist_slice("train", 3000)
    xt, yt = _mnist_slice("test", 1000)
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        clf = _fcn()
    opt = torch.optim.Adam(clf.parameters(), lr=0.01)
    for _ in range(300):
        idx = torch.randint(0, x.shape[0], (128,), generator=g)
        loss = nn.functional.cross_entropy(clf(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    clf.zero_grad(set_to_none=True)
    clf.eval()
    acc = (predict(clf, xt).argmax(1) == yt).float().mean().item()
    assert acc > 0.85, f"fixture classifier too weak: test accuracy {acc:.3f}"
    return {"clf": clf, "xs": x[y == S], "xt_s": xt[yt == S]}


@pytest.fixture(scope="module")
def stage_one(mnist):
    cfg = AdversarialConfig(steps=400, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy run must not warn about collapse
        r1 = component_one(mnist["clf"], mnist["xs"], S, T, cfg, x_test_s=mnist["xt_s"])
    return r1


# ----------------------------------------------------------------------------- configuration
def test_config_defaults_match_method():
    c = AdversarialConfig()
    assert (c.alpha, resolved_lr(c, MLPAutoencoder()), c.step_size, c.gamma, c.steps, c.batch_size, c.seed) == (
        0.8,
        0.01,
        1000,
        0.95,
        5000,
        128,
        0,
    )
    assert c.infer_batch_size == 4096


def test_auto_lr_is_the_papers_for_its_mlp_and_smaller_for_every_other_autoencoder():
    auto = AdversarialConfig()
    assert auto.lr == "auto"
    assert resolved_lr(auto, MLPAutoencoder()) == 0.01
    assert resolved_lr(auto, ConvAutoencoder()) == 0.001
    assert resolved_lr(auto, torch.nn.Sequential(torch.nn.Identity())) == 0.001  # a user's
    assert resolved_lr(AdversarialConfig(lr=0.05), ConvAutoencoder()) == 0.05  # a number wins
    # a run resolves it before keying: the MLP's keys are those of lr 0.01, as before "auto"
    state = torch.random.get_rng_state()
    mlp = resolve_lr(auto, None, (1, 28, 28))
    conv = resolve_lr(auto, None, (3, 32, 32))
    assert torch.equal(state, torch.random.get_rng_state())  # building to look draws nothing
    assert (mlp.lr, conv.lr) == (0.01, 0.001)
    assert training_key(mlp, "cpu", torch.nn.Linear(784, 10)) == training_key(
        AdversarialConfig(lr=0.01), "cpu", torch.nn.Linear(784, 10)
    )
    assert resolve_lr(auto, lambda: ConvAutoencoder((3, 8, 8), channels=(4,), code_channels=2), (3, 8, 8)).lr == 0.001
    assert resolve_lr(AdversarialConfig(lr=0.02), None, (3, 32, 32)).lr == 0.02


def test_ae_lr_on_the_command_line(tmp_path, capsys):
    from deepdig_fast.cli import build_parser
    from deepdig_fast.cli.atlas import _atlas_config
    from deepdig_fast.cli.run import _pair_config

    run = build_parser("run").parse_args(["run", "--pair", "3,5", "--out", str(tmp_path / "r")])
    assert _pair_config(run).adversarial.lr == "auto"
    atlas = build_parser("atlas").parse_args(["atlas", "--out", str(tmp_path / "a"), "--ae-lr", "0.003"])
    assert _atlas_config(atlas).adversarial.lr == 0.003
    for bad in ("0", "-1", "fast"):
        with pytest.raises(SystemExit):
            build_parser("run").parse_args(["run", "--pair", "3,5", "--out", str(tmp_path / "r"), "--ae-lr", bad])
        assert "--ae-lr" in capsys.readouterr().err


def test_auto_lr_trains_as_the_number_it_stands_for():
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    x = torch.rand(12, 3, 8, 8)
    ae = lambda: ConvAutoencoder((3, 8, 8), channels=(4,), code_channels=2)  # noqa: E731
    kw = dict(steps=6, batch_size=4, compile=False, log_every=2)
    a, ha = train_adversarial_autoencoder(clf, x, 1, AdversarialConfig(**kw), autoencoder=ae)
    b, hb = train_adversarial_autoencoder(clf, x, 1, AdversarialConfig(lr=0.001, **kw), autoencoder=ae)
    c, hc = train_adversarial_autoencoder(clf, x, 1, AdversarialConfig(lr=0.01, **kw), autoencoder=ae)
    assert ha.lr == hb.lr == 0.001 and hc.lr == 0.01
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


@pytest.mark.parametrize(
    "kwargs, exc, field",
    [
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": -1e-3}, ValueError, "lr"),
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": -5}, ValueError, "batch_size"),
        ({"step_size": 0}, ValueError, "step_size"),
        ({"infer_batch_size": 0}, ValueError, "infer_batch_size"),
        ({"gamma": 0.0}, ValueError, "gamma"),
        ({"gamma": 1.5}, ValueError, "gamma"),
        ({"alpha": -0.1}, ValueError, "alpha"),
        ({"alpha": float("nan")}, ValueError, "alpha"),
        ({"seed": -1}, ValueError, "seed"),
        ({"steps": 10.5}, TypeError, "steps"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"lr": "0.01"}, TypeError, "lr"),
    ],
)
def test_config_validation(kwargs, exc, field):
    with pytest.raises(exc, match=rf"AdversarialConfig\.{field}\b"):
        AdversarialConfig(**kwargs)


# ----------------------------------------------------------------------------- autoencoders
def test_mlp_autoencoder_matches_paper():
    ae = MLPAutoencoder()
    linears = [m for m in ae.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 100), (100, 50), (50, 784)]
    x = torch.rand(5, 1, 28, 28)
    y = ae(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert MLPAutoencoder((784,))(torch.rand(3, 784)).shape == (3, 784)
    with pytest.raises(ValueError, match="dropout"):
        MLPAutoencoder(dropout=1.0)


def test_conv_autoencoder_has_real_bottleneck():
    ae = ConvAutoencoder((3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    code = ae.encoder(x)
    assert tuple(code.shape[1:]) == ae.code_shape == (8, 8, 8)
    assert ae.code_size == 512 < 3 * 32 * 32
    y = ae(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder((3, 30, 30))
    with pytest.raises(ValueError, match="in_shape"):
        ConvAutoencoder((784,))


def test_default_autoencoder_choice():
    assert isinstance(default_autoencoder((1, 28, 28)), MLPAutoencoder)
    assert isinstance(default_autoencoder((784,)), MLPAutoencoder)
    assert isinstance(default_autoencoder((3, 32, 32)), ConvAutoencoder)
    with pytest.raises(ValueError, match="in_shape"):
        default_autoencoder((0, 28))


def test_batched_inference_matches_single_pass():
    torch.manual_seed(1)
    ae, clf = MLPAutoencoder(), _fcn()
    clf.train()
    x = torch.rand(23, 1, 28, 28)
    torch.testing.assert_close(apply_autoencoder(ae, x, 7), apply_autoencoder(ae, x, 100))
    torch.testing.assert_close(predict(clf, x, 5), predict(clf, x, 4096))
    assert clf.training  # mode restored
    with pytest.raises(ValueError, match="batch_size"):
        predict(clf, x, 0)


# ----------------------------------------------------------------------------- training
def test_training_decreases_loss_and_leaves_classifier_alone(mnist):
    clf = mnist["clf"]
    clf.train()  # training must not change the caller's mode (or weights, or grad flags)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    rng = torch.random.get_rng_state()
    try:
        cfg = AdversarialConfig(steps=200, log_every=50)
        ae, h = train_adversarial_autoencoder(clf, mnist["xs"], T, cfg)
    finally:
        modes = [m.training for m in clf.modules()]
        clf.eval()
    assert all(modes)
    assert all(p.requires_grad and p.grad is None for p in clf.parameters())
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(torch.random.get_rng_state(), rng)  # global RNG untouched
    assert h.step == [50, 100, 150, 200] and h.steps == 200
    assert h.loss[-1] < 0.6 * h.loss[0]
    assert h.final_loss == h.loss[-1] and h.seconds > 0
    assert h.loss[-1] == pytest.approx(h.reconstruction[-1] + 0.8 * h.adversarial[-1])
    assert not ae.training


def test_training_is_deterministic(mnist):
    xs = mnist["xs"][:200]
    cfg = AdversarialConfig(steps=30, batch_size=64, log_every=10, seed=3)
    ae1, h1 = train_adversarial_autoencoder(mnist["clf"], xs, T, cfg)
    ae2, h2 = train_adversarial_autoencoder(mnist["clf"], xs, T, cfg)
    for (k, v1), v2 in zip(ae1.state_dict().items(), ae2.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert h1.loss == h2.loss
    ae3, h3 = train_adversarial_autoencoder(mnist["clf"], xs, T, AdversarialConfig(steps=30, batch_size=64, seed=4))
    assert not torch.equal(ae1.encoder[0].weight, ae3.encoder[0].weight)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_training_equals_eager_within_float_tolerance(mnist, dtype):
    """The compiled loss is the same loss: the loss curve (window means) and the weights match eager.
    Training amplifies last-bit differences a little over the steps, hence a looser bound at the end."""
    clf = mnist["clf"].to(dtype)
    xs = mnist["xs"][:600].to(dtype)
    curves = {}
    try:
        for compile in (False, True):
            cfg = AdversarialConfig(steps=120, batch_size=64, log_every=10, seed=1, compile=compile)
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)  # no fallback to eager
                ae, h = train_adversarial_autoencoder(clf, xs, T, cfg)
            assert h.compiled is compile
            curves[compile] = (h, ae)
    finally:
        mnist["clf"].to(torch.float32)
    (h0, ae0), (h1, ae1) = curves[False], curves[True]
    # relative bounds on the curves; an absolute one for the adversarial term, which falls to ~1e-3
    rtol_first, rtol, atol = (1e-5, 1e-3, 1e-5) if dtype == torch.float32 else (1e-12, 1e-9, 1e-12)
    assert h1.step == h0.step
    assert h1.loss[0] == pytest.approx(h0.loss[0], rel=rtol_first)
    assert h1.loss == pytest.approx(h0.loss, rel=rtol)
    assert h1.adversarial == pytest.approx(h0.adversarial, rel=rtol, abs=atol)
    # Adam divides by sqrt(v): a weight whose gradient is ~0 can step by ~lr either way, so compare
    # what the autoencoders compute rather than each weight
    with torch.no_grad():
        out0, out1 = ae0(xs), ae1(xs)
    # (float32: measured 7.5e-3 after 120 steps -- the last-bit differences grow through training;
    # float64, where they start ~1e-16: 7e-13, the algorithm itself is the same)
    assert float((out0 - out1).abs().max()) <= (5e-2 if dtype == torch.float32 else 1e-8)


@pytest.mark.parametrize("classifier", ["fcn", "cnn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vectorised_training_equals_sequential(mnist, dtype, classifier):
    """K autoencoders trained as one vmapped model give the K sequential trainings' curves and models
    (against the CNN both run against its channels_last copy)."""
    clf = mnist["clf"].to(dtype) if classifier == "fcn" else _cnn(dtype)
    try:
        xs = [mnist["xs"][:150].to(dtype), mnist["xs"][150:300].to(dtype)]
        targets = [T, 1]
        cfgs = [AdversarialConfig(steps=40, batch_size=64, log_every=10, seed=s, compile=False) for s in (3, 9)]
        together = train_adversarial_autoencoders(clf, xs, targets, cfgs)
        apart = [train_adversarial_autoencoder(clf, x, t, c) for x, t, c in zip(xs, targets, cfgs)]
    finally:
        mnist["clf"].to(torch.float32)
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    layout = "contiguous" if classifier == "fcn" else "channels_last"
    for (ae_v, h_v), (ae_s, h_s), x in zip(together, apart, xs):
        assert h_v.step == h_s.step and not ae_v.training
        assert h_v.layout == h_s.layout == layout
        assert h_v.loss == pytest.approx(h_s.loss, rel=rtol)
        assert h_v.reconstruction == pytest.approx(h_s.reconstruction, rel=rtol)
        with torch.no_grad():
            diff = float((ae_v(x) - ae_s(x)).abs().max())
        # float64: the same algorithm (measured ~1e-13); float32: batched GEMMs round differently and
        # Adam amplifies the last bits over the steps
        assert diff <= (1e-2 if dtype == torch.float32 else 1e-9)
    assert not torch.equal(together[0][0].encoder[0].weight, together[1][0].encoder[0].weight)


def test_vectorised_training_argument_errors(mnist):
    clf, x = mnist["clf"], mnist["xs"][:100]
    cfg = AdversarialConfig(steps=2, batch_size=32)
    with pytest.raises(ValueError, match="same non-zero length"):
        train_adversarial_autoencoders(clf, [x, x], [T], [cfg, cfg])
    with pytest.raises(ValueError, match=r"configs\[1\]\.steps must equal"):
        train_adversarial_autoencoders(clf, [x, x], [T, T], [cfg, AdversarialConfig(steps=3, batch_size=32)])
    with pytest.raises(ValueError, match=r"min\(batch_size, N_k\)"):
        train_adversarial_autoencoders(clf, [x, x[:10]], [T, T], [cfg, cfg])
    with pytest.raises(ValueError, match="without dropout"):
        train_adversarial_autoencoders(clf, [x, x], [T, T], [cfg, cfg], autoencoder=lambda: MLPAutoencoder(dropout=0.1))
    with pytest.raises(ValueError, match=r"targets\[1\] must be <"):
        train_adversarial_autoencoders(clf, [x, x], [T, 10], [cfg, cfg])


def test_training_in_processes_equals_single_thread_training(mnist):
    """Two trainings in two single-thread worker processes are exactly the in-process trainings
    with one torch thread (this module runs with one)."""
    clf = mnist["clf"]
    xs = [mnist["xs"][:150], mnist["xs"][150:300]]
    cfgs = [AdversarialConfig(steps=20, batch_size=32, log_every=5, seed=s, compile=False) for s in (2, 5)]
    assert can_train_in_processes(clf, None) and not can_train_in_processes(clf, lambda: MLPAutoencoder())
    far = train_in_processes(clf, xs, [T, 1], cfgs)
    for (ae_p, h_p), x, t, c in zip(far, xs, [T, 1], cfgs):
        ae, h = train_adversarial_autoencoder(clf, x, t, c)
        assert h_p.loss == h.loss and not ae_p.training
        for (k, v), v_p in zip(ae.state_dict().items(), ae_p.state_dict().values()):
            assert torch.equal(v, v_p), k


def test_joint_training_mode_depends_on_settings_device_and_threads_only(mnist):
    clf = mnist["clf"]
    for mode in ("vectorized", "processes", "sequential"):
        assert joint_training_mode(mode, "cpu", clf, None) == mode
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert joint_training_mode("auto", "cpu", clf, None) == "sequential"
        torch.set_num_threads(2)
        assert joint_training_mode("auto", "cpu", clf, None) == "processes"
        # an autoencoder factory that does not pickle cannot go to a worker process
        assert joint_training_mode("auto", "cpu", clf, lambda: MLPAutoencoder()) == "sequential"
    finally:
        torch.set_num_threads(threads)
    assert joint_training_mode("auto", "cuda", clf, None) == "vectorized"
    with pytest.raises(ValueError, match="joint_training must be one of auto, vectorized, processes, sequential"):
        joint_training_mode("threads", "cpu", clf, None)


def test_train_jointly_dispatches_to_the_same_trainings(mnist):
    """train_jointly gives, in each mode, the trainings of that mode's function (sequential: the
    plain calls)."""
    clf = mnist["clf"]
    xs = [mnist["xs"][:64], mnist["xs"][64:128]]
    cfgs = [AdversarialConfig(steps=6, batch_size=32, log_every=3, seed=s, compile=False) for s in (1, 4)]
    seq = train_jointly(clf, xs, [T, 1], cfgs, "sequential")
    for (ae_j, h_j), x, t, c in zip(seq, xs, [T, 1], cfgs):
        ae, h = train_adversarial_autoencoder(clf, x, t, c)
        assert h_j.loss == h.loss
        assert all(torch.equal(a, b) for a, b in zip(ae.state_dict().values(), ae_j.state_dict().values()))
    vec = train_jointly(clf, xs, [T, 1], cfgs, "vectorized")
    for (_, h_v), (_, h_s) in zip(vec, seq):
        assert h_v.loss == pytest.approx(h_s.loss, rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="mode must be one of vectorized, processes, sequential"):
        train_jointly(clf, xs, [T, 1], cfgs, "auto")


def test_train_compile_option_is_checked():
    with pytest.raises(ValueError, match=r"AdversarialConfig\.compile must be True, False or 'auto'"):
        AdversarialConfig(compile="yes")
    with pytest.raises(ValueError, match=r"AdversarialConfig\.channels_last must be True, False or 'auto'"):
        AdversarialConfig(channels_last="nhwc")


def _cnn(dtype=torch.float32) -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return MnistCNN().to(dtype)


def test_training_layout_rule():
    """channels_last needs an nn.Module with a Conv2d; True forces it, False never, "auto" on a CPU."""
    cnn, fcn = _cnn(), _fcn()
    auto, on, off = (AdversarialConfig(channels_last=v) for v in ("auto", True, False))
    assert training_layout(auto, "cpu", cnn) == "channels_last"
    assert training_layout(auto, torch.device("cuda"), cnn) == "contiguous"
    assert training_layout(on, "cuda", cnn) == "channels_last"
    assert training_layout(off, "cpu", cnn) == "contiguous"
    for clf in (fcn, lambda z: cnn(z)):  # nothing to lay out / not a module
        assert training_layout(on, "cpu", clf) == "contiguous"
    # the key holds the layout the setting resolves to, not the setting: "auto" on an FCN and False
    # on a CNN train alike (contiguous) and share their key; "auto" on a CNN does not
    # (the auto stopping rule's settings enter only with steps="auto", where they act; with a fixed
    # step count only the collapse watch's period and probe do)
    fields = {k: v for k, v in dataclasses.asdict(auto).items() if k not in ("channels_last", "auto")}
    fields.update(collapse_every=auto.auto.every, collapse_probe=auto.auto.probe)
    assert training_key(auto, "cpu", fcn) == training_key(off, "cpu", cnn) == {**fields, "layout": "contiguous"}
    stopping = AdversarialConfig(steps="auto", channels_last=False)
    assert training_key(stopping, "cpu", fcn)["auto"] == dataclasses.asdict(stopping.auto)
    assert training_key(auto, "cpu", cnn) == {**fields, "layout": "channels_last"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_channels_last_training_equals_contiguous_within_float_tolerance(mnist, dtype):
    """Against a channels_last copy of a CNN the training is the same (curves within float tolerance),
    and the caller's classifier is left exactly as it was (weights, layout, mode, requires_grad)."""
    cnn = _cnn(dtype).train()
    cnn.head.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in cnn.named_parameters()}
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    xs = mnist["xs"][:300].to(dtype)
    runs = {}
    for cl in (False, True):
        cfg = AdversarialConfig(steps=60, batch_size=64, log_every=10, seed=1, compile=False, channels_last=cl)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # the copy worked: no fallback
            runs[cl] = train_adversarial_autoencoder(cnn, xs, T, cfg)
    (ae0, h0), (ae1, h1) = runs[False], runs[True]
    assert (h0.layout, h1.layout) == ("contiguous", "channels_last")
    rtol = 1e-4 if dtype == torch.float32 else 1e-10
    assert h1.step == h0.step
    assert h1.loss == pytest.approx(h0.loss, rel=rtol)
    assert h1.adversarial == pytest.approx(h0.adversarial, rel=rtol, abs=rtol / 10)
    with torch.no_grad():
        gap = float((ae0(xs) - ae1(xs)).abs().max())
    assert gap <= (1e-2 if dtype == torch.float32 else 1e-8)
    assert cnn.training and {n: p.requires_grad for n, p in cnn.named_parameters()} == flags
    for k, v in cnn.state_dict().items():
        assert v.is_contiguous() and torch.equal(v, state[k]), k


def test_channels_last_falls_back_when_the_model_cannot_be_copied(mnist):
    class Uncopyable(MnistCNN):
        def __deepcopy__(self, memo):
            raise TypeError("no copies")

    with torch.random.fork_rng():
        torch.manual_seed(3)
        cnn = Uncopyable()
    cfg = AdversarialConfig(steps=4, batch_size=16, log_every=2, compile=False)
    assert training_layout(cfg, "cpu", cnn) == "channels_last"
    with pytest.warns(RuntimeWarning, match="could not be copied for channels_last"):
        _, h = train_adversarial_autoencoder(cnn, mnist["xs"][:40], T, cfg)
    assert h.layout == "contiguous"


def test_small_set_and_callable_classifier(mnist):
    """Fewer inputs than batch_size (full batch every step) and a plain function as classifier."""
    clf = mnist["clf"]
    ae, h = train_adversarial_autoencoder(lambda z: clf(z), mnist["xs"][:10], T, AdversarialConfig(steps=5))
    assert h.steps == 5 and len(h.loss) == 1


def test_training_input_errors(mnist):
    clf, xs = mnist["clf"], mnist["xs"][:20]
    cfg = AdversarialConfig(steps=2)
    with pytest.raises(ValueError, match="target must be < .*10"):
        train_adversarial_autoencoder(clf, xs, 10, cfg)
    with pytest.raises(ValueError, match="target"):
        train_adversarial_autoencoder(clf, xs, -1, cfg)
    with pytest.raises(ValueError, match=r"x must have values in \[0, 1\]"):
        train_adversarial_autoencoder(clf, xs * 2, T, cfg)
    with pytest.raises(TypeError, match="x must be a float32 or float64 tensor, got torch.uint8"):
        train_adversarial_autoencoder(clf, (xs * 255).to(torch.uint8), T, cfg)
    with pytest.raises(ValueError, match="empty"):
        train_adversarial_autoencoder(clf, xs[:0], T, cfg)
    with pytest.raises(TypeError, match="config"):
        train_adversarial_autoencoder(clf, xs, T, {"steps": 2})
    with pytest.raises(ValueError, match="source and target must differ"):
        component_one(clf, xs, S, S, cfg)


# ----------------------------------------------------------------------------- components I and II
def test_component_one_yields_adversarial_samples(mnist, stage_one):
    clf, xs = mnist["clf"], mnist["xs"]
    r = stage_one
    assert r.collapse is None
    k = r.adversarial.shape[0]
    assert k > 0.5 * r.originals_correct
    assert r.adversarial.shape[1:] == xs.shape[1:]
    assert r.adversarial.min() >= 0 and r.adversarial.max() <= 1
    assert (predict(clf, r.adversarial).argmax(1) == T).all()
    assert r.source_index.shape == (k,)
    assert (predict(clf, xs[r.source_index]).argmax(1) == S).all()
    torch.testing.assert_close(r.adversarial, apply_autoencoder(r.autoencoder, xs[r.source_index]))
    assert r.train.n_inputs == xs.shape[0] and r.train.kept == k
    assert r.fraction_of_correct == pytest.approx(k / r.originals_correct)
    assert r.fraction_of_all == pytest.approx(k / xs.shape[0])
    assert r.test is not None and r.test.n_inputs == mnist["xt_s"].shape[0]
    assert r.test_accuracy > 0.85 and 0 < r.test_fraction_of_correct <= 1


def test_component_two_yields_boundary_pairs(mnist, stage_one):
    clf = mnist["clf"]
    r2 = component_two(clf, stage_one.adversarial, S, T, AdversarialConfig(steps=400, seed=1))
    assert r2.collapse is None
    p = r2.n_pairs
    assert p > 0.5 * stage_one.adversarial.shape[0]
    assert r2.a.shape == r2.a2.shape == (p, 1, 28, 28)
    assert (predict(clf, r2.a).argmax(1) == T).all()
    assert (predict(clf, r2.a2).argmax(1) == S).all()
    assert torch.equal(r2.a, stage_one.adversarial[r2.index])
    assert r2.a2.min() >= 0 and r2.a2.max() <= 1
    assert r2.stats.n_inputs == stage_one.adversarial.shape[0]


class _AlwaysZero(nn.Module):
    """Classifier that predicts class 0 for every input (its logits ignore the input's content)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([20.0] + [0.0] * 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_collapse_no_output_classified_as_target(mnist):
    xs = mnist["xs"][:100]
    with pytest.warns(RuntimeWarning, match=f"no output of the 0→{T} generator is classified as {T}"):
        r = component_one(_AlwaysZero(), xs, 0, T, AdversarialConfig(steps=20))
    assert r.adversarial.shape == (0, 1, 28, 28) and r.source_index.numel() == 0
    assert f"(0 of {xs.shape[0]})" in r.collapse
    with pytest.raises(ValueError, match="component I produced no adversarial samples"):
        component_two(_AlwaysZero(), r.adversarial, 0, T, AdversarialConfig(steps=20))


def test_collapse_identical_outputs(mnist):
    class ConstantAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.img = nn.Parameter(torch.zeros(1, 1, 28, 28))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.img).expand(x.shape[0], -1, -1, -1)

    with pytest.warns(RuntimeWarning, match="nearly identical"):
        r = component_one(mnist["clf"], mnist["xs"][:100], S, T, AdversarialConfig(steps=20), autoencoder=ConstantAE)
    assert "std across outputs" in r.collapse


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_components_on_cuda(mnist):
    dev = torch.device("cuda")
    clf = _fcn().to(dev)
    clf.load_state_dict(mnist["clf"].state_dict())
    xs = mnist["xs"].to(dev)
    r1 = component_one(clf, xs, S, T, AdversarialConfig(steps=400))
    assert r1.adversarial.device.type == "cuda" and r1.adversarial.shape[0] > 0
    r2 = component_two(clf, r1.adversarial, S, T, AdversarialConfig(steps=400))
    assert r2.a2.device.type == "cuda" and r2.n_pairs > 0
    assert (predict(clf, r2.a2).argmax(1) == S).all()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_micro_batches_give_the_batch_gradient(monkeypatch, dtype, tol):
    """Large inputs train in micro-batches (bounded memory): the same losses and weights as the whole
    batch, within float tolerance (here forced on small inputs by shrinking the element budget)."""
    import deepdig_fast.adversarial as A

    torch.manual_seed(0)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(36, 3)).to(dtype)
    x = torch.rand(40, 1, 6, 6, dtype=dtype)
    cfg = A.AdversarialConfig(steps=12, batch_size=16, log_every=4, compile=False)

    def ae():
        torch.manual_seed(1)
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 36), nn.Sigmoid(), nn.Unflatten(1, (1, 6, 6))).to(dtype)

    whole, h1 = A.train_adversarial_autoencoder(clf, x, 2, cfg, autoencoder=ae)
    monkeypatch.setattr(A.training, "TRAIN_ELEMENTS", 5 * 36)  # micro-batches of 4 (the largest power of two <= 5)
    assert A.training.fit_batch(16, (1, 6, 6), A.training.TRAIN_ELEMENTS) == 4
    micro, h2 = A.train_adversarial_autoencoder(clf, x, 2, cfg, autoencoder=ae)
    for a, b in zip(whole.state_dict().values(), micro.state_dict().values()):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    for key in ("loss", "reconstruction", "adversarial"):
        torch.testing.assert_close(torch.tensor(getattr(h1, key)), torch.tensor(getattr(h2, key)), atol=tol, rtol=tol)


def test_training_pauses_the_garbage_collector_and_restores_it():
    """The training loop runs with Python's collector off (a step's objects form no cycles; its
    collections cost 6.7% of a step) and leaves it as it found it, on, or off."""
    import gc

    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            if self.training:
                seen.append(gc.isenabled())
            return torch.sigmoid(self.lin(x.flatten(1))).view_as(x)

    x = torch.rand(16, 1, 2, 2)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    cfg = AdversarialConfig(steps=3, batch_size=8, compile=False)
    assert gc.isenabled()
    train_adversarial_autoencoder(clf, x, 1, cfg, autoencoder=Probe)
    assert seen == [False] * 3 and gc.isenabled()
    gc.disable()
    try:
        train_adversarial_autoencoder(clf, x, 1, cfg, autoencoder=Probe)
        assert not gc.isenabled()
    finally:
        gc.enable()
