"""The boundary atlas: row invariants, both strategies, resumption, 1 vs 2 processes (torchrun, gloo),
kill-and-restart, argument errors."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from deepdig_fast.adversarial import AdversarialConfig
from deepdig_fast.atlas import ENGINE_BATCH_CPU, ROW_FIELDS, AtlasConfig, atlas_directions, run_atlas

CLASSES = [3, 5, 8]
# few steps and few inputs: a 3-class atlas takes seconds, the boundaries are still real
CLI_ARGS = [
    "--classes",
    "3,5,8",
    "--steps",
    "60",
    "--max-per-class",
    "200",
    "--trajectory-segments",
    "100",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--quiet",
]


def small(**kw) -> AtlasConfig:
    kw.setdefault("adversarial", AdversarialConfig(steps=60, infer_batch_size=1024))
    return AtlasConfig(max_inputs_per_class=200, trajectory_segments=100, trajectory_T=20, **kw)


@pytest.fixture(scope="module")
def checkpoint(small_fcn, tmp_path_factory):
    from deepdig_fast.checkpoint import save_classifier

    model, data = small_fcn
    path = tmp_path_factory.mktemp("ckpt") / "fcn"
    save_classifier(
        path,
        model,
        arch="fcn",
        dataset="mnist",
        classes=data.classes,
        accuracy=None,
        embedding_layer=getattr(model, "EMBEDDING_LAYER", None),
    )
    return str(path) + ".pt"


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def cli_atlas(out: Path, checkpoint: str, nproc: int = 1, extra=(), timeout=600) -> subprocess.CompletedProcess:
    if nproc == 1:
        cmd = [sys.executable, "-m", "deepdig_fast", "atlas"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "deepdig_fast",
            "atlas",
        ]
    cmd += ["--out", str(out), "--classifier", checkpoint, *CLI_ARGS, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return r


def check_rows(atlas: dict, directions) -> None:
    rows = atlas["directions"]
    assert [(r["source"], r["target"]) for r in rows] == sorted(directions)
    for r in rows:
        assert set(r) == set(ROW_FIELDS)
        assert r["inputs"] >= r["inputs_correct"] >= r["adversarial"] >= 0
        if r["skipped"]:
            continue
        assert r["adversarial"] >= r["pairs"] >= r["successes"] >= 0
        fails = sum(r[k] for k in ("third_class", "stalled", "max_steps", "invalid_bracket", "nonfinite"))
        assert fails + r["successes"] == r["pairs"]
        assert r["success_rate"] == pytest.approx(r["successes"] / r["pairs"])
        assert r["yield_rate"] == pytest.approx(r["successes"] / r["inputs_correct"])
        assert r["adversarial_rate"] == pytest.approx(r["adversarial"] / r["inputs_correct"])
        assert r["forwards"] >= r["pairs"]
        if r["successes"] >= 2:
            assert 0 < r["margin_l2_median"] and 0 < r["margin_l2_mean"]
            if atlas["config"]["trajectory"]:
                assert 0 <= r["oscillation"] <= 1
                assert r["oscillation_ci_low"] <= r["oscillation"] <= r["oscillation_ci_high"]
                assert r["trajectory_segments"] == atlas["config"]["trajectory_segments"]
            if atlas["config"]["linearity"]:
                assert 0 <= r["m1_borderline"] < 1 and 0 <= r["m1_train"] < 1


# --------------------------------------------------------------------------------------------------
# in-process
# --------------------------------------------------------------------------------------------------


def test_per_target_atlas_rows_and_reuse(small_fcn, tmp_path):
    model, data = small_fcn
    out = tmp_path / "atlas"
    res = run_atlas(model, data, small(strategy="per-target"), classes=CLASSES, out_dir=out, report=False)
    a = res.atlas
    assert a["strategy"] == "per-target" and a["classes"] == CLASSES and a["kind"] == "deepdig-atlas"
    assert a["config"]["engine_batch_size"] == ENGINE_BATCH_CPU  # fixed per device type, never measured
    check_rows(a, atlas_directions(10, CLASSES))
    assert sum(r["successes"] or 0 for r in a["directions"]) > 0.5 * sum(r["inputs_correct"] for r in a["directions"])
    # one generator per target, trained on the correctly classified inputs of every other class
    assert [g["unit"] for g in a["generators"]] == [f"generators/to_{c}" for c in CLASSES]
    for g in a["generators"]:
        assert g["sources"] == [c for c in range(10) if c != g["target"]] and g["collapse"] is None
    # atlas.csv holds the same rows
    with open(out / "atlas.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(int(r["source"]), int(r["target"])) for r in table] == [
        (r["source"], r["target"]) for r in a["directions"]
    ]
    assert [int(r["successes"] or 0) for r in table] == [r["successes"] or 0 for r in a["directions"]]
    t = json.loads((out / "timings.json").read_text())
    assert t["units_computed"] == 3 + 6 and t["units_reused"] == 0 and t["forwards"]["engine"] > 0
    # a folder holds one atlas: another set of directions is refused before any work ...
    with pytest.raises(ValueError, match="give each run its own folder"):
        run_atlas(model, data, small(strategy="per-target"), pairs=[(3, 5)], out_dir=out, report=False)
    # ... and the generators do not depend on the classes covered: a sub-atlas agrees row for row
    sub = run_atlas(model, data, small(strategy="per-target"), pairs=[(3, 5)], out_dir=tmp_path / "sub", report=False)
    assert sub.timings["units_computed"] == 2 + 2
    assert sub.row(3, 5) == res.row(3, 5) and sub.row(5, 3) == res.row(5, 3)
    # a changed engine setting recomputes the directions only
    again = run_atlas(
        model, data, small(strategy="per-target", max_steps=8), classes=CLASSES, out_dir=out, report=False
    )
    units = again.timings["units"]
    assert all(units[f"generators/to_{c}"]["reused"] for c in CLASSES)
    assert not any(v["reused"] for k, v in units.items() if k.startswith("directions/"))


def test_per_target_refine_shares_the_generators_and_trains_one_ae2_per_direction(small_fcn, tmp_path):
    """per-target-refine: the per-target generators (the same units, under the same keys), and per
    direction an AE_II that starts from G_s and trains refine_steps on the direction's adversarial
    samples; refine_steps enters the directions' keys only."""
    model, data = small_fcn
    base = run_atlas(model, data, small(strategy="per-target"), classes=CLASSES, out_dir=tmp_path / "pt", report=False)
    out = tmp_path / "refine"
    res = run_atlas(
        model, data, small(strategy="per-target-refine", refine_steps=20), classes=CLASSES, out_dir=out, report=False
    )
    for c in CLASSES:  # the same generator units: their keys and weights
        one, two = (
            torch.load(d / "units" / "generators" / f"to_{c}.pt", weights_only=True) for d in (tmp_path / "pt", out)
        )
        assert one["_stage"]["key"] == two["_stage"]["key"]
        for k, v in one["state_dict"].items():
            assert torch.equal(v, two["state_dict"][k])
    a = res.atlas
    assert a["strategy"] == "per-target-refine" and a["config"]["refine_steps"] == 20
    check_rows(a, atlas_directions(10, CLASSES))
    assert [g["unit"] for g in a["generators"]] == [g["unit"] for g in base.atlas["generators"]]
    assert set(a["component_two"]) == {f"{s}-{t}" for s, t in atlas_directions(10, CLASSES)}
    assert {v["steps"] for v in a["component_two"].values()} == {20}
    # component I is the per-target one: the same adversarial samples, row for row
    for s, t in atlas_directions(10, CLASSES):
        assert res.row(s, t)["adversarial"] == base.row(s, t)["adversarial"]
    # another refine_steps recomputes the directions, never the generators
    again = run_atlas(
        model, data, small(strategy="per-target-refine", refine_steps=30), classes=CLASSES, out_dir=out, report=False
    )
    units = again.timings["units"]
    assert all(units[f"generators/to_{c}"]["reused"] for c in CLASSES)
    assert not any(v["reused"] for k, v in units.items() if k.startswith("directions/"))
    assert {v["steps"] for v in again.atlas["component_two"].values()} == {30}
    with pytest.raises(ValueError, match="refine_steps"):
        AtlasConfig(refine_steps=0)


