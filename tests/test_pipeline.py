"""run_pair end to end on a small slice of MNIST: invariants, baselines, resume, kill-and-rerun."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepdig_fast.adversarial import AdversarialConfig
from deepdig_fast.engine import Status
from deepdig_fast.pipeline import PairConfig, run_pair

ROOT = Path(__file__).resolve().parent.parent
S, T = 3, 5


def small_config(**kw):
    return PairConfig(adversarial=AdversarialConfig(steps=150, infer_batch_size=1024), trajectory_segments=400, **kw)


@pytest.fixture(scope="module")
def pair_run(small_fcn, tmp_path_factory):
    model, data = small_fcn
    small = data.take(3000, 1000)
    out = tmp_path_factory.mktemp("run")
    res = run_pair(model, small, S, T, small_config(), out_dir=out)
    return model, small, res, out


def test_invariants(pair_run):
    model, data, res, out = pair_run
    assert set(res.directions) == {f"{S}->{T}", f"{T}->{S}"}
    for key, d in res.directions.items():
        assert d.component_one["train"]["kept"] > 0, key
        for method, r in d.borderline.items():
            ok = r.success
            assert len(r) > 0
            p = r.probs[ok]
            assert bool(((p[:, d.source] - p[:, d.target]).abs() < 1e-4).all()), (key, method)
            assert r.embeddings is not None and r.embeddings.shape == (len(r), 50)
        # DeepDIG's success rate is reported per direction
        m = res.results["directions"][key]["methods"]
        assert 0.0 <= m["deepdig"]["success_rate"] <= 1.0
        assert m["deepdig"]["pairs"] == d.component_two["pairs"]
    # points lie on their pair's segment: deepdig s->t pairs are (AE_II(a), a)
    c2 = torch.load(out / "components" / f"ae2_{S}-{T}.pt", weights_only=True)
    r = res.directions[f"{S}->{T}"].borderline["deepdig"]
    ok = r.success
    lam = r.lam[ok].float().view(-1, 1, 1, 1)
    a, b = c2["a2"][ok], c2["a"][ok]
    torch.testing.assert_close(r.points[ok], a + lam * (b - a), atol=1e-6, rtol=0)


def test_epbs_pairs_are_true_nearest_neighbours(pair_run):
    model, data, res, out = pair_run
    saved = torch.load(out / "borderline" / f"epbs_{S}-{T}.pt", weights_only=True)
    ia, ib = saved["a_index"], saved["b_index"]
    assert len(set(ib.tolist())) > 10, "EPBS must not pair every source input with the same target input"
    from deepdig_fast.forward import embed

    x, y = data.x_train, data.y_train
    with torch.no_grad():
        pred = model(x).argmax(1)
    cand = ((y == T) & (pred == T)).nonzero().flatten()
    _, ha = embed(model, x[ia[:50]], "embedding")
    _, hc = embed(model, x[cand], "embedding")
    nearest = cand[torch.cdist(ha.double(), hc.double()).argmin(1)]
    assert torch.equal(nearest, ib[:50])


def _comparable(results: dict) -> dict:
    """results.json without wall-clock fields (and the live-batch size, which is measured, and the
    number of engine steps that follows from it)."""

    def strip(o):
        if isinstance(o, dict):
            return {
                k: strip(v)
                for k, v in o.items()
                if k not in ("seconds", "train_seconds", "stages", "batch_size", "steps")
            }
        if isinstance(o, list):
            return [strip(v) for v in o]
        if isinstance(o, float) and o != o:
            return None  # NaN (an undefined mean) compares equal to itself here
        return o

    return strip(results)


def test_rerun_reuses_every_stage(pair_run):
    model, data, res, out = pair_run
    lines = []
    again = run_pair(model, data, S, T, small_config(), out_dir=out, log=lines.append)
    assert all(v["reused"] for v in again.timings["stages"].values())
    assert _comparable(again.results) == _comparable(res.results)
    # a changed setting invalidates exactly the stages that depend on it
    lines.clear()
    changed = run_pair(model, data, S, T, small_config(beta=5e-4), out_dir=out, log=lines.append)
    reused = {k for k, v in changed.timings["stages"].items() if v["reused"]}
    assert all(k.startswith("components/") for k in reused) and len(reused) == 4


def test_inference_mode_is_recorded_and_enters_every_stage_key(pair_run, tmp_path):
    import shutil

    model, data, res, out = pair_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inference"]["mode"] == "torchscript" and manifest["inference"]["reason"] is None
    assert manifest["inference"]["engine_loop"] == "compact"  # the engine's loop on a CPU
    assert res.timings["inference"]["mode"] == "torchscript"
    # eager logits differ from the optimised ones in the last bits: a run in the other mode reuses nothing
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    eager = run_pair(model, data, S, T, small_config(compile=False, baselines=False, characterize=False), out_dir=copy)
    assert not any(v["reused"] for v in eager.timings["stages"].values())
    assert json.loads((copy / "manifest.json").read_text())["inference"]["mode"] == "eager"


@pytest.mark.parametrize("mode", ["vectorized", "sequential"])
def test_joint_training_modes_give_the_same_run(pair_run, tmp_path, mode):
    """The two directions' AE_I, then both AE_II, trained together -- one vmapped model each (the GPU
    default) -- or one after the other give the fixture's outcomes (it ran the CPU default: two
    single-thread worker processes with 2 torch threads here), each mode under its own stage keys."""
    model, data, res, out = pair_run
    assert json.loads((out / "manifest.json").read_text())["joint_training"] == (
        "processes" if torch.get_num_threads() >= 2 else "sequential"
    )
    cfg = small_config(joint_training=mode, baselines=False, characterize=False)
    other = run_pair(model, data, S, T, cfg, out_dir=tmp_path)
    assert not any(v["reused"] for v in other.timings["stages"].values())
    for key, d in res.results["directions"].items():
        v = other.results["directions"][key]
        a, b = d["component_one"]["train"], v["component_one"]["train"]
        assert abs(a["kept"] - b["kept"]) <= 0.02 * max(a["kept"], 1)
        sa, sb = d["methods"]["deepdig"]["success_rate"], v["methods"]["deepdig"]["success_rate"]
        assert abs(sa - sb) <= 0.05
    with pytest.raises(ValueError, match="PairConfig.joint_training must be one of"):
        small_config(joint_training="gpu")


def test_results_json_is_valid(pair_run):
    _, _, res, out = pair_run
    results = json.loads((out / "results.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert results["schema"] == 2 and results["pair"] == [S, T] and results["kind"] == "deepdig-run"
    assert manifest["classifier"]["sha256"] and manifest["seed"] == 0
    # results.json says exactly what it was computed from, and nothing measured at run time
    assert results["run_id"] == manifest["run_id"]
    assert results["inputs"]["classifier"] == {
        "weights": manifest["classifier"]["sha256"],
        "structure": manifest["classifier"]["structure"],
    }
    assert results["inputs"]["data"] == manifest["data"] and results["inputs"]["config"] == manifest["config"]
    text = (out / "results.json").read_text()
    assert '"seconds"' not in text and '"train_seconds"' not in text and '"stages"' not in text
    timings = json.loads((out / "timings.json").read_text())
    assert timings["run_id"] == results["run_id"] and timings["stages"] and timings["seconds"] > 0
    for d in results["directions"].values():
        traj = d["trajectory"]
        assert traj["mode"] == "estimate" and traj["n_segments"] == 400 and traj["T"] == 50
        assert traj["ci95"][0] <= traj["oscillation"] <= traj["ci95"][1]
    lin = results["linearity"]
    for split in ("train", "test", "borderline"):
        assert lin["sets"][split]["n"] > 0 and 0 <= lin["sets"][split]["m1"] < 1
    # the borderline samples sit much closer to the SVM hyperplane than the data
    assert lin["sets"]["borderline"]["m1"] < lin["sets"]["train"]["m1"]
    assert (out / f"characterize/trajectory_{S}-{T}.pt").is_file() and (
        out / f"characterize/linearity_{S}-{T}.pt"
    ).is_file()
    for d in results["directions"].values():
        for m in d["methods"].values():
            assert set(m["counts"]) == {s.name for s in Status if s is not Status.PENDING}


SCRIPT = r"""
import sys, torch
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from common_utils import train_small
from deepdig_fast.adversarial import AdversarialConfig
from deepdig_fast.pipeline import PairConfig, run_pair
torch.set_num_threads(1)
model, data = train_small("fcn", n=3000, steps=200)
cfg = PairConfig(adversarial=AdversarialConfig(steps=int(sys.argv[2]), infer_batch_size=1024), trajectory_segments=300)
run_pair(model, data.take(3000, 1000), 3, 5, cfg, out_dir=sys.argv[1], log=lambda m: print(m, flush=True))
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    steps = "400"
    ref_dir, killed_dir = tmp_path / "ref", tmp_path / "killed"
    subprocess.run([sys.executable, str(script), str(ref_dir), steps], check=True, capture_output=True, timeout=600)
    # start the same run, kill it with SIGKILL once the second stage has started
    proc = subprocess.Popen([sys.executable, str(script), str(killed_dir), steps], stdout=subprocess.PIPE, text=True)
    started = 0
    for line in proc.stdout:
        started += line.endswith("running\n")
        if started == 2:
            time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "results.json").exists()
    done = subprocess.run(
        [sys.executable, str(script), str(killed_dir), steps], check=True, capture_output=True, text=True, timeout=600
    )
    assert "reused" in done.stdout
    ref = json.loads((ref_dir / "results.json").read_text())
    got = json.loads((killed_dir / "results.json").read_text())
    assert _comparable(got) == _comparable(ref)
    for name in ("borderline/deepdig_3-5.pt", "borderline/deepdig_5-3.pt"):
        a = torch.load(ref_dir / name, weights_only=True)
        b = torch.load(killed_dir / name, weights_only=True)
        assert torch.equal(a["status"], b["status"]) and torch.equal(a["points"].nan_to_num(), b["points"].nan_to_num())


