"""write_sweep_report on the synthetic sweep of test_sweep_summary.py: the files, the page's sections
and numbers, figures embedded byte for byte, the edge cases (one model, one direction, several
settings, no rows) and, where Chromium is installed, a screenshot of the page in a real browser."""

from __future__ import annotations

import base64
import errno
import importlib.util
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_sweep_summary import make_cells, make_row, make_rows, success

from deepdig_fast import io as dio
from deepdig_fast.io import is_temp_name
from deepdig_fast.sweep.report import differences, ranked, write_sweep_report
from deepdig_fast.sweep.summary import metric_spec, summarize_rows

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "screenshot_report.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "How to read this report",
    "Rankings",
    "Heatmaps per cell",
    "Metrics against covariates",
    "Largest differences from the reference model",
    "Cost of each cell",
)


class _Refs(HTMLParser):
    """Every src / href attribute of a page, and the tags it uses."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.refs += [(tag, k, v or "") for k, v in attrs if k in ("src", "href")]


def embedded_images(page: str) -> list[bytes]:
    """The PNG bytes of each <img> of a page, checking that the page loads nothing from elsewhere."""
    parser = _Refs()
    parser.feed(page)
    assert not parser.tags & {"script", "link", "iframe", "object"}, parser.tags
    low = page.lower()
    for bad in ("http://", "https://", "url(", "@import", "file://"):
        assert bad not in low, bad
    out = []
    for tag, attr, value in parser.refs:
        assert (tag, attr) == ("img", "src"), (tag, attr)
        prefix = "data:image/png;base64,"
        assert value.startswith(prefix), value[:60]
        out.append(base64.b64decode(value[len(prefix) :], validate=True))
    return out


def table_column(md: str, heading: str, col: int) -> list[str]:
    """Column `col` of the first table after `### heading` in the Markdown."""
    part = md.split(f"### {heading}\n", 1)[1]
    lines = [ln for ln in part.split("\n\n") if ln.startswith("| ")][0].splitlines()[2:]
    return [ln.strip("|").split(" | ")[col].strip() for ln in lines]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(folder, files written, sweep.md, sweep.html) of the synthetic sweep: 3 models and a running cell."""
    root = tmp_path_factory.mktemp("sweep")
    written = write_sweep_report(root, make_rows(), make_cells())
    return root, written, (root / "sweep.md").read_text("utf-8"), (root / "sweep.html").read_text("utf-8")


# --------------------------------------------------------------------------------------------------
# the full report
# --------------------------------------------------------------------------------------------------


def test_files_and_embedded_figures(report):
    root, written, md, page = report
    figures = {
        "figures/cells_success_rate.png",
        "figures/cells_oscillation.png",
        "figures/covariate_test_accuracy.png",
        "figures/covariate_robust_accuracy.png",
    }
    assert set(written) == figures | {"sweep.md", "sweep.html"}
    for rel, p in written.items():
        assert p == root / rel and p.is_file() and p.stat().st_size > 0, rel
    # every figure is in the page, byte for byte, in the order the Markdown names them
    in_md = re.findall(r"\]\((figures/[^)]+\.png)\)", md)
    assert set(in_md) == figures
    images = embedded_images(page)
    assert images == [(root / rel).read_bytes() for rel in in_md]
    assert all(b[:8] == PNG_MAGIC for b in images)
    # nothing half-written is left behind
    assert not [p for p in root.rglob("*") if is_temp_name(p.name)]


def test_sections_and_header(report):
    _, _, md, page = report
    assert md.startswith("# DeepDIG sweep: 4 models\n")
    for s in SECTIONS:
        assert f"## {s}\n" in md and f"<h2>{s}</h2>" in page
    assert "| models | 4: cnn-a, cnn-b, fcn, mlp (mlp: no results yet) |" in md
    assert "| cells | 4 (3 complete, 1 running) |" in md
    assert "| directions (rows) | 18, of which 1 skipped |" in md
    assert "| reference model | cnn-a" in md
    assert "`results.csv`" in md and "`results.parquet`" in md
    # the string covariate is named as not drawn; the numeric ones are
    assert "Not drawn (not numeric, or the same for every model): `family`." in md


