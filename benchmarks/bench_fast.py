"""Eager against prepared (deepdig_fast.fast) forwards and eager against compiled autoencoder
training, side by side in one process on the paper's MNIST CNN.

  engine_eager / engine_fast / engine_default / engine_default_cold
                               refine_borderline (bisect, default fixed live batch) on real MNIST
                               RPBS pairs of classes 4 and 9: the eager classifier (compile=False),
                               prepare_classifier(...) passed in (TorchScript on a CPU), the eager
                               nn.Module with default arguments (the engine prepares it; cached after
                               the first call), and the same on a fresh copy of the module every
                               round (the preparation paid in every call). Each row also reports
                               its agreement with the public code's per-pair loop (same status and
                               attempts) on the first DEEPDIG_BENCH_REF_PAIRS pairs.
  traj_eager / traj_fast / traj_default   characterize.trajectory_oscillation (K = T = 50) on the
                               first 100 successful borderline samples of those pairs (compile=False,
                               prepared, default arguments).
  train_eager / train_compiled / train_default   one autoencoder training at the paper's settings
                               (MLP AE, batch 128, Adam 0.01, StepLR) for DEEPDIG_BENCH_TRAIN_STEPS
                               steps against the classifier as it is (eager: the code before issue
                               12; compiled: torch.compile'd loss, the one-time compile excluded and
                               reported as compile_seconds) and with the default settings (on a CPU:
                               a channels_last copy with kernel max pools, AdversarialConfig).
  train_two_sequential / train_two_vectorized   two directions' AE_I, one after the other or as
                               one vmapped model (adversarial.train_adversarial_autoencoders).

Run:  .venv/bin/python -m pytest benchmarks/bench_fast.py -s
Env:  DEEPDIG_BENCH_PAIRS (default 2000), DEEPDIG_BENCH_REF_PAIRS (default 300),
      DEEPDIG_BENCH_TRAIN_STEPS (default 500), DEEPDIG_BENCH_DEVICE.
Ratios (fast over eager, throughput) are printed at the end; nothing is asserted on times.
"""

from __future__ import annotations

import time

import pytest
import torch
from bench_utils import env_int, pairs_of, record, sync

import deepdig_fast as dd
from deepdig_fast import reference as R
from deepdig_fast.adversarial import AdversarialConfig, train_adversarial_autoencoder
from deepdig_fast.fast import prepare_classifier

S, T = 4, 9
N_PAIRS = env_int("DEEPDIG_BENCH_PAIRS", 2000)
N_REF = env_int("DEEPDIG_BENCH_REF_PAIRS", 300)
TRAIN_STEPS = env_int("DEEPDIG_BENCH_TRAIN_STEPS", 500)


@pytest.fixture(scope="module")
def setup(mnist_cnn, device):
    model, data = mnist_cnn
    a, b = pairs_of(model, data, S, T, device, n=N_PAIRS)
    t0 = time.perf_counter()
    probe = torch.cat([data.class_inputs(c, "train")[:32] for c in (S, T)]).to(device)
    fast = prepare_classifier(model, probe, embedding_layer="embedding")
    prep = time.perf_counter() - t0
    print(f"\n[bench] prepared classifier: {fast.info()} in {prep:.2f} s")
    n = min(N_REF, a.shape[0])
    ref = [R.bisect_pair_reference(model, a[i], b[i], S, T) for i in range(n)]
    return model, fast, data, a, b, ref


def _agreement(r, ref) -> float:
    n = len(ref)
    same = sum(int(r.status[i]) == ref[i][0] and int(r.attempts[i]) == ref[i][2] for i in range(n))
    return same / n