def test_pairwise_in_memory_matches_folder(small_fcn, tmp_path):
    model, data = small_fcn
    cfg = small(strategy="auto", linearity=False, trajectory=False)
    mem = run_atlas(model, data, cfg, pairs=[(3, 8)], out_dir=None)
    assert mem.atlas["strategy"] == "pairwise" and mem.out_dir is None and mem.paths == {}
    assert [g["unit"] for g in mem.atlas["generators"]] == ["generators/ae1_3-8", "generators/ae1_8-3"]
    check_rows(mem.atlas, [(3, 8), (8, 3)])
    for r in mem.atlas["directions"]:
        assert r["m1_borderline"] is None and r["oscillation"] is None
    disk = run_atlas(model, data, cfg, pairs=[(3, 8)], out_dir=tmp_path / "a", report=False)
    assert disk.atlas == mem.atlas


def _generator_finals(atlas: dict) -> list:
    return [(g["unit"], g["final_loss"], g["outputs_target"]) for g in atlas["generators"]]


def test_joint_training_of_generators(small_fcn, tmp_path):
    """Generators trained side by side in single-thread worker processes are exactly the single-thread
    sequential trainings; a resumed run trains only the missing ones; vmapped ones agree within float
    tolerance; the mode is recorded and enters the generators' keys."""
    model, data = small_fcn

    def cfg(mode):
        return small(strategy="per-target", joint_training=mode, trajectory=False, linearity=False)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seq = run_atlas(model, data, cfg("sequential"), classes=CLASSES, out_dir=tmp_path / "seq", report=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "proc"
    proc = run_atlas(model, data, cfg("processes"), classes=CLASSES, out_dir=out, report=False)
    assert _generator_finals(proc.atlas) == _generator_finals(seq.atlas)
    assert json.loads((out / "manifest.json").read_text())["joint_training"] == "processes"
    assert proc.timings["joint_training"] == "processes"
    # a lost generator is trained again alone, and the atlas comes out the same
    (out / "units" / "generators" / "to_5.pt").unlink()
    again = run_atlas(model, data, cfg("processes"), classes=CLASSES, out_dir=out, report=False)
    units = again.timings["units"]
    assert [n for n, v in units.items() if not v["reused"]] == ["generators/to_5"]
    assert again.atlas == proc.atlas
    # the same folder with another mode: the generators are not reused (their key holds the mode)
    vec = run_atlas(model, data, cfg("vectorized"), classes=CLASSES, out_dir=out, report=False)
    assert not any(v["reused"] for v in vec.timings["units"].values())
    for a, b in zip(vec.atlas["generators"], seq.atlas["generators"]):
        assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-3, abs=1e-4)
        assert abs(a["outputs_target"] - b["outputs_target"]) <= 0.02 * max(b["outputs_target"], 1)
    with pytest.raises(ValueError, match="AtlasConfig.joint_training must be one of"):
        small(joint_training="gpu")


