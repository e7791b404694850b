"""deepdig_fast.workers and adversarial.TrainingPool: persistent single-thread training processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from deepdig_fast.adversarial import AdversarialConfig, TrainingPool, train_adversarial_autoencoder, train_in_processes


def _classifier() -> nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _inputs(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _cfg(seed: int, steps: int = 12) -> AdversarialConfig:
    return AdversarialConfig(steps=steps, batch_size=16, log_every=4, seed=seed, compile=False)


def _single_thread(clf, x, t, cfg):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_adversarial_autoencoder(clf, x, t, cfg)
    finally:
        torch.set_num_threads(threads)


def _same(a, b) -> bool:
    return all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_worker_trains_job_after_job_exactly_as_in_process():
    """One worker, three jobs in a row (so state could leak from one job to the next): each result is
    the in-process single-thread training bit for bit, in the caller's dtype (a float64 training
    once came back rounded through float32), in eval mode."""
    clf = {torch.float32: _classifier(), torch.float64: _classifier().double()}
    jobs = [(_inputs(40, 1), 2, _cfg(0)), (_inputs(40, 2), 0, _cfg(7)), (_inputs(30, 3).double(), 1, _cfg(1))]
    with TrainingPool(1) as pool:
        pids = [w.proc.pid for w in pool.processes._all]
        futures = [pool.submit(clf[x.dtype], x, t, c) for x, t, c in jobs]
        results = [f.result(timeout=300) for f in futures]
        assert [w.proc.pid for w in pool.processes._all] == pids  # the same process did all three
    for (ae, hist), (x, t, c) in zip(results, jobs):
        ref_ae, ref = _single_thread(clf[x.dtype], x, t, c)
        assert hist.loss == ref.loss and hist.steps == c.steps
        assert not ae.training and next(ae.parameters()).dtype == x.dtype and _same(ae, ref_ae)


def test_train_in_processes_reuses_a_given_pool_and_leaves_it_open():
    clf = _classifier()
    xs, targets, cfgs = [_inputs(40, 4), _inputs(40, 5)], [1, 3], [_cfg(2), _cfg(3)]
    with TrainingPool(2) as pool:
        first = train_in_processes(clf, xs, targets, cfgs, pool=pool)
        again = train_in_processes(clf, xs, targets, cfgs, pool=pool)
        assert len(pool.processes._all) == 2 and all(w.proc.poll() is None for w in pool.processes._all)
    for (a, ha), (b, hb) in zip(first, again):
        assert ha.loss == hb.loss and _same(a, b)
    assert train_in_processes(clf, [], [], []) == []


def test_a_failing_training_raises_its_own_exception_and_the_worker_stays():
    clf = _classifier()
    with TrainingPool(1) as pool:
        pid = pool.processes._all[0].proc.pid
        with pytest.raises(ValueError, match="target must be < the classifier's number of classes"):
            pool.submit(clf, _inputs(20, 6), 9, _cfg(0)).result(timeout=300)
        ae, hist = pool.submit(clf, _inputs(20, 6), 1, _cfg(0)).result(timeout=300)
        assert pool.processes._all[0].proc.pid == pid and hist.steps == 12


def test_a_dead_worker_fails_its_job_and_is_replaced():
    clf = _classifier()
    with TrainingPool(1) as pool:
        dead = pool.processes._all[0]
        dead.proc.kill()
        dead.proc.wait()
        with pytest.raises(RuntimeError, match="worker process exited before replying"):
            pool.submit(clf, _inputs(20, 7), 1, _cfg(0)).result(timeout=300)
        _, hist = pool.submit(clf, _inputs(20, 7), 1, _cfg(0)).result(timeout=300)
        assert hist.steps == 12 and pool.processes._all[0] is not dead


def test_closing_with_kill_ends_a_running_job_at_once():
    clf = _classifier()
    pool = TrainingPool(1)
    future = pool.submit(clf, _inputs(40, 8), 1, _cfg(0, steps=10**7))
    time.sleep(0.5)
    procs = [w.proc for w in pool.processes._all]
    t0 = time.perf_counter()
    pool.close(kill=True)
    assert time.perf_counter() - t0 < 30
    with pytest.raises(RuntimeError):
        future.result(timeout=30)
    assert all(p.poll() is not None for p in procs)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(clf, _inputs(4, 0), 1, _cfg(0))
    pool.close()  # idempotent


def test_workers_argument_is_checked():
    with pytest.raises(ValueError, match="workers must be"):
        TrainingPool(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_workers_die_with_the_process_that_started_them():
    """A killed run leaves no training behind: its workers -- one in the middle of a long training,
    one idle -- get SIGKILL when it dies (an idle one would also end at its next read; a busy one
    would train on for the whole job)."""
    code = (
        "import sys, time, torch\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from test_train_worker import _cfg, _classifier, _inputs\n"
        "from deepdig_fast.adversarial import TrainingPool\n"
        "pool = TrainingPool(2)\n"
        "job = pool.submit(_classifier(), _inputs(40, 1), 1, _cfg(0, steps=10**7))\n"
        "print(*[w.proc.pid for w in pool.processes._all], flush=True)\n"
        "time.sleep(600)\n"
    )
    here = str(Path(__file__).resolve().parent)
    parent = subprocess.Popen([sys.executable, "-c", code, here], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    time.sleep(5)  # one worker is training
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
