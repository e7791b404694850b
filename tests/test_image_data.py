"""Image folders, tensor files and torchvision data sets as ClassificationData; the convolutional
autoencoder family at any resolution; `deepdig train/run --dataset imagefolder` end to end.

Image folders are written here with Pillow from MNIST digits (nothing is downloaded)."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdig_fast import data as D
from deepdig_fast.adversarial import (
    AdversarialConfig,
    ConvAutoencoder,
    MLPAutoencoder,
    autoencoder_from_spec,
    autoencoder_key,
    conv_plan,
    default_autoencoder,
    train_adversarial_autoencoder,
)
from deepdig_fast.data import as_unit

Image = pytest.importorskip("PIL.Image")


def _torchvision_imports() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


HAVE_TORCHVISION = _torchvision_imports()


# ---------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _digits() -> dict[int, np.ndarray]:
    """The first 20 MNIST training digits of classes 0-2 as uint8 [20, 28, 28]."""
    m = D.load_mnist()
    return {c: (m.class_inputs(c)[:20, 0] * 255).round().to(torch.uint8).numpy() for c in range(3)}


def _colour(a: np.ndarray) -> np.ndarray:
    return np.stack([a, a // 2, 255 - a], axis=-1)


def _save(img: np.ndarray, path: Path, size: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(img)
    if size is not None and size != img.shape[0]:
        im = im.resize((size, size), Image.BILINEAR)
    im.save(path)


def write_folder(
    root: Path, *, n: int = 8, channels: int = 1, size: int = 28, presplit: bool = False, classes=(0, 1, 2)
) -> Path:
    """root/<digit>/<i>.png (or root/train|test/<digit>/<i>.png: n train and 2 test images)."""
    for c in classes:
        imgs = _digits()[c]
        for i in range(n + (2 if presplit else 0)):
            img = imgs[i] if channels == 1 else _colour(imgs[i])
            where = root / ("test" if i >= n else "train") / str(c) if presplit else root / str(c)
            _save(img, where / f"{i:03d}.png", size)
    return root


# ---------------------------------------------------------------------------------------------- image folders


def test_grey_folder_decodes_exactly_with_a_seeded_split(tmp_path):
    root = write_folder(tmp_path / "digits", n=8)
    d = D.load_image_folder(root)
    assert d.name == "imagefolder:digits" and d.classes == ["0", "1", "2"]
    # kept as the decoded bytes (a quarter of float32's memory); read as float in [0, 1]
    assert d.x_train.dtype == torch.uint8 and d.dtype == torch.float32 and d.sample_shape == (1, 28, 28)
    # 8 per class, 20% -> round(1.6) = 2 test images each
    assert d.class_counts("train") == [6, 6, 6] and d.class_counts("test") == [2, 2, 2]
    for split in ("train", "test"):
        x, y = d.inputs(split)
        for img, label in zip(x, y.tolist()):  # PNG is lossless: every input is one of its class's digits
            src = torch.from_numpy(_digits()[label][:8]).float() / 255
            assert (src - img[0]).abs().flatten(1).amax(1).min() == 0
    # the same seed gives the same split, another seed another one
    again, other = D.load_image_folder(root), D.load_image_folder(root, seed=1)
    assert torch.equal(again.x_test, d.x_test) and not torch.equal(other.x_test, d.x_test)


def test_colour_folder_with_train_test_subfolders_and_channel_conversion(tmp_path):
    root = write_folder(tmp_path / "rgb", n=5, channels=3, size=64, presplit=True)
    d = D.load_image_folder(root)
    assert (
        d.sample_shape == (3, 64, 64) and d.class_counts("train") == [5, 5, 5] and d.class_counts("test") == [2, 2, 2]
    )
    grey = D.load_image_folder(root, channels=1)
    assert grey.sample_shape == (1, 64, 64)
    luma = (as_unit(d.x_train) * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert (luma - as_unit(grey.x_train)).abs().max() <= 1.5 / 255  # Pillow's L conversion rounds
    g28 = write_folder(tmp_path / "grey", n=3)
    assert D.load_image_folder(g28, channels=3).sample_shape == (3, 28, 28)


def test_image_size_resizes_and_mixed_sizes_need_it(tmp_path):
    root = tmp_path / "mixed"
    _save(_digits()[0][0], root / "a" / "0.png")
    _save(_digits()[1][0], root / "b" / "0.png", size=32)
    with pytest.raises(ValueError, match=r"different sizes .*28x28.*32x32.*--image-size"):
        D.load_image_folder(root)
    assert D.load_image_folder(root, image_size=32, test_fraction=0).sample_shape == (1, 32, 32)
    assert D.load_image_folder(root, image_size=(20, 24), test_fraction=0).sample_shape == (1, 20, 24)
    with pytest.raises(ValueError, match="image_size"):
        D.load_image_folder(root, image_size=0)
    with pytest.raises(ValueError, match="channels must be one of 1, 3"):
        D.load_image_folder(root, channels=2)


def test_corrupt_truncated_and_stray_files_are_errors_hidden_files_skipped(tmp_path):
    root = write_folder(tmp_path / "d", n=3)
    (root / "README.md").write_text("files beside the class folders are ignored")
    (root / "0" / ".DS_Store").write_bytes(b"\0\1")
    (root / ".cache").mkdir()
    d = D.load_image_folder(root)
    assert d.x_train.shape[0] + d.x_test.shape[0] == 9
    (root / "1" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt is not an image file"):
        D.load_image_folder(root)
    (root / "1" / "notes.txt").unlink()
    (root / "2" / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"bad\.png cannot be read as an image"):
        D.load_image_folder(root)
    good = (root / "2" / "000.png").read_bytes()
    (root / "2" / "bad.png").write_bytes(good[: len(good) // 2])  # valid header, data cut off
    with pytest.raises(ValueError, match=r"bad\.png cannot be decoded"):
        D.load_image_folder(root)


def test_empty_and_half_split_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        D.load_image_folder(tmp_path / "empty")
    (tmp_path / "noimg" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"cat holds no images"):
        D.load_image_folder(tmp_path / "noimg")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.load_image_folder(tmp_path / "missing")
    half = write_folder(tmp_path / "half", n=2)
    (half / "train").mkdir()
    with pytest.raises(ValueError, match="'train' folder but no 'test' folder"):
        D.load_image_folder(half)


def test_only_reads_some_classes_and_keeps_labels(tmp_path):
    root = write_folder(tmp_path / "d", n=6)
    full = D.load_image_folder(root)
    part = D.load_image_folder(root, only=[2, "0"])
    assert part.classes == full.classes and part.class_counts("train") == [5, 0, 5]
    for c in (0, 2):  # a class's split does not depend on which other classes are read
        assert torch.equal(part.class_inputs(c), full.class_inputs(c))
        assert torch.equal(part.class_inputs(c, "test"), full.class_inputs(c, "test"))
    ordered = D.load_image_folder(root, classes=["2", "0"])
    assert ordered.classes == ["2", "0"] and torch.equal(ordered.class_inputs(0), full.class_inputs(2))
    with pytest.raises(D.ClassSelectionError, match="out of range"):
        D.load_image_folder(root, only=[3])
    with pytest.raises(D.ClassSelectionError, match="no folder for"):
        D.load_image_folder(root, classes=["0", "7"])
    # folders named by numbers other than their labels: a number means the folder of that name
    named = D.load_image_folder(root, classes=["2", "1"], only=[2])
    assert named.class_counts("train") == [5, 0] and torch.equal(named.class_inputs(0), full.class_inputs(2))
    assert D.number_names_class(2, ["2", "1"]) and not D.number_names_class(1, ["0", "1"])
    capped = D.load_image_folder(root, max_per_class=2)
    assert capped.class_counts("train") == [2, 2, 2] and capped.class_counts("test") == [1, 1, 1]


def test_memory_guard_refuses_before_decoding(tmp_path):
    root = write_folder(tmp_path / "d", n=2)
    with pytest.raises(MemoryError, match=r"6 inputs of shape \[1, 28, 28\] need .* \(uint8 plus .*max_per_class"):
        D.load_image_folder(root, max_bytes=9_000)
    d = D.load_image_folder(root, max_bytes=6 * 784 * 2)  # exactly the need (uint8 + the decode buffer): allowed
    assert d.class_counts("train") == [1, 1, 1] and d.class_counts("test") == [1, 1, 1]


# ---------------------------------------------------------------------------------------------- tensor files


def test_pt_uint8_without_test_split_is_split_per_class(tmp_path):
    x = torch.from_numpy(np.concatenate([_digits()[c][:10] for c in range(3)]))[:, None]  # uint8 [30, 1, 28, 28]
    y = torch.arange(3).repeat_interleave(10)
    torch.save({"x": x, "y": y}, tmp_path / "t.pt")
    d = D.load_tensor_file(tmp_path / "t.pt")
    assert d.name == "tensors:t" and d.classes == ["0", "1", "2"]
    assert d.class_counts("train") == [8, 8, 8] and d.class_counts("test") == [2, 2, 2]
    assert d.x_train.dtype == torch.uint8 and d.dtype == torch.float32  # uint8 pixels stay uint8
    both = as_unit(torch.cat([d.x_train, d.x_test]))
    assert float(both.max()) <= 1.0
    assert both.shape[0] == 30 and torch.equal(
        torch.sort(both.flatten(1).sum(1)).values, torch.sort((x.float() / 255).flatten(1).sum(1)).values
    )
    only = D.load_tensor_file(tmp_path / "t.pt", only=[1])
    assert only.classes == ["0", "1", "2"] and only.class_counts("train") == [0, 8, 0]
    assert torch.equal(only.class_inputs(1), d.class_inputs(1))


def test_npz_float_with_test_split_classes_and_hw_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "f.npz",
        x=rng.random((6, 8, 8), dtype=np.float32),
        y=np.array([0, 1, 0, 1, 0, 1]),
        x_test=rng.random((2, 8, 8), dtype=np.float32),
        y_test=np.array([1, 0]),
        classes=np.array(["cat", "dog"]),
    )
    d = D.load_tensor_file(tmp_path / "f.npz")
    assert d.classes == ["cat", "dog"] and d.x_train.shape == (6, 1, 8, 8) and d.x_test.shape == (2, 1, 8, 8)
    assert d.y_test.tolist() == [1, 0]


def test_tensor_file_errors(tmp_path):
    torch.save({"x": torch.rand(4, 1, 4, 4)}, tmp_path / "noy.pt")
    with pytest.raises(ValueError, match=r"missing \['y'\]"):
        D.load_tensor_file(tmp_path / "noy.pt")
    torch.save(
        {"x": torch.rand(4, 4), "y": torch.zeros(4, dtype=torch.long), "x_test": torch.rand(1, 4)}, tmp_path / "half.pt"
    )
    with pytest.raises(ValueError, match="only one of 'x_test' and 'y_test'"):
        D.load_tensor_file(tmp_path / "half.pt")
    torch.save({"x": torch.rand(4, 4) * 2, "y": torch.zeros(4, dtype=torch.long)}, tmp_path / "range.pt")
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        D.load_tensor_file(tmp_path / "range.pt")
    torch.save({"x": torch.rand(4, 4), "y": torch.zeros(4, dtype=torch.long), "meta": Path("x")}, tmp_path / "obj.pt")
    with pytest.raises(ValueError, match="weights_only"):
        D.load_tensor_file(tmp_path / "obj.pt")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match=r"expected a \.pt .* or \.npz"):
        D.load_tensor_file(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError):
        D.load_tensor_file(tmp_path / "none.pt")


# ---------------------------------------------------------------------------------------------- torchvision


@pytest.mark.skipif(HAVE_TORCHVISION, reason="torchvision imports here; the missing-torchvision error cannot happen")
def test_torchvision_missing_is_a_clear_error(tmp_path):
    with pytest.raises(ImportError, match="torchvision data sets need torchvision"):
        D.load_torchvision_dataset("CIFAR10", tmp_path)


def _write_raw_mnist(raw: Path, n_train: int = 30, n_test: int = 9) -> None:
    """torchvision's MNIST layout (ROOT/MNIST/raw, uncompressed IDX files) from the shipped digits."""
    raw.mkdir(parents=True)
    m = D.load_mnist()

    def idx(a: np.ndarray) -> bytes:
        return struct.pack(">i", 0x0800 | a.ndim) + struct.pack(f">{a.ndim}i", *a.shape) + a.astype(np.uint8).tobytes()

    for prefix, x, y in (
        ("train", m.x_train[:n_train], m.y_train[:n_train]),
        ("t10k", m.x_test[:n_test], m.y_test[:n_test]),
    ):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx((x[:, 0] * 255).round().numpy()))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(y.numpy()))


