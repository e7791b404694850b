"""Damaged and tampered files under `deepdig report`, `deepdig table` and `deepdig compare`.

A file the command cannot do without (results.json, atlas.json, manifest.json) that is truncated,
nested 200,000 deep, holds 10**400 or has a field of the wrong type ends the command with one line
naming the file and what is wrong, exit status 1, nothing written. A file the run report can do
without (a borderline .pt, the pair ends, timings.json) that is unreadable, damaged or missing
although results.json says the run wrote it: the report is written and says so where the section
would be, and the command prints one line naming the file and exits 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_atlas_report import few_metrics, make_atlas, write_atlas
from test_report import S, T, small_config

from deepdig_fast.atlas_report import atlas_matrix
from deepdig_fast.cli import main
from deepdig_fast.document import fmt, fmt_g, int_text, num, pct, secs
from deepdig_fast.pipeline import run_pair
from deepdig_fast.readers import MAX_DEPTH, DamagedFileError, read_json, read_json_if_present

HUGE = 10**400
DEEP = '{"a":' * 200_000 + "1" + "}" * 200_000
ST, TS = f"{S}->{T}", f"{T}->{S}"


@pytest.fixture(scope="module")
def run_folder(small_fcn, tmp_path_factory):
    """A finished run folder of classes 3, 5 with every method and the characterization (short
    trajectory segments), and how to run it again into a folder."""
    model, data = small_fcn
    small = data.take(3000, 1000)
    config = small_config(trajectory_T=10, trajectory_segments=300)

    def run(folder: Path):
        return run_pair(model, small, S, T, config, out_dir=folder, embedding_layer="embedding", progress=False)

    out = tmp_path_factory.mktemp("tamper") / "run"
    run(out)
    return out, run


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    root = tmp_path_factory.mktemp("tamper-atlases")
    a = write_atlas(root / "a", make_atlas())
    (a / "manifest.json").write_text(json.dumps({"kind": "deepdig-atlas", "classifier_meta": {}}), encoding="utf-8")
    return a, write_atlas(root / "b", make_atlas(sha="cd" * 32))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_error_line(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"deepdig {command}: error: "), lines[0]
    assert "Traceback" not in captured.err and "unexpected" not in captured.err, lines[0]
    return lines[0]


# --------------------------------------------------------------------------------------------------
# a file the command cannot do without: one line, exit status 1, nothing written
# --------------------------------------------------------------------------------------------------


def _tampered(case: str, kind: str, text: str) -> tuple[str, str]:
    """(the file's new text, what the error line must say) for one tampering of a results.json
    (kind "run") or an atlas.json (kind "atlas")."""
    if case == "truncated":
        return text[: len(text) // 2], "is not valid JSON"
    if case == "deep":
        return DEEP, f"nests deeper than {MAX_DEPTH} levels"
    doc = json.loads(text)
    if case == "huge":
        if kind == "run":
            doc["directions"][ST]["methods"]["deepdig"]["pairs"] = HUGE
            field = f'directions["{ST}"].methods.deepdig.pairs'
        else:
            doc["directions"][0]["pairs"] = HUGE
            field = "directions[0].pairs"
        return json.dumps(doc), f"'{field}' holds an integer of 401 digits"
    if case == "directions-str":
        doc["directions"] = "x"
        return json.dumps(doc), "'directions' must be an object of directions" if kind == "run" else (
            "'directions' must be a list of objects, got str"
        )
    if case == "rows-not-dicts":
        if kind == "run":
            doc["directions"] = {ST: 1, TS: 2}
            return json.dumps(doc), f"'directions[\"{ST}\"]' must be an object, got 1"
        doc["directions"] = [1, 2]
        return json.dumps(doc), "'directions[0]' must be an object, got 1"
    if case == "missing-key":
        del doc["directions"]
        return json.dumps(doc), "'directions' is missing"
    if case == "wrong-type-inside":
        if kind == "run":
            doc["directions"][ST]["trajectory"]["ci95"] = [0.1]
            return json.dumps(doc), f"'directions[\"{ST}\"].trajectory.ci95' must be a list of 2 numbers"
        doc["generators"][0]["sources"] = "x"
        return json.dumps(doc), "'generators[0].sources' must be a list of class ids, got str"
    raise AssertionError(case)


CASES = ["truncated", "deep", "huge", "directions-str", "rows-not-dicts", "missing-key", "wrong-type-inside"]


@pytest.mark.parametrize("case", CASES)
def test_report_on_a_tampered_results_json(run_folder, tmp_path, capsys, case):
    run = _copy(run_folder[0], tmp_path / "run")
    path = run / "results.json"
    text, says = _tampered(case, "run", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(run)]) == 1
    line = _one_error_line(capsys, "report")
    assert str(path) in line and says in line, line
    assert not (run / "report.md").exists() and not (run / "figures").exists()


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", ["run", "atlas"])
def test_table_on_a_tampered_input(run_folder, atlases, tmp_path, capsys, kind, case):
    folder = _copy(run_folder[0] if kind == "run" else atlases[0], tmp_path / kind)
    path = folder / ("results.json" if kind == "run" else "atlas.json")
    text, says = _tampered(case, kind, path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "tables"
    capsys.readouterr()
    assert main(["table", str(folder), "--out", str(out)]) == 1
    line = _one_error_line(capsys, "table")
    assert str(path) in line and says in line, line
    assert not out.exists()


@pytest.mark.parametrize("case", CASES)
def test_compare_on_a_tampered_atlas(atlases, tmp_path, capsys, case):
    a = _copy(atlases[0], tmp_path / "a")
    path = a / "atlas.json"
    text, says = _tampered(case, "atlas", path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "cmp"
    capsys.readouterr()
    assert main(["compare", str(a), str(atlases[1]), "--out", str(out)]) == 1
    line = _one_error_line(capsys, "compare")
    assert str(path) in line and says in line, line
    assert not (out / "compare.json").exists()


@pytest.mark.parametrize("command", ["report", "table", "compare"])
def test_a_tampered_manifest_is_one_line_too(run_folder, atlases, tmp_path, capsys, command):
    folder = _copy(atlases[0] if command == "compare" else run_folder[0], tmp_path / "in")
    (folder / "manifest.json").write_text(DEEP, encoding="utf-8")
    argv = {
        "report": ["report", str(folder)],
        "table": ["table", str(folder), "--out", str(tmp_path / "out")],
        "compare": ["compare", str(folder), str(atlases[1]), "--out", str(tmp_path / "out")],
    }[command]
    capsys.readouterr()
    assert main(argv) == 1
    line = _one_error_line(capsys, command)
    assert f"{folder / 'manifest.json'} nests deeper than {MAX_DEPTH} levels" in line, line
    manifest = json.loads((run_folder[0] / "manifest.json").read_text(encoding="utf-8"))
    if command != "compare":  # a field the report formats, of the wrong type
        (folder / "manifest.json").write_text(json.dumps({**manifest, "classifier_meta": "x"}), encoding="utf-8")
        assert main(argv) == 1
        line = _one_error_line(capsys, command)
        assert f"{folder / 'manifest.json'}: 'classifier_meta' must be an object, got str" in line, line


def test_the_untouched_folders_pass(run_folder, atlases, tmp_path, capsys, monkeypatch):
    """The declared shapes fit what `deepdig run` writes (and the atlases of test_atlas_report)."""
    few_metrics(monkeypatch, "success_rate")
    run = _copy(run_folder[0], tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert "incomplete" not in (run / "report.md").read_text(encoding="utf-8")
    assert main(["table", str(run), str(atlases[0]), "--out", str(tmp_path / "tables")]) == 0
    assert main(["compare", str(atlases[0]), str(atlases[1]), "--out", str(tmp_path / "cmp")]) == 0
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------------------
# a file the report can do without: the report is written, says so, and the command exits 1
# --------------------------------------------------------------------------------------------------


def test_unreadable_borderline_file(run_folder, tmp_path, capsys):
    run = _copy(run_folder[0], tmp_path / "run")
    rel = f"borderline/deepdig_{S}-{T}.pt"
    data = (run / rel).read_bytes()
    (run / rel).write_bytes(data[: len(data) // 2])  # truncated: torch.load fails
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert results["directions"][ST]["methods"]["deepdig"]["successes"] > 0
    capsys.readouterr()
    assert main(["report", str(run)]) == 1
    line = _one_error_line(capsys, "report")
    assert f"{run / 'report.md'} and report.html are incomplete: {rel} is unreadable (" in line, line
    assert line.endswith("; rerun the same `deepdig run` command to compute it again"), line
    md = (run / "report.md").read_text(encoding="utf-8")
    assert (run / "report.html").is_file()
    assert "This report is incomplete: 1 file of the folder could not be used" in md
    assert f"DeepDIG's borderline samples of {S} → {T} cannot be shown: {rel} is unreadable" in md
    assert f"DeepDIG is not in this figure: {rel} is unreadable" in md
    assert f"DeepDIG has no borderline samples for {S} → {T}" not in md
    assert "## Problems while writing this report" in md
    # what the line says to do works: the run's stage store computes the unreadable file again
    run_folder[1](run)
    assert torch.load(run / rel, weights_only=True)["status"].shape[0] > 0
    assert main(["report", str(run)]) == 0
    assert "incomplete" not in (run / "report.md").read_text(encoding="utf-8")


def test_several_damaged_files_are_each_named(run_folder, tmp_path, capsys):
    run = _copy(run_folder[0], tmp_path / "run")
    (run / f"borderline/rpbs_{T}-{S}.pt").write_bytes(b"\x00garbage" * 100)
    torch.save({"points": torch.zeros(2, 4)}, run / f"borderline/epbs_{S}-{T}.pt")  # readable, but not the search
    (run / f"components/ae2_{T}-{S}.pt").unlink()
    (run / f"characterize/trajectory_{T}-{S}.pt").unlink()
    (run / f"characterize/linearity_{S}-{T}.pt").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    (run / "timings.json").write_text('{"seconds": 1e999}', encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(run)]) == 1
    line = _one_error_line(capsys, "report")
    assert "are incomplete: timings.json: 'seconds' holds 1e999" in line and "(5 more problems are listed" in line
    md = (run / "report.md").read_text(encoding="utf-8")
    assert "This report is incomplete: 6 files of the folder could not be used" in md
    assert f"No distance histograms: characterize/linearity_{S}-{T}.pt is unreadable (" in md
    assert f"borderline/rpbs_{T}-{S}.pt is unreadable (" in md
    assert (
        f"borderline/epbs_{S}-{T}.pt is damaged (no per-pair tensor 'status'); delete it and rerun the same "
        "`deepdig run` command to compute it again" in md
    )
    assert f"components/ae2_{T}-{S}.pt is missing, though results.json reports DeepDIG's pairs for {T} → {S}" in md
    assert f"No oscillation histogram of {T} → {S}: characterize/trajectory_{T}-{S}.pt is missing" in md
    assert "| wall time | unknown: timings.json cannot be used" in md
    assert f"Not shown in the strips: DeepDIG pairs: components/ae2_{T}-{S}.pt is missing" in md


def test_a_file_the_run_did_not_write_is_no_problem(run_folder, tmp_path, capsys):
    run = _copy(run_folder[0], tmp_path / "run")
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    results["directions"][TS]["methods"]["epbs"] = {"pairs": 0, "skipped": "no embedding layer"}
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    (run / f"borderline/epbs_{T}-{S}.pt").unlink()
    (run / "timings.json").unlink()
    assert main(["report", str(run)]) == 0
    assert "incomplete" not in (run / "report.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# the reader and the formatters on their own
# --------------------------------------------------------------------------------------------------


def test_read_json_bounds(tmp_path):
    p = tmp_path / "x.json"
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    p.write_text(f'{{"a": {nested}, "s": "{"[" * 500}"}}', encoding="utf-8")  # brackets in a string do not count
    assert read_json(p, "")["s"] == "[" * 500
    p.write_text(f'{{"a": [{nested}]}}', encoding="utf-8")
    with pytest.raises(DamagedFileError, match=f"nests deeper than {MAX_DEPTH} levels"):
        read_json(p, "")
    for text, says in (
        ('{"a": {"b": [1, NaN]}}', r"'a\.b\[1\]' holds NaN"),
        ('{"a": -Infinity}', "'a' holds -Infinity"),
        ('{"a": 1e400}', "'a' holds 1e400, beyond the range of a float"),
        ('{"a": -' + "9" * 5000 + "}", "'a' holds an integer of 5000 digits"),
        ("[1, 2]", "must hold a JSON object, got a list of 2"),
    ):
        p.write_text(text, encoding="utf-8")
        with pytest.raises(DamagedFileError, match=says):
            read_json(p, "")
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DamagedFileError, match="not UTF-8"):
        read_json(p, "")
    assert read_json_if_present(tmp_path / "absent.json") is None
    with pytest.raises(FileNotFoundError, match="absent.json"):
        read_json(tmp_path / "absent.json", "")


def test_formatters_and_matrices_take_any_number():
    for v in (HUGE, -HUGE, float("inf"), float("nan"), "x", [1]):
        assert num(v) is None
        assert int_text(v) == fmt(v) == fmt_g(v) == pct(v) == secs(v) == "–"
    assert int_text(2**63 + 1) == f"{2**63 + 1:,}"  # exact, not through a float
    atlas = make_atlas()
    atlas["directions"][0]["pairs"] = HUGE
    with pytest.raises(ValueError, match=r"atlas: 'directions\[0\]\.pairs' must be a count .*, got an integer of 401"):
        atlas_matrix(atlas, "third_class_share")
    atlas["directions"] = "x"
    with pytest.raises(ValueError, match="atlas: 'directions' must be a list of objects, got str"):
        atlas_matrix(atlas, "success_rate")
