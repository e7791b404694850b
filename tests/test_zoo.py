"""Any classifier: Preprocessed, named normalisations, the embedding layer found automatically,
zoo model sources (torchvision, timm, Hugging Face; robustbench's missing-package error), weights
files, and DeepDIG end to end on zoo models.

The first part needs only torch and runs everywhere. The zoo tests need torchvision / timm /
transformers / safetensors (`pip install deepdig_fast[zoo]`) and skip with the import error as the
reason where they are missing or broken (torchvision built for another torch). Nothing here touches
the network: every test runs with socket connections refused and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from deepdig_fast.cli import main
from deepdig_fast.data import as_unit, from_tensors, load_mnist
from deepdig_fast.forward import embed
from deepdig_fast.models import MnistCNN, MnistFCN
from deepdig_fast.zoo import (
    NORMALIZATIONS,
    HFClassifier,
    Normalization,
    Preprocessed,
    find_embedding_layer,
    load_model,
    parse_normalize,
)


def _why_not(*packages: str) -> str | None:
    """None when every package imports, else the reason to skip (the first failure, in one line)."""
    for name in packages:
        try:
            importlib.import_module(name)
        except (ImportError, RuntimeError) as e:  # torchvision for another torch raises RuntimeError
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            return f"needs {name} (pip install deepdig_fast[zoo]; torchvision must match torch): {first}"
    return None


def needs(*packages: str):
    reason = _why_not(*packages)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test may download: HF offline, and any socket connection fails loudly."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"a test tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --------------------------------------------------------------------------------------------------
# Preprocessed and normalisations (torch only)
# --------------------------------------------------------------------------------------------------


class Recorder(nn.Module):
    """Returns logits from a linear map and remembers what it was given."""

    def __init__(self, c=3, h=4, w=4, k=2):
        super().__init__()
        self.fc = nn.Linear(c * h * w, k)
        self.seen = None

    def forward(self, x):
        self.seen = x.detach().clone()
        return self.fc(x.flatten(1))


def test_preprocessed_normalises_then_runs_the_model_and_keeps_the_callers_tensor():
    inner = Recorder()
    m = Preprocessed(inner, mean=[0.1, 0.2, 0.3], std=[0.5, 0.25, 2.0], name="mine")
    x = torch.rand(5, 3, 4, 4)
    before = x.clone()
    out = m(x)
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(inner.seen, expected)
    torch.testing.assert_close(out, inner.fc(expected.flatten(1)))
    assert torch.equal(x, before)
    assert m.model is inner
    assert set(m.state_dict()) == {"mean", "std", "model.fc.weight", "model.fc.bias"}
    assert m.describe() == {
        "normalize": "mine",
        "mean": [0.1, 0.2, 0.3],
        "std": [0.5, 0.25, 2.0],
        "resize": None,
        "interpolation": None,
    }
    # one value for all channels; a Normalization as mean
    m1 = Preprocessed(inner, 0.5, 0.5)
    m1(x)
    torch.testing.assert_close(inner.seen, (x - 0.5) / 0.5)
    m2 = Preprocessed(inner, NORMALIZATIONS["imagenet"])
    assert m2.describe()["normalize"] == "imagenet" and m2.describe()["std"] == [0.229, 0.224, 0.225]


def test_preprocessed_resizes_bilinear_without_antialias_and_passes_gradients():
    inner = Recorder(h=4, w=6)
    m = Preprocessed(inner, resize=(4, 6))
    x = torch.rand(2, 3, 8, 12, requires_grad=True)
    m(x).sum().backward()
    torch.testing.assert_close(
        inner.seen, F.interpolate(x.detach(), size=(4, 6), mode="bilinear", align_corners=False, antialias=False)
    )
    assert x.grad is not None and x.grad.abs().sum() > 0  # autoencoders train through it
    d = m.describe()
    assert d["resize"] == [4, 6] and "antialias off" in d["interpolation"] and d["mean"] is None
    y = torch.rand(2, 3, 4, 6)
    m(y)
    assert torch.equal(inner.seen, y)  # already the size: untouched
    assert Preprocessed(inner, resize=7).resize == (7, 7)


def test_preprocessed_errors_name_the_argument():
    with pytest.raises(ValueError, match="mean and std must be given together"):
        Preprocessed(Recorder(), mean=[0.5])
    with pytest.raises(ValueError, match="std must be positive"):
        Preprocessed(Recorder(), mean=[0.5], std=[0.0])
    with pytest.raises(ValueError, match="resize must be None, a positive int or"):
        Preprocessed(Recorder(), resize=(0, 3))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        Preprocessed(lambda x: x)
    m = Preprocessed(Recorder(c=1), NORMALIZATIONS["imagenet"])
    with pytest.raises(ValueError, match=r"the normalisation has 3 channels, but the input has shape \[2, 1, 4, 4\]"):
        m(torch.rand(2, 1, 4, 4))


def test_named_normalisations_have_the_usual_values():
    assert NORMALIZATIONS["imagenet"].mean == (0.485, 0.456, 0.406)
    assert NORMALIZATIONS["imagenet"].std == (0.229, 0.224, 0.225)
    assert NORMALIZATIONS["cifar10"].mean == (0.4914, 0.4822, 0.4465)
    assert NORMALIZATIONS["cifar10"].std == (0.2470, 0.2435, 0.2616)
    assert NORMALIZATIONS["mnist"] == Normalization("mnist", (0.1307,), (0.3081,))


def test_parse_normalize():
    assert parse_normalize("auto") == "auto" and parse_normalize("none") is None and parse_normalize(None) is None
    assert parse_normalize("ImageNet") is NORMALIZATIONS["imagenet"]
    assert parse_normalize("0.5,0.25") == Normalization("0.5,0.25", (0.5,), (0.25,))
    n = parse_normalize("0.1,0.2,0.3,1,2,3")
    assert n.mean == (0.1, 0.2, 0.3) and n.std == (1.0, 2.0, 3.0) and n.channels == 3
    for bad in ("imagenett", "0.5", "0.1,0.2,0.3", "a,b", ""):
        with pytest.raises(ValueError, match="normalize must be auto, none, imagenet, cifar10, mnist, MEAN,STD"):
            parse_normalize(bad)
    with pytest.raises(ValueError, match="std must be positive"):
        parse_normalize("0.5,0")
    with pytest.raises(ValueError, match="finite"):
        parse_normalize("nan,1")
    with pytest.raises(TypeError, match="normalize must be a str"):
        parse_normalize(3)


# --------------------------------------------------------------------------------------------------
# find_embedding_layer (torch only)
# --------------------------------------------------------------------------------------------------


class AuxLast(nn.Module):
    """The classifier is not the last registered Linear: only a forward shows which one makes the logits."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)
        self.aux = nn.Linear(8, 5)  # an auxiliary output, unused by forward

    def forward(self, x):
        return self.head(self.body(x))