def test_rankings_numbers_and_order(report):
    _, _, md, _ = report
    groups = summarize_rows(make_rows())
    for metric in ("success_rate", "oscillation", "margin_l2_mean"):
        spec = metric_spec(metric)
        want = [g["model"] for g in ranked(groups, spec)]
        assert table_column(md, spec.label, 1) == want
    assert table_column(md, "Success rate", 1) == ["cnn-a", "cnn-b", "fcn"]  # highest first
    assert table_column(md, "Margin (L2)", 1)[0] == "cnn-b"  # lowest first
    # cnn-a's success rate: mean and t-interval of its six directions
    vals = np.array([success("cnn-a", s, t) for s in range(3) for t in range(3) if s != t])
    half = 2.570582 * vals.std(ddof=1) / np.sqrt(6)  # t_{0.975, 5}
    line = next(ln for ln in md.split("### Success rate\n")[1].splitlines() if ln.startswith("| 1 | cnn-a |"))
    assert f"| {vals.mean():.1%} | [{vals.mean() - half:.1%}, {vals.mean() + half:.1%}] | 6 |" in line
    # cnn-b skipped one direction: n = 5; fcn has no m1 at all: listed last without a rank
    assert table_column(md, "Success rate", 4) == ["6", "5", "6"]
    assert table_column(md, "m1 of borderline samples", 1) == ["cnn-a", "cnn-b", "fcn"]
    assert "| – | fcn | – | – | 0 | – | – |\n\n### Margin (L2)" in md


def test_differences_from_reference(report):
    _, _, md, _ = report
    top = differences(make_rows(), "cnn-a", "success_rate")[0]
    assert (top["model"], top["source"], top["target"]) == ("fcn", 2, 0)
    assert top["difference"] == pytest.approx(success("fcn", 2, 0) - success("cnn-a", 2, 0))
    # the skipped direction of cnn-b and cnn-a's missing oscillation are not compared
    assert len(differences(make_rows(), "cnn-a", "success_rate")) == 6 + 5
    assert len(differences(make_rows(), "cnn-a", "oscillation")) == 5 + 4
    part = md.split("## Largest differences from the reference model\n")[1]
    first = [ln for ln in part.splitlines() if ln.startswith("| fcn ")][0]
    assert first == "| fcn | `default` | two → zero | 82.0% | 5.0% | -77.0 pp |"


def test_cost_table(report):
    _, _, md, _ = report
    assert "| `cnn-b--default` | cnn-b | `default` | complete | 45.0 s | 10.0 s | 9.0 s | 3.5 MB | 6 |" in md
    assert "| **total** |  |  | 3 complete, 1 running | 87.0 s | 30.0 s | 27.0 s | 10.5 MB | 18 |" in md
    assert "1 cell not complete, so not in the results table: `mlp--default` (running)." in md


