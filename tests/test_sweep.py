"""`deepdig sweep`: the spec's validation, cells and their folders, the results table (one process,
two --shard launchers then a collecting run, two torchrun nodes), resumption after a kill,
retention, load_results on sweeps, atlases and runs, model names in `deepdig table`."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepdig_fast.sweep.spec import SpecError, parse_spec

MEASURED = ("direction_seconds", "cell_seconds")  # wall times: the only columns that may differ

SETTINGS = """
[settings]
steps = 40
max_per_class = 120
trajectory_segments = 60
"""


def spec_text(a: str, b: str, extra: str = "", settings: str = SETTINGS) -> str:
    return (
        f'dataset = "mnist"\nclasses = [3, 5, 8]\n{extra}\n{settings}\n'
        f'[[models]]\nname = "fcn-a"\nclassifier = "{a}"\ncovariates = {{ robust_accuracy = 0.1, regime_name = "standard" }}\n\n'
        f'[[models]]\nname = "fcn-b"\nclassifier = "{b}"\ncovariates = {{ robust_accuracy = 0.4, regime_name = "other" }}\n'
    )


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for k in ("WORLD_SIZE", "RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        env.pop(k, None)
    return env


def sweep_cmd(spec: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "deepdig_fast",
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--threads",
        "1",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def run(cmd, env=None, timeout=900, ok=True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())
    if ok:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return r


def stamps(folder: Path, pattern: str = "*") -> dict:
    """mtime of every file under folder (the lock file aside: probing a lock opens it)."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob(pattern) if p.name != ".lock"}


def table(out: Path) -> list[dict]:
    """results.csv without the measured columns."""
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    for r in rows:
        for c in MEASURED:
            r.pop(c)
    return rows


@pytest.fixture(scope="module")
def checkpoints(tiny_fcn_checkpoint, tmp_path_factory):
    """Two checkpoints of one FCN (copies: two files, two names) for a 2-model sweep."""
    d = tmp_path_factory.mktemp("zoo")
    paths = []
    for name in ("a", "b"):
        for suffix in (".pt", ".json"):
            shutil.copy(Path(tiny_fcn_checkpoint).with_suffix(suffix), d / f"{name}{suffix}")
        paths.append(str(d / f"{name}.pt"))
    return paths