def test_find_embedding_layer_declared_structural_and_traced():
    assert find_embedding_layer(MnistCNN()) == "embedding"
    assert find_embedding_layer(Preprocessed(MnistFCN(), NORMALIZATIONS["mnist"])) == "model.embedding"
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))
    assert find_embedding_layer(seq) == "4:input"
    assert find_embedding_layer(Preprocessed(seq, 0.5, 0.5)) == "model.4:input"
    # by structure the last registered Linear would be chosen; one forward finds the real head
    assert find_embedding_layer(AuxLast()) == "aux:input"
    assert find_embedding_layer(AuxLast(), torch.rand(2, 3, 2, 2)) == "head:input"
    with pytest.raises(ValueError, match="has no nn.Linear classifier layer; name the embedding layer"):
        find_embedding_layer(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))


def test_the_found_layer_is_the_penultimate_representation():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh(), nn.Linear(6, 2))
    m = Preprocessed(seq, 0.5, 0.25)
    x = torch.rand(4, 1, 4, 4)
    _, e = embed(m, x, find_embedding_layer(m), compile=False)  # which layer, in eager arithmetic
    torch.testing.assert_close(e, seq[2](seq[1](((x - 0.5) / 0.25).flatten(1))))


# --------------------------------------------------------------------------------------------------
# load_model: errors and your own code (torch only)
# --------------------------------------------------------------------------------------------------