class ConstantAutoencoder(torch.nn.Module):
    """A generator that ignores its input: every output is the same image (a collapse)."""

    def __init__(self):
        super().__init__()
        self.image = torch.nn.Parameter(torch.zeros(1, 1, 28, 28))

    def forward(self, x):
        return torch.sigmoid(self.image).expand(x.shape[0], -1, -1, -1)


def test_collapsed_generator_is_reported_not_hidden(small_fcn, tmp_path):
    """DeepDIG is skipped with the diagnosis, the baselines still run, the report still renders."""
    model, data = small_fcn
    small = data.take(2000, 500)
    cfg = PairConfig(adversarial=AdversarialConfig(steps=20, infer_batch_size=1024), trajectory_segments=100)
    with pytest.warns(RuntimeWarning, match="generator collapsed"):
        res = run_pair(model, small, S, T, cfg, out_dir=tmp_path, autoencoder=ConstantAutoencoder)
    for key in (f"{S}->{T}", f"{T}->{S}"):
        m = res.results["directions"][key]["methods"]
        assert m["deepdig"]["pairs"] == 0 and "generator collapsed" in m["deepdig"]["skipped"]
        assert m["rpbs"]["pairs"] > 0
        assert res.results["directions"][key]["trajectory"] == {
            "skipped": "fewer than 2 successful DeepDIG borderline samples"
        }
    from deepdig_fast.report import write_report

    paths = write_report(tmp_path)
    assert "generator" in (tmp_path / "report.md").read_text() and "report.html" in paths