def test_cli_joint_training_choices_are_the_library_modes():
    from deepdig_fast.adversarial import JOINT_TRAINING
    from deepdig_fast.cli import build_parser

    parser = build_parser()
    for cmd in ("run", "atlas"):
        sub = next(a for a in parser._subparsers._group_actions if cmd in a.choices).choices[cmd]
        opt = next(a for a in sub._actions if "--joint-training" in a.option_strings)
        assert tuple(opt.choices) == JOINT_TRAINING


def test_atlas_arguments():
    assert atlas_directions(4, [2, 0]) == [(0, 2), (2, 0)]
    assert atlas_directions(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert atlas_directions(10, pairs=[(1, 2), (2, 1), (4, 9)]) == [(1, 2), (2, 1), (4, 9), (9, 4)]
    for kw, msg in [
        ({"classes": [1]}, "at least 2 classes"),
        ({"classes": [1, 10]}, r"class ids in \[0, 10\)"),
        ({"pairs": [(1, 1)]}, "two different classes"),
        ({"pairs": [(1, 2, 3)]}, "two class ids each"),
        ({"pairs": []}, "pairs is empty"),
        ({"classes": [1, 2], "pairs": [(1, 2)]}, "not both"),
    ]:
        with pytest.raises(ValueError, match=msg):
            atlas_directions(10, **kw)
    for kw, msg in [
        ({"strategy": "greedy"}, "AtlasConfig.strategy"),
        ({"beta": 0}, "AtlasConfig.beta"),
        ({"engine_batch_size": 0}, "AtlasConfig.engine_batch_size"),
        ({"trajectory_segments": -1}, "AtlasConfig.trajectory_segments"),
        ({"band": (1, 0)}, "AtlasConfig.band"),
    ]:
        with pytest.raises(ValueError, match=msg):
            AtlasConfig(**kw)
    assert AtlasConfig().resolved_strategy(3) == "pairwise"
    assert AtlasConfig().resolved_strategy(4) == "per-target"
    assert AtlasConfig(strategy="pairwise").resolved_strategy(10) == "pairwise"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classes", "1"], "at least two different classes"),
        (["--pairs", "1-1"], "the two classes must differ"),
        (["--pairs", "1-x", "--device", "cpu"], "--pairs: class 'x' is not a class name of mnist"),
        (["--classes", "0,one", "--device", "cpu"], "--classes: class 'one' is not a class name of mnist"),
        (["--pairs", "1:2"], "expected pairs like 1-2,4-9"),
        (["--classes", "1,2", "--pairs", "1-2"], "not allowed with argument"),
        (["--strategy", "greedy"], "invalid choice"),
        (["--pairs", "1-12", "--device", "cpu"], "--pairs classes must lie in [0, 10) for mnist, got 12"),
    ],
)
def test_cli_atlas_bad_arguments(args, message, tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "deepdig_fast", "atlas", "--out", str(tmp_path / "x"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


# --------------------------------------------------------------------------------------------------
# processes: 1 vs torchrun 2, kill and restart
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_process(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "atlas"
    cli_atlas(out, checkpoint, 1)
    return out


def test_torchrun_two_processes_give_the_same_atlas(one_process, checkpoint, tmp_path):
    out = tmp_path / "atlas"
    cli_atlas(out, checkpoint, 2)
    assert (out / "atlas.json").read_bytes() == (one_process / "atlas.json").read_bytes()
    assert (out / "atlas.csv").read_bytes() == (one_process / "atlas.csv").read_bytes()
    t = json.loads((out / "timings.json").read_text())
    assert t["world_size"] == 2 and t["units_reused"] == 0
    # every unit computed exactly once, and both ranks did some
    assert t["units_computed"] == 6 + 6
    assert {v["rank"] for v in t["units"].values()} == {0, 1}
    check_rows(json.loads((out / "atlas.json").read_text()), atlas_directions(10, CLASSES))
    assert (out / "atlas.html").is_file() and (out / "figures").is_dir()


def test_killed_run_resumes_to_the_same_atlas(one_process, checkpoint, tmp_path):
    out = tmp_path / "atlas"
    cmd = [sys.executable, "-m", "deepdig_fast", "atlas", "--out", str(out), "--classifier", checkpoint, *CLI_ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    units = out / "units"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and len(list(units.glob("generators/*.pt"))) < 2:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in units.rglob("*.pt")}
    assert len(done) >= 2 and not (out / "atlas.json").exists()
    cli_atlas(out, checkpoint, 1)
    assert (out / "atlas.json").read_bytes() == (one_process / "atlas.json").read_bytes()
    # the units finished before the kill were not computed again
    assert all(p.stat().st_mtime_ns == m for p, m in done.items())
    t = json.loads((out / "timings.json").read_text())
    assert t["units_reused"] == len(done) and t["units_computed"] == 12 - len(done)
    assert not list(out.rglob("*.tmp*"))


def test_cli_compare(one_process, tmp_path, small_fcn, checkpoint):
    out_b = tmp_path / "b"
    cli_atlas(out_b, checkpoint, 1, extra=["--strategy", "per-target"])
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepdig_fast",
            "compare",
            str(one_process),
            str(out_b),
            "--out",
            str(tmp_path / "cmp"),
            "--labels",
            "pairwise,per-target",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert (tmp_path / "cmp" / "compare.html").is_file() and cmp["labels"] == ["pairwise", "per-target"]
    assert cmp["common_directions"] == [list(d) for d in atlas_directions(10, CLASSES)]
    rows_a = json.loads((one_process / "atlas.json").read_text())["directions"]
    rows_b = json.loads((out_b / "atlas.json").read_text())["directions"]
    mean = lambda rows: sum(r["success_rate"] for r in rows) / len(rows)  # noqa: E731
    m = cmp["metrics"]["success_rate"]
    assert m["n"] == 6 and m["mean_a"] == pytest.approx(mean(rows_a)) and m["mean_b"] == pytest.approx(mean(rows_b))
    assert "Largest changes" in r.stdout
    first = cmp["top"][0]
    assert first["delta"] == pytest.approx(first["b"] - first["a"]) and first["delta"] != 0


def _phase_worker(rank: int, world: int, store_file: str, root: str, q) -> None:
    """One rank of test_a_failing_rank_stops_every_rank: unit 'bad' raises on whichever rank gets it."""
    import torch.distributed as dist

    from deepdig_fast.ranks import Unit, run_phase
    from deepdig_fast.rundir import StageStore

    dist.init_process_group("gloo", init_method=f"file://{store_file}", rank=rank, world_size=world)

    def bad():
        raise ValueError("this unit is broken")

    class Ctx:
        store = StageStore(Path(root))
        memory: dict = {}

    units = [Unit("u/good0", {}, lambda: {"x": 0}), Unit("u/bad", {}, bad), Unit("u/good2", {}, lambda: {"x": 2})]
    try:
        run_phase("test", units, Ctx, rank, world, lambda m: None)
        q.put((rank, "finished"))
    except RuntimeError as exc:
        q.put((rank, str(exc)))
    finally:
        dist.destroy_process_group()


def test_a_failing_rank_stops_every_rank(tmp_path):
    """A unit's exception on one rank reaches every rank as a RuntimeError naming rank and unit
    (no rank waits forever at the phase boundary); the other units are stored."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [
        ctx.Process(target=_phase_worker, args=(r, 2, str(tmp_path / "store"), str(tmp_path / "units"), q))
        for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    got = dict(q.get(timeout=5) for _ in range(2))
    for rank in (0, 1):
        assert "atlas test phase failed: rank 1, unit u/bad: ValueError: this unit is broken" in got[rank]
    assert (tmp_path / "units" / "u" / "good0.pt").is_file() and (tmp_path / "units" / "u" / "good2.pt").is_file()
    assert not (tmp_path / "units" / "u" / "bad.pt").exists()


def test_cli_atlas_scope_takes_class_names():
    """--classes / --pairs name classes like --pair: the data set's names first, then the model's
    (e.g. Hugging Face id2label) once it is loaded; an unknown name waits, then is an error."""
    import argparse

    from deepdig_fast.cli import CLIError
    from deepdig_fast.cli.argtypes import _classes, _pairs
    from deepdig_fast.cli.classes import _resolve_atlas_scope
    from deepdig_fast.data import from_tensors

    x = torch.zeros(6, 1, 2, 2)
    data = from_tensors(x, torch.arange(6) % 3, x[:0], torch.zeros(0, dtype=torch.long), classes=["cat", "dog", "ship"])
    scope = lambda classes=None, pairs=None, model=None, final=True: _resolve_atlas_scope(  # noqa: E731
        argparse.Namespace(classes=classes, pairs=pairs), data, model, final
    )
    assert scope() == (None, None)
    assert scope(classes=_classes("cat,2")) == ([0, 2], None)
    assert scope(pairs=_pairs("Dog-ship,0-1")) == (None, [(1, 2), (0, 1)])  # names match case-insensitively
    assert scope(pairs=_pairs("cat-tiger"), final=False) is None  # may be a model's name
    assert scope(pairs=_pairs("cat-tiger"), model=["a", "b", "tiger"]) == (None, [(0, 2)])
    with pytest.raises(CLIError, match="--pairs: class 'tiger' is not a class name of"):
        scope(pairs=_pairs("cat-tiger"))
    with pytest.raises(CLIError, match=r"--classes classes must lie in \[0, 3\)"):
        scope(classes=_classes("0,7"))


def test_a_rank_is_handed_only_its_own_units(monkeypatch):
    """Under torchrun each rank computes its share of a phase's unfinished units and is told which
    (`ranks.run_phase(mine=...)`): the generators' joint-training groups are built from that list, so with 2+
    threads per rank no rank trains another rank's generators beside its own (simulated: rank 1 of 2,
    the collective calls replaced)."""
    import types

    import deepdig_fast.ranks as ranks
    from deepdig_fast.rundir import StageStore

    monkeypatch.setattr(ranks, "broadcast", lambda obj, world: list(range(5)) if obj is None else obj)
    monkeypatch.setattr(ranks, "gather", lambda obj, world: [obj, obj])
    computed: list[int] = []
    units = [ranks.Unit(f"generators/to_{i}", {"i": i}, lambda i=i: computed.append(i) or {"i": i}) for i in range(5)]
    ctx = types.SimpleNamespace(store=StageStore(None), memory={})
    handed: list[str] = []
    ranks.run_phase("generators", units, ctx, 1, 2, lambda msg: None, mine=handed.extend)
    assert handed == ["generators/to_1", "generators/to_3"] and computed == [1, 3]