def test_load_model_rejects_bad_arguments_before_building(tmp_path):
    with pytest.raises(ValueError, match="spec must be SOURCE:NAME"):
        load_model("resnet18")
    with pytest.raises(ValueError, match="name the model after 'timm:'"):
        load_model("timm:")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        load_model("torchvision:resnet18", num_classes=0)
    with pytest.raises(ValueError, match="in_shape must be"):
        load_model("torchvision:resnet18", in_shape=(3, 32))
    with pytest.raises(ValueError, match="normalize must be auto"):
        load_model("torchvision:resnet18", normalize="imagenette")
    with pytest.raises(ValueError, match="normalize 'imagenet' has 3 channels, but the inputs have 1"):
        load_model("torchvision:resnet18", normalize="imagenet", in_shape=(1, 28, 28))
    with pytest.raises(FileNotFoundError, match="weights file .*absent.pt does not exist"):
        load_model("torchvision:resnet18", weights=tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="cannot import module 'no_such_zoo'"):
        load_model("no_such_zoo:resnet18")


@pytest.mark.parametrize(
    "package, spec",
    [("timm", "timm:resnet18"), ("torchvision", "torchvision:resnet18"), ("transformers", "hf:some/model")],
)
def test_a_missing_package_is_a_one_line_error_saying_how_to_install(monkeypatch, package, spec):
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    with pytest.raises(ImportError) as info:
        load_model(spec)
    msg = str(info.value)
    assert msg.startswith(f"{spec} needs the {package} package") and "pip install deepdig_fast[zoo]" in msg
    assert "\n" not in msg