@pytest.fixture(scope="module")
def spec(checkpoints, tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "sweep.toml"
    p.write_text(spec_text(*checkpoints))
    return p


@pytest.fixture(scope="module")
def one_process(spec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "sweep"
    run(sweep_cmd(spec, out))
    return out


# --------------------------------------------------------------------------------------------------
# the spec
# --------------------------------------------------------------------------------------------------

GOOD_MODEL = '[[models]]\nname = "m"\nclassifier = "x.pt"\n'

BAD_SPECS = [
    ("dataset = 'mnist'\nfoo = 1\n" + GOOD_MODEL, "unknown top-level key 'foo'"),
    ("classes = [1]\n" + GOOD_MODEL, "classes: expected"),
    ("classes = [1, 1]\n" + GOOD_MODEL, "classes: expected different classes"),
    ("classes = [1, 2]\npairs = ['1-2']\n" + GOOD_MODEL, "classes and pairs"),
    ("pairs = ['1-1']\n" + GOOD_MODEL, "pairs[0]: expected two different classes"),
    ("pair = [3]\n" + GOOD_MODEL, "pair: expected two different classes"),
    ("channels = 2\n" + GOOD_MODEL, "channels: expected 1 or 3"),
    ("[settings]\nout = 'x'\n" + GOOD_MODEL, "settings.out: set by the sweep"),
    ("[settings]\nsteps = {a = 1}\n" + GOOD_MODEL, "settings.steps: expected a string, number or boolean"),
    ("[settings]\nTrajectory = 1\n" + GOOD_MODEL, "settings.Trajectory: expected an option name"),
    ("[grid]\nseed = 3\n" + GOOD_MODEL, "grid.seed: expected a non-empty list"),
    ("[grid]\nseed = [1, 1]\n" + GOOD_MODEL, "grid.seed: expected different values"),
    ("[zip]\nseed = [1, 2]\nsteps = [1]\n" + GOOD_MODEL, "zip: every list must have the same length"),
    ("[grid]\nseed = [1]\n[zip]\nseed = [2]\n" + GOOD_MODEL, "grid.seed and zip.seed"),
    ("[settings]\nseed = 1\n[grid]\nseed = [1, 2]\n" + GOOD_MODEL, "settings.seed is also swept"),
    ("dataset = 'mnist'\n", "models: expected one or more"),
    ("[[models]]\nclassifier = 'x'\n", "models[0].name: expected a name"),
    ("[[models]]\nname = 'a b'\nclassifier = 'x'\n", "models[0].name: expected a name"),
    (GOOD_MODEL + GOOD_MODEL, "models[1].name: expected a name not used by models[0]"),
    ("[[models]]\nname = 'm'\n", "models[0]: expected a classifier"),
    (GOOD_MODEL + "covariates = 3\n", "models[0].covariates: expected a table"),
    (GOOD_MODEL + "covariates = { seed = 1 }\n", "models[0].covariates.seed: expected a name that is not a column"),
    (GOOD_MODEL + "covariates = { acc = [1] }\n", "models[0].covariates.acc: expected a number"),
    ("[grid]\nseed = [0, 1]\n" + GOOD_MODEL + "seed = 3\n", "models[0].seed: also swept"),
    ("reference = 'nobody'\n" + GOOD_MODEL, "reference: expected the name of one of the models (m)"),
    ("retention = 'some'\n" + GOOD_MODEL, "retention: expected 'all' or 'results'"),
    ("track = ['neptune']\n" + GOOD_MODEL, "track: expected a list of tensorboard, mlflow, wandb"),
    ("dataset = \n", "not valid TOML"),
]


@pytest.mark.parametrize("text,message", BAD_SPECS)
def test_a_bad_spec_is_one_line_naming_the_key(text, message):
    with pytest.raises(SpecError) as e:
        parse_spec(text, Path("s.toml"))
    assert message in str(e.value) and str(e.value).startswith("s.toml: ")
    assert "\n" not in str(e.value)


def test_cells_expand_grid_times_zip_model_major():
    s = parse_spec(
        "classes = [0, 1]\n[settings]\nbeta = 1e-3\n[grid]\nseed = [0, 1]\n[zip]\nsteps = [10, 20]\n"
        "trajectory_segments = [5, 6]\n"
        + GOOD_MODEL
        + '[[models]]\nname = "n"\nmodel = "pkg.mod:make"\nweights = "w.pt"\n'
    )
    cells = s.cells()
    assert [c.id for c in cells] == [
        f"{m}__steps-{st}_trajectory_segments-{ts}_seed-{seed}"
        for m in ("m", "n")
        for st, ts in ((10, 5), (20, 6))
        for seed in (0, 1)
    ]
    c = cells[1]
    assert c.settings == "steps=10,trajectory_segments=5,seed=1"
    assert c.options == {
        "dataset": "mnist",
        "classes": "0,1",
        "beta": 1e-3,
        "steps": 10,
        "trajectory_segments": 5,
        "seed": 1,
        "classifier": "x.pt",
    }
    assert c.sources["beta"] == "settings.beta" and c.sources["classifier"] == "models[0].classifier"
    assert cells[4].options["model"] == "pkg.mod:make" and cells[4].options["weights"] == "w.pt"
    # nothing swept: one cell per model, named by the model
    assert [c.id for c in parse_spec(GOOD_MODEL).cells()] == ["m"]


def test_the_issue_minimal_spec_parses_as_written():
    text = (
        'dataset = "mnist"\nclasses = [0, 1, 2]\n\n[settings]\nsteps = 100\ntrajectory_segments = 100\n\n'
        '[[models]]\nname = "cnn-a"\nclassifier = "checkpoints/mnist-cnn.pt"\n\n'
        '[[models]]\nname = "fcn-b"\nclassifier = "checkpoints/mnist-fcn.pt"\n'
    )
    cells = parse_spec(text).cells()
    assert [(c.id, c.kind, c.settings) for c in cells] == [("cnn-a", "atlas", "default"), ("fcn-b", "atlas", "default")]
    assert cells[1].options == {
        "dataset": "mnist",
        "classes": "0,1,2",
        "steps": 100,
        "trajectory_segments": 100,
        "classifier": "checkpoints/mnist-fcn.pt",
    }


BAD_OPTIONS = [
    ("[settings]\nstepz = 40\n", "settings.stepz: not an option of `deepdig atlas`; did you mean steps?"),
    ("[settings]\nsteps = -3\n", "settings.steps (cell fcn-a): argument --steps"),
    ("[settings]\nno_trajectory = 3\n", "settings.no_trajectory: expected true or false"),
    ("[settings]\nbeta = true\n", "settings.beta: expected a value for --beta"),
    ("[settings]\nstrategy = 'diagonal'\n", "settings.strategy (cell fcn-a): argument --strategy"),
]


@pytest.mark.parametrize("settings,message", BAD_OPTIONS)
def test_a_bad_cell_option_names_its_spec_key_before_any_work(settings, message, checkpoints, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(*checkpoints, settings=settings))
    r = run(sweep_cmd(spec, tmp_path / "out"), ok=False, timeout=120)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith(f"deepdig sweep: error: {spec}: ")
    assert not (tmp_path / "out").exists()


def test_a_folder_another_launcher_is_setting_up_is_a_sweep_folder(tmp_path):
    """Two launchers started at once: the first may have made cells/ and done/ (a launcher writes
    manifest.json before them, but one killed in between leaves them) when the second checks."""
    from deepdig_fast.cli.errors import CLIError
    from deepdig_fast.cli.sweep import _check_sweep_folder

    root = tmp_path / "sweep"
    (root / "cells").mkdir(parents=True)
    (root / "done").mkdir()
    (root / ".manifest.json.x.tmp").write_text("")
    _check_sweep_folder(root)
    (root / "notes.txt").write_text("mine")
    with pytest.raises(CLIError, match="not a sweep folder"):
        _check_sweep_folder(root)


def test_missing_checkpoint_and_bad_folders_are_refused_before_any_work(checkpoints, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(checkpoints[0], str(tmp_path / "absent.pt")))
    r = run(sweep_cmd(spec, tmp_path / "out"), ok=False, timeout=120)
    assert r.returncode != 0 and "absent" in r.stderr and not (tmp_path / "out").exists()
    spec.write_text(spec_text(*checkpoints))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    r = run(sweep_cmd(spec, foreign), ok=False, timeout=120)
    assert r.returncode == 2 and "not a sweep folder" in r.stderr
    r = run(sweep_cmd(spec, tmp_path, "--dry-run"), ok=False, timeout=120)  # the spec's own folder
    assert r.returncode == 2 and "SPEC" in r.stderr, r.stderr


def test_dry_run_lists_cells_and_runs_nothing(spec, tmp_path):
    out = tmp_path / "sweep"
    r = run(sweep_cmd(spec, out, "--dry-run", "--shard", "2/2"), timeout=120)
    assert "2 models x 1 settings combinations = 2 cells" in r.stdout
    assert "6 directions, 6 generators (pairwise) x 40 steps" in r.stdout
    assert "order of this launcher: fcn-b, fcn-a" in r.stdout
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# running: one process, shards, torchrun nodes, a kill
# --------------------------------------------------------------------------------------------------


def test_one_process_sweep_folder_and_table(one_process):
    out = one_process
    assert sorted(p.name for p in (out / "cells").iterdir()) == ["fcn-a", "fcn-b"]
    for cell in ("fcn-a", "fcn-b"):
        assert (out / "cells" / cell / "atlas.json").is_file()
        mark = json.loads((out / "done" / f"{cell}.json").read_text())
        atlas = json.loads((out / "cells" / cell / "atlas.json").read_text())
        assert mark["run_id"] == atlas["run_id"]
        manifest = json.loads((out / "cells" / cell / "manifest.json").read_text())
        assert manifest["name"] == cell and manifest["command"][:2] == ["deepdig", "atlas"]
    rows = table(out)
    assert len(rows) == 12
    assert [(r["model"], r["source"], r["target"]) for r in rows[:2]] == [("fcn-a", "3", "5"), ("fcn-a", "3", "8")]
    assert {r["robust_accuracy"] for r in rows} == {"0.1", "0.4"}
    assert all(r["folder"] == f"cells/{r['cell']}" for r in rows)
    # the per-direction numbers are the cell's atlas.csv
    atlas_rows = list(csv.DictReader(io.StringIO((out / "cells" / "fcn-b" / "atlas.csv").read_text())))
    mine = [r for r in rows if r["model"] == "fcn-b"]
    for a, b in zip(atlas_rows, mine):
        for k in ("source", "target", "success_rate", "oscillation", "m1_borderline", "margin_l2_mean"):
            assert a[k] == b[k], k
    cells = json.loads((out / "cells.json").read_text())["cells"]
    assert [c["status"] for c in cells] == ["complete", "complete"]
    assert all(c["size_bytes"] > 0 and c["seconds"] > 0 for c in cells)
    assert (out / "sweep.html").is_file() and (out / "results.parquet").is_file()


def test_rerun_collects_without_recomputing(one_process, spec):
    before = stamps(one_process / "cells", "*.pt")
    rows = table(one_process)
    # --out spelt another way (relative), other threads: the cells are still complete
    cmd = sweep_cmd(spec, Path(os.path.relpath(one_process)), "--no-report")
    cmd[cmd.index("--threads") + 1] = "2"
    r = run(cmd, timeout=300)
    assert "sweep of 2 cells (2 complete)" in r.stdout
    assert stamps(one_process / "cells", "*.pt") == before
    assert table(one_process) == rows


def test_two_shards_then_a_collecting_run_give_the_one_process_table(one_process, spec, tmp_path):
    out = tmp_path / "sweep"
    procs = [
        subprocess.Popen(
            sweep_cmd(spec, out, "--shard", f"{i}/2", "--no-report"),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # each cell computed once: one launcher per cell wrote its units
    for cell in ("fcn-a", "fcn-b"):
        t = json.loads((out / "cells" / cell / "timings.json").read_text())
        assert t["units_reused"] == 0 and t["units_computed"] == 12
    r = run(sweep_cmd(spec, out, "--collect-only"), timeout=300)
    assert "sweep of 2 cells (2 complete)" in r.stdout
    assert table(out) == table(one_process)


def test_slurm_array_variables_choose_the_shard(spec, tmp_path):
    env = dict(_env(), SLURM_ARRAY_TASK_ID="5", SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_TASK_MIN="4")
    r = run(sweep_cmd(spec, tmp_path / "s", "--dry-run"), env=env, timeout=120)
    assert "launcher 2 of 2" in r.stdout and "order of this launcher: fcn-b, fcn-a" in r.stdout
    env["SLURM_ARRAY_TASK_ID"] = "9"
    r = run(sweep_cmd(spec, tmp_path / "s", "--dry-run"), env=env, ok=False, timeout=120)
    assert r.returncode == 2 and "SLURM_ARRAY_TASK_ID=9" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_torchrun_nodes_give_the_one_process_table(one_process, spec, tmp_path):
    out = tmp_path / "sweep"
    port = _free_port()
    procs = []
    for node in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc-per-node",
            "1",
            "--node-rank",
            str(node),
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            str(port),
            "-m",
            "deepdig_fast",
            *sweep_cmd(spec, out, "--no-report")[3:],
        ]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-3000:] for o in outs]
    for cell in ("fcn-a", "fcn-b"):
        t = json.loads((out / "cells" / cell / "timings.json").read_text())
        assert t["world_size"] == 2 and {v["rank"] for v in t["units"].values()} == {0, 1}
    assert table(out) == table(one_process)


def test_killed_sweep_resumes_to_the_same_table(one_process, spec, tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(
        sweep_cmd(spec, out, "--no-report"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 600
    try:  # kill it inside the second cell, the first complete
        while time.time() < deadline and not list((out / "cells" / "fcn-b" / "units").glob("generators/*.pt")):
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (out / "done" / "fcn-a.json").is_file() and not (out / "done" / "fcn-b.json").exists()
    first = stamps(out / "cells" / "fcn-a")
    kept = stamps(out / "cells" / "fcn-b" / "units", "*.pt")
    run(sweep_cmd(spec, out, "--no-report"))
    assert stamps(out / "cells" / "fcn-a") == first  # not even rerun
    assert all(p.stat().st_mtime_ns == m for p, m in kept.items())  # finished units reused
    t = json.loads((out / "cells" / "fcn-b" / "timings.json").read_text())
    assert t["units_reused"] == len(kept)
    assert table(out) == table(one_process)


def test_retention_results_drops_generators_and_keeps_the_table(one_process, checkpoints, tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(spec_text(*checkpoints, extra='retention = "results"'))
    out = tmp_path / "sweep"
    run(sweep_cmd(spec, out, "--no-report"))
    for cell in ("fcn-a", "fcn-b"):
        assert not list((out / "cells" / cell / "units" / "generators").glob("*.pt"))
        assert json.loads((out / "done" / f"{cell}.json").read_text())["freed_bytes"] > 0
    assert table(out) == table(one_process)
    before = stamps(out / "cells")
    run(sweep_cmd(spec, out, "--no-report"))  # complete cells are not recomputed
    assert stamps(out / "cells") == before


# --------------------------------------------------------------------------------------------------
# load_results and names
# --------------------------------------------------------------------------------------------------


def test_load_results_reads_sweeps_atlases_and_runs(one_process, tiny_fcn_checkpoint, tmp_path):
    pd = pytest.importorskip("pandas")
    from deepdig_fast.sweep.results import COST_COLUMNS, load_results, summarize_results

    df = load_results(one_process)
    assert len(df) == 12 and list(df["model"].unique()) == ["fcn-a", "fcn-b"]
    assert df["robust_accuracy"].dtype.kind == "f" and set(df["regime_name"]) == {"standard", "other"}
    atlas = load_results(one_process / "cells" / "fcn-a")
    assert len(atlas) == 6 and atlas["model"].iloc[0] == "fcn-a"
    assert atlas["success_rate"].tolist() == df[df.model == "fcn-a"]["success_rate"].tolist()
    run_dir = tmp_path / "run"
    run(
        [
            sys.executable,
            "-m",
            "deepdig_fast",
            "run",
            "--pair",
            "3,5",
            "--classifier",
            tiny_fcn_checkpoint,
            "--steps",
            "30",
            "--trajectory-segments",
            "50",
            "--no-report",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(run_dir),
            "--name",
            "my-fcn",
        ],
        timeout=600,
    )
    both = load_results([one_process, run_dir])
    runs = both[both.kind == "run"]
    assert len(runs) == 2 and set(runs.model) == {"my-fcn"}
    assert runs["rpbs_success_rate"].notna().all() and runs["margin_l2_mean"].isna().all()
    res = json.loads((run_dir / "results.json").read_text())
    assert runs["success_rate"].tolist() == [
        res["directions"][k]["methods"]["deepdig"]["success_rate"] for k in ("3->5", "5->3")
    ]
    assert set(COST_COLUMNS) <= set(both.columns)
    s = summarize_results(df)
    assert list(s["model"]) == ["fcn-a", "fcn-b"] and isinstance(s, pd.DataFrame)
    a = df[(df.model == "fcn-a") & df.skipped.isna()]["success_rate"]
    assert s["success_rate_mean"].iloc[0] == pytest.approx(a.mean())
    assert s["success_rate_n"].iloc[0] == a.notna().sum()


def test_parquet_and_csv_hold_the_same_table(one_process):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    a = pd.read_parquet(one_process / "results.parquet")
    b = pd.read_csv(one_process / "results.csv")
    assert list(a.columns) == list(b.columns)
    for c in ("source", "target", "success_rate", "oscillation", "robust_accuracy"):
        assert a[c].tolist() == pytest.approx(b[c].tolist(), nan_ok=True)


def test_table_names_models_as_the_user_named_them(one_process, tmp_path):
    out = tmp_path / "tables"
    run(
        [
            sys.executable,
            "-m",
            "deepdig_fast",
            "table",
            str(one_process / "cells" / "fcn-a"),
            str(one_process / "cells" / "fcn-b"),
            "--out",
            str(out),
        ],
        timeout=120,
    )
    text = (out / "tables.md").read_text()
    assert "fcn-a" in text and "fcn-b" in text


def test_model_name_falls_back_to_model_spec_and_weights():
    from deepdig_fast.tables import model_name

    assert model_name({"name": "mine"}) == "mine"
    assert (
        model_name({"classifier_meta": {"model": "pkg.mod:make", "weights": "/w/robust.pt"}})
        == "pkg.mod:make (robust.pt)"
    )
    assert model_name({"model_info": {"spec": "checkpoints/mnist-cnn.pt"}}) == "mnist-cnn"
    assert model_name({}) == "?"


# --------------------------------------------------------------------------------------------------
# experiment tracking (local stores and offline modes only: nothing leaves this machine)
# --------------------------------------------------------------------------------------------------


def _cell(name: str = "fcn-a"):
    from deepdig_fast.sweep.spec import Cell

    return Cell(
        id=name,
        model=name,
        kind="atlas",
        settings="default",
        values={},
        options={},
        sources={},
        covariates={"robust_accuracy": 0.1},
        index=0,
    )


def _means(one_process, cell: str) -> dict:
    from deepdig_fast.sweep.results import results_rows
    from deepdig_fast.sweep.tracking import cell_metrics

    return cell_metrics(results_rows(one_process / "cells" / cell))


def test_tensorboard_gets_each_cell_s_metrics(one_process, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from deepdig_fast.sweep.tracking import log_cell

    where = log_cell(["tensorboard"], tmp_path, _cell(), one_process / "cells" / "fcn-a", print)
    acc = EventAccumulator(where["tensorboard"])
    acc.Reload()
    want = _means(one_process, "fcn-a")
    assert acc.Scalars("cell/mean_success_rate")[0].value == pytest.approx(want["mean_success_rate"], rel=1e-6)
    assert len(acc.Scalars("direction/success_rate")) == 6
    assert any(t.startswith("figures/") for t in acc.Tags()["images"])


def test_mlflow_local_file_store_gets_each_cell_s_metrics(one_process, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from deepdig_fast.sweep.tracking import log_cell

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    where = log_cell(["mlflow"], tmp_path, _cell(), one_process / "cells" / "fcn-a", print)
    assert where["mlflow"].startswith("file:"), where
    mlflow.set_tracking_uri(where["mlflow"])
    runs = mlflow.search_runs(experiment_names=[tmp_path.name], output_format="list")
    assert len(runs) == 1 and runs[0].data.params["covariate_robust_accuracy"] == "0.1"
    assert runs[0].data.metrics["mean_success_rate"] == pytest.approx(_means(one_process, "fcn-a")["mean_success_rate"])


def test_wandb_offline_run_is_written_locally(one_process, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from deepdig_fast.sweep.tracking import log_cell

    for k in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    where = log_cell(["wandb"], tmp_path, _cell(), one_process / "cells" / "fcn-a", print)
    assert where["wandb"] == "wandb (offline)", where
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_missing_tracker_never_fails_the_cell(one_process, tmp_path, monkeypatch):
    import builtins

    from deepdig_fast.sweep.tracking import log_cell

    real = builtins.__import__

    def no_mlflow(name, *a, **k):
        if name == "mlflow":
            raise ImportError("No module named 'mlflow'", name="mlflow")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    said = []
    where = log_cell(["mlflow"], tmp_path, _cell(), one_process / "cells" / "fcn-a", said.append)
    assert where["mlflow"] == "not logged: mlflow is not installed" and len(said) == 1


def test_pair_run_cells_their_table_and_retention(checkpoints, tmp_path):
    """`pair = [s, t]`: each cell is a `deepdig run` (both directions with the baselines); retention
    "results" drops the autoencoders and the baselines' points, keeping DeepDIG's borderline samples."""
    spec = tmp_path / "s.toml"
    spec.write_text(
        f'dataset = "mnist"\npair = [3, 5]\nretention = "results"\n[settings]\nsteps = 30\ntrajectory_segments = 50\n'
        f'[[models]]\nname = "fcn-a"\nclassifier = "{checkpoints[0]}"\n'
    )
    out = tmp_path / "sweep"
    run(sweep_cmd(spec, out, "--no-report"))
    rows = table(out)
    assert [(r["kind"], r["source"], r["target"]) for r in rows] == [("run", "3", "5"), ("run", "5", "3")]
    res = json.loads((out / "cells" / "fcn-a" / "results.json").read_text())
    for r in rows:
        d = res["directions"][f"{r['source']}->{r['target']}"]
        assert float(r["success_rate"]) == d["methods"]["deepdig"]["success_rate"]
        assert float(r["rpbs_success_rate"]) == d["methods"]["rpbs"]["success_rate"]
        assert r["margin_l2_mean"] == "" and r["strategy"] == "pair-run"
    cell = out / "cells" / "fcn-a"
    assert not list(cell.glob("components/*.pt")) and not list(cell.glob("borderline/rpbs_*.pt"))
    assert list(cell.glob("borderline/deepdig_*.pt"))
    r = run(sweep_cmd(spec, out, "--no-report"))  # complete: nothing rerun, the same table
    assert table(out) == rows and "2 direction rows" in r.stdout


def test_a_failed_cell_does_not_stop_the_others(checkpoints, one_process, tmp_path):
    spec = tmp_path / "s.toml"
    text = spec_text(*checkpoints)
    spec.write_text(
        text.replace(
            'classifier = "' + checkpoints[0] + '"', 'classifier = "' + checkpoints[0] + '"\nmin_accuracy = 0.9999'
        )
    )
    out = tmp_path / "sweep"
    r = run(sweep_cmd(spec, out, "--no-report"), ok=False)
    assert r.returncode == 1, r.stderr
    assert "1 of 2 cells failed (the others are kept): fcn-a:" in r.stderr and r.stderr.count("\n") == 1
    assert (out / "done" / "fcn-b.json").is_file() and not (out / "done" / "fcn-a.json").exists()
    assert "1 of 2 cells complete; not collected yet (fcn-a failed)" in r.stdout
    assert not (out / "results.csv").exists()
    spec.write_text(text)  # fixed: fcn-b is not recomputed, fcn-a runs, the sweep collects
    before = stamps(out / "cells" / "fcn-b")
    run(sweep_cmd(spec, out, "--no-report"))
    assert stamps(out / "cells" / "fcn-b") == before
    assert table(out) == table(one_process)


def test_table_takes_a_sweep_folder_for_its_cells(one_process, tmp_path):
    run([sys.executable, "-m", "deepdig_fast", "table", str(one_process), "--out", str(tmp_path / "t")], timeout=120)
    text = (tmp_path / "t" / "tables.md").read_text()
    assert "M1 fcn-a" in text and "M2 fcn-b" in text


@pytest.mark.slow
def test_the_issue_minimal_spec_runs_as_written(tiny_fcn_checkpoint, tmp_path):
    """The spec of issue 24, word for word, in a folder with its two checkpoints (the tiny FCN under
    both names): every class's full training set, 100 steps."""
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name in ("mnist-cnn", "mnist-fcn"):
        for suffix in (".pt", ".json"):
            shutil.copy(Path(tiny_fcn_checkpoint).with_suffix(suffix), ck / f"{name}{suffix}")
    (tmp_path / "sweep.toml").write_text(
        'dataset = "mnist"\nclasses = [0, 1, 2]\n\n[settings]\nsteps = 100\ntrajectory_segments = 100\n\n'
        '[[models]]\nname = "cnn-a"\nclassifier = "checkpoints/mnist-cnn.pt"\n\n'
        '[[models]]\nname = "fcn-b"\nclassifier = "checkpoints/mnist-fcn.pt"\n'
    )
    cmd = [sys.executable, "-m", "deepdig_fast", "sweep", "sweep.toml", "--out", "sweeps/minimal", "--quiet"]
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=1800, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    rows = table(tmp_path / "sweeps" / "minimal")
    assert [r["model"] for r in rows] == ["cnn-a"] * 6 + ["fcn-b"] * 6
    assert "setting_steps" not in rows[0] and all(r["steps"] == "100" and r["settings"] == "default" for r in rows)
    assert (tmp_path / "sweeps" / "minimal" / "sweep.html").is_file()


def test_a_cell_taken_between_probe_and_claim_is_skipped_not_failed(spec, tmp_path, monkeypatch, capsys):
    """Two launchers can probe one free cell at the same moment; the one that loses the folder lock
    skips the cell (the other computes it) instead of reporting a failure."""
    import deepdig_fast.cli.sweep as sweep_cli
    from deepdig_fast.cli import main
    from deepdig_fast.rundir import FolderLock

    out = tmp_path / "sweep"
    held = out / "cells" / "fcn-a"
    held.mkdir(parents=True)
    (out / "manifest.json").write_text(json.dumps({"kind": "deepdig-sweep"}))  # as another launcher left it
    monkeypatch.setattr(sweep_cli, "_busy", lambda folder: False)  # the probe saw it free
    with FolderLock(held, "cell"):  # ... and another launcher claimed it right after
        code = main(sweep_cmd(spec, out, "--no-report")[3:])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (out / "done" / "fcn-b.json").is_file() and not (out / "done" / "fcn-a.json").exists()
    assert "1 of 2 cells complete; not collected yet" in captured.out and "failed" not in captured.err
