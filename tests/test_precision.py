"""full_fp32: deepdig_fast's forwards and trainings never run float32 in TF32 / bfloat16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepdig_fast as dd
from deepdig_fast import precision
from deepdig_fast.precision import full_fp32

_settings, _set = precision._read, precision._write  # the switches full_fp32 reads and writes


@pytest.fixture
def reduced_precision_process():
    """The process asks for TF32 everywhere (cuDNN, cuBLAS, oneDNN), as a user script may."""
    before = _settings()
    _set(["tf32"] * len(precision._SWITCHES) if precision._SWITCHES else [True, True])
    asked = _settings()
    yield asked
    _set(before)


def test_full_fp32_sets_ieee_and_restores(reduced_precision_process):
    asked = reduced_precision_process
    with full_fp32():
        inside = _settings()
        with full_fp32():  # nested: still IEEE, and the outer scope's value comes back
            assert _settings() == inside
        assert _settings() == inside
    assert all(v in ("ieee", False) for v in inside), inside
    assert _settings() == asked
    with pytest.raises(KeyError), full_fp32():
        raise KeyError("x")
    assert _settings() == asked  # restored on an exception too


def test_library_forwards_run_in_ieee_fp32(reduced_precision_process):
    """What the model sees during the engine's and a prepared classifier's forwards."""
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            with torch.no_grad():
                self.lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
                self.lin.bias.zero_()

        def forward(self, x):
            seen.append(_settings())
            return self.lin(x)

    model = Spy()
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    dd.refine_borderline(model, a, b, 0, 1)
    fast = dd.prepare_classifier(model, torch.cat([a, b]), compile=False)
    fast(a)
    assert seen and all(all(v in ("ieee", False) for v in s) for s in seen), seen
    assert _settings() == reduced_precision_process


def test_overlapping_scopes_in_two_threads_keep_ieee_until_the_last_ends(reduced_precision_process):
    """Thread A enters, B enters, A leaves while B still runs: B must still see IEEE."""
    import threading

    a_in, a_out, b_checked = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with full_fp32():
            a_in.set()
            b_entered.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with full_fp32():
            b_entered.set()
            a_out.wait(5)
            seen["b_after_a_left"] = _settings()
        b_checked.set()

    b_entered = threading.Event()
    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    ta.join(10)
    tb.join(10)
    assert b_checked.is_set()
    assert all(v in ("ieee", False) for v in seen["b_after_a_left"]), seen
    assert _settings() == reduced_precision_process
