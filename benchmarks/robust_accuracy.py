"""PGD robust accuracy of MNIST checkpoints, as covariates for a sweep spec.

    .venv/bin/python benchmarks/robust_accuracy.py checkpoints/mnist-cnn.pt checkpoints/zoo/*.pt

L-inf PGD with eps 0.1, 10 steps of 0.025 and a random start drawn from seed 0 (the attack the
PGD-trained zoo model was trained against, deepdig_fast.training.pgd_attack), on the first N
(default 2000) MNIST test images; prints one `checkpoint: clean, robust` line per model.
"""

from __future__ import annotations

import argparse

import torch

from deepdig_fast.checkpoint import load_classifier
from deepdig_fast.data import load_mnist
from deepdig_fast.training import PGDConfig, pgd_attack


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("-n", type=int, default=2000)
    args = p.parse_args()
    data = load_mnist()
    x, y = data.x_test[: args.n].float(), data.y_test[: args.n].long()
    cfg = PGDConfig(eps=0.1, step_size=0.025, steps=10, random_start=True)
    for path in args.checkpoints:
        model, _ = load_classifier(path)
        model.eval()
        clean = robust = 0
        gen = torch.Generator().manual_seed(0)
        for i in range(0, len(x), 500):
            xb, yb = x[i : i + 500], y[i : i + 500]
            with torch.no_grad():
                clean += int((model(xb).argmax(1) == yb).sum())
            adv = pgd_attack(model, xb, yb, cfg, generator=gen)
            with torch.no_grad():
                robust += int((model(adv).argmax(1) == yb).sum())
        print(f"{path}: clean {clean / len(x):.4f}, robust {robust / len(x):.4f}")


if __name__ == "__main__":
    main()