@pytest.mark.skipif(not HAVE_TORCHVISION, reason="needs torchvision (the venv with torch 2.14.1 has it)")
def test_torchvision_mnist_from_local_files(tmp_path):
    _write_raw_mnist(tmp_path / "MNIST" / "raw")
    d = D.load_torchvision_dataset("mnist", tmp_path)
    m = D.load_mnist()
    assert d.name == "torchvision:MNIST" and d.x_train.shape == (30, 1, 28, 28) and d.x_test.shape == (9, 1, 28, 28)
    assert d.x_train.dtype == torch.uint8  # kept as the data set's bytes
    assert torch.equal(as_unit(d.x_train), m.x_train[:30]) and torch.equal(d.y_test, m.y_test[:9])
    rgb = D.load_torchvision_dataset("MNIST", tmp_path, image_size=32, channels=3, only=[1, 7])
    assert rgb.sample_shape == (3, 32, 32) and set(rgb.y_train.tolist()) <= {1, 7} and rgb.num_classes == 10
    with pytest.raises(FileNotFoundError, match="download"):
        D.load_torchvision_dataset("FashionMNIST", tmp_path)
    with pytest.raises(ValueError, match="no data set 'NoSuchSet'"):
        D.load_torchvision_dataset("NoSuchSet", tmp_path)


