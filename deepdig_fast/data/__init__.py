"""Classification data sets as in-memory tensors: MNIST (shipped), Fashion-MNIST, CIFAR-10, image
folders, tensor files, torchvision data sets, any tensors.

Every loader returns a `ClassificationData`: float32 inputs in [0, 1] shaped [N, C, H, W] and int64
labels shaped [N], for a train and a test split, plus the class names. Nothing is downloaded unless
asked for (`load_torchvision_dataset(download=True)`): MNIST ships with the repository under
`data/mnist` (verified against its SHA256SUMS); the other data sets are read from a folder or file
the user supplies, which is only read.

The modules, each importing only those above it here:

    container         ClassificationData and as_unit (how stored uint8 pixels read as float)
    checksums         SHA256SUMS files: read_sha256sums, and checking a folder's files against one
    idx               the IDX format: read_idx, load_idx_dataset
    mnist             load_mnist (the shipped copy, SHIPPED_MNIST_ROOT), load_fashion_mnist, their cache
    tensors           from_tensors and from_dataset: the caller's tensors, arrays or torch Datasets
    cifar             load_cifar10: CIFAR-10 pickles through a restricted unpickler
    selection         the classes (only=) and samples (split, max_per_class) a file-backed loader reads
    images            what the image readers share: Pillow, image modes, size and channel arguments,
                      the memory check before decoding
    image_folder      load_image_folder: class folders of image files
    tensor_file       load_tensor_file: one .pt or .npz file of tensors
    torchvision_sets  load_torchvision_dataset: torchvision's data sets

Every name below is importable from `deepdig_fast.data` itself. A test that replaces one (with
monkeypatch) must do so on the module that uses it, e.g. `deepdig_fast.data.mnist.SHIPPED_MNIST_ROOT`.
"""

from deepdig_fast.data.checksums import read_sha256sums
from deepdig_fast.data.cifar import CIFAR10_CLASSES, load_cifar10
from deepdig_fast.data.cifar import UnreadablePickleError as UnreadablePickleError
from deepdig_fast.data.container import ClassificationData
from deepdig_fast.data.container import as_unit as as_unit
from deepdig_fast.data.idx import IDX_FILES, load_idx_dataset, read_idx
from deepdig_fast.data.idx import IDX_IMAGES_MAGIC as IDX_IMAGES_MAGIC
from deepdig_fast.data.idx import IDX_LABELS_MAGIC as IDX_LABELS_MAGIC
from deepdig_fast.data.image_folder import IMAGE_SUFFIXES, load_image_folder
from deepdig_fast.data.mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    SHIPPED_MNIST_ROOT,
    load_fashion_mnist,
    load_mnist,
)
from deepdig_fast.data.selection import ClassSelectionError
from deepdig_fast.data.selection import number_names_class as number_names_class
from deepdig_fast.data.tensor_file import load_tensor_file
from deepdig_fast.data.tensors import from_dataset, from_tensors
from deepdig_fast.data.torchvision_sets import load_torchvision_dataset
from deepdig_fast.io import ChecksumError
from deepdig_fast.io import PathLike as PathLike

# What `from deepdig_fast.data import *` gives. The names imported "as" themselves above are public
# too (importable by name) but stay out of it.
__all__ = [
    "ClassificationData",
    "ChecksumError",
    "MNIST_CLASSES",
    "FASHION_MNIST_CLASSES",
    "CIFAR10_CLASSES",
    "IDX_FILES",
    "SHIPPED_MNIST_ROOT",
    "read_idx",
    "read_sha256sums",
    "load_idx_dataset",
    "load_mnist",
    "load_fashion_mnist",
    "load_cifar10",
    "from_tensors",
    "from_dataset",
    "IMAGE_SUFFIXES",
    "ClassSelectionError",
    "load_image_folder",
    "load_tensor_file",
    "load_torchvision_dataset",
]
