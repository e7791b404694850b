"""Microseconds per image of one classifier forward (the paper's MNIST CNN, real MNIST inputs) under
each way of running it: eager, eager channels_last, inductor with freezing, TorchScript trace +
freeze + optimize_for_inference (what deepdig_fast.fast uses on a CPU), and the prepared classifier.

    python benchmarks/forward_backends.py [BATCH ...]     (default 512 4096)
Env: DEEPDIG_BENCH_THREADS (torch threads; default torch's), DEEPDIG_BENCH_INDUCTOR=0 skips inductor.
Prints best-of-3 figures (each the mean of 20 forwards) and the largest |logit - eager logit|.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def per_image_us(f, x, reps: int = 20) -> float:
    with torch.no_grad():
        f(x)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                f(x)
            best = min(best, (time.perf_counter() - t0) / reps)
    return 1e6 * best / x.shape[0]


def main() -> None:
    import deepdig_fast as dd
    from deepdig_fast.fast import prepare_classifier

    if os.environ.get("DEEPDIG_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["DEEPDIG_BENCH_THREADS"]))
    batches = [int(b) for b in sys.argv[1:]] or [512, 4096]
    model, _ = dd.load_classifier(ROOT / "checkpoints" / "mnist-cnn.pt")
    model.eval()
    data = dd.load_mnist()
    x_all = data.x_test[: max(batches)].contiguous()
    ways = {"eager": model}
    cl = __import__("copy").deepcopy(model).to(memory_format=torch.channels_last)
    ways["eager channels_last"] = lambda x: cl(x.contiguous(memory_format=torch.channels_last))
    with torch.no_grad():
        t0 = time.perf_counter()
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x_all[:8])))
        print(f"torchscript build {time.perf_counter() - t0:.2f} s")
        ways["torchscript trace+freeze+optimize_for_inference"] = traced
        if os.environ.get("DEEPDIG_BENCH_INDUCTOR", "1") == "1":
            t0 = time.perf_counter()
            comp = torch.compile(model, dynamic=True, options={"freezing": True})
            comp(x_all[: batches[0]])
            print(f"inductor (freezing, dynamic batch) compile {time.perf_counter() - t0:.1f} s")
            ways["inductor freezing"] = comp
    fast = prepare_classifier(model, data.x_train[:64], embedding_layer="embedding")
    ways[f"prepare_classifier ({fast.mode})"] = fast
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    for bs in batches:
        x = x_all[:bs]
        with torch.no_grad():
            ref = model(x)
        for name, f in ways.items():
            us = per_image_us(f, x)
            with torch.no_grad():
                diff = float((f(x) - ref).abs().max())
            print(f"batch {bs:5d}  {name:<50s} {us:7.2f} us/image   max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
