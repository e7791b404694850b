"""Classifier checkpoints: round trip, checksum verification, weights_only loading, user model specs."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from torch import nn

from deepdig_fast.checkpoint import FORMAT, load_classifier, load_user_model, save_classifier
from deepdig_fast.io import (
    ChecksumError,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_text,
    load_tensors,
    sha256_file,
    sha256_state_dict,
)
from deepdig_fast.models import build_classifier


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch, kwargs", [("cnn", {}), ("fcn", {}), ("resnet", {"width": 2, "blocks": [1, 1]})])
def test_round_trip(tmp_path, arch, kwargs):
    model = build_classifier(arch, num_classes=3, seed=0, **kwargs)
    classes = ["a", "b", "c"]
    pt = save_classifier(tmp_path, model, arch=arch, dataset="toy", classes=classes, accuracy=0.5, extra={"epochs": 1})
    assert pt == tmp_path / f"toy_{arch}.pt" and pt.with_suffix(".json").is_file()
    meta = json.loads(pt.with_suffix(".json").read_text())
    assert meta["format"] == FORMAT and meta["arch"] == arch and meta["classes"] == classes
    assert meta["num_classes"] == 3 and meta["embedding_layer"] == "embedding"
    assert meta["weights_sha256"] == sha256_state_dict(model.state_dict())
    assert meta["torch_version"] == torch.__version__ and meta["extra"] == {"epochs": 1}

    for path in (pt, pt.with_suffix(".json"), pt.with_suffix(""), tmp_path):
        loaded, m2 = load_classifier(path)
        assert type(loaded) is type(model) and not loaded.training
        assert same_weights(loaded, model) and m2 == meta
    x = torch.rand(2, *model.in_shape)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_explicit_file_name_and_user_model(tmp_path):
    class Custom(nn.Module):
        EMBEDDING_LAYER = "body"

        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU())
            self.head = nn.Linear(3, 2)

        def forward(self, x):
            return self.head(self.body(x))

    torch.manual_seed(0)
    model = Custom()
    pt = save_classifier(
        tmp_path / "sub" / "mine.pt", model, arch="custom", dataset="toy", classes=["x", "y"], accuracy=None
    )
    assert pt == tmp_path / "sub" / "mine.pt"
    with pytest.raises(ValueError, match="arch 'custom' is not built in"):
        load_classifier(pt)
    loaded, meta = load_classifier(pt, model=Custom())
    assert same_weights(loaded, model) and meta["arch_kwargs"] is None and meta["embedding_layer"] == "body"


def test_checksum_mismatch_detected(tmp_path):
    model = build_classifier("fcn", seed=0)
    pt = save_classifier(
        tmp_path / "m.pt", model, arch="fcn", dataset="mnist", classes=list("0123456789"), accuracy=0.9
    )
    state = load_tensors(pt)
    state["head.bias"][0] += 1.0
    atomic_save_tensors(pt, state)
    with pytest.raises(ChecksumError, match=r"checksum mismatch for .*m\.pt"):
        load_classifier(pt)
    loaded, _ = load_classifier(pt, verify=False)
    assert loaded.head.bias[0].item() == pytest.approx(model.head.bias[0].item() + 1.0)


def test_weights_loaded_with_weights_only(tmp_path):
    model = build_classifier("fcn", seed=0)
    pt = save_classifier(
        tmp_path / "m.pt", model, arch="fcn", dataset="mnist", classes=list("0123456789"), accuracy=0.9
    )

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    torch.save({"state": Payload()}, pt)  # a pickle that would run code if fully unpickled
    with pytest.raises(ValueError, match="weights_only=True"):
        load_classifier(pt)


def test_metadata_errors(tmp_path):
    model = build_classifier("fcn", seed=0)
    with pytest.raises(ValueError, match="classes names 2 classes but the model has num_classes=10"):
        save_classifier(tmp_path, model, arch="fcn", dataset="d", classes=["a", "b"], accuracy=0.9)
    with pytest.raises(TypeError, match="arch='cnn' names MnistCNN"):
        save_classifier(tmp_path, model, arch="cnn", dataset="d", classes=list("0123456789"), accuracy=0.9)
    with pytest.raises(TypeError, match="extra must be JSON-serialisable"):
        save_classifier(
            tmp_path, model, arch="fcn", dataset="d", classes=list("0123456789"), accuracy=0.9, extra={"x": object()}
        )
    with pytest.raises(FileNotFoundError, match="metadata"):
        load_classifier(tmp_path / "absent.pt")
    pt = save_classifier(tmp_path, model, arch="fcn", dataset="d", classes=list("0123456789"), accuracy=0.9)
    with pytest.raises(ValueError, match="do not fit the model"):
        load_classifier(pt, model=build_classifier("cnn"))


def test_user_model_spec(tmp_path, monkeypatch):
    pkg = tmp_path / "userpkg_dd"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(
        "import torch.nn as nn\n"
        "def make(hidden=3):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))\n"
        "NOT_CALLABLE = 1\n"
        "def not_a_module():\n"
        "    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("userpkg_dd", None)
    import importlib

    net = importlib.import_module("userpkg_dd.nets").make()
    weights = tmp_path / "w.pt"
    torch.save(net.state_dict(), weights)

    loaded = load_user_model("userpkg_dd.nets:make", weights)
    assert same_weights(loaded, net) and not loaded.training
    from_file = load_user_model(f"{pkg / 'nets.py'}:make", weights)
    assert same_weights(from_file, net)
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, weights)
    assert same_weights(load_user_model("userpkg_dd.nets:make", weights), net)

    with pytest.raises(ValueError, match="spec must look like 'package.module:factory'"):
        load_user_model("userpkg_dd.nets.make")
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg_dd'"):
        load_user_model("no_such_pkg_dd:make")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        load_user_model("userpkg_dd.nets:missing")
    with pytest.raises(ValueError, match="expected a callable"):
        load_user_model("userpkg_dd.nets:NOT_CALLABLE")
    with pytest.raises(TypeError, match="returned int, expected an nn.Module"):
        load_user_model("userpkg_dd.nets:not_a_module")
    with pytest.raises(ValueError, match="do not fit the model"):
        load_user_model("userpkg_dd.nets:make", weights, factory_kwargs={"hidden": 5})
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_user_model("userpkg_dd.nets:make", tmp_path / "absent.pt")


def test_io_helpers(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "t.txt", "hello")
    assert (
        p.read_text() == "hello"
        and sha256_file(p) == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    )
    assert not [f for f in p.parent.iterdir() if f.name.endswith(".tmp")]
    state = {
        "w": torch.arange(6.0).reshape(2, 3),
        "b": torch.tensor([True, False]),
        "h": torch.ones(2, dtype=torch.bfloat16),
    }
    s1 = sha256_state_dict(state)
    assert s1 == sha256_state_dict(dict(reversed(list(state.items()))))  # insertion order does not matter
    assert s1 != sha256_state_dict({**state, "w": state["w"].reshape(3, 2)})  # shape matters
    assert s1 != sha256_state_dict({**state, "w": state["w"].double()})  # dtype matters
    assert s1 == sha256_state_dict({**state, "w": state["w"].t().contiguous().t()})  # layout does not
    atomic_save_tensors(tmp_path / "s.pt", {**state, "note": "x", "n": 3})
    back = load_tensors(tmp_path / "s.pt")
    assert back["note"] == "x" and sha256_state_dict({k: back[k] for k in state}) == s1
    with pytest.raises(TypeError, match="data must be bytes-like"):
        atomic_write_bytes(tmp_path / "x", "text")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="weights_only"):
        load_tensors(tmp_path / "junk.pt")
