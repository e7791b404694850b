"""The recorded zoo run of benchmarks/zoo_e2e.sh: MNIST written as an image folder of colour PNGs, and
a torchvision ResNet-18 trained on two of its classes with ImageNet normalisation inside the model.

    python benchmarks/zoo_e2e.py folder OUT_DIR [--classes 3,5] [--size 64] [--train 1000] [--test 300]
    python benchmarks/zoo_e2e.py train FOLDER WEIGHTS [--epochs 2] [--model SPEC]
    python benchmarks/zoo_e2e.py vit FOLDER VIT_DIR [--epochs 4]

`folder` writes OUT_DIR/{train,test}/<class>/<i>.png (the first --train / --test images of each class,
in the order of the MNIST files, upscaled bilinear to --size and written as RGB). `train` trains
torchvision's resnet18 (random initialisation, as many outputs as the folder has classes) behind
`Preprocessed(model, imagenet)` -- the model sees normalised pixels, the method [0, 1] ones -- with
Adam (lr 1e-3, batch 64, seeded), recomputes the BatchNorm statistics over the training images, prints
the test accuracy, and saves the ResNet's own state_dict (the weights `--weights` takes) as .pt.
With `--model SPEC` (e.g. timm:convnext_atto) it trains that zoo model instead, randomly
initialised, behind the normalisation `load_model` gives it (the zoo's own), the same way.
`vit` builds a small Hugging Face ViTForImageClassification for the folder's image size (patch 4,
4 layers of width 64, an image processor with mean = std = 0.5), trains it the same way and
saves it with `save_pretrained` to VIT_DIR, which `--model hf:VIT_DIR` loads (no --weights).
Needs torchvision and Pillow (the zoo extras); timm or transformers for those models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def write_folder(out: Path, classes: list[int], size: int, n_train: int, n_test: int) -> None:
    from PIL import Image

    from deepdig_fast.data import load_mnist

    mnist = load_mnist()
    for split, x, y, n in (
        ("train", mnist.x_train, mnist.y_train, n_train),
        ("test", mnist.x_test, mnist.y_test, n_test),
    ):
        for c in classes:
            images = x[y == c][:n]
            # bilinear upscaling of the [0, 1] images, then 8-bit RGB (three equal channels)
            big = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
            pixels = (big.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
            folder = out / split / str(c)
            folder.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(pixels):
                Image.fromarray(np.stack([img] * 3, axis=-1), "RGB").save(folder / f"{i:05d}.png")
    print(f"wrote {out}: classes {classes}, {n_train} train + {n_test} test images each, {size} px RGB")


def train(folder: Path, weights: Path, epochs: int, spec: str | None = None) -> None:
    from deepdig_fast.data import load_image_folder
    from deepdig_fast.zoo import NORMALIZATIONS, Preprocessed, load_model

    data = load_image_folder(folder)
    if spec is None:  # the recorded run's ResNet-18, ImageNet normalisation
        model, _ = load_model("torchvision:resnet18", pretrained=False, num_classes=data.num_classes)
        net = model.model if isinstance(model, Preprocessed) else model
        wrapped = Preprocessed(net, NORMALIZATIONS["imagenet"])
    else:  # the zoo model behind its own normalisation
        torch.manual_seed(0)
        wrapped, info = load_model(spec, pretrained=False, num_classes=data.num_classes, in_shape=data.sample_shape)
        net = wrapped.model if isinstance(wrapped, Preprocessed) else wrapped
        print(f"{spec}: preprocessing {info['preprocessing']}")
    fit(wrapped, net, data, epochs)
    weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), weights)
    print(f"saved {weights}")


def vit(folder: Path, out: Path, epochs: int) -> None:
    import json

    from transformers import ViTConfig, ViTForImageClassification

    from deepdig_fast.data import load_image_folder
    from deepdig_fast.zoo import Preprocessed

    data = load_image_folder(folder)
    c, h, _ = data.sample_shape
    labels = [str(n) for n in data.classes]
    cfg = ViTConfig(
        image_size=h,
        patch_size=4,
        num_channels=c,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        num_labels=data.num_classes,
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
    )
    torch.manual_seed(0)
    hf = ViTForImageClassification(cfg)

    class Logits(nn.Module):  # the HF output's logits, as deepdig_fast's adapter gives them
        def __init__(self, m: nn.Module) -> None:
            super().__init__()
            self.m = m

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(pixel_values=x).logits

    fit(Preprocessed(Logits(hf), 0.5, 0.5), hf, data, epochs)
    hf.save_pretrained(out)
    processor = {
        "image_processor_type": "ViTImageProcessor",
        "do_normalize": True,
        "image_mean": [0.5] * c,
        "image_std": [0.5] * c,
        "do_resize": True,
        "size": {"height": h, "width": h},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
    }
    (out / "preprocessor_config.json").write_text(json.dumps(processor))
    print(f"saved {out}")


def fit(wrapped: nn.Module, net: nn.Module, data, epochs: int) -> None:
    """Train `wrapped` (net behind its preprocessing) with Adam 1e-3, batch 64, seeded; recompute
    BatchNorm statistics; print the test accuracy."""
    from deepdig_fast.data import as_unit

    torch.manual_seed(0)
    opt = torch.optim.Adam(wrapped.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    n = data.x_train.shape[0]
    for epoch in range(epochs):
        wrapped.train()
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, 64):
            idx = order[i : i + 64]
            loss = F.cross_entropy(wrapped(as_unit(data.x_train[idx])), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}", flush=True)
    # BatchNorm's running statistics: one cumulative pass over the training images in eval order
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        for chunk in as_unit(data.x_train).split(128):
            wrapped(chunk)
    wrapped.eval()
    with torch.no_grad():
        pred = torch.cat([wrapped(c).argmax(1) for c in as_unit(data.x_test).split(256)])
        probe = net(as_unit(data.x_test[:1]))
        bare = None
        if isinstance(probe, torch.Tensor):
            bare = torch.cat([net(c).argmax(1) for c in as_unit(data.x_test).split(256)])
    acc = float((pred == data.y_test).float().mean())
    print(f"test accuracy {acc:.4f} with the normalisation inside the model")
    if bare is not None:
        print(f"test accuracy {float((bare == data.y_test).float().mean()):.4f} when fed [0, 1] pixels unnormalised")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("folder")
    q.add_argument("out", type=Path)
    q.add_argument("--classes", default="3,5")
    q.add_argument("--size", type=int, default=64)
    q.add_argument("--train", type=int, default=1000)
    q.add_argument("--test", type=int, default=300)
    q = sub.add_parser("train")
    q.add_argument("folder", type=Path)
    q.add_argument("weights", type=Path)
    q.add_argument("--epochs", type=int, default=2)
    q.add_argument("--model", default=None, help="a zoo spec (default: the recorded torchvision:resnet18)")
    q = sub.add_parser("vit")
    q.add_argument("folder", type=Path)
    q.add_argument("out", type=Path)
    q.add_argument("--epochs", type=int, default=4)
    a = p.parse_args(argv)
    if a.cmd == "folder":
        write_folder(a.out, [int(c) for c in a.classes.split(",")], a.size, a.train, a.test)
    elif a.cmd == "vit":
        vit(a.folder, a.out, a.epochs)
    else:
        train(a.folder, a.weights, a.epochs, a.model)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