def _fake_robustbench(monkeypatch, tmp_path):
    """A stand-in `robustbench` package with the API the loader uses (robustbench 1.1:
    model_zoo.model_dicts[BenchmarkDataset][ThreatModel][name]["model"], utils.load_model(model_name,
    dataset, threat_model, model_dir)): the real one pins timm 1.0.9 and installs only from git."""
    import enum
    import types

    class BenchmarkDataset(enum.Enum):
        cifar_10 = "cifar10"

    class ThreatModel(enum.Enum):
        Linf = "Linf"

    class Net(nn.Module):  # takes [0, 1] inputs and normalises inside, as robustbench models do
        def __init__(self):
            super().__init__()
            self.register_buffer("mu", torch.full((1, 3, 1, 1), 0.5))
            self.fc = nn.Linear(3 * 8 * 8, 10)

        def forward(self, x):
            return self.fc((x - self.mu).flatten(1))

    calls = []

    def rb_load(model_name, dataset, threat_model, model_dir):
        calls.append((model_name, dataset, threat_model, model_dir))
        net = Net()
        net.load_state_dict(torch.load(Path(model_dir) / dataset / threat_model / f"{model_name}.pt"))
        return net.eval()

    pkg = types.ModuleType("robustbench")
    zoo_mod, enums, utils = (types.ModuleType(f"robustbench.{n}") for n in ("model_zoo", "model_zoo.enums", "utils"))
    zoo_mod.model_dicts = {BenchmarkDataset.cifar_10: {ThreatModel.Linf: {"Tiny": {"model": Net}}}}
    enums.BenchmarkDataset, enums.ThreatModel = BenchmarkDataset, ThreatModel
    utils.load_model = rb_load
    for name, mod in (
        ("robustbench", pkg),
        ("robustbench.model_zoo", zoo_mod),
        ("robustbench.model_zoo.enums", enums),
        ("robustbench.utils", utils),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.chdir(tmp_path)  # robustbench's cache is ./models
    return Net, calls


def test_robustbench_weights_file_and_local_cache(monkeypatch, tmp_path):
    """robustbench:[DATASET/THREAT/]NAME: the architecture from the model zoo with --weights, or the
    checkpoint in robustbench's ./models cache; no normalisation added (robustbench models take
    [0, 1] inputs); a missing cache file says how to fetch it; a bad name is a one-line error."""
    Net, calls = _fake_robustbench(monkeypatch, tmp_path)
    torch.manual_seed(0)
    ref = Net()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    x = torch.rand(2, 3, 8, 8)
    model, info = load_model("robustbench:Tiny", weights=tmp_path / "w.pt", in_shape=(3, 8, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    assert info["preprocessing"]["from"] == "inside the robustbench model" and info["preprocessing"]["mean"] is None
    assert info["embedding_layer"] == "model.fc:input" and not calls
    with pytest.raises(FileNotFoundError, match=r"models/cifar10/Linf/Tiny.pt is not there; fetch it once"):
        load_model("robustbench:cifar10/Linf/Tiny")
    (tmp_path / "models" / "cifar10" / "Linf").mkdir(parents=True)
    torch.save(ref.state_dict(), tmp_path / "models" / "cifar10" / "Linf" / "Tiny.pt")
    model, info = load_model("robustbench:cifar10/Linf/Tiny", in_shape=(3, 8, 8))
    assert calls == [("Tiny", "cifar10", "Linf", "models")]
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    with pytest.raises(ValueError, match="expected robustbench:NAME or robustbench:DATASET/THREAT/NAME"):
        load_model("robustbench:cifar10/Tiny")


@pytest.mark.skipif(
    _why_not("robustbench") is None, reason="robustbench is installed: its missing-package error cannot be shown"
)
def test_robustbench_without_the_package():
    with pytest.raises(
        ImportError, match="robustbench:Standard needs the robustbench package.*RobustBench/robustbench"
    ):
        load_model("robustbench:Standard")


def test_load_model_your_own_factory(tmp_path):
    fcn = MnistFCN()
    torch.save(fcn.state_dict(), tmp_path / "w.pt")
    model, info = load_model("deepdig_fast.models:MnistFCN", weights=tmp_path / "w.pt", in_shape=(1, 28, 28))
    assert type(model) is MnistFCN  # nothing to preprocess: not wrapped, as before
    assert info["source"] == "module:factory" and info["embedding_layer"] == "embedding"
    assert info["embedding_layer_from"] == "declared" and info["preprocessing"]["normalize"] is None
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), fcn.eval()(x))
    model, info = load_model("deepdig_fast.models:MnistFCN", weights=tmp_path / "w.pt", normalize="mnist")
    assert isinstance(model, Preprocessed) and model.EMBEDDING_LAYER == "model.embedding"
    assert info["preprocessing"]["from"] == "normalize argument" and info["preprocessing"]["mean"] == [0.1307]
    torch.testing.assert_close(model(x), fcn((x - 0.1307) / 0.3081))


@needs("safetensors")
def test_load_model_reads_safetensors(tmp_path):
    from safetensors.torch import save_file

    fcn = MnistFCN()
    save_file({k: v.contiguous() for k, v in fcn.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model, info = load_model("deepdig_fast.models:MnistFCN", weights=tmp_path / "w.safetensors")
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(model(x), fcn.eval()(x))
    assert info["weights"].endswith("w.safetensors")


# --------------------------------------------------------------------------------------------------
# the command line (torch only)
# --------------------------------------------------------------------------------------------------


def one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_cli_checks_normalize_and_pair_names(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["run", "--pair", "1,2", "--out", out, "--normalize", "imagenett", "--device", "cpu"]) == 2
    assert one_error_line(capsys).startswith("deepdig run: error: --normalize: normalize must be auto, none, imagenet")
    assert main(["run", "--pair", "1,2", "--out", out, "--resize", "0", "--device", "cpu"]) == 2
    assert one_error_line(capsys).startswith("deepdig run: error: --resize must be None, a positive int")
    tiny = ["--device", "cpu", "--quiet", "--steps", "5", "--no-baselines", "--no-characterize", "--no-report"]
    fcn = MnistFCN()
    torch.save(fcn.state_dict(), tmp_path / "w.pt")
    spec = "deepdig_fast.models:MnistFCN"
    assert (
        main(["run", "--pair", "cat,dog", "--out", out, "--model", spec, "--weights", str(tmp_path / "w.pt"), *tiny])
        == 2
    )
    assert one_error_line(capsys).startswith(
        "deepdig run: error: --pair: class 'cat' is not a class name of mnist or of the model (classes: 0, 1, 2"
    )
    assert not (tmp_path / "out").exists()


def test_cli_pair_syntax():
    from deepdig_fast.cli.argtypes import _pair
    from deepdig_fast.cli.classes import _resolve_pair

    assert _pair("1,2") == (1, 2) and _pair("1-2") == (1, 2) and _pair("cat,dog") == ("cat", "dog")
    assert _pair("T-shirt/top,Bag") == ("T-shirt/top", "Bag")
    data = from_tensors(
        torch.rand(4, 1, 2, 2),
        torch.tensor([0, 1, 2, 0]),
        torch.rand(2, 1, 2, 2),
        torch.tensor([0, 1]),
        classes=["0", "1", "2"],
    )
    assert _resolve_pair(("1", 2), data, None, final=True) == (1, 2)
    assert _resolve_pair(("Cat", "dog"), data, ["plane", "cat", "dog"], final=True) == (1, 2)
    assert _resolve_pair(("cat", "dog"), data, None, final=False) is None
    # an image folder of classes "3" and "5": numbers are their names first, ids otherwise
    folder = from_tensors(
        torch.rand(2, 1, 2, 2),
        torch.tensor([0, 1]),
        torch.rand(0, 1, 2, 2),
        torch.tensor([], dtype=torch.long),
        classes=["3", "5"],
    )
    assert _resolve_pair((3, 5), folder, None, final=True) == (0, 1)
    assert _resolve_pair((5, 0), folder, None, final=True) == (1, 0)


# --------------------------------------------------------------------------------------------------
# zoo sources (optional packages)
# --------------------------------------------------------------------------------------------------


@needs("torchvision", "safetensors")
def test_torchvision_num_classes_from_the_weights(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    net = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(net.state_dict(), tmp_path / "r18.pt")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "r18.safetensors"))
    x = torch.rand(2, 3, 32, 32)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    for file in ("r18.pt", "r18.safetensors"):
        model, info = load_model("torchvision:resnet18", weights=tmp_path / file, in_shape=(3, 32, 32))
        assert info["num_classes"] == 2 and info["embedding_layer"] == "model.fc:input"
        assert info["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and info["preprocessing"]["resize"] is None
        assert info["preprocessing"]["from"] == "torchvision weights transforms"
        torch.testing.assert_close(model(x), net((x - mean) / std))
    with pytest.raises(ValueError, match="num_classes=3, but the weights' final layer has 2 outputs"):
        load_model("torchvision:resnet18", weights=tmp_path / "r18.pt", num_classes=3)
    with pytest.raises(ValueError, match="torchvision:resnet34: the weights do not fit ResNet"):
        load_model("torchvision:resnet34", weights=tmp_path / "r18.pt")
    with pytest.raises(ValueError, match="torchvision has no model 'resnet0'"):
        load_model("torchvision:resnet0", weights=tmp_path / "r18.pt")
    model, info = load_model("torchvision:resnet18", weights=tmp_path / "r18.pt", normalize="none")
    assert info["preprocessing"]["mean"] is None
    torch.testing.assert_close(model(x), net(x))


@needs("torchvision")
def test_torchvision_pretrained_only_from_the_local_cache(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as info:
        load_model("torchvision:resnet18")
    msg = str(info.value)
    assert (
        "not in the local torch hub cache" in msg
        and "get_model('resnet18', weights='DEFAULT')" in msg
        and "\n" not in msg
    )
    # a cache that holds the file (random weights standing in for the real ones): used, nothing fetched
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    net = torchvision.models.resnet18().eval()
    torch.save(net.state_dict(), cached)
    model, info = load_model("torchvision:resnet18", in_shape=(3, 32, 32))
    assert info["weights"].startswith("pretrained ResNet18_Weights.IMAGENET1K_V1") and str(cached) in info["weights"]
    assert info["num_classes"] == 1000 and info["classes"][0] == "tench" and len(info["classes"]) == 1000
    assert info["preprocessing"]["resize"] == [224, 224]
    x = torch.rand(2, 3, 32, 32)
    big = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    torch.testing.assert_close(model(x), net((big - mean) / std))
    with pytest.raises(ValueError, match="pretrained weights .* have 1000 classes, but num_classes=2"):
        load_model("torchvision:resnet18", num_classes=2)


@needs("torchvision")
@pytest.mark.parametrize(
    "name, layer, kw",
    [
        ("resnet18", "model.fc:input", {}),
        ("convnext_tiny", "model.classifier.2:input", {}),
        ("vit_b_16", "model.heads.head:input", {"in_shape": (3, 32, 32)}),
    ],
)
def test_torchvision_embedding_auto(name, layer, kw):
    model, info = load_model(f"torchvision:{name}", pretrained=False, num_classes=2, **kw)
    assert info["weights"] == "random" and info["embedding_layer"] == layer and model.EMBEDDING_LAYER == layer
    if name == "resnet18":  # the input of fc is the pooled, flattened feature map
        net, x = model.model, torch.rand(2, 3, 32, 32)
        _, e = embed(model, x, layer, compile=False)
        z = (x - model.mean.view(1, 3, 1, 1)) / model.std.view(1, 3, 1, 1)
        feats = net.avgpool(
            net.layer4(net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(z))))))))
        )
        torch.testing.assert_close(e, feats.flatten(1))


