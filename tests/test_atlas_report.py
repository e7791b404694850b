"""atlas_report on hand-written atlas folders: matrices, loading errors, the report, comparing two atlases."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest

from deepdig_fast import atlas_report as ar
from deepdig_fast.atlas_report import (
    HEATMAP_METRICS,
    atlas_matrix,
    compare_atlases,
    format_compare_table,
    load_atlas,
    write_atlas_report,
)
from deepdig_fast.readers import ReportIncompleteError
from deepdig_fast.rundir import ATLAS_ROW_FIELDS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SKIP_REASON = "generator to_3 collapsed: every output is the same image"
NULLS = tuple(c for c in ATLAS_ROW_FIELDS if c not in ("source", "target", "inputs", "inputs_correct", "skipped"))


def make_row(s: int, t: int) -> dict:
    """A direction row whose numbers differ per (s, t) and are consistent with each other."""
    inputs, correct = 200, 190 - s
    adversarial = 120 + 7 * s - 3 * t
    pairs = 100 + 5 * s + t
    successes = 60 + 4 * s + 3 * t
    third = 2 + s + 2 * t
    return {
        "source": s,
        "target": t,
        "inputs": inputs,
        "inputs_correct": correct,
        "adversarial": adversarial,
        "adversarial_rate": adversarial / correct,
        "pairs": pairs,
        "pair_rate": pairs / adversarial,
        "successes": successes,
        "success_rate": successes / pairs,
        "yield_rate": successes / correct,
        "mean_attempts": 20.0 + s + 0.5 * t,
        "mean_attempts_all": 24.0 + s,
        "third_class": third,
        "stalled": 1,
        "max_steps": 0,
        "invalid_bracket": 0,
        "nonfinite": 0,
        "forwards": 1000 * (s + 1) + 10 * t,
        "oscillation": 0.01 * (1 + s) + 0.001 * t,
        "oscillation_ci_low": 0.005,
        "oscillation_ci_high": 0.05,
        "trajectory_segments": 500,
        "third_class_oscillation": 0.001,
        "m1_borderline": 0.002 * (1 + t),
        "m1_train": 0.4,
        "svm_accuracy_borderline": 0.52,
        "svm_accuracy_train": 0.99,
        "margin_l2_mean": 3.0 + 0.1 * s + 0.01 * t,
        "margin_l2_median": 2.9,
        "skipped": None,
    }


def make_atlas(
    classes=(0, 1, 2, 3), *, missing=((3, 0),), skipped=((2, 3),), null_osc=((0, 2),), sha="ab" * 32, dataset=None
) -> dict:
    classes = list(classes)
    rows = []
    for s in classes:
        for t in classes:
            if s == t or (s, t) in missing:
                continue
            row = make_row(s, t)
            if (s, t) in skipped:
                row.update({k: None for k in NULLS}, skipped=SKIP_REASON, adversarial=0, adversarial_rate=0.0)
            if (s, t) in null_osc:
                row.update(oscillation=None, oscillation_ci_low=None, oscillation_ci_high=None)
            rows.append(row)
    return {
        "schema": 1,
        "kind": "deepdig-atlas",
        "strategy": "per-target",
        "classes": classes,
        "class_names": [f"n{c}" for c in classes],
        "dataset": dataset or {"name": "mnist", "train": [6000, 1, 28, 28], "sha256": "d" * 64},
        "classifier": {"sha256": sha, "class": "MnistCNN", "embedding_layer": "embedding"},
        "config": {"beta": 1e-4, "max_steps": 64, "seed": 0},
        "generators": [
            {
                "unit": f"generators/to_{t}",
                "target": t,
                "sources": [c for c in classes if c != t],
                "inputs": 600,
                "outputs_target": 550 - 10 * t,
                "final_loss": 0.1 + 0.01 * t,
                "collapse": SKIP_REASON if t == 3 else None,
            }
            for t in classes
        ],
        "directions": rows,
    }


def write_atlas(folder: Path, atlas: dict, timings: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "atlas.json").write_text(json.dumps(atlas), encoding="utf-8")
    if timings is not None:
        (folder / "timings.json").write_text(json.dumps(timings), encoding="utf-8")
    return folder


def few_metrics(monkeypatch, *keys: str) -> None:
    """Draw only these heatmaps (keeps the tests that do not look at every figure quick)."""
    monkeypatch.setattr(ar.metrics, "HEATMAP_METRICS", MappingProxyType({k: HEATMAP_METRICS[k] for k in keys}))


def check_png(path: Path) -> tuple[int, int]:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC, path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200, (path, img.shape)
    return img.shape[0], img.shape[1]


def check_self_contained(page: str) -> None:
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert imgs, "the page shows no figure"
    for tag in imgs:
        assert re.search(r'\bsrc="data:image/png;base64,[A-Za-z0-9+/=]+"', tag), tag[:120]
    assert not re.search(r"\b(src|href)\s*=\s*\"(?!data:)", page)
    low = page.lower()
    for bad in ("<script", "<link", "@import", "url(", "http://", "https://"):
        assert bad not in low, bad


# --------------------------------------------------------------------------------------------------
# matrices and loading
# --------------------------------------------------------------------------------------------------


def test_atlas_matrix_positions_and_nan():
    atlas = make_atlas()
    classes, M = atlas_matrix(atlas, "success_rate")
    assert classes == [0, 1, 2, 3] and M.shape == (4, 4) and M.dtype == np.float64
    assert M[1, 2] == pytest.approx(make_row(1, 2)["success_rate"])
    assert M[2, 1] == pytest.approx(make_row(2, 1)["success_rate"])
    assert M[1, 2] != M[2, 1]  # rows = source, columns = target
    assert np.isnan(np.diag(M)).all()
    assert np.isnan(M[3, 0])  # direction not in the atlas
    assert np.isnan(M[2, 3])  # skipped: null success rate
    assert np.isfinite(M).sum() == 16 - 4 - 2
    _, osc = atlas_matrix(atlas, "oscillation")
    assert np.isnan(osc[0, 2]) and osc[0, 1] == pytest.approx(make_row(0, 1)["oscillation"])
    _, share = atlas_matrix(atlas, "third_class_share")  # derived
    r = make_row(3, 1)
    assert share[3, 1] == pytest.approx(r["third_class"] / r["pairs"])
    assert np.isnan(share[2, 3])
    _, fw = atlas_matrix(atlas, "forwards")  # a raw column works too
    assert fw[1, 0] == 2000


def test_atlas_matrix_maps_class_ids_to_positions():
    atlas = make_atlas(classes=(7, 3, 5), missing=(), skipped=(), null_osc=())
    atlas["classes"] = [3, 5, 7]
    atlas["class_names"] = ["n3", "n5", "n7"]
    classes, M = atlas_matrix(atlas, "mean_attempts")
    assert classes == [3, 5, 7]
    assert M[2, 0] == pytest.approx(make_row(7, 3)["mean_attempts"])
    assert M[0, 1] == pytest.approx(make_row(3, 5)["mean_attempts"])


def test_atlas_matrix_rejects_unknown_metric_and_bad_rows():
    with pytest.raises(ValueError, match=r"metric must be one of .*success_rate.*margin_l2_mean.*'speed'"):
        atlas_matrix(make_atlas(), "speed")
    bad = make_atlas()
    bad["directions"][0]["target"] = 9
    with pytest.raises(ValueError, match=r"directions\[0\]"):
        atlas_matrix(bad, "success_rate")


def test_load_atlas_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_atlas(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no atlas.json"):
        load_atlas(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "atlas.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.*not valid JSON"):
        load_atlas(broken)
    wrong = write_atlas(tmp_path / "wrong", {**make_atlas(), "kind": "deepdig-run"})
    with pytest.raises(ValueError, match=r"wrong.*deepdig-atlas.*deepdig-run"):
        load_atlas(wrong)
    newer = write_atlas(tmp_path / "newer", {**make_atlas(), "schema": 3})
    with pytest.raises(ValueError, match="schema"):
        load_atlas(newer)
    with pytest.raises(TypeError, match="path"):
        load_atlas(3)
    good = write_atlas(tmp_path / "good", make_atlas())
    assert load_atlas(good) == load_atlas(good / "atlas.json") == make_atlas()


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------


def test_write_atlas_report(tmp_path):
    root = write_atlas(tmp_path / "atlas-cnn", make_atlas())
    written = write_atlas_report(root)
    expected = {f"figures/heatmap_{m}.png" for m in HEATMAP_METRICS} | {"atlas.md", "atlas.html"}
    assert set(written) == expected
    for rel, p in written.items():
        assert p == root / rel and p.is_file(), rel
    for m in HEATMAP_METRICS:
        check_png(root / f"figures/heatmap_{m}.png")
    md = (root / "atlas.md").read_text(encoding="utf-8")
    page = (root / "atlas.html").read_text(encoding="utf-8")
    check_self_contained(page)
    assert len(re.findall(r"<img\b", page)) == len(HEATMAP_METRICS)
    for text in (md, page):
        assert "mnist" in text and "MnistCNN" in text and "abababababab" in text
        assert SKIP_REASON in text
        assert "11 of the 12 ordered pairs; 1 skipped; 1 not in the atlas" in text
        assert "n3 → n0" in text  # the missing direction is named
    # the direction table: one row per direction, formatted values
    r = make_row(1, 2)
    line = next(ln for ln in md.splitlines() if ln.startswith("| n1 → n2 |"))
    assert f"{100 * r['success_rate']:.1f}%" in line and f"{r['successes']:,}" in line
    assert sum(1 for ln in md.splitlines() if re.match(r"\| n\d → n\d \| \d", ln)) == 11
    # summary: totals over the directions
    total = sum(
        make_row(s, t)["successes"] for s in range(4) for t in range(4) if s != t and (s, t) not in ((3, 0), (2, 3))
    )
    assert f"| borderline samples (successes) | {total:,} |" in md
    assert "## Timings" not in md


def test_report_shows_timings_and_figure_grows_with_k(tmp_path, monkeypatch):
    few_metrics(monkeypatch, "success_rate", "mean_attempts")
    timings = {
        "world_size": 2,
        "wall_seconds": 100.0,
        "phases": {"generators": 60.0, "directions": 40.0},
        "stages": {"component_one": 30.0, "bisection": 12.5},
        "forwards": {"engine": 12345, "trajectory": 7},
        "units": {
            "generators/to_0": {"seconds": 20.0, "rank": 0, "reused": False},
            "generators/to_1": {"seconds": 22.0, "rank": 1, "reused": True},
        },
    }
    small = write_atlas(tmp_path / "small", make_atlas(), timings)
    written = write_atlas_report(small)
    assert set(written) == {
        "figures/heatmap_success_rate.png",
        "figures/heatmap_mean_attempts.png",
        "atlas.md",
        "atlas.html",
    }
    md = (small / "atlas.md").read_text(encoding="utf-8")
    assert "## Timings" in md and "`generators`" in md and "`bisection`" in md
    assert "| `generators` | 60.0 s | 60.0% |" in md
    assert "2 process(es); 2 units (1 reused" in md and "engine 12,345; trajectory 7" in md
    check_self_contained((small / "atlas.html").read_text(encoding="utf-8"))
    big = write_atlas(tmp_path / "big", make_atlas(classes=range(14), missing=(), skipped=(), null_osc=()))
    write_atlas_report(big)
    h_small, w_small = check_png(small / "figures/heatmap_success_rate.png")
    h_big, w_big = check_png(big / "figures/heatmap_success_rate.png")
    assert h_big > 1.5 * h_small and w_big > 1.5 * w_small


def test_report_survives_unreadable_timings(tmp_path, monkeypatch):
    few_metrics(monkeypatch, "success_rate")
    root = write_atlas(tmp_path / "a", make_atlas())
    (root / "timings.json").write_text("[1, 2", encoding="utf-8")
    # written (the file itself is accepted too), but the caller is told what is missing
    with pytest.raises(ReportIncompleteError, match="timings.json is not valid JSON") as info:
        write_atlas_report(root / "atlas.json")
    assert set(info.value.paths) == {"figures/heatmap_success_rate.png", "atlas.md", "atlas.html"}
    md = (root / "atlas.md").read_text(encoding="utf-8")
    assert "timings.json could not be read" in md


# --------------------------------------------------------------------------------------------------
# comparing
# --------------------------------------------------------------------------------------------------


def test_compare_atlases_known_change(tmp_path):
    a = make_atlas()
    b = make_atlas(sha="cd" * 32)
    for row in b["directions"]:
        if (row["source"], row["target"]) == (1, 2):
            row["success_rate"] += 0.2
        if (row["source"], row["target"]) == (0, 1):
            row["mean_attempts"] += 0.5  # a small relative change (~2%)
    ra, rb = write_atlas(tmp_path / "cnn", a), write_atlas(tmp_path / "fcn", b)
    out = tmp_path / "cmp"
    res = compare_atlases(ra, rb, out, top=5)
    assert res["labels"] == ["cnn", "fcn"]
    assert set(res["paths"]) == {f"figures/diff_{m}.png" for m in HEATMAP_METRICS} | {
        "compare.json",
        "compare.md",
        "compare.html",
    }
    on_disk = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert on_disk == {k: v for k, v in res.items() if k != "paths"}
    first = res["top"][0]
    assert (first["source"], first["target"], first["metric"]) == (1, 2, "success_rate")
    assert first["delta"] == pytest.approx(0.2) and first["b"] == pytest.approx(first["a"] + 0.2)
    assert [(c["source"], c["target"], c["metric"]) for c in res["top"]] == [
        (1, 2, "success_rate"),
        (0, 1, "mean_attempts"),
    ]
    assert res["top"][1]["delta"] == pytest.approx(0.5)
    d12 = next(d for d in on_disk["directions"] if (d["source"], d["target"]) == (1, 2))
    assert d12["metrics"]["success_rate"]["delta"] == pytest.approx(0.2)
    assert d12["metrics"]["margin_l2_mean"]["delta"] == 0.0
    skipped = next(d for d in on_disk["directions"] if (d["source"], d["target"]) == (2, 3))
    assert skipped["metrics"]["success_rate"] == {"a": None, "b": None, "delta": None}  # NaN -> null
    sr = res["metrics"]["success_rate"]
    assert sr["n"] == 10 and sr["mean_delta"] == pytest.approx(0.02)
    assert sr["mean_b"] - sr["mean_a"] == pytest.approx(0.02)
    assert res["metrics"]["oscillation"]["n"] == 9 and res["metrics"]["oscillation"]["mean_delta"] == 0.0
    assert res["notes"] == []  # same data set and classes, different classifiers
    for m in HEATMAP_METRICS:
        check_png(out / f"figures/diff_{m}.png")
    page = (out / "compare.html").read_text(encoding="utf-8")
    check_self_contained(page)
    assert "cnn" in page and "fcn" in page
    md = (out / "compare.md").read_text(encoding="utf-8")
    assert "| n1 → n2 | Success rate |" in md and "+20.0%" in md
    table = format_compare_table(res, n=1)
    lines = table.splitlines()
    assert len(lines) == 4 and "cnn" in lines[0] and "fcn" in lines[0]
    assert lines[-1].startswith("n1 → n2") and "success_rate" in lines[-1] and lines[-1].endswith("+20.0%")
    assert "mean_attempts" in format_compare_table(res)  # default n shows both changes


def test_compare_notes_and_labels(tmp_path, monkeypatch):
    few_metrics(monkeypatch, "success_rate")
    a = make_atlas()
    b = make_atlas(
        classes=(0, 1, 2), missing=(), dataset={"name": "mnist", "train": [3000, 1, 28, 28], "sha256": "e" * 64}
    )
    ra, rb = write_atlas(tmp_path / "x" / "atlas", a), write_atlas(tmp_path / "y" / "atlas", b)
    res = compare_atlases(ra, rb, tmp_path / "cmp", labels=("before", "after"))
    assert res["labels"] == ["before", "after"]
    notes = " ".join(res["notes"])
    assert "fingerprints differ (sha256, train)" in notes
    assert "class sets differ" in notes
    assert "same classifier weights" in notes and "in the same structure" in notes
    assert res["classes"] == [0, 1, 2] and len(res["common_directions"]) == 6  # every direction of B
    assert [3, 1] in res["only_a"] and res["only_b"] == []
    assert res["top"] == [] and "no metric changed" in format_compare_table(res)
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    assert "before" in md and "after" in md and "fingerprints differ" in md
    # the same weights in another structure (an activation or a forward changed) is said so
    c = make_atlas()
    c["classifier"]["structure"] = "f" * 32
    rc = write_atlas(tmp_path / "z" / "atlas", c)
    other = " ".join(compare_atlases(ra, rc, tmp_path / "cmp2")["notes"])
    assert "in models of a different structure or code" in other
    # default labels: same folder names -> parent/name
    res2 = compare_atlases(ra, rb, tmp_path / "cmp2")
    assert res2["labels"] == ["x/atlas", "y/atlas"]


def test_compare_errors(tmp_path):
    ra = write_atlas(tmp_path / "a", make_atlas(classes=(0, 1), missing=(), skipped=(), null_osc=()))
    rb = write_atlas(tmp_path / "b", make_atlas(classes=(2, 3), missing=(), skipped=(), null_osc=()))
    with pytest.raises(ValueError, match=r"no direction in common") as info:
        compare_atlases(ra, rb, tmp_path / "out")
    assert str(ra) in str(info.value) and str(rb) in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match=r"^b: "):
        compare_atlases(ra, tmp_path / "missing", tmp_path / "out")
    with pytest.raises(ValueError, match="labels"):
        compare_atlases(ra, ra, tmp_path / "out", labels=("only one",))
    with pytest.raises(ValueError, match="top"):
        compare_atlases(ra, ra, tmp_path / "out", top=-1)
    with pytest.raises(ValueError, match="compare_atlases"):
        format_compare_table({"rows": []})


def test_import_needs_no_extension():
    code = (
        "import sys, deepdig_fast.atlas_report\n"
        "bad = [m for m in ('deepdig_fast.ops', 'deepdig_fast.engine', 'deepdig_fast._C', 'matplotlib.pyplot') "
        "if m in sys.modules]\nassert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_metric_specs_are_complete():
    required = {
        "success_rate",
        "yield_rate",
        "adversarial_rate",
        "pair_rate",
        "mean_attempts",
        "third_class_share",
        "oscillation",
        "m1_borderline",
        "margin_l2_mean",
    }
    assert required <= set(HEATMAP_METRICS)
    import matplotlib

    for key, spec in HEATMAP_METRICS.items():
        assert spec.higher in ("better", "worse", "neutral"), key
        assert spec.cmap in matplotlib.colormaps, key
        assert spec.title and spec.meaning and format(0.25, spec.fmt), key
        assert (spec.vrange == (0.0, 1.0)) == key.endswith(("_rate", "_share")), key


def test_compare_shows_each_sides_training(tmp_path, monkeypatch):
    """Standard vs adversarially trained: the regime of each side is in compare.json, the header
    table, a note, and the terminal table; the atlas report names its strategy's origin."""
    from deepdig_fast.training import PGDConfig, recipe

    few_metrics(monkeypatch, "success_rate")
    ra, rb = write_atlas(tmp_path / "std", make_atlas()), write_atlas(tmp_path / "rob", make_atlas(sha="cd" * 32))
    adversarial = recipe("fast", regime="adversarial", pgd=PGDConfig(0.3, 0.01, 40))
    for root, rec in ((ra, recipe("fast")), (rb, adversarial)):
        meta = {"arch": "cnn", "extra": {"training": {"recipe": rec.to_dict()}}}
        (root / "manifest.json").write_text(json.dumps({"classifier_meta": meta}), encoding="utf-8")
    res = compare_atlases(ra, rb, tmp_path / "cmp", top=3, labels=("standard", "robust"))
    assert res["a"]["regime"] == "standard" and res["b"]["regime"] == "adversarial (PGD ε 0.3, 40 steps of 0.01)"
    assert res["a"]["recipe"] == res["b"]["recipe"] == "fast"
    assert any(
        n.startswith("The classifiers were trained differently (regime: standard standard") for n in res["notes"]
    )
    md = (tmp_path / "cmp" / "compare.md").read_text(encoding="utf-8")
    assert "| training regime | standard | adversarial (PGD ε 0.3, 40 steps of 0.01) |" in md
    lines = format_compare_table(res, n=1).splitlines()
    assert lines[:2] == [
        "standard: recipe fast, regime standard",
        "robust: recipe fast, regime adversarial (PGD ε 0.3, 40 steps of 0.01)",
    ]
    atlas = make_atlas()
    atlas["strategy"] = "per-target"
    root = write_atlas(tmp_path / "pt", atlas)
    write_atlas_report(root)
    header = (root / "atlas.md").read_text(encoding="utf-8")
    assert "deepdig_fast's design, not the paper's" in header
