"""report.write_report on a small real run folder: with and without characterization, skipped parts."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from deepdig_fast.adversarial import AdversarialConfig
from deepdig_fast.pipeline import PairConfig, run_pair
from deepdig_fast.report import write_report

S, T = 3, 5
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def small_config(**kw):
    return PairConfig(adversarial=AdversarialConfig(steps=150, infer_batch_size=1024), **kw)


@pytest.fixture(scope="module")
def base_run(small_fcn, tmp_path_factory):
    """A finished run folder of classes 3, 5 on a small MNIST slice, without characterization."""
    model, data = small_fcn
    small = data.take(3000, 1000)
    out = tmp_path_factory.mktemp("base") / "run"
    run_pair(model, small, S, T, small_config(characterize=False), out_dir=out)
    return model, small, out


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def add_characterization(model, data, run: Path) -> dict:
    """The pipeline's characterization stages on a copy of the run (the other stages are reused);
    estimate mode with short segments keeps it quick. Writes the layout deepdig_fast.report reads."""
    res = run_pair(model, data, S, T, small_config(trajectory_T=10, trajectory_segments=300), out_dir=run)
    assert not any(t["reused"] for k, t in res.timings["stages"].items() if k.startswith("characterize/"))
    assert all(t["reused"] for k, t in res.timings["stages"].items() if not k.startswith("characterize/"))
    return json.loads((run / "results.json").read_text())


def check_report(run: Path, written: dict) -> tuple[str, str, list[str]]:
    md_path, html_path = run / "report.md", run / "report.html"
    assert written["report.md"] == md_path and written["report.html"] == html_path
    for rel, p in written.items():
        assert p.is_file() and p == run / rel, rel
    md = md_path.read_text(encoding="utf-8")
    page = html_path.read_text(encoding="utf-8")
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert figures, "the report references no figure"
    import matplotlib.image

    for rel in figures:
        p = run / rel
        assert p.is_file(), rel
        assert p.read_bytes()[:8] == PNG_MAGIC, rel
        img = matplotlib.image.imread(p)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, rel
        assert rel in written
    # self-contained HTML: every image inline, nothing fetched from elsewhere
    assert page.count("<img ") == len(figures)
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?!data:)""", page, re.I)
    assert not re.search(r"@import|url\(|<link|<script", page, re.I)
    assert "could not be drawn" not in md
    return md, page, figures


def test_report_with_characterization(base_run, tmp_path):
    model, data, src = base_run
    run = _copy(src, tmp_path)
    results = add_characterization(model, data, run)
    written = write_report(run)
    md, page, figures = check_report(run, written)
    names = {Path(f).name for f in figures}
    assert {
        "success_rates.png",
        "attempts_3-5.png",
        "attempts_5-3.png",
        "borderline_3-5.png",
        "borderline_5-3.png",
        "pairs_3-5.png",
        "pairs_5-3.png",
        "oscillation_3-5.png",
        "oscillation_5-3.png",
        "svm_distances.png",
    } <= names
    # key numbers appear in the tables
    tr = results["directions"]["3->5"]["trajectory"]
    assert f"{tr['oscillation']:.4g}" in md
    m1 = results["linearity"]["sets"]["borderline"]["m1"]
    assert f"{m1:.4g}" in md
    rate = results["directions"]["3->5"]["methods"]["deepdig"]["success_rate"]
    assert f"{100 * rate:.1f}%" in md
    assert tr["mode"] == "estimate" and tr["T"] == 10 and tr["n_segments"] == 300
    for word in ("borderline sample", "Success rate", "oscillation", "m1", "estimate"):
        assert word in md
    assert "not computed" not in md
    # writing again replaces the files (idempotent)
    assert set(write_report(run)) == set(written)


def test_report_without_characterization_and_with_a_skipped_method(base_run, tmp_path):
    _, _, src = base_run
    run = _copy(src, tmp_path)
    results = json.loads((run / "results.json").read_text())
    results["directions"]["5->3"]["methods"]["epbs"] = {
        "pairs": 0,
        "skipped": "no embedding layer: pass embedding_layer",
    }
    results["directions"]["3->5"]["trajectory"] = {"skipped": "fewer than 2 successful DeepDIG borderline samples"}
    (run / "results.json").write_text(json.dumps(results))
    (run / "borderline" / "epbs_5-3.pt").unlink()
    written = write_report(run)
    md, _, figures = check_report(run, written)
    assert "skipped: no embedding layer" in md
    assert "skipped: fewer than 2 successful" in md
    assert "trajectory oscillation was not computed" in md
    assert "Embedding linearity was not computed" in md
    assert not any("oscillation_" in f or "svm_" in f for f in figures)
    assert "pairs_3-5.png" in md  # strips with deepdig, rpbs and epbs ends (MNIST reloaded from the manifest)


def test_report_when_the_training_set_cannot_be_reloaded(base_run, tmp_path):
    _, _, src = base_run
    run = _copy(src, tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["data"]["name"] = "my-private-set"
    (run / "manifest.json").write_text(json.dumps(manifest))
    md, _, _ = check_report(run, write_report(run))
    assert "Not shown in the strips: RPBS pairs" in md and "my-private-set" in md
    assert "pairs_3-5.png" in md  # DeepDIG's ends come from the run folder itself


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        write_report(tmp_path / "nope")
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="results.json"):
        write_report(tmp_path)
    (tmp_path / "results.json").write_text("[1]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        write_report(tmp_path)
    with pytest.raises(TypeError, match="run_dir must be a path"):
        write_report(3)
