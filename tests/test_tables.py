"""`deepdig table`: the paper's tables from small real run folders (and a hand-written atlas)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from deepdig_fast.adversarial import AdversarialConfig
from deepdig_fast.checkpoint import load_or_train_classifier
from deepdig_fast.cli import main
from deepdig_fast.data import load_mnist
from deepdig_fast.pipeline import PairConfig, run_pair
from deepdig_fast.readers import DamagedFileError
from deepdig_fast.rundir import ATLAS_KIND, ATLAS_ROW_FIELDS, ATLAS_SCHEMA
from deepdig_fast.tables import TableInputError, tex_escape, write_tables
from deepdig_fast.training import PGDConfig, recipe

S, T = 3, 5


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two run folders of one pair: a standard and an adversarially trained FCN, run with different
    autoencoder steps (mixed settings); and an atlas folder of two directions."""
    root = tmp_path_factory.mktemp("table-inputs")
    data = load_mnist().take(3000, 600)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for name, rec, steps in (
            ("std", recipe("fast", epochs=1, batch_size=64), 60),
            ("adv", recipe("fast", epochs=1, batch_size=64, regime="adversarial", pgd=PGDConfig(0.1, 0.02, 3)), 40),
        ):
            model, meta = load_or_train_classifier(root / f"{name}-ckpt", "fcn", data, recipe=rec, progress=False)
            cfg = PairConfig(adversarial=AdversarialConfig(steps=steps, infer_batch_size=1024), trajectory_segments=100)
            run_pair(
                model,
                data,
                S,
                T,
                cfg,
                out_dir=root / name,
                embedding_layer="embedding",
                progress=False,
                manifest_extra={"classifier_meta": meta, "dataset": "mnist", "name": f"{name}-fcn"},
            )
            runs[name] = root / name
    finally:
        torch.set_num_threads(threads)
    rows = []
    for s, t in ((0, 1), (1, 0)):
        row = dict.fromkeys(ATLAS_ROW_FIELDS)
        row.update(source=s, target=t, pairs=100, successes=90, success_rate=0.9, mean_attempts=12.5)
        row.update(oscillation=0.02, oscillation_ci_low=0.01, oscillation_ci_high=0.03, trajectory_segments=1000)
        row.update(m1_borderline=0.2, m1_train=0.8, svm_accuracy_borderline=0.5, svm_accuracy_train=0.99)
        rows.append(row)
    atlas = {
        "schema": ATLAS_SCHEMA,
        "kind": ATLAS_KIND,
        "strategy": "pairwise",
        "classes": [0, 1],
        "class_names": ["0", "1"],
        "dataset": {"name": "mnist"},
        "classifier": {"sha256": "ef" * 32, "class": "MnistCNN", "embedding_layer": "embedding"},
        "config": {"beta": 1e-4, "max_steps": 64, "method": "bisect", "seed": 0},
        "directions": rows,
    }
    (root / "atlas").mkdir()
    (root / "atlas" / "atlas.json").write_text(json.dumps(atlas), encoding="utf-8")
    runs["atlas"] = root / "atlas"
    return runs


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_tables_from_runs_and_an_atlas(folders, tmp_path):
    before = {k: _snapshot(v) for k, v in folders.items()}
    out = tmp_path / "tables"
    written = write_tables([folders["std"], folders["adv"], folders["atlas"]], out)
    assert set(written) == {"tables.md", "tables.tex", "borderline.csv", "trajectory.csv", "linearity.csv"}
    assert {k: _snapshot(v) for k, v in folders.items()} == before  # the inputs are only read

    results = {k: json.loads((folders[k] / "results.json").read_text()) for k in ("std", "adv")}
    border = _csv(out / "borderline.csv")
    assert len(border) == 2 + 2 + 2  # two directions per run, two atlas directions
    by = {(r["model"], r["direction"]): r for r in border}
    for model, key in (("M1", "std"), ("M2", "adv")):
        for direction in (f"{S}->{T}", f"{T}->{S}"):
            row = by[(model, direction.replace("->", "→"))]
            methods = results[key]["directions"][direction]["methods"]
            for m in ("deepdig", "rpbs", "epbs"):
                want = methods[m].get("success_rate")
                assert (row[f"{m}_success"] == "") if want is None else float(row[f"{m}_success"]) == want
            assert row["regime"] == ("standard" if key == "std" else "adversarial (PGD ε 0.1, 3 steps of 0.02)")
            assert row["recipe"] == "fast" and row["arch"] == "fcn" and row["dataset"] == "mnist"
    atlas_rows = [r for r in border if r["model"] == "M3"]
    assert [r["rpbs_success"] for r in atlas_rows] == ["n/a", "n/a"] and atlas_rows[0]["deepdig_success"] == "0.9"
    assert atlas_rows[0]["recipe"] == "unrecorded"

    lin = {r["model"]: r for r in _csv(out / "linearity.csv") if r["model"] in ("M1", "M2")}
    for model, key in (("M1", "std"), ("M2", "adv")):
        sets = results[key]["linearity"]["sets"]
        assert float(lin[model]["m1_borderline"]) == sets["borderline"]["m1"]
        assert float(lin[model]["svm_accuracy_test"]) == sets["test"]["accuracy"]
    traj = {(r["model"], r["direction"]): r for r in _csv(out / "trajectory.csv")}
    tr = results["std"]["directions"][f"{S}->{T}"]["trajectory"]
    assert float(traj[("M1", f"{S}→{T}")]["oscillation"]) == tr["oscillation"]
    assert traj[("M1", f"{S}→{T}")]["design"] == "estimate (100 segments, T 50)"

    md = (out / "tables.md").read_text(encoding="utf-8")
    # different autoencoder steps (and the atlas's other settings): flagged in every table
    assert md.count("> **Warning.** Mixed settings") == 3 and "adversarial.steps" in md
    assert "M2 adv-fcn (mnist fcn, fast, adversarial)" in md and "regime adversarial (PGD ε 0.1, 3 steps of 0.02)" in md
    assert "- **S1**: autoencoders 60 steps" in md and "- **S2**: autoencoders 40 steps" in md
    assert "atlas strategy pairwise" in md
    tex = (out / "tables.tex").read_text(encoding="utf-8")
    assert tex.count("\\toprule") == 3 and "\\%" in tex and "$\\varepsilon$" in tex
    assert "% WARNING: Mixed settings" in tex
    assert tex_escape("a_b & 5% {x}") == "a\\_b \\& 5\\% \\{x\\}"