class _Undeclared(torch.nn.Module):
    """A classifier that declares no EMBEDDING_LAYER (as most user and zoo models)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_embedding_layer_auto_and_none(small_fcn, tmp_path):
    """embedding_layer="auto" finds the input of the final Linear layer (recorded in the manifest; EPBS
    runs on it); None takes no layer from a model that declares none; "none" skips EPBS."""
    from deepdig_fast.zoo import find_embedding_layer, resolve_embedding_layer

    model, data = small_fcn
    plain = _Undeclared(model)
    small = data.take(1500, 300)
    found = find_embedding_layer(plain, small.x_test[:2])
    assert found.startswith("net.") and found.endswith(":input")
    assert resolve_embedding_layer(plain, None) is None and resolve_embedding_layer(model, None) == "embedding"
    assert resolve_embedding_layer(model, "NONE") is None and resolve_embedding_layer(model, "fc2") == "fc2"
    with pytest.raises(TypeError, match="embedding_layer must be None, 'auto', 'none' or a layer name"):
        resolve_embedding_layer(model, 3)
    cfg = PairConfig(adversarial=AdversarialConfig(steps=20, infer_batch_size=1024), characterize=False)
    res = run_pair(plain, small, S, T, cfg, out_dir=tmp_path / "auto", embedding_layer="auto")
    manifest = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert manifest["classifier"]["embedding_layer"] == found
    assert res.results["directions"][f"{S}->{T}"]["methods"]["epbs"]["pairs"] > 0
    res = run_pair(plain, small, S, T, cfg, embedding_layer="none")
    assert "no embedding layer" in res.results["directions"][f"{S}->{T}"]["methods"]["epbs"]["skipped"]
    with pytest.raises(ValueError, match="has no nn.Linear classifier layer"):
        run_pair(_Undeclared(torch.nn.Flatten()), small, S, T, cfg, embedding_layer="auto")


class _Inverted(torch.nn.Module):
    """The classifier behind the wrong input contract: it gets 1 - x instead of x."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(1 - x)


