"""deepdig_fast.fast: the prepared classifier matches eager, falls back with one warning, is cached,
and runs everywhere a model does (engine, predict, embed, baselines, trajectory)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from deepdig_fast.engine import refine_borderline
from deepdig_fast.fast import CHUNK, PreparedClassifier, default_backend, prepare_classifier, tolerance, unwrap
from deepdig_fast.forward import embed, predict
from deepdig_fast.hooks import capture_embeddings
from deepdig_fast.models import MnistCNN
from deepdig_fast.validation import ParameterError


@pytest.fixture(scope="module")
def cnn():
    torch.manual_seed(0)
    return MnistCNN().eval()


def probe(n=16, dtype=torch.float32):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=dtype)


def test_default_backend_depends_only_on_device_and_dtype():
    assert default_backend("cpu", torch.float32) == "torchscript"
    assert default_backend("cpu", torch.float64) == "eager"
    assert default_backend("cuda", torch.float32) == "inductor"


@pytest.mark.parametrize("batch", [1, 7, 300])
def test_torchscript_matches_eager_at_any_batch_size(cnn, batch):
    fast = prepare_classifier(cnn, probe(), embedding_layer="embedding")
    assert fast.mode == "torchscript" and fast.reason is None
    assert fast.chunk == CHUNK["torchscript"] and fast.key() == f"torchscript/chunk{fast.chunk}"
    x = torch.rand(batch, 1, 28, 28)
    with torch.no_grad():
        ref = cnn(x)
    got = fast(x)
    assert got.shape == ref.shape and not got.requires_grad
    assert float((got - ref).abs().max()) <= tolerance(ref)
    assert torch.equal(got.argmax(1), ref.argmax(1))
    z1, e1 = embed(fast, x, "embedding", batch_size=128)
    z2, e2 = embed(cnn, x, "embedding", batch_size=128)
    assert e1.shape == e2.shape == (batch, 50)
    assert float((e1 - e2).abs().max()) <= tolerance(e2)
    assert float((z1 - z2).abs().max()) <= tolerance(z2)


def test_batches_larger_than_the_chunk_run_in_chunks(cnn):
    """A batch larger than the backend's chunk runs as one call per chunk (logits and embeddings bit
    for bit), which agrees with one whole-batch call within the guard's tolerance (oneDNN may pick
    other kernels for other batch sizes: measured differences of 1e-6 on the MNIST CNN)."""
    fast = prepare_classifier(cnn, probe(), embedding_layer="embedding")
    c = fast.chunk
    x = torch.rand(2 * c + 5, 1, 28, 28)
    got = fast(x)
    with torch.no_grad():
        parts = [fast._logits(x[i : i + c]) for i in range(0, x.shape[0], c)]
        whole = fast._logits(x)
    assert torch.equal(got, torch.cat(parts))
    assert float((got - whole).abs().max()) <= tolerance(whole)
    with capture_embeddings(fast, "embedding") as cap:
        z = fast(x)
        e = cap.take()
    with torch.no_grad():
        both = [fast._both(x[i : i + c]) for i in range(0, x.shape[0], c)]
    assert torch.equal(z, torch.cat([b[0] for b in both])) and torch.equal(e, torch.cat([b[1] for b in both]))
    assert e.shape == (x.shape[0], 50)
    assert fast.info()["chunk"] == c and prepare_classifier(cnn, probe(), compile=False).chunk is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eager_mode_is_exactly_the_model(cnn, dtype):
    model = MnistCNN().to(dtype).eval()
    fast = prepare_classifier(model, probe(dtype=dtype), embedding_layer="embedding", compile=False)
    assert fast.mode == "eager" and fast.key() == "eager" and fast.reason is None
    x = torch.rand(9, 1, 28, 28, dtype=dtype)
    with torch.no_grad():
        assert torch.equal(fast(x), model(x))
    assert torch.equal(embed(fast, x, "embedding")[1], embed(model, x, "embedding", compile=False)[1])


def test_float64_on_cpu_defaults_to_eager_without_a_warning():
    model = MnistCNN().double().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = prepare_classifier(model, probe(dtype=torch.float64))
    assert fast.mode == "eager" and fast.requested == "eager"


class BranchOnValue(nn.Module):
    """Data-dependent control flow: a trace records one branch only, so it is wrong for the other."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 3)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        if bool(x.mean() > 0.5):
            return -z
        return z


