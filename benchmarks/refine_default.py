"""Five refine_borderline calls on 2000 RPBS pairs of 4|9 with the MNIST CNN checkpoint, with default
arguments (`default`: the engine prepares the module) or `compile=False` (`eager`); a whole process
to time one against the other (benchmarks/RESULTS.md, "Inference").

Run: .venv/bin/python benchmarks/refine_default.py default|eager   (needs checkpoints/mnist-cnn.pt)
"""

from __future__ import annotations

import sys

import deepdig_fast as dd
from deepdig_fast.baselines import random_pairs


def main(which: str) -> None:
    if which not in ("default", "eager"):
        raise SystemExit(f"usage: refine_default.py default|eager (got {which!r})")
    model, _ = dd.load_classifier("checkpoints/mnist-cnn.pt")
    data = dd.load_mnist()
    pairs = random_pairs(model, data.x_train, data.y_train, 4, 9, seed=0, compile=False)  # the same pairs for both
    a, b = pairs.a[:2000], pairs.b[:2000]
    kw = {} if which == "default" else {"compile": False}
    for _ in range(5):
        r = dd.refine_borderline(model, a, b, 4, 9, embedding_layer="embedding", **kw)
    print(r.inference, float(r.success.double().mean()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