def test_the_input_contract_guard(small_fcn, tmp_path):
    """A classifier that gets a class of its own data mostly wrong is refused before any work, naming
    the class, its accuracy and the remedy; min_accuracy=0 studies it anyway; the accuracies of a run
    go to its manifest."""
    from deepdig_fast.checkpoint import check_accuracy, class_accuracy

    model, data = small_fcn
    small = data.take(1500, 300)
    acc = class_accuracy(model, small, (S, T))
    assert set(acc) == {S, T} and all(a > 0.8 for a in acc.values())
    wrong = _Inverted(model)
    low = class_accuracy(wrong, small, (S, T))
    assert min(low.values()) < 0.5
    with pytest.raises(ValueError, match=r"classifies too few test inputs of 'mnist' correctly \(class '\d' \d+%"):
        run_pair(wrong, small, S, T, out_dir=tmp_path / "wrong")
    assert not (tmp_path / "wrong").exists()  # refused before the folder was touched
    with pytest.raises(ValueError, match="min_accuracy must be"):
        check_accuracy(model, small, (S, T), 1.5)
    assert check_accuracy(wrong, small, (S, T), 0) == low
    cfg = PairConfig(adversarial=AdversarialConfig(steps=5, infer_batch_size=1024), baselines=False, characterize=False)
    run_pair(model, small, S, T, cfg, out_dir=tmp_path / "ok")
    recorded = json.loads((tmp_path / "ok" / "manifest.json").read_text())["classifier"]["class_accuracy"]
    assert recorded == {str(c): a for c, a in acc.items()}


def test_uint8_storage_gives_the_same_run(small_fcn, tmp_path):
    """A data set kept as uint8 pixels (as image folders and torchvision data sets are) is converted
    only where read, and a run on it is the run on the float32 data: same stage keys, same results."""
    from deepdig_fast.data import as_unit, from_tensors

    model, data = small_fcn
    small = data.take(1500, 300)
    pixels = from_tensors(
        *((small.x_train * 255).round().to(torch.uint8), small.y_train),
        *((small.x_test * 255).round().to(torch.uint8), small.y_test),
        classes=small.classes,
        name=small.name,
        keep_uint8=True,
    )
    assert pixels.x_train.dtype == torch.uint8 and pixels.dtype == torch.float32
    assert torch.equal(as_unit(pixels.x_train), small.x_train)  # MNIST floats are bytes / 255 exactly
    assert torch.equal(pixels.class_inputs(S, "test"), small.class_inputs(S, "test"))
    x, y = pixels.inputs("train", (T, S))
    assert x.dtype == torch.float32 and torch.equal(x, small.x_train[(small.y_train == S) | (small.y_train == T)])
    cfg = PairConfig(adversarial=AdversarialConfig(steps=20, infer_batch_size=1024), trajectory_segments=50)
    a = run_pair(model, small, S, T, cfg, out_dir=tmp_path / "f32")
    b = run_pair(model, pixels, S, T, cfg, out_dir=tmp_path / "u8")
    assert a.results["run_id"] == b.results["run_id"]  # the same stage keys and inputs
    assert (tmp_path / "f32" / "results.json").read_bytes() == (tmp_path / "u8" / "results.json").read_bytes()