def test_guard_rejects_a_wrong_trace_with_one_warning():
    torch.manual_seed(0)
    model = BranchOnValue().eval()
    # traced on the first 8 probe rows (mean < 0.5); the probe's later rows take the other branch
    p = torch.cat([torch.rand(8, 1, 28, 28) * 0.2, 0.8 + 0.2 * torch.rand(8, 1, 28, 28)])
    with pytest.warns(RuntimeWarning, match="inference runs eager") as rec:
        fast = prepare_classifier(model, p)
    assert len(rec) == 1
    assert fast.mode == "eager" and fast.requested == "torchscript" and "differ" in fast.reason
    with torch.no_grad():
        assert torch.equal(fast(p), model(p))
    with warnings.catch_warnings():  # cached: the decision and its warning come once per process
        warnings.simplefilter("error")
        again = prepare_classifier(model, p)
    assert again.mode == "eager" and again.seconds == 0.0


class ReturnsDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 3)

    def forward(self, x):
        return {"logits": self.lin(x.flatten(1))}


def test_backend_failure_falls_back_to_eager():
    model = ReturnsDict().eval()
    with pytest.warns(RuntimeWarning, match="inference runs eager"):
        fast = prepare_classifier(model, probe())
    assert fast.mode == "eager" and fast.reason


def test_cache_is_per_model_and_invalidated_by_weight_changes():
    torch.manual_seed(0)
    model = MnistCNN().eval()
    first = prepare_classifier(model, probe(), embedding_layer="embedding")
    second = prepare_classifier(model, probe(), embedding_layer="embedding")
    assert second.mode == first.mode == "torchscript" and second.seconds == 0.0
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        model.head.weight.mul_(2.0)  # the frozen trace holds the old weights: must be rebuilt
        ref = model(x)
    third = prepare_classifier(model, probe(), embedding_layer="embedding")
    assert third.seconds > 0.0
    assert float((third(x) - ref).abs().max()) <= tolerance(ref)


def test_embedding_layer_must_be_the_prepared_one(cnn):
    fast = prepare_classifier(cnn, probe())
    with pytest.raises(ValueError, match="embedding_layer 'embedding' was not prepared"):
        with capture_embeddings(fast, "embedding"):
            pass
    with pytest.raises(ValueError, match="is not a submodule"):
        prepare_classifier(cnn, probe(), embedding_layer="nope")


@pytest.mark.parametrize("bad", ["fast", 1, None])
def test_bad_compile_value_names_the_argument(cnn, bad):
    with pytest.raises(ParameterError, match="compile must be True, False or one of"):
        prepare_classifier(cnn, probe(), compile=bad)


def test_bad_probe_is_an_error(cnn):
    with pytest.raises(ValueError, match="probe must be"):
        prepare_classifier(cnn, torch.rand(0, 1, 28, 28))


def test_prepared_runs_the_engine_and_predict_like_the_model(small_fcn):
    model, data = small_fcn
    x1 = data.x_test[data.y_test == 3][:200]
    x7 = data.x_test[data.y_test == 7][:200]
    fast = prepare_classifier(model, torch.cat([x1[:16], x7[:16]]), embedding_layer="embedding")
    assert fast.mode == "torchscript" and unwrap(fast) is model
    p1, p7 = predict(model, x1).argmax(1), predict(fast, x1).argmax(1)
    assert torch.equal(p1, p7)
    keep1 = predict(model, x1).argmax(1) == 3
    keep7 = predict(model, x7).argmax(1) == 7
    n = int(min(keep1.sum(), keep7.sum()))
    a, b = x1[keep1][:n], x7[keep7][:n]
    ref = refine_borderline(model, a, b, 3, 7, embedding_layer="embedding", compile=False)
    got = refine_borderline(fast, a, b, 3, 7, embedding_layer="embedding")
    assert (ref.inference, got.inference) == ("eager", "torchscript")
    # the logits differ in the last bits, so a few pairs may take another step; nearly all agree
    same = (ref.status == got.status) & (ref.attempts == got.attempts)
    assert float(same.double().mean()) >= 0.95
    assert abs(float(ref.success.double().mean()) - float(got.success.double().mean())) <= 0.02
    assert got.embeddings is not None and got.embeddings.shape == ref.embeddings.shape
    ok = got.success
    assert torch.isfinite(got.embeddings[ok]).all()


def _pairs(model, data, s, t, n=150):
    xs, xt = data.x_test[data.y_test == s][:n], data.x_test[data.y_test == t][:n]
    ks, kt = predict(model, xs).argmax(1) == s, predict(model, xt).argmax(1) == t
    m = int(min(ks.sum(), kt.sum()))
    return xs[ks][:m], xt[kt][:m]


