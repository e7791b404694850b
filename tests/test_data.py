"""Data loading: shipped MNIST, IDX parsing and its failure modes, CIFAR-10 pickles, tensors/Datasets."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdig_fast import data as D
from deepdig_fast.io import ChecksumError

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---------------------------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as IDX (big-endian magic 0x0000 08 ndim, sizes, bytes)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | a.ndim
    return struct.pack(">i", magic) + struct.pack(f">{a.ndim}i", *a.shape) + a.tobytes()


def write_idx_set(root: Path, n_train: int = 12, n_test: int = 6, gz: bool = True, sums: bool = False) -> Path:
    """A tiny synthetic MNIST-format folder (labels 0..2, 28×28 images)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    content = {
        "train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_train, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(n_train) % 3),
        "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (n_test, 28, 28))),
        "t10k-labels-idx1-ubyte": idx_bytes(np.arange(n_test) % 3),
    }
    lines = []
    for name, raw in content.items():
        fname, blob = (name + ".gz", gzip.compress(raw)) if gz else (name, raw)
        (root / fname).write_bytes(blob)
        lines.append(f"{hashlib.sha256(blob).hexdigest()}  {fname}\n")
    if sums:
        (root / "SHA256SUMS").write_text("".join(lines))
    return root


# ---------------------------------------------------------------------------------------------- MNIST


def test_shipped_mnist_shapes_and_counts():
    d = D.load_mnist()
    assert d.name == "mnist"
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert d.num_classes == 10 and d.sample_shape == (1, 28, 28)
    assert d.classes == [str(i) for i in range(10)]
    assert d.class_counts("train") == MNIST_TRAIN_COUNTS
    assert d.class_counts("test") == MNIST_TEST_COUNTS
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0


def test_shipped_mnist_is_cached_but_containers_are_fresh():
    a, b = D.load_mnist(), D.load_mnist()
    assert a is not b
    assert a.x_train is b.x_train  # decoded once per process


def test_mnist_helpers():
    d = D.load_mnist()
    small = d.take(100, 50)
    assert small.x_train.shape[0] == 100 and small.y_test.shape[0] == 50
    assert torch.equal(small.y_train, d.y_train[:100])
    x3 = small.class_inputs(3)
    assert x3.shape[1:] == (1, 28, 28) and x3.shape[0] == int((small.y_train == 3).sum())
    assert torch.equal(small.class_inputs("3", split="test"), small.x_test[small.y_test == 3])
    sub = d.subset(classes=[1, 7], per_class=20, seed=1)
    assert sub.class_counts("train") == [0, 20, 0, 0, 0, 0, 0, 20, 0, 0]
    assert sub.class_counts("test") == [0, 20, 0, 0, 0, 0, 0, 20, 0, 0]
    assert torch.equal(sub.x_train, d.subset(classes=[7, 1], per_class=20, seed=1).x_train)
    with pytest.raises(ValueError, match="split"):
        d.class_inputs(0, split="val")
    with pytest.raises(ValueError, match=r"class label must be in \[0, 10\)"):
        d.class_inputs(10)
    with pytest.raises(ValueError, match="n_train"):
        d.take(-1)
    assert "ClassificationData(name='mnist'" in repr(d)


def test_mnist_checksum_mismatch_names_file(tmp_path):
    root = tmp_path / "mnist"
    shutil.copytree(D.SHIPPED_MNIST_ROOT, root)
    target = root / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10  # a valid file with one label changed
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        D.load_mnist(root)


def test_shipped_mnist_requires_sha256sums(tmp_path, monkeypatch):
    root = tmp_path / "mnist"
    root.mkdir()
    for f in D.SHIPPED_MNIST_ROOT.glob("*.gz"):
        os.symlink(f, root / f.name)
    monkeypatch.setattr(D.mnist, "SHIPPED_MNIST_ROOT", root)
    with pytest.raises(FileNotFoundError, match="SHA256SUMS"):
        D.load_mnist()


def test_shipped_mnist_missing_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(D.mnist, "SHIPPED_MNIST_ROOT", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"nowhere.*pass root="):
        D.load_mnist()


# ---------------------------------------------------------------------------------------------- IDX


def test_idx_roundtrip_gzip_and_raw(tmp_path):
    for gz in (True, False):
        root = write_idx_set(tmp_path / f"set{gz}", gz=gz, sums=True)
        d = D.load_idx_dataset(root, "tiny", require_checksums=True)
        assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
        assert d.classes == ["0", "1", "2"]
        assert d.y_train.tolist() == [i % 3 for i in range(12)]
        assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0


def test_idx_checksum_mismatch(tmp_path):
    root = write_idx_set(tmp_path / "s", sums=True)
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(12))))
    with pytest.raises(ChecksumError, match="train-labels-idx1-ubyte.gz"):
        D.load_idx_dataset(root, "tiny")


def test_idx_required_checksums_missing(tmp_path):
    root = write_idx_set(tmp_path / "s", sums=False)
    D.load_idx_dataset(root, "tiny")  # fine without the requirement
    with pytest.raises(FileNotFoundError, match="SHA256SUMS"):
        D.load_idx_dataset(root, "tiny", require_checksums=True)


