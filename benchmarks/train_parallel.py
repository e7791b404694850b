"""Two independent autoencoder trainings (the two directions' AE_I of MNIST 1|2, the paper's
settings): how to spend two cores on them. A whole-process measurement, for an A/B timer
(e.g. /usr/bin/time, or hyperfine) -- each mode is one process tree:

    python benchmarks/train_parallel.py sequential  one process, torch threads = cores, one after the other
    python benchmarks/train_parallel.py processes   two processes with one torch thread each, at once
    python benchmarks/train_parallel.py threads     two Python threads in one process, one torch thread each

Env: DEEPDIG_BENCH_TRAIN_STEPS (default 1000), DEEPDIG_BENCH_COMPILE (0/1, default 0: eager loss).
Prints the seconds of each training and of the whole. (The threads mode is a measurement only: the
trainings seed torch's global generator, which two threads share.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = ((1, 2), (2, 1))  # (source class, target class) of each AE_I


def _train(job: int) -> float:
    import deepdig_fast as dd
    from deepdig_fast.adversarial import AdversarialConfig, train_adversarial_autoencoder

    model, _ = dd.load_classifier(ROOT / "checkpoints" / "mnist-cnn.pt")
    data = dd.load_mnist()
    s, t = JOBS[job]
    steps = int(os.environ.get("DEEPDIG_BENCH_TRAIN_STEPS", 1000))
    compile_loss = os.environ.get("DEEPDIG_BENCH_COMPILE", "0") == "1"
    cfg = AdversarialConfig(steps=steps, seed=job, compile=compile_loss)
    t0 = time.perf_counter()
    train_adversarial_autoencoder(model.eval(), data.class_inputs(s, "train"), t, cfg)
    return time.perf_counter() - t0


def main(mode: str) -> None:
    import torch

    t0 = time.perf_counter()
    if mode == "sequential":
        times = [_train(0), _train(1)]
    elif mode == "processes":
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        procs = [
            subprocess.Popen([sys.executable, __file__, "one", str(j)], env=env, stdout=subprocess.PIPE, text=True)
            for j in range(2)
        ]
        times = [float(p.communicate()[0].split()[-1]) for p in procs]
    elif mode == "threads":
        torch.set_num_threads(1)
        times = [0.0, 0.0]

        def run(j):
            times[j] = _train(j)

        ths = [threading.Thread(target=run, args=(j,)) for j in range(2)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
    elif mode == "one":
        torch.set_num_threads(1)
        print(f"{_train(int(sys.argv[2])):.3f}")
        return
    else:
        raise SystemExit(f"mode must be sequential, processes or threads, got {mode!r}")
    print(f"{mode}: trainings {times[0]:.1f} s, {times[1]:.1f} s; whole {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sequential")