# ---------------------------------------------------------------------------------------------- autoencoders


@pytest.mark.parametrize("size", [28, 32, 64, 96, 224])
@pytest.mark.parametrize("channels", [1, 3])
def test_conv_family_shapes_and_bottleneck(size, channels):
    shape = (channels, size, size)
    ae = ConvAutoencoder.for_shape(shape)
    x = torch.rand(2, *shape)
    with torch.no_grad():
        y, code = ae(x), ae.encode(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert tuple(code.shape[1:]) == ae.code_shape and 7 <= min(ae.code_shape[1:]) < 14
    assert math.prod(shape) / ae.code_size >= 6 - 1e-9  # a real bottleneck at every size
    assert len(ae.channels) == {28: 2, 32: 2, 64: 3, 96: 3, 224: 5}[size]


def test_conv_family_ratio_grows_with_resolution_and_keeps_cifar_layout():
    assert ConvAutoencoder.for_shape((3, 224, 224)).code_shape == (64, 7, 7)  # 150528 / 3136 = 48x
    legacy, new = ConvAutoencoder(), ConvAutoencoder.for_shape((3, 32, 32))
    assert conv_plan((3, 32, 32)) == {"channels": [32, 64], "code_channels": 8, "pad": False}
    assert {k: v.shape for k, v in legacy.state_dict().items()} == {k: v.shape for k, v in new.state_dict().items()}


@pytest.mark.parametrize("shape", [(3, 30, 30), (1, 33, 45), (3, 225, 300), (3, 16, 16)])
def test_conv_family_pads_sizes_not_divisible(shape):
    ae = ConvAutoencoder.for_shape(shape)
    x = torch.rand(2, *shape)
    assert ae(x).shape == x.shape
    factor = 2 ** len(ae.channels)
    assert ae.pad == bool(shape[1] % factor or shape[2] % factor)
    with pytest.raises(ValueError, match="divisible.*pad=True"):
        ConvAutoencoder((3, 30, 30))


def test_default_choice_and_stage_keys():
    assert isinstance(default_autoencoder((1, 28, 28)), MLPAutoencoder)
    assert isinstance(default_autoencoder((784,)), MLPAutoencoder)
    assert isinstance(default_autoencoder((3, 32, 32)), ConvAutoencoder)
    assert isinstance(default_autoencoder((1, 64, 64)), ConvAutoencoder)
    assert isinstance(default_autoencoder((3, 30, 30)), ConvAutoencoder)
    # the key names the architecture the default builds for the shape
    assert autoencoder_key(None, (1, 28, 28)) == autoencoder_key(None, (784,)).replace("[784]", "[1, 28, 28]")
    assert autoencoder_key(None, (1, 28, 28)).startswith("default mlp")
    assert autoencoder_key(None, (3, 32, 32)).startswith("default conv")
    assert autoencoder_key(None, (3, 64, 64)).startswith("default conv")
    assert autoencoder_key(None, (3, 30, 30)) != autoencoder_key(None, (3, 31, 31))


def test_autoencoder_from_spec(tmp_path):
    assert autoencoder_from_spec("auto", (3, 32, 32)) is None
    conv, mlp = autoencoder_from_spec("conv", (3, 32, 32)), autoencoder_from_spec("mlp", (3, 32, 32))
    assert isinstance(conv(), ConvAutoencoder) and isinstance(mlp(), MLPAutoencoder)
    assert conv.__qualname__ != mlp.__qualname__ and conv.__qualname__.startswith("conv")
    assert autoencoder_from_spec("conv", (3, 32, 32)).__qualname__ == conv.__qualname__  # stable across calls
    with pytest.raises(ValueError, match="needs image inputs"):
        autoencoder_from_spec("conv", (784,))
    with pytest.raises(ValueError, match="auto, mlp, conv or module:factory"):
        autoencoder_from_spec("resnet", (3, 32, 32))
    f = tmp_path / "my_ae.py"
    f.write_text(
        "import torch\n"
        "def good(shape):\n    return torch.nn.Sequential(torch.nn.Conv2d(shape[0], shape[0], 1), torch.nn.Sigmoid())\n"
        "def bad(shape):\n    return torch.nn.Flatten()\n"
    )
    user = autoencoder_from_spec(f"{f}:good", (3, 8, 8))
    assert user.__qualname__ == f"{f}:good" and user()(torch.rand(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="must map inputs shaped"):
        autoencoder_from_spec(f"{f}:bad", (3, 8, 8))
    with pytest.raises(ValueError, match="no attribute"):
        autoencoder_from_spec(f"{f}:nope", (3, 8, 8))


def test_padded_conv_autoencoder_learns_to_reconstruct():
    """alpha = 0: pure reconstruction; the BCE must fall from ln 2 (outputs 0.5) on smooth 3x30x30
    images (padded to 32 inside the autoencoder)."""
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(
        torch.rand(32, 3, 4, 4, generator=g), size=(30, 30), mode="bilinear", align_corners=False
    )
    classifier = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 30 * 30, 2))
    cfg = AdversarialConfig(alpha=0.0, lr=0.005, steps=40, batch_size=8, log_every=10)
    ae, hist = train_adversarial_autoencoder(
        classifier, x, 1, cfg, autoencoder=lambda: ConvAutoencoder.for_shape((3, 30, 30))
    )
    assert ae.pad and hist.loss[-1] < hist.loss[0] - 0.015  # 0.693 -> 0.662 here