def test_idx_wrong_magic(tmp_path):
    root = write_idx_set(tmp_path / "s")
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((6, 28, 28)))))
    with pytest.raises(ValueError, match=r"t10k-labels.*wrong IDX magic number 2051, expected 2049"):
        D.load_idx_dataset(root, "tiny")


def test_idx_truncated(tmp_path):
    root = write_idx_set(tmp_path / "s")
    raw = idx_bytes(np.zeros((12, 28, 28)))[:-5]
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(ValueError, match=r"train-images.*truncated IDX data"):
        D.load_idx_dataset(root, "tiny")
    # a cut gzip stream is reported as corrupt/truncated too
    blob = gzip.compress(idx_bytes(np.zeros((12, 28, 28))))
    (root / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="truncated"):
        D.load_idx_dataset(root, "tiny")


def test_idx_missing_file(tmp_path):
    root = write_idx_set(tmp_path / "s")
    (root / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        D.load_idx_dataset(root, "tiny")
    with pytest.raises(FileNotFoundError, match="root"):
        D.load_idx_dataset(tmp_path / "absent", "tiny")


def test_idx_count_mismatch(tmp_path):
    root = write_idx_set(tmp_path / "s")
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(11))))
    with pytest.raises(ValueError, match="12 images but .* 11 labels"):
        D.load_idx_dataset(root, "tiny")


def test_fashion_mnist_class_names(tmp_path):
    root = write_idx_set(tmp_path / "fashion")
    d = D.load_fashion_mnist(root)
    assert d.name == "fashion_mnist" and d.classes[0] == "T-shirt/top" and d.classes[9] == "Ankle boot"


# ---------------------------------------------------------------------------------------------- CIFAR-10


def write_cifar(root: Path, n: int = 4, protocol: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batch = {
            b"batch_label": f"batch {i}".encode(),
            b"labels": [(i + j) % 10 for j in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [b"x.png"] * n,
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [c.encode() for c in D.CIFAR10_CLASSES], b"num_cases_per_batch": n, b"num_vis": 3072}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return root


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_synthetic(tmp_path, protocol):
    root = write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    d = D.load_cifar10(tmp_path)  # the parent folder is accepted too
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.classes == D.CIFAR10_CLASSES
    raw = pickle.loads((root / "data_batch_1").read_bytes())[b"data"]
    # CIFAR rows are channel-major: 1024 red, 1024 green, 1024 blue values, each 32×32 row-major
    assert float(d.x_train[0, 1, 2, 3]) == pytest.approx(raw[0, 1024 + 2 * 32 + 3] / 255.0)
    assert d.y_train[:4].tolist() == [0, 1, 2, 3] and d.y_test.tolist() == [5, 6, 7, 8]


def test_cifar10_restricted_unpickler_refuses_code(tmp_path):
    root = write_cifar(tmp_path / "c")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > /dev/null",))

    (root / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        D.load_cifar10(root)


def test_cifar10_missing_batch(tmp_path):
    root = write_cifar(tmp_path / "c")
    (root / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        D.load_cifar10(root)


# ---------------------------------------------------------------------------------------------- tensors


def test_from_tensors_validation():
    x = torch.rand(8, 1, 4, 4)
    y = torch.arange(8) % 2
    d = D.from_tensors(x, y, x[:4], y[:4])
    assert d.classes == ["0", "1"] and d.num_classes == 2 and d.sample_shape == (1, 4, 4)
    d8 = D.from_tensors((x * 255).to(torch.uint8), y.numpy(), x[:4], y[:4], classes=["a", "b", "c"])
    assert d8.x_train.dtype == torch.float32 and float(d8.x_train.max()) <= 1.0 and d8.num_classes == 3
    with pytest.raises(ValueError, match=r"x_train must have values in \[0, 1\]"):
        D.from_tensors(x * 2, y, x, y)
    with pytest.raises(ValueError, match="x_test contains NaN"):
        D.from_tensors(x, y, torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        D.from_tensors(x, y, x, y + 1, classes=["a", "b"])
    with pytest.raises(ValueError, match="labels must be in"):
        D.from_tensors(x, y - 1, x, y)
    with pytest.raises(TypeError, match="y_train must hold integer labels"):
        D.from_tensors(x, y.float(), x, y)
    with pytest.raises(ValueError, match="x_train has 8 samples but y_train has 7"):
        D.from_tensors(x, y[:7], x, y)
    with pytest.raises(ValueError, match="same sample shape"):
        D.from_tensors(x, y, torch.rand(8, 1, 5, 5), y)


def test_from_dataset():
    x = torch.rand(10, 3, 8, 8)
    y = torch.arange(10) % 5
    ds = torch.utils.data.TensorDataset(x, y)
    d = D.from_dataset(ds, ds, classes=list("abcde"))
    assert torch.equal(d.x_train, x) and torch.equal(d.y_test, y) and d.classes == list("abcde")
    with pytest.raises(ValueError, match="train_ds is empty"):
        D.from_dataset(torch.utils.data.TensorDataset(x[:0], y[:0]), ds)
