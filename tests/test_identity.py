"""A stage is reused only for the same function and the same data (issue 26, defects 1, 2 and 11).

The keys once hashed only the weights and a sample of the training images: a Tanh network with a
ReLU network's weights, or a data file with replaced test images, reused every stage of the old
run. And a `file.py:factory` model whose class lives in that file failed in the default training
mode (worker processes could not import the file)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from deepdig_fast.data import as_unit, from_tensors, load_mnist
from deepdig_fast.identity import data_fingerprint, model_identity
from deepdig_fast.userfiles import defining_modules, import_user_file, user_files, user_module_name


def _mlp(act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(6, 5), act, nn.Linear(5, 3))


def test_same_weights_another_activation_is_another_model():
    relu, tanh = _mlp(nn.ReLU()), _mlp(nn.Tanh())
    tanh.load_state_dict(relu.state_dict())
    a, b = model_identity(relu), model_identity(tanh)
    assert a["weights"] == b["weights"] and a["structure"] != b["structure"]
    again = _mlp(nn.ReLU())
    assert model_identity(again)["structure"] == a["structure"]  # same structure, other weights
    assert model_identity(again)["weights"] != a["weights"]
    assert model_identity(relu) == a  # stable


def test_a_layer_setting_a_plain_attribute_or_a_hook_is_another_model():
    base = model_identity(_mlp(nn.LeakyReLU(0.01)))["structure"]
    assert model_identity(_mlp(nn.LeakyReLU(0.2)))["structure"] != base  # extra_repr
    m = _mlp(nn.LeakyReLU(0.01))
    m.temperature = 2.0  # a plain attribute a forward may read
    assert model_identity(m)["structure"] != base
    m = _mlp(nn.LeakyReLU(0.01))
    m[0].register_forward_hook(lambda mod, i, o: o * 2)
    assert model_identity(m)["structure"] != base
    m = _mlp(nn.LeakyReLU(0.01))
    m.train(False)  # the mode is not part of the function's identity here (runs put models in eval)
    assert model_identity(m)["structure"] == base


_NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 64)
        self.embedding = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        h = torch.ACT(self.fc1(x.flatten(1)))
        return self.head(torch.ACT(self.embedding(h)))


def make():
    return Net()
"""


def test_an_edited_forward_is_another_model(tmp_path):
    """Same class name, same submodules, same weights; only the code of forward differs (the audit: Tanh for ReLU)."""
    (tmp_path / "a.py").write_text(_NET.replace("ACT", "relu"))
    (tmp_path / "b.py").write_text(_NET.replace("ACT", "tanh"))
    a = import_user_file(tmp_path / "a.py").make()
    b = import_user_file(tmp_path / "b.py").make()
    b.load_state_dict(a.state_dict())
    assert model_identity(a)["weights"] == model_identity(b)["weights"]
    assert model_identity(a)["structure"] != model_identity(b)["structure"]


def test_user_module_names_are_the_same_in_every_process(tmp_path):
    (tmp_path / "my-model.py").write_text(_NET.replace("ACT", "relu"))
    name = user_module_name(tmp_path / "my-model.py")
    code = f"from deepdig_fast.userfiles import user_module_name; print(user_module_name({str(tmp_path / 'my-model.py')!r}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == name and name.isidentifier()  # not Python's per-process salted hash()
    net = import_user_file(tmp_path / "my-model.py").make()
    assert user_files(net) == [(name, str(tmp_path / "my-model.py"))]
    assert user_files(_mlp(nn.ReLU())) == [] and "torch.nn.modules.linear" in defining_modules(net)


def test_scripts_classes_train_in_this_process():
    """A classifier whose class is defined in a script (__main__) cannot be unpickled by a worker:
    the automatic mode trains it here instead of failing in the worker."""
    from deepdig_fast.adversarial import can_train_in_processes

    Main = type("Main", (nn.Module,), {"forward": lambda self, x: x, "__module__": "__main__"})
    assert can_train_in_processes(_mlp(nn.ReLU()), None)
    assert not can_train_in_processes(nn.Sequential(Main()), None)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _fp(d, **changes):
    return data_fingerprint(dataclasses.replace(d, **changes))