@needs("timm")
def test_timm_embedding_auto_is_forward_head_pre_logits(tmp_path):
    model, info = load_model("timm:test_vit", pretrained=False, num_classes=3, in_shape=(3, 32, 32))
    net = model.model
    assert info["embedding_layer"] == "model.head:input" and info["num_classes"] == 3
    assert info["preprocessing"]["from"] == "timm pretrained_cfg"
    assert info["preprocessing"]["mean"] == [round(v, 6) for v in net.pretrained_cfg["mean"]]
    x = torch.rand(2, 3, 32, 32)
    _, e = embed(model, x, info["embedding_layer"], compile=False)
    with torch.no_grad():
        z = (x - model.mean.view(1, 3, 1, 1)) / model.std.view(1, 3, 1, 1)
        pre = net.forward_head(net.forward_features(z), pre_logits=True)
    torch.testing.assert_close(e, pre)
    assert e.shape[1] == net.num_features
    with pytest.raises(FileNotFoundError, match="pretrained weights .* are not in the local cache; fetch them once"):
        load_model("timm:test_vit")


def tiny_vit(num_channels=3, image_size=32, patch=8, labels=("zero", "one")):
    """A tiny ViTForImageClassification (random initialisation, seeded)."""
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(
        image_size=image_size,
        patch_size=patch,
        num_channels=num_channels,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    torch.manual_seed(0)
    net = ViTForImageClassification(cfg).eval()
    return net


def save_vit(net, folder, mean=0.5, std=0.5):
    """Save `net` with a ViTImageProcessor config (mean, std, its own size) to `folder`."""
    c = net.config.num_channels
    net.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "ViTImageProcessor",
                "do_normalize": True,
                "image_mean": [mean] * c,
                "image_std": [std] * c,
                "do_resize": True,
                "size": {"height": net.config.image_size, "width": net.config.image_size},
                "do_rescale": True,
                "rescale_factor": 1 / 255,
            }
        )
    )