@pytest.mark.benchmark(group="fast")
@pytest.mark.parametrize("which", ["eager", "fast", "default", "default_cold"])
def test_engine(benchmark, record_property, setup, device, which):
    import copy

    model, fast, _, a, b, ref = setup
    f = fast if which == "fast" else model
    kw = {"compile": False} if which == "eager" else {}
    out = {}

    def fresh():  # a new module every round: nothing cached, the preparation is part of the call
        return (copy.deepcopy(model),), {}

    def run(m=None):
        out["r"] = dd.refine_borderline(f if m is None else m, a, b, S, T, embedding_layer="embedding", **kw)
        sync(device)

    if which == "default_cold":
        benchmark.pedantic(run, setup=fresh, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    r = out["r"]
    s = r.summary()
    record(
        benchmark,
        record_property,
        "fast",
        f"engine_{which}",
        pairs=a.shape[0],
        success_rate=s["success_rate"],
        forwards=s["forwards"],
        agreement_with_reference=_agreement(r, ref),
        mode=r.inference,
    )


@pytest.mark.benchmark(group="fast")
@pytest.mark.parametrize("which", ["eager", "fast", "default"])
def test_trajectory(benchmark, record_property, setup, device, which):
    from deepdig_fast.characterize import trajectory_oscillation

    model, fast, _, a, b, _ = setup
    r = dd.refine_borderline(fast, a[:400], b[:400], S, T)
    points = r.points[r.success][:100]
    f = fast if which == "fast" else model
    kw = {"compile": False} if which == "eager" else {}
    out = {}

    def run():
        out["r"] = trajectory_oscillation(f, points, S, T, K=50, T=50, **kw)
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=1)
    res = out["r"]
    seconds = benchmark.stats.stats.min
    record(
        benchmark,
        record_property,
        "fast",
        f"traj_{which}",
        images=res.forwards,
        images_per_s=res.forwards / seconds,
        oscillation=res.oscillation,
        mode=res.inference,
    )


@pytest.mark.benchmark(group="fast")
@pytest.mark.parametrize("which", ["eager", "compiled", "default"])
def test_train(benchmark, record_property, setup, device, which):
    model, _, data, _, _, _ = setup
    x = data.class_inputs(S, "train").to(device)
    compile_flag = which == "compiled"
    compile_seconds = 0.0
    if compile_flag:  # the one-time compile (per architecture pair and process), outside the timing
        t0 = time.perf_counter()
        train_adversarial_autoencoder(model, x, T, AdversarialConfig(steps=2, compile=True, channels_last=False))
        compile_seconds = time.perf_counter() - t0
    if which == "default":
        cfg = AdversarialConfig(steps=TRAIN_STEPS)
    else:
        cfg = AdversarialConfig(steps=TRAIN_STEPS, compile=compile_flag, channels_last=False)
    out = {}

    def run():
        out["h"] = train_adversarial_autoencoder(model, x, T, cfg)[1]

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    h = out["h"]
    seconds = benchmark.stats.stats.min
    record(
        benchmark,
        record_property,
        "fast",
        f"train_{which}",
        steps=TRAIN_STEPS,
        steps_per_s=TRAIN_STEPS / seconds,
        final_loss=h.final_loss,
        compiled=h.compiled,
        layout=h.layout,
        compile_seconds=compile_seconds,
    )


@pytest.mark.benchmark(group="fast")
@pytest.mark.parametrize("which", ["sequential", "vectorized"])
def test_train_two(benchmark, record_property, setup, device, which):
    """Two directions' AE_I (classes S -> T and T -> S): one after the other, or as one vmapped model."""
    from deepdig_fast.adversarial import train_jointly

    model, _, data, _, _, _ = setup
    xs = [data.class_inputs(S, "train").to(device), data.class_inputs(T, "train").to(device)]
    targets = [T, S]
    cfgs = [AdversarialConfig(steps=TRAIN_STEPS, seed=i, compile=False) for i in range(2)]
    out = {}

    def run():
        out["h"] = [h for _, h in train_jointly(model, xs, targets, cfgs, which)]
        sync(device)

    benchmark.pedantic(run, rounds=2, iterations=1, warmup_rounds=0)
    seconds = benchmark.stats.stats.min
    record(
        benchmark,
        record_property,
        "fast",
        f"train_two_{which}",
        steps=2 * TRAIN_STEPS,
        steps_per_s=2 * TRAIN_STEPS / seconds,
        final_losses=[h.final_loss for h in out["h"]],
    )
