"""One autoencoder training at the paper's settings (MNIST AE_I of 4 -> 9 against the shipped
MNIST CNN: MLP autoencoder, batch 128, Adam 0.01, StepLR) as a whole process, for an A/B timer
(e.g. /usr/bin/time or hyperfine) between two checkouts or two settings. Uses only API that older
versions of deepdig_fast have too, so the same file times the code before a change:

    PYTHONPATH=OLD_CHECKOUT python benchmarks/train_steps.py
    python benchmarks/train_steps.py

Env: DEEPDIG_BENCH_TRAIN_STEPS (default 1000); DEEPDIG_BENCH_LAYOUT (auto | channels_last |
contiguous; default: the version's default); DEEPDIG_BENCH_COMPILE (auto | 0 | 1; default: the
version's default); DEEPDIG_BENCH_THREADS sets torch's thread count (a joint training's
worker process runs one). Prints steps/s of the training loop and what ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import torch

    import deepdig_fast as dd
    from deepdig_fast.adversarial import AdversarialConfig, train_adversarial_autoencoder

    if os.environ.get("DEEPDIG_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["DEEPDIG_BENCH_THREADS"]))
    model, _ = dd.load_classifier(ROOT / "checkpoints" / "mnist-cnn.pt")
    data = dd.load_mnist()
    kw: dict = {"steps": int(os.environ.get("DEEPDIG_BENCH_TRAIN_STEPS", 1000))}
    layout = os.environ.get("DEEPDIG_BENCH_LAYOUT")
    if layout:
        kw["channels_last"] = {"auto": "auto", "channels_last": True, "contiguous": False}[layout]
    comp = os.environ.get("DEEPDIG_BENCH_COMPILE")
    if comp:
        kw["compile"] = {"auto": "auto", "0": False, "1": True}[comp]
    cfg = AdversarialConfig(**kw)
    t0 = time.perf_counter()
    _, hist = train_adversarial_autoencoder(model.eval(), data.class_inputs(4, "train"), 9, cfg)
    wall = time.perf_counter() - t0
    print(
        f"{cfg.steps} steps in {wall:.2f} s: {cfg.steps / wall:.1f} steps/s "
        f"(loop {hist.seconds:.2f} s; compiled {getattr(hist, 'compiled', False)}; layout {getattr(hist, 'layout', 'contiguous')}; "
        f"final loss {hist.final_loss:.6f}; {torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