def test_fingerprint_reads_every_input_and_label(mnist):
    d = mnist.take(2000, 500)
    base = data_fingerprint(d)
    x_test = d.x_test.clone()
    x_test[7] = 1 - x_test[7]  # one test image replaced, labels kept
    assert _fp(d, x_test=x_test) != base
    x_train = d.x_train.clone()
    x_train[1::2][d.y_train[1::2] == 1] = torch.rand_like(x_train[1::2][d.y_train[1::2] == 1])  # odd positions
    assert _fp(d, x_train=x_train) != base
    y_test = d.y_test.clone()
    y_test[3] = (y_test[3] + 1) % 10
    assert _fp(d, y_test=y_test) != base
    x_train = d.x_train.clone()
    x_train[1999, 0, 27, 27] += 1 / 255  # the last pixel of the last image
    assert _fp(d, x_train=x_train) != base
    assert data_fingerprint(d) == base


def test_fingerprint_is_of_the_values_not_the_storage(mnist):
    d = mnist.take(1000, 300)
    pixels = from_tensors(
        (d.x_train * 255).round().to(torch.uint8), d.y_train, (d.x_test * 255).round().to(torch.uint8), d.y_test
    )
    assert torch.equal(as_unit(pixels.x_train), d.x_train)
    fp = data_fingerprint(dataclasses.replace(pixels, name=d.name))
    assert fp == data_fingerprint(d)  # uint8 pixels and the float32 values they stand for: one data set
    assert _fp(d, x_train=d.x_train.double(), x_test=d.x_test.double()) != data_fingerprint(d)  # other values
    from deepdig_fast.identity import _values_digest

    assert _values_digest(d.x_train[:0]) != _values_digest(d.x_train[:1])  # shapes enter too
    assert _values_digest(d.x_train[:0]) != _values_digest(d.x_train[:0].reshape(0, 784))


def test_a_run_with_replaced_test_images_reuses_nothing(small_fcn, tmp_path):
    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.pipeline import PairConfig, run_pair

    model, data = small_fcn
    small = data.take(2000, 600)
    cfg = PairConfig(adversarial=AdversarialConfig(steps=60), baselines=False, trajectory_segments=100)
    first = run_pair(model, small, 3, 5, cfg, out_dir=tmp_path)
    assert not any(v["reused"] for v in first.timings["stages"].values())
    x_test = small.x_test.clone()
    threes = small.y_test == 3  # the class-3 test images replaced by other class-3 images
    x_test[threes] = data.x_train[data.y_train == 3][-int(threes.sum()) :]
    changed = run_pair(model, dataclasses.replace(small, x_test=x_test), 3, 5, cfg, out_dir=tmp_path)
    assert not any(v["reused"] for v in changed.timings["stages"].values())
    same = run_pair(model, dataclasses.replace(small, x_test=x_test), 3, 5, cfg, out_dir=tmp_path)
    assert all(v["reused"] for v in same.timings["stages"].values())


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "deepdig_fast", *args], capture_output=True, text=True, timeout=600)


def test_users_file_model_in_the_default_training_mode_and_an_edited_forward(tmp_path):
    """`--model file.py:make` whose class is defined in file.py trains in the default mode (worker
    processes on a CPU with >= 2 threads); the same folder rerun after forward's activation was
    edited (same weights: ReLU to leaky ReLU) recomputes every stage."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    model_file = inputs / "mymodel.py"
    model_file.write_text(_NET.replace("ACT", "relu"))
    net = import_user_file(model_file, "_test_identity_net").make()
    data = load_mnist()
    x, y = data.x_train[:3000], data.y_train[:3000]
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        i = torch.randint(0, 3000, (128,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[i]), y[i]).backward()
        opt.step()
    torch.save(net.state_dict(), inputs / "weights.pt")
    out = tmp_path / "run"
    args = [
        "run", "--pair", "3,5", "--out", str(out), "--device", "cpu", "--steps", "40", "--quiet",
        "--model", f"{model_file}:make", "--weights", str(inputs / "weights.pt"), "--embedding-layer", "embedding",
        "--no-characterize", "--no-report", "--no-baselines",
    ]  # fmt: skip
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    if torch.get_num_threads() >= 2:
        assert manifest["joint_training"] == "processes"
    timings = json.loads((out / "timings.json").read_text())
    assert timings["stages"] and not any(v["reused"] for v in timings["stages"].values())
    model_file.write_text(_NET.replace("ACT", "nn.functional.leaky_relu"))  # close enough to keep its accuracy
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    again = json.loads((out / "manifest.json").read_text())
    assert again["classifier"]["sha256"] == manifest["classifier"]["sha256"]
    assert again["classifier"]["structure"] != manifest["classifier"]["structure"]
    timings = json.loads((out / "timings.json").read_text())
    assert not any(v["reused"] for v in timings["stages"].values())