@needs("transformers")
def test_hf_vit_from_a_folder(tmp_path):
    net = tiny_vit()
    save_vit(net, tmp_path / "vit", mean=0.4, std=0.2)
    model, info = load_model(f"hf:{tmp_path / 'vit'}", in_shape=(3, 32, 32))
    assert info["classes"] == ["zero", "one"] and info["num_classes"] == 2
    assert info["embedding_layer"] == "model.hf.classifier:input"
    assert info["preprocessing"]["mean"] == [0.4] * 3 and info["preprocessing"]["from"] == "hf image processor"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = (x - 0.4) / 0.2
        torch.testing.assert_close(model(x), net(pixel_values=z).logits)
        _, e = embed(model, x, info["embedding_layer"], compile=False)
        torch.testing.assert_close(e, net.vit(pixel_values=z).last_hidden_state[:, 0])  # the [CLS] output
    with pytest.raises(
        FileNotFoundError, match="neither a local folder nor in the local Hugging Face cache; fetch it once"
    ):
        load_model("hf:deepdig-tests/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is not a Hugging Face model folder"):
        load_model(f"hf:{tmp_path / 'empty'}")


# --------------------------------------------------------------------------------------------------
# end to end: briefly trained zoo models through run_pair and the command line
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist01_folder(tmp_path_factory):
    """MNIST zeros and ones at 32x32 written as an image folder of RGB PNGs (train/test subfolders,
    class folders named): 80 training and 30 test images per class."""
    Image = pytest.importorskip("PIL.Image")
    m = load_mnist()
    root = tmp_path_factory.mktemp("mnist01") / "mnist01"
    for split, x, y, n in (("train", m.x_train, m.y_train, 80), ("test", m.x_test, m.y_test, 30)):
        for c, name in ((0, "zero"), (1, "one")):
            big = F.interpolate(x[y == c][:n], size=(32, 32), mode="bilinear", align_corners=False)
            pixels = (big.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()
            (root / split / name).mkdir(parents=True)
            for i, img in enumerate(pixels):
                Image.fromarray(img).convert("RGB").save(root / split / name / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def mnist01(mnist01_folder):
    """The image folder as the CLI reads it (inputs in [0, 1], classes "one", "zero" in folder order)."""
    from deepdig_fast.data import load_image_folder

    return load_image_folder(mnist01_folder)


def train_briefly(model, data, steps=20, lr=2e-3, batch=32):
    """Adam on the wrapped model (the normalisation inside is trained through); returns test accuracy."""
    torch.manual_seed(0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        i = torch.randint(0, data.x_train.shape[0], (batch,), generator=g)
        loss = F.cross_entropy(model(as_unit(data.x_train[i])), data.y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    # BatchNorm's running statistics lag after a few steps: recompute them over the training inputs
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average
    if norms:
        with torch.no_grad():
            for chunk in as_unit(data.x_train).split(80):
                model(chunk)
    model.eval()
    with torch.no_grad():
        return float((model(as_unit(data.x_test)).argmax(1) == data.y_test).float().mean())


def cli_run(folder, out, spec, weights, *extra):
    """`deepdig run --dataset imagefolder` on the folder with a few autoencoder steps; returns the
    manifest and results."""
    argv = ["run", "--dataset", "imagefolder", "--data-root", str(folder), "--model", spec]
    argv += [] if weights is None else ["--weights", str(weights)]
    argv += ["--pair", "zero,one", "--steps", "6", "--beta", "1e-3", "--max-steps", "16", "--no-characterize"]
    argv += ["--no-report", "--quiet", "--device", "cpu", "--out", str(out), *extra]
    assert main(argv) == 0
    return json.loads((out / "manifest.json").read_text()), json.loads((out / "results.json").read_text())


def check_run(manifest, results, layer, normalize):
    assert manifest["dataset"] == "imagefolder" and manifest["classes"] == ["one", "zero"]
    assert manifest["pair"] == [1, 0]  # --pair zero,one by the folder's class names
    info = manifest["model_info"]
    assert info["embedding_layer"] == layer and info["embedding_layer_from"] == "auto"  # found, used by the run
    assert manifest["classifier"]["embedding_layer"] == layer
    assert info["preprocessing"]["normalize"].startswith(normalize) and info["preprocessing"]["mean"]
    assert all(a > 0.8 for a in manifest["classifier"]["class_accuracy"].values())  # the contract holds
    for key in ("1->0", "0->1"):
        methods = results["directions"][key]["methods"]
        assert methods["rpbs"]["pairs"] > 0 and methods["rpbs"]["success_rate"] > 0.5  # real decisions
        assert methods["epbs"]["pairs"] > 0  # embedding-nearest pairs: the auto layer's embeddings


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*generator collapsed")  # a few autoencoder steps: expected
@needs("torchvision", "safetensors")
def test_end_to_end_torchvision_resnet18(tmp_path, mnist01, mnist01_folder):
    """torchvision:resnet18 with user weights (.safetensors): its weights' ImageNet normalisation is applied
    automatically (--normalize omitted)."""
    from safetensors.torch import save_file

    model, info = load_model("torchvision:resnet18", pretrained=False, num_classes=2)
    assert info["preprocessing"]["normalize"].startswith("torchvision ResNet18_Weights")
    assert train_briefly(model, mnist01, steps=20) > 0.9
    weights = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in model.model.state_dict().items()}, str(weights))
    check_run(*cli_run(mnist01_folder, tmp_path / "run", "torchvision:resnet18", weights), "model.fc:input", "torch")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*generator collapsed")  # a few autoencoder steps: expected
@needs("timm")
def test_end_to_end_timm(tmp_path, mnist01, mnist01_folder):
    model, _ = load_model("timm:test_convnext", pretrained=False, num_classes=2, in_shape=(3, 32, 32))
    assert train_briefly(model, mnist01, steps=30) > 0.9
    torch.save(model.model.state_dict(), tmp_path / "convnext.pt")
    manifest, results = cli_run(mnist01_folder, tmp_path / "run", "timm:test_convnext", tmp_path / "convnext.pt")
    assert manifest["model_info"]["preprocessing"]["from"] == "timm pretrained_cfg"
    check_run(manifest, results, "model.head.fc:input", "")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*generator collapsed")  # a few autoencoder steps: expected
@needs("transformers")
def test_end_to_end_hf_vit(tmp_path, mnist01, mnist01_folder, capsys):
    """A Hugging Face ViT folder (its image processor's normalisation applied); a model whose id2label
    orders the folder's classes differently is refused."""
    net = tiny_vit(labels=("one", "zero"))  # the folder's (sorted) order
    model = Preprocessed(HFClassifier(net), 0.5, 0.5)
    assert train_briefly(model, mnist01, steps=400, lr=2e-3) > 0.9
    save_vit(net, tmp_path / "vit")
    manifest, results = cli_run(mnist01_folder, tmp_path / "run", f"hf:{tmp_path / 'vit'}", None)
    assert manifest["model_info"]["classes"] == ["one", "zero"]
    check_run(manifest, results, "model.hf.classifier:input", "")
    save_vit(tiny_vit(labels=("zero", "one")), tmp_path / "swapped")
    with pytest.raises(AssertionError):
        cli_run(mnist01_folder, tmp_path / "swapped-run", f"hf:{tmp_path / 'swapped'}", None)
    assert "output i of the model must be class i of the data" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*generator collapsed")  # a few autoencoder steps: expected
@needs("transformers")
def test_cli_runs_a_hf_model_with_pair_names_from_id2label(tmp_path, capsys):
    """deepdig run --model hf:DIR --pair zero,one on MNIST: names from the model's id2label, its
    normalisation applied, the embedding found; the manifest records it all."""
    m = load_mnist()
    names = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    net = tiny_vit(num_channels=1, image_size=28, patch=7, labels=names)
    model = Preprocessed(HFClassifier(net), 0.5, 0.5)
    zeros_ones = m.subset(classes=[0, 1], per_class=200, per_class_test=50)  # a 10-label model, taught two
    assert train_briefly(model, zeros_ones, steps=60, lr=3e-3) > 0.9
    save_vit(net, tmp_path / "vit")
    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--model",
            f"hf:{tmp_path / 'vit'}",
            "--pair",
            "zero,one",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
            "--steps",
            "5",
            "--no-baselines",
            "--no-characterize",
            "--no-report",
        ]
    )
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["pair"] == [0, 1] and manifest["classes"][:2] == ["zero", "one"]
    info = manifest["model_info"]
    assert info["source"] == "hf" and info["embedding_layer"] == "model.hf.classifier:input"
    assert info["embedding_layer_from"] == "auto" and info["preprocessing"]["mean"] == [0.5]
    assert manifest["classifier"]["embedding_layer"] == "model.hf.classifier:input"


def test_a_model_that_rejects_in_shape_still_loads_and_check_fits_reports_it(tmp_path):
    """load_model does not judge the fit (check_fits does, with its one-line message naming both sides)."""
    from deepdig_fast.checkpoint import check_fits

    (tmp_path / "flat.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 2))\n"
    )
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 2)).state_dict(), tmp_path / "w.pt")
    model, info = load_model(f"{tmp_path / 'flat.py'}:make", weights=tmp_path / "w.pt", in_shape=(3, 32, 32))
    assert info["embedding_layer"] == "1:input" and "a forward of in_shape [3, 32, 32] failed" in info["notes"][0]
    data = from_tensors(
        torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    )
    with pytest.raises(ValueError, match="does not accept inputs of data set 'tensors'"):
        check_fits(model, data, name="mine")
