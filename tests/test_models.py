"""Reference classifiers: shapes, embedding layer names, training on a small MNIST slice, determinism."""

from __future__ import annotations

import pytest
import torch

from deepdig_fast.data import from_tensors, load_mnist
from deepdig_fast.models import (
    ARCHITECTURES,
    CifarResNet,
    MnistCNN,
    MnistFCN,
    build_classifier,
    evaluate_accuracy,
    predict_labels,
    train_classifier,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one intra-op thread is as fast uncontended and far faster when other
    processes share the 2 CPU cores (OpenMP threads then wait on each other)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def embedding_of(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Output of the model's EMBEDDING_LAYER for x, read with a forward hook."""
    layer = dict(model.named_modules())[model.EMBEDDING_LAYER]
    out = {}
    handle = layer.register_forward_hook(lambda _m, _i, o: out.setdefault("h", o))
    try:
        model(x)
    finally:
        handle.remove()
    return out["h"]


@pytest.mark.parametrize(
    "arch, shape, kwargs, emb_dim",
    [
        ("cnn", (1, 28, 28), {}, 50),
        ("fcn", (1, 28, 28), {}, 50),
        ("resnet", (3, 32, 32), {"width": 4, "blocks": (1, 1)}, 8),
        ("resnet34", (3, 32, 32), {"width": 2}, 16),
        ("googlenet", (3, 32, 32), {"width": 0.125}, 128),
    ],
)
def test_shapes_and_embedding_layer(arch, shape, kwargs, emb_dim):
    model = build_classifier(arch, num_classes=10, in_shape=shape, seed=0, **kwargs).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        logits = model(x)
        h = embedding_of(model, x)
        # the embedding is exactly the input of the last linear layer
        assert torch.allclose(model.head(h), logits)
    assert logits.shape == (3, 10)
    assert h.shape == (3, emb_dim) and model.embedding_dim == emb_dim
    assert bool((h >= 0).all())  # taken after the activation
    assert model.config()["in_shape"] == list(shape)


def test_cnn_matches_paper_layout():
    m = MnistCNN()
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(1, 10, (3, 3)), (10, 10, (3, 3))]
    assert [(mod.in_features, mod.out_features) for mod in linears] == [(250, 50), (50, 10)]
    f = MnistFCN()
    assert [(mod.in_features, mod.out_features) for mod in f.modules() if isinstance(mod, torch.nn.Linear)] == [
        (784, 50),
        (50, 50),
        (50, 10),
    ]


def test_resnet_depths():
    r34 = CifarResNet(depth=34, width=2)
    assert r34.blocks == (3, 4, 6, 3) and r34.embedding_dim == 16
    assert CifarResNet(width=2).blocks == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="depth must be one of"):
        CifarResNet(depth=50)


def test_build_classifier_errors():
    assert set(ARCHITECTURES) == {"cnn", "fcn", "resnet", "resnet18", "resnet34", "googlenet"}
    with pytest.raises(ValueError, match=r"arch must be one of \['cnn', 'fcn', 'googlenet', 'resnet', .*\], got 'vgg'"):
        build_classifier("vgg")
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("cnn", num_classes=1)
    with pytest.raises(ValueError, match="in_shape"):
        build_classifier("cnn", in_shape=(28, 28))
    with pytest.raises(TypeError, match="bad keyword"):
        build_classifier("fcn", widht=3)


def test_seeded_build_is_deterministic_and_keeps_global_rng():
    state = torch.random.get_rng_state()
    a = build_classifier("cnn", seed=3).state_dict()
    b = build_classifier("cnn", seed=3).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def mnist_slice():
    return load_mnist().take(2000, 1000)


def test_training_on_small_slice_beats_chance(mnist_slice):
    model = build_classifier("cnn", seed=0)
    result = train_classifier(model, mnist_slice, epochs=2, progress=False)
    assert result["test_accuracy"] > 0.8  # chance is 0.1
    assert result["train_accuracy"] > 0.8
    assert result["epochs"] == 2 and len(result["epoch_losses"]) == 2 and result["seconds"] > 0
    assert result["epoch_losses"][1] < result["epoch_losses"][0]
    assert not model.training
    assert result["test_accuracy"] == evaluate_accuracy(model, mnist_slice.x_test, mnist_slice.y_test)


def test_training_is_seeded(mnist_slice):
    small = mnist_slice.take(512, 256)
    runs = []
    for _ in range(2):
        model = build_classifier("fcn", seed=1)
        r = train_classifier(model, small, epochs=1, seed=7, batch_size=64, progress=False, eval_train=False)
        runs.append((model.state_dict(), r["epoch_losses"]))
    (sa, la), (sb, lb) = runs
    assert la == lb and all(torch.equal(sa[k], sb[k]) for k in sa)
    other = build_classifier("fcn", seed=1)
    train_classifier(other, small, epochs=1, seed=8, batch_size=64, progress=False, eval_train=False)
    assert not torch.equal(other.state_dict()["head.weight"], sa["head.weight"])


def test_train_classifier_errors_and_tiny_resnet():
    x = torch.rand(16, 3, 32, 32)
    y = torch.arange(16) % 4
    data = from_tensors(x, y, x[:8], y[:8], classes=list("abcd"))
    model = build_classifier("resnet", num_classes=4, width=2, blocks=(1,), seed=0)
    r = train_classifier(model, data, epochs=1, batch_size=8, progress=True)
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert predict_labels(model, x).shape == (16,)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        train_classifier(model, data, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_classifier(model, data, batch_size=0)
    with pytest.raises(TypeError, match="data must be a ClassificationData"):
        train_classifier(model, (x, y))


@pytest.mark.parametrize(
    "arch, emb_dim, cls", [("resnet34", 512, "CifarResNet34"), ("googlenet", 1024, "CifarGoogLeNet")]
)
def test_paper_cifar_models_full_size(arch, emb_dim, cls):
    """The paper's CIFAR-10 models at full size: ResNet-34 (blocks 3, 4, 6, 3) and GoogLeNet (9
    Inception blocks), embedding widths 512 and 1024, named `embedding`; a forward of two images."""
    model = build_classifier(arch, seed=0).eval()
    assert type(model).__name__ == cls and model.EMBEDDING_LAYER == "embedding"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        h = embedding_of(model, x)
        assert torch.allclose(model.head(h), logits, atol=1e-5)
    assert logits.shape == (2, 10) and h.shape == (2, emb_dim) and model.embedding_dim == emb_dim
    if arch == "resnet34":
        assert model.blocks == (3, 4, 6, 3)
        assert build_classifier("resnet18").blocks == (2, 2, 2, 2)
    else:
        inception = [m for m in model.modules() if type(m).__name__ == "_Inception"]
        assert [m.out_channels for m in inception] == [256, 480, 512, 512, 512, 528, 832, 832, 1024]
    rebuilt = build_classifier(
        arch, **{k: v for k, v in model.config().items() if k not in ("num_classes", "in_shape")}
    )
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