def test_failed_write_keeps_previous_report(tmp_path, monkeypatch):
    """A full disk while staging sweep.html leaves every file of the previous report as it was."""
    write_sweep_report(tmp_path, make_rows(models=("cnn-a", "fcn")), make_cells(models=("cnn-a", "fcn")))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real = dio._write_temp

    def full_disk(path, write):
        if Path(path).name == "sweep.html":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(dio, "_write_temp", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_sweep_report(tmp_path, make_rows(), make_cells(), title="never written")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


# --------------------------------------------------------------------------------------------------
# edge cases
# --------------------------------------------------------------------------------------------------


def test_one_model_one_direction(tmp_path):
    rows = [make_row("cnn-a", 0, 1)]
    written = write_sweep_report(tmp_path, rows, make_cells(models=("cnn-a",), running=None))
    md = (tmp_path / "sweep.md").read_text("utf-8")
    assert md.startswith("# DeepDIG sweep: 1 model\n")
    # one value: a mean, no interval
    assert "| 1 | cnn-a | 82.0% | – | 1 | 82.0% | 82.0% |" in md
    assert "No comparison: the sweep has a single model." in md
    assert "no numeric covariate" in md and "covariate_" not in " ".join(written)
    # the oscillation of that direction is None: its heatmap says why it is missing
    assert "figures/cells_success_rate.png" in written and "figures/cells_oscillation.png" not in written
    assert "Figure not drawn: no direction of any cell has a value for it." in md
    embedded_images((tmp_path / "sweep.html").read_text("utf-8"))


def test_several_settings_and_reference(tmp_path):
    settings = ("seed=0", "seed=1")
    rows = make_rows(models=("cnn-a", "fcn"), settings=settings)
    rows = [r for r in rows if not (r["model"] == "cnn-a" and r["settings"] == "seed=1" and r["source"] == 2)]
    cells = make_cells(models=("cnn-a", "fcn"), settings=settings, running=None)
    write_sweep_report(tmp_path, rows, cells, reference="fcn", title="Seeds")
    md = (tmp_path / "sweep.md").read_text("utf-8")
    assert md.startswith("# Seeds\n") and "| settings combinations | 2: `seed=0`, `seed=1` |" in md
    assert "| # | model | settings | mean | 95% interval | n | min | max |" in md
    # differences from fcn: cnn-a's rows, each against fcn's row of the same settings and direction
    assert "metric(model) − metric(fcn)" in md
    diffs = differences(rows, "fcn", "success_rate")
    assert len(diffs) == 6 + 4 and diffs[0]["difference"] == pytest.approx(0.82 - 0.05)
    assert "| cnn-a | `seed=0` | two → zero | 5.0% | 82.0% | +77.0 pp |" in md
    with pytest.raises(ValueError, match="reference 'vit' is not a model"):
        write_sweep_report(tmp_path / "x", rows, cells, reference="vit")


def test_reference_without_results(tmp_path):
    cells = make_cells(models=("cnn-a", "fcn"), running=None)
    cells[0]["status"] = "missing"
    # class ids as a table read with pandas gives them beside gaps: whole floats
    rows = [{**r, "source": float(r["source"]), "target": float(r["target"])} for r in make_rows(models=("fcn",))]
    written = write_sweep_report(tmp_path, rows, cells)
    assert "figures/cells_success_rate.png" in written
    md = (tmp_path / "sweep.md").read_text("utf-8")
    assert "The reference model cnn-a has no results yet" in md
    assert "`cnn-a--default` (missing)" in md


def test_no_rows(tmp_path):
    written = write_sweep_report(tmp_path, [], make_cells(running=None) + make_cells(models=(), running="mlp"))
    assert set(written) == {"sweep.md", "sweep.html"}
    md = (tmp_path / "sweep.md").read_text("utf-8")
    assert "There are no results yet: the results table has no rows (3 of 4 cells complete)." in md
    assert "| `mlp--default` | mlp | `default` | running | – | – | – | 1.0 kB | 0 |" in md
    assert "## Rankings" not in md and "## Cost of each cell" in md
    page = (tmp_path / "sweep.html").read_text("utf-8")
    assert embedded_images(page) == [] and "<h1>DeepDIG sweep: 4 models</h1>" in page
    # nothing at all: still a page
    write_sweep_report(tmp_path / "empty", [], [])
    assert "cells.json lists no cell." in (tmp_path / "empty" / "sweep.md").read_text("utf-8")


# --------------------------------------------------------------------------------------------------
# a real browser
# --------------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def test_screenshot_script_without_chromium(monkeypatch, capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("screenshot_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "find_chromium", lambda: None)
    assert mod.main([str(tmp_path / "a.html"), str(tmp_path / "a.png")]) == 2
    assert "chromium is not installed" in capsys.readouterr().err


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_screenshot_in_chromium(report, tmp_path):
    from PIL import Image

    root = report[0]
    png = tmp_path / "sweep.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(root / "sweep.html"), str(png)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 50_000
    with Image.open(png) as im:
        assert im.size == (1400, 4000)
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    # not one colour: text, tables and the heatmaps' colours (pixels far from any grey)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200
    colourful = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    assert colourful.mean() > 0.005
    # the page fills the window: ink in its top and bottom halves
    dark = rgb.sum(axis=2) < 300
    assert dark[:2000].mean() > 0.001 and dark[2000:].mean() > 0.001