def test_one_model_one_setting_is_not_flagged(folders, tmp_path):
    write_tables([folders["std"]], tmp_path / "t")
    assert "Warning" not in (tmp_path / "t" / "tables.md").read_text(encoding="utf-8")


def test_tables_may_go_to_the_folder_above_the_inputs(folders):
    """--out runs/exp beside runs/exp/RUN: the files land beside the run folders, not in them."""
    above = folders["std"].parent
    before = _snapshot(folders["std"])
    written = write_tables([folders["std"]], above)
    assert all(p.parent == above for p in written.values()) and _snapshot(folders["std"]) == before


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "DIR {missing}: not a folder"),
        ("empty", "DIR {empty}: neither results.json"),
        ("broken", "{broken}/results.json is not valid JSON"),
        ("twice", "DIR {std}: the same folder as {std}"),
        ("inside", "--out {inside}/tables.md is inside DIR {std}, which this command reads"),
        ("other-kind", "DIR {other}: results.json is of kind 'deepdig-atlas', expected 'deepdig-run'"),
    ],
)
def test_bad_inputs_are_one_line_errors_before_any_work(folders, tmp_path, capsys, case, message):
    empty, broken, other = tmp_path / "empty", tmp_path / "broken", tmp_path / "other"
    for p in (empty, broken, other):
        p.mkdir()
    (broken / "results.json").write_text("{not json", encoding="utf-8")
    (other / "results.json").write_text(json.dumps({"kind": ATLAS_KIND, "directions": {}}), encoding="utf-8")
    names = {
        "missing": str(tmp_path / "nope"),
        "empty": str(empty),
        "broken": str(broken),
        "std": str(folders["std"]),
        "inside": str(folders["std"] / "tables"),
        "other": str(other),
    }
    dirs = {
        "missing": [names["std"], names["missing"]],
        "empty": [names["empty"]],
        "broken": [names["broken"]],
        "twice": [names["std"], names["std"]],
        "inside": [names["std"]],
        "other-kind": [names["other"]],
    }[case]
    out = names["inside"] if case == "inside" else str(tmp_path / "out")
    code = main(["table", *dirs, "--out", out])
    err = capsys.readouterr().err
    damaged = case == "broken"  # a damaged file exits 1 as in every command; a wrong argument 2
    assert code == (1 if damaged else 2) and len(err.strip().splitlines()) == 1
    assert message.format(**names) in err
    assert not Path(out).exists()  # nothing written
    with pytest.raises(DamagedFileError if damaged else TableInputError):
        write_tables(dirs, out)


def test_run_report_states_the_classifiers_training(folders, tmp_path):
    import shutil

    from deepdig_fast.report import write_report

    run = shutil.copytree(folders["adv"], tmp_path / "adv")
    write_report(run)
    md = (run / "report.md").read_text(encoding="utf-8")
    assert (
        "| classifier training | recipe fast, regime adversarial (PGD ε 0.1, 3 steps of 0.02); 1 epochs, batch 64, "
        "Adam lr 0.01 |" in md
    )