def test_entry_points_prepare_a_plain_module_by_default(small_fcn, monkeypatch):
    """refine_borderline, trajectory_oscillation and the baselines prepare an eager nn.Module (once
    per process: the cache serves later calls on other inputs after the guard) and say so in their
    result; compile=False runs the module as it is; the outcomes agree within the guard's tolerance."""
    import copy

    from deepdig_fast import fast as fast_mod
    from deepdig_fast.baselines import embedding_nearest_pairs, random_pairs
    from deepdig_fast.characterize import trajectory_oscillation

    model, data = small_fcn
    model = copy.deepcopy(model)  # nothing cached for it yet
    builds = []
    real = fast_mod._BUILDERS["torchscript"]
    monkeypatch.setitem(fast_mod._BUILDERS, "torchscript", lambda fn, ex: builds.append(1) or real(fn, ex))
    a, b = _pairs(model, data, 3, 5)
    got = refine_borderline(model, a, b, 3, 5)
    ref = refine_borderline(model, a, b, 3, 5, compile=False)
    assert (got.inference, ref.inference) == ("torchscript", "eager")
    same = (ref.status == got.status) & (ref.attempts == got.attempts)
    assert float(same.double().mean()) >= 0.95
    assert abs(float(ref.success.double().mean()) - float(got.success.double().mean())) <= 0.02
    n_builds = len(builds)
    assert n_builds == 1
    again = refine_borderline(model, a[10:], b[10:], 3, 5)  # other pairs: guarded, not traced again
    assert again.inference == "torchscript" and len(builds) == n_builds
    points = got.points[got.success][:30]
    tr, tr_eager = (
        trajectory_oscillation(model, points, 3, 5, K=5, T=20),
        trajectory_oscillation(model, points, 3, 5, K=5, T=20, compile=False),
    )
    assert (tr.inference, tr_eager.inference) == ("torchscript", "eager")
    assert abs(tr.oscillation - tr_eager.oscillation) <= 0.02
    x, y = data.x_test[:2000], data.y_test[:2000]
    r, r_eager = random_pairs(model, x, y, 3, 5), random_pairs(model, x, y, 3, 5, compile=False)
    assert (r.inference, r_eager.inference) == ("torchscript", "eager") and len(r) > 0
    e = embedding_nearest_pairs(model, x, y, 3, 5, "embedding")
    e_eager = embedding_nearest_pairs(model, x, y, 3, 5, "embedding", compile=False)
    assert (e.inference, e_eager.inference) == ("torchscript", "eager")
    assert float((e.a_index == e_eager.a_index).double().mean()) >= 0.95
    z, emb = embed(model, x[:300], "embedding")
    z0, emb0 = embed(model, x[:300], "embedding", compile=False)
    assert float((emb - emb0).abs().max()) <= tolerance(emb0) and float((z - z0).abs().max()) <= tolerance(z0)
    # a prepared classifier is run as given; float64 has no faster CPU path: eager, no warning
    fast = prepare_classifier(model, a[:8], embedding_layer="embedding")
    assert refine_borderline(fast, a, b, 3, 5, compile=False).inference == "torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m64 = copy.deepcopy(model).double()
        assert refine_borderline(m64, a.double(), b.double(), 3, 5).inference == "eager"
    with pytest.raises(ParameterError, match="compile must be"):
        refine_borderline(model, a, b, 3, 5, compile="fast")


def test_a_model_the_guard_rejects_runs_eager_by_default_with_one_warning():
    torch.manual_seed(0)
    model = BranchOnValue().eval()
    a = torch.cat([torch.rand(8, 1, 28, 28) * 0.2, 0.8 + 0.2 * torch.rand(8, 1, 28, 28)])
    with pytest.warns(RuntimeWarning, match="inference runs eager"):
        res = refine_borderline(model, a, a.flip(0), 0, 1)
    assert res.inference == "eager"


@pytest.mark.slow
def test_inductor_backend_on_cpu(small_fcn):
    model, data = small_fcn
    fast = prepare_classifier(model, data.x_test[:16], embedding_layer="embedding", compile="inductor")
    assert isinstance(fast, PreparedClassifier)
    assert fast.mode == "inductor", fast.reason
    x = data.x_test[100:137]
    z, e = embed(fast, x, "embedding")
    z0, e0 = embed(model, x, "embedding")
    assert float((z - z0).abs().max()) <= tolerance(z0) and float((e - e0).abs().max()) <= tolerance(e0)