# ---------------------------------------------------------------------------------------------- CLI end to end


def test_cli_errors_before_any_work(tmp_path, capsys):
    from deepdig_fast.cli import main

    folder = write_folder(tmp_path / "d", n=2)
    out = str(tmp_path / "out")
    cases = [
        (
            [
                "run",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--pair",
                "0,1",
                "--out",
                out,
                "--download",
            ],
            "--download only applies to --dataset torchvision:NAME",
        ),
        (
            ["run", "--dataset", "mnist", "--image-size", "32", "--pair", "0,1", "--out", out],
            "--image-size and --channels apply to",
        ),
        (["run", "--dataset", "imagefolder", "--pair", "0,1", "--out", out], "needs --data-root"),
        (
            [
                "run",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--classifier",
                str(tmp_path / "ck"),
                "--pair",
                "0,5",
                "--out",
                out,
            ],
            "--pair: class 5 is out of range",
        ),
        (
            [
                "run",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--pair",
                "0,1",
                "--out",
                out,
                "--autoencoder",
                "nope:make",
            ],
            "--autoencoder nope:make",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    for bad in (["--dataset", "images"], ["--image-size", "0"], ["--autoencoder", "big"]):
        with pytest.raises(SystemExit):
            main(["run", *bad, "--pair", "0,1", "--out", out])
        assert "error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:.*collapsed:RuntimeWarning")  # 5 training steps
def test_cli_train_and_run_on_a_colour_folder(tmp_path, monkeypatch):
    from deepdig_fast.cli import main

    monkeypatch.chdir(tmp_path)
    folder = write_folder(tmp_path / "colour", n=12, channels=3, size=32, classes=(0, 1))
    ck = tmp_path / "ck" / "col"
    assert (
        main(
            [
                "train",
                "--dataset",
                "imagefolder",
                "--data-root",
                str(folder),
                "--epochs",
                "2",
                "--quiet",
                "--device",
                "cpu",
                "--out",
                str(ck),
            ]
        )
        == 0
    )
    assert json.loads(ck.with_suffix(".json").read_text())["in_shape"] == [3, 32, 32]
    out = tmp_path / "run"
    base = [
        "run",
        "--dataset",
        "imagefolder",
        "--data-root",
        str(folder),
        "--classifier",
        str(ck),
        "--pair",
        "0,1",
        "--steps",
        "5",
        "--max-steps",
        "12",
        "--no-characterize",
        "--no-report",
        "--quiet",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]

    def stages():
        timings = json.loads((out / "timings.json").read_text())["stages"]
        return {k: v["reused"] for k, v in timings.items() if k.startswith("components/")}

    assert main([*base, "--autoencoder", "mlp"]) == 0
    assert (out / "results.json").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "imagefolder" and manifest["autoencoder"] == "mlp"
    assert (
        manifest["data_source"]["sample_shape"] == [3, 32, 32]
        and manifest["data_source"]["name"] == "imagefolder:colour"
    )
    assert stages() and not any(stages().values())
    assert main([*base, "--autoencoder", "mlp"]) == 0  # the same command resumes: components reused
    assert all(stages().values())
    assert main([*base, "--autoencoder", "conv"]) == 0  # another autoencoder recomputes them
    assert stages() and not any(stages().values())
    state = torch.load(out / "components" / "ae1_0-1.pt", weights_only=True)["state_dict"]
    assert any(v.dim() == 4 for v in state.values())  # conv weights: the conv autoencoder ran
