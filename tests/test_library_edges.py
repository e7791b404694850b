"""How the library runs a classifier: eval mode and no grad (a model in train mode keeps its weights,
BatchNorm statistics and flags), never on the caller's tensors (a model that edits its input in
place changes nothing of the caller's), and in the model's dtype (float64 embeddings stay float64)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepdig_fast import adversarial, forward, models
from deepdig_fast.baselines import embedding_nearest_pairs, random_pairs
from deepdig_fast.characterize import linearity, trajectory_oscillation
from deepdig_fast.checkpoint import check_fits
from deepdig_fast.data import ClassificationData, from_tensors
from deepdig_fast.engine import Status, choose_batch_size, refine_borderline
from deepdig_fast.forward import embed


class Net(nn.Module):
    """Linear -> BatchNorm -> ReLU -> Dropout embedding, linear head; optionally zeroes its input."""

    def __init__(self, mutate: bool = False):
        super().__init__()
        self.embedding = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, 3)
        self.mutate = mutate

    def forward(self, x):
        out = self.head(self.embedding(x))
        if self.mutate:
            x.mul_(0)
        return out


def make(dtype=torch.float32, mutate=False, seed=0):
    """(model in train mode with non-trivial BatchNorm statistics, x [200, 1, 4, 4], y = its predictions)."""
    torch.manual_seed(seed)
    model = Net(mutate).to(dtype)
    with torch.no_grad():
        bn = model.embedding[2]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    x = torch.rand(200, 1, 4, 4, dtype=dtype)
    with torch.no_grad():
        model.eval()
        model.mutate = False
        model.head.weight.mul_(10)  # centred, spread logits: all three classes occur
        model.head.bias.sub_(model(x).mean(0))
        y = model(x).argmax(1)
        model.mutate = mutate
    model.train()
    return model, x, y


def two_classes(y):
    counts = torch.bincount(y, minlength=3)
    s, t = counts.argsort(descending=True)[:2].tolist()
    assert counts[t] >= 10, counts  # the fixture must give both classes enough inputs
    return s, t


def every_inference_call(model, x, y):
    """Run every public entry point that runs the classifier for inference; return their outputs."""
    s, t = two_classes(y)
    a, b = x[y == s][:20], x[y == t][:20]
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    data = from_tensors(x.float(), y, x[:50].float(), y[:50], classes=["c0", "c1", "c2"], name="toy")
    out = {
        "refine": refine_borderline(model, a, b, s, t, embedding_layer="embedding"),
        "refine_measured": refine_borderline(model, a, b, s, t, batch_size=None),
        "rpbs": random_pairs(model, x, y, s, t),
        "epbs": embedding_nearest_pairs(model, x, y, s, t, "embedding"),
        "embed": embed(model, x, "embedding", batch_size=64),
        "trajectory": trajectory_oscillation(model, a[:6], s, t, K=3, T=5),
        "linearity": linearity(model, "embedding", x, y, x[:50], y[:50], s, t, a[:4], b[:4]),
        "predict": forward.predict(model, x, batch_size=64),
        "labels": models.predict_labels(model, x, batch_size=64),
        "batch": choose_batch_size(model, a, limit=64),
    }
    if x.dtype == torch.float32:
        check_fits(model, data)
    return out


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()]


def test_a_model_in_train_mode_is_left_as_it_was():
    model, x, y = make()
    model.head.eval()  # mixed flags: each module's own flag must come back
    state, flags = snapshot(model)
    out = every_inference_call(model, x, y)
    after, flags_after = snapshot(model)
    assert flags_after == flags
    assert after.keys() == state.keys()
    changed = [k for k in state if not torch.equal(state[k], after[k])]
    assert changed == [], f"inference changed {changed}"
    # and the predictions were made in eval mode (dropout off, running statistics used)
    with torch.no_grad():
        expected = model.eval()(x)
    assert torch.equal(out["predict"], expected) and torch.equal(out["labels"], expected.argmax(1))
    assert torch.allclose(out["embed"][0], expected, atol=1e-6)
    assert len(out["rpbs"]) > 0 and len(out["epbs"]) > 0 and out["refine"].success.any()


def test_a_model_that_edits_its_input_changes_no_caller_tensor():
    model, x, y = make(mutate=True)
    twin, _, _ = make(mutate=False)
    x0 = x.clone()
    s, t = two_classes(y)
    a, b = x[y == s][:20].contiguous(), x[y == t][:20].contiguous()
    n = min(len(a), len(b))
    a, b = a[:n].contiguous(), b[:n].contiguous()
    a0, b0 = a.clone(), b.clone()

    every_inference_call(model, x, y)  # prepared (the default) where the guard accepts it
    res = refine_borderline(model, a, b, s, t, embedding_layer="embedding", batch_size=7)
    assert torch.equal(x, x0) and torch.equal(a, a0) and torch.equal(b, b0)

    # the results are those of the same model without the in-place edit (the recorded points are
    # the evaluated points, not what the model left in its input); eager both, so that the two
    # models' forwards are the same arithmetic (their traces may fuse differently)
    res = refine_borderline(model, a, b, s, t, embedding_layer="embedding", batch_size=7, compile=False)
    ref = refine_borderline(twin, a, b, s, t, embedding_layer="embedding", batch_size=7, compile=False)
    assert torch.equal(res.status, ref.status) and torch.equal(res.attempts, ref.attempts)
    ok = res.success
    assert ok.any() and torch.equal(res.points[ok], ref.points[ok])
    assert bool((res.points[ok].flatten(1).abs().sum(1) > 0).all())


def test_float64_model_gives_float64_embeddings():
    model, x, y = make(dtype=torch.float64)
    out = every_inference_call(model, x, y)
    res = out["refine"]
    assert res.points.dtype == torch.float64 and res.embeddings.dtype == torch.float64
    ok = res.status == Status.SUCCESS
    assert ok.any()
    _, h = embed(model, res.points[ok], "embedding")
    assert h.dtype == torch.float64
    torch.testing.assert_close(res.embeddings[ok], h, rtol=1e-12, atol=1e-12)
    logits, h_all = out["embed"]
    assert logits.dtype == torch.float64 and h_all.dtype == torch.float64
    assert out["epbs"].distance is not None and len(out["epbs"]) > 0
    assert out["trajectory"].n_segments > 0
    assert out["linearity"].sets["train"]["n"] > 0 and out["linearity"].svm["embedding_dim"] == 8
    empty = refine_borderline(model, x[:0], x[:0], 0, 1, embedding_layer="embedding")
    assert empty.embeddings.dtype == torch.float64


def test_a_captured_embedding_is_not_changed_by_a_later_in_place_op():
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(16, 8)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            h = self.fc1(x.flatten(1))
            h.relu_()  # edits the output the hook recorded
            return self.head(h)

    torch.manual_seed(0)
    model = InPlace()
    x = torch.rand(40, 1, 4, 4)
    _, h = embed(model, x, "fc1", compile=False)
    with torch.no_grad():
        expected = model.fc1(x.flatten(1))
    assert (expected < 0).any()  # the in-place ReLU would have changed it
    assert torch.equal(h, expected)
    _, h = embed(model, x, "fc1")  # prepared (TorchScript): the same values up to float rounding
    torch.testing.assert_close(h, expected, atol=1e-6, rtol=0)


def test_embed_refuses_bad_arguments():
    model, x, _ = make()
    with pytest.raises(ValueError, match="embed: x is empty"):
        embed(model, x[:0], "embedding")
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        embed(model, x, "embedding", batch_size=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_refused_by_name(dtype):
    """The method's kernels and its IEEE float32 results are defined for float32 / float64 inputs;
    a half-precision tensor is refused where it enters, naming the argument, not in the model."""
    model, x, y = make()
    h = x[:4].to(dtype)
    expect = rf"must be a float32 or float64 .*tensor, got {dtype}; convert it with .float\(\)"
    with pytest.raises(ValueError, match="a " + expect):
        refine_borderline(model, h, h, 0, 1)
    with pytest.raises(ValueError, match="points " + expect):
        trajectory_oscillation(model, h, 0, 1, K=2, T=3)
    with pytest.raises(ValueError, match="x_train " + expect):
        ClassificationData("half", x.to(dtype), y, x.to(dtype), y, ["a", "b", "c"])
    with pytest.raises(ValueError, match="x " + expect):
        random_pairs(model, x.to(dtype), y, 0, 1)
    # from_tensors converts what it is given (float16 -> float32 is exact), as it does uint8
    assert from_tensors(x.to(dtype), y, x.to(dtype), y).x_train.dtype == torch.float32


def test_numeric_settings_are_bounded_where_they_are_given():
    """An absurd number is refused by the config or the function that takes it, before any work,
    instead of overflowing a kernel's int64 later (the audit's --max-steps 10**20, --seed 10**23)."""
    from deepdig_fast.atlas import AtlasConfig
    from deepdig_fast.pipeline import PairConfig
    from deepdig_fast.validation import MAX_STEPS_MAX, SEED_MAX

    model, x, _ = make()
    with pytest.raises(ValueError, match=rf"max_steps must be a positive int <= {MAX_STEPS_MAX}, got 1000"):
        refine_borderline(model, x[:2], x[2:4], 0, 1, max_steps=10**20)
    for cfg in (PairConfig, AtlasConfig):
        with pytest.raises(ValueError, match=rf"{cfg.__name__}.max_steps must be a positive int <= {MAX_STEPS_MAX}"):
            cfg(max_steps=MAX_STEPS_MAX + 1)
        with pytest.raises(ValueError, match=rf"{cfg.__name__}.seed must be a non-negative int <= {SEED_MAX}"):
            cfg(seed=10**23)
        cfg(max_steps=MAX_STEPS_MAX, seed=SEED_MAX)  # the bounds themselves are allowed
    with pytest.raises(ValueError, match=r"AdversarialConfig.steps \(or 'auto'\) must be a positive int <= 10000000"):
        adversarial.AdversarialConfig(steps=10**8)


def test_a_run_refuses_an_autoencoder_seed_it_would_not_use():
    """PairConfig / AtlasConfig seed every training from their own seed and the stage's name, so an
    AdversarialConfig seed there would be silently ignored: it is refused, by name."""
    from deepdig_fast.atlas import AtlasConfig
    from deepdig_fast.pipeline import PairConfig

    for cfg in (PairConfig, AtlasConfig):
        with pytest.raises(ValueError, match=rf"{cfg.__name__}.adversarial.seed is not used \(got 3\).*set seed="):
            cfg(adversarial=adversarial.AdversarialConfig(seed=3))
        assert cfg(adversarial=adversarial.AdversarialConfig(steps=7), seed=3).seed == 3
