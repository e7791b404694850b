"""Every class of bad input to the `deepdig` command, in one table.

Each row is (id, argv, expected exit status, regex for the message) plus how it is run: in this
process through `deepdig_fast.cli.main` (fast: most rows fail before any work), or as a separate
process when the row is about the process itself (environment variables, another process holding
the folder). For every row the test also checks that

  * the message is ONE line on stderr (no traceback) and matches the regex,
  * nothing the user gave changed: every file under the inputs folder has the same SHA-256 and no
    file appeared or vanished there,
  * no half-written file (`*.tmp`) is left anywhere, and a command that failed created no output
    folder it was not given.

Placeholders in argv: {inp} is the shared inputs folder (checkpoints, foreign folders, data files),
{tmp} a fresh folder of the row's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdig_fast.cli import main

ROOT = Path(__file__).resolve().parent.parent

# few inputs, few steps: a row that gets past the checks still finishes in seconds
TINY_ATLAS = [
    "--pairs",
    "3-5",
    "--steps",
    "5",
    "--max-per-class",
    "30",
    "--no-trajectory",
    "--no-linearity",
    "--no-report",
    "--device",
    "cpu",
    "--threads",
    "1",
]


@dataclass
class Row:
    id: str
    argv: list[str]
    status: int
    message: str  # regex the single stderr line must match (re.search)
    process: bool = False  # run as `python -m deepdig_fast` in a separate process
    env: dict = field(default_factory=dict)
    cwd: str | None = None  # working folder (placeholders allowed)
    hold_lock: str | None = None  # hold a FolderLock on this folder while the command runs
    needs_unwritable: bool = False  # skip where no unwritable folder can be made (root without mount)


RUN = ["run", "--pair", "3,5", "--device", "cpu", "--steps", "5", "--no-characterize", "--no-report", "--quiet"]
CKPT = "{inp}/ckpt/fcn.pt"

ROWS = [
    # ---- settings
    Row("beta-2", [*RUN, "--out", "{tmp}/out", "--beta", "2"], 2, r"--beta: expected a number in \(0, 1\), got '2'"),
    Row(
        "beta-nan",
        [*RUN, "--out", "{tmp}/out", "--beta", "nan"],
        2,
        r"--beta: expected a number in \(0, 1\), got 'nan'",
    ),
    Row("beta-text", [*RUN, "--out", "{tmp}/out", "--beta", "tiny"], 2, r"--beta: expected a number in \(0, 1\)"),
    Row(
        "seed-negative",
        [*RUN, "--out", "{tmp}/out", "--seed", "-1"],
        2,
        r"--seed: expected a non-negative integer, got '-1'",
    ),
    Row("pair-same", ["run", "--pair", "3,3", "--out", "{tmp}/out"], 2, r"--pair: the two classes must differ"),
    Row(
        "pair-out-of-range",
        [*RUN, "--out", "{tmp}/out", "--pair", "1,99"],
        2,
        r"--pair classes must lie in \[0, 10\) for mnist, got 99",
    ),
    Row("pair-garbage", ["run", "--pair", "1,2,3", "--out", "{tmp}/out"], 2, r"--pair: expected two classes like 1,2"),
    Row(
        "pair-unknown-name",
        ["run", "--pair", "a,b", "--out", "{tmp}/out"],
        2,
        r"--pair: class 'a' is not a class name of mnist or of the model",
    ),
    Row(
        "max-steps-0",
        [*RUN, "--out", "{tmp}/out", "--max-steps", "0"],
        2,
        r"--max-steps: expected a positive integer, got '0'",
    ),
    Row("steps-0", [*RUN, "--out", "{tmp}/out", "--steps", "0"], 2, r"--steps: expected a positive integer, got '0'"),
    Row(
        "min-accuracy-2",
        [*RUN, "--out", "{tmp}/out", "--min-accuracy", "2"],
        2,
        r"--min-accuracy: expected a number in \[0, 1\], got '2'",
    ),
    Row(
        "device-garbage",
        [*RUN, "--out", "{tmp}/out", "--device", "gpu7"],
        2,
        r"--device must be cpu, cuda, cuda:N or auto",
    ),
    Row(
        "atlas-classes-one",
        ["atlas", "--out", "{tmp}/out", "--classes", "4"],
        2,
        r"--classes: expected .all. or at least two different classes",
    ),
    Row("unknown-option", [*RUN, "--out", "{tmp}/out", "--betta", "0.1"], 2, r"unrecognized arguments: --betta"),
    # ---- the output folder
    Row("out-empty", [*RUN, "--out", ""], 2, r"--out: expected a folder path, got an empty string"),
    Row("out-is-a-file", [*RUN, "--out", "{inp}/afile.txt"], 2, r"--out: '.*afile.txt' is a file, expected a folder"),
    Row(
        "out-under-a-file",
        [*RUN, "--out", "{inp}/afile.txt/sub"],
        2,
        r"--out: .*afile.txt is a file, so no folder can be made there",
    ),
    Row(
        "out-unwritable",
        [*RUN, "--out", "{inp}/readonly/sub"],
        2,
        r"--out: .*readonly is not writable",
        needs_unwritable=True,
    ),
    Row(
        "out-is-an-atlas-folder",
        [*RUN, "--out", "{inp}/atlas", "--classifier", CKPT],
        2,
        r"--out .*atlas is a `deepdig atlas` folder .*, not a `deepdig run` folder .*give each run its own folder",
    ),
    Row(
        "out-is-a-run-of-another-pair",
        [*RUN, "--out", "{inp}/run-1-2", "--classifier", CKPT],
        2,
        r"--out .*run-1-2 is a `deepdig run` folder for \{\"pair\": \[1, 2\]\}, not a `deepdig run` folder for \{\"pair\": \[3, 5\]\}",
    ),
    Row(
        "atlas-out-is-a-run-folder",
        ["atlas", "--out", "{inp}/run-1-2", "--classifier", CKPT, *TINY_ATLAS, "--quiet"],
        2,
        r"--out .*run-1-2 is a `deepdig run` folder .*, not a `deepdig atlas` folder",
    ),
    Row(
        "out-has-results-but-no-manifest",
        [*RUN, "--out", "{inp}/orphan-results", "--classifier", CKPT],
        2,
        r"--out .*orphan-results holds results but no manifest.json",
    ),
    Row(
        "out-has-a-broken-manifest",
        [*RUN, "--out", "{inp}/broken-manifest", "--classifier", CKPT],
        2,
        r"manifest.json is not a readable JSON file",
    ),
    Row(
        "out-has-a-deeply-nested-manifest",
        [*RUN, "--out", "{inp}/deep-manifest", "--classifier", CKPT],
        2,
        r"deep-manifest/manifest.json is not a readable JSON file \(nested too deep\)",
    ),
    Row(
        "compare-out-is-a-file",
        ["compare", "{inp}/atlas", "{inp}/atlas2", "--out", "{inp}/afile.txt"],
        2,
        r"--out: '.*afile.txt' is a file, expected a folder",
    ),
    Row(
        "compare-out-is-an-input",
        ["compare", "{inp}/atlas", "{inp}/atlas2", "--out", "{inp}/atlas2"],
        2,
        r"--out .*atlas2/compare.json is inside ATLAS_B .*atlas2, which this command reads; outputs never overlap",
    ),
    Row(
        "compare-input-missing",
        ["compare", "{inp}/atlas", "{inp}/nothing-here", "--out", "{tmp}/cmp"],
        1,
        r"nothing-here",
    ),
    # ---- outputs never overlap inputs, and never go through a link (one rule: deepdig_fast.paths)
    Row(
        "train-out-over-its-data",
        ["train", "--dataset", "tensors", "--data-root", "{inp}/data.pt", "--out", "{inp}/data", "--arch", "fcn"],
        2,
        r"--out .*data.pt is --data-root .*data.pt, which this command reads; outputs never overlap inputs",
    ),
    Row(
        "train-out-over-a-checkpoint",
        ["train", "--out", "{inp}/ckpt/fcn", "--arch", "fcn", "--epochs", "1", "--quiet", "--device", "cpu"],
        2,
        r"--out .*ckpt/fcn: a checkpoint is already there \(.*fcn.pt, .*fcn.json\); pass --overwrite",
    ),
    Row(
        "run-out-inside-image-data",
        [*RUN, "--dataset", "imagefolder", "--data-root", "{inp}/images", "--out", "{inp}/images/runhere"],
        2,
        r"--out .*images/runhere is inside --data-root .*images, which this command reads",
    ),
    Row(
        "run-out-is-image-data",
        [*RUN, "--dataset", "imagefolder", "--data-root", "{inp}/images", "--out", "{inp}/images"],
        2,
        r"--out .*images is --data-root .*images, which this command reads",
    ),
    Row(
        "run-out-holds-the-classifier",
        [*RUN, "--out", "{inp}/ckpt", "--classifier", CKPT],
        2,
        r"--out .*ckpt contains --classifier .*ckpt/fcn.pt, which this command reads",
    ),
    Row(
        "atlas-out-holds-the-model-file",
        ["atlas", *TINY_ATLAS, "--model", "{inp}/mymodel.py:make", "--weights", "{inp}/weights.pt", "--out", "{inp}"],
        2,
        r"--out \S+ contains --model \S+mymodel.py, which this command reads",
    ),
    Row(
        "compare-out-inside-an-input",
        ["compare", "{inp}/atlas", "{inp}/atlas2", "--out", "{inp}/atlas2/units"],
        2,
        r"--out .*atlas2/units/compare.json is inside ATLAS_B .*atlas2, which this command reads",
    ),
    Row(
        "table-out-inside-an-input",
        ["table", "{inp}/run-1-2", "--out", "{inp}/run-1-2/tables"],
        2,
        r"--out .*run-1-2/tables/tables.md is inside DIR .*run-1-2, which this command reads",
    ),
    Row(
        "out-lock-is-a-link",
        [*RUN, "--out", "{inp}/linked-lock", "--classifier", CKPT],
        2,
        r"--out .*linked-lock: .lock is a symbolic link; deepdig writes only real files",
    ),
    Row(
        "out-components-is-a-link",
        [*RUN, "--out", "{inp}/linked-components", "--classifier", CKPT],
        2,
        r"--out .*linked-components: components is a symbolic link",
    ),
    Row(
        "report-figures-is-a-link",
        ["report", "{inp}/linked-figures"],
        2,
        r"RUN_DIR .*linked-figures: figures is a symbolic link",
    ),
    Row(
        "compare-figures-is-a-link",
        ["compare", "{inp}/atlas", "{inp}/atlas2", "--out", "{inp}/linked-compare"],
        2,
        r"--out: .*linked-compare/figures is a symbolic link; deepdig writes only real files",
    ),
    Row(
        "out-is-someone-elses-folder",
        [*RUN, "--out", "{inp}/foreign-folder", "--classifier", CKPT],
        2,
        r"--out .*foreign-folder is not empty and is not a deepdig folder \(it holds notes.txt\)",
    ),
    # ---- every number bounded where it is parsed
    Row(
        "max-steps-huge",
        [*RUN, "--out", "{tmp}/out", "--max-steps", "100000000000000000000"],
        2,
        r"--max-steps: expected a positive integer of at most 1048576, got '100000000000000000000'",
    ),
    Row(
        "atlas-max-steps-huge",
        ["atlas", *TINY_ATLAS, "--out", "{tmp}/out", "--max-steps", "100000000000000000000"],
        2,
        r"--max-steps: expected a positive integer of at most 1048576",
    ),
    Row(
        "seed-huge",
        [*RUN, "--out", "{tmp}/out", "--seed", "100000000000000000000000"],
        2,
        r"--seed: expected a non-negative integer of at most 4294967295",
    ),
    Row(
        "steps-thousands-of-digits",
        [*RUN, "--out", "{tmp}/out", "--steps", "9" * 5000],
        2,
        r"--steps: expected a positive integer, got '99999999999999999999'\.\.\. \(5000 characters\)",
    ),
    Row(
        "threads-huge",
        ["atlas", *TINY_ATLAS, "--out", "{tmp}/out", "--threads", "4000000"],
        2,
        r"--threads: expected a positive integer of at most 1024",
    ),
    # ---- hostile pickles: refused in one line, torch's warnings and paragraphs of advice not shown
    Row(
        "classifier-hostile-pickle",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/hostile/fcn.pt"],
        2,
        r"--classifier .*hostile/fcn.pt: .*refused by the weights-only unpickler",
    ),
    Row(
        "weights-hostile-pickle",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:make", "--weights", "{inp}/evil.pkl"],
        2,
        r"--model .*evil.pkl.*refused by the weights-only unpickler",
    ),
    # ---- deepdig report on something that is not a finished run
    Row("report-on-a-file", ["report", "{inp}/afile.txt"], 2, r"afile.txt is not a folder; expected a run folder"),
    Row(
        "report-without-results",
        ["report", "{inp}/report-no-results"],
        2,
        r"report-no-results is not a finished run folder \(no results.json\)",
    ),
    Row("report-malformed-results", ["report", "{inp}/report-bad-json"], 1, r"results.json is not valid JSON"),
    Row(
        "report-results-of-another-run",
        ["report", "{inp}/report-other-run"],
        1,
        r"results.json \(run bbbbbbbbbbbb\) was not computed by the run manifest.json describes \(run aaaaaaaaaaaa\)",
    ),
    Row("report-without-manifest", ["report", "{inp}/report-no-manifest"], 1, r"run_dir must hold manifest.json"),
    # ---- the classifier
    Row(
        "classifier-missing",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/nope/fcn.pt"],
        2,
        r"--classifier .*nope/fcn.pt: no checkpoint there \(expected .*fcn.pt and .*fcn.json\)",
    ),
    Row(
        "classifier-corrupt",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/corrupt/fcn.pt"],
        2,
        r"--classifier .*corrupt/fcn.pt: .*could not be loaded with torch.load\(weights_only=True\)",
    ),
    Row(
        "classifier-checksum",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/tampered/fcn.pt"],
        2,
        r"--classifier .*tampered/fcn.pt: checksum mismatch",
    ),
    Row(
        "classifier-folder-of-two",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/two"],
        2,
        r"--classifier .*two: .*is a directory with 2 checkpoints \(a.json, b.json\)",
    ),
    Row(
        "classifier-other-dataset",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/fashion/fcn.pt"],
        2,
        r"--classifier .*fashion/fcn.pt was trained on data set 'fashion-mnist', but the data set is 'mnist'",
    ),
    Row(
        "classifier-other-arch",
        [*RUN, "--out", "{tmp}/out", "--classifier", CKPT, "--arch", "cnn"],
        2,
        r"holds a 'fcn' classifier, but arch 'cnn' was asked for",
    ),
    Row(
        "classifier-stem-without-json",
        [*RUN, "--out", "{tmp}/out", "--classifier", "{inp}/half/fcn"],
        2,
        r"--classifier .*half/fcn: no checkpoint there",
    ),
    Row(
        "default-checkpoint-half-there",
        [*RUN, "--out", "{tmp}/out", "--arch", "cnn"],
        2,
        r"checkpoints/mnist-cnn.pt exists but checkpoints/mnist-cnn.json does not; .*move the file away",
        cwd="{inp}/workdir",
    ),
    Row(
        "model-missing-module",
        [*RUN, "--out", "{tmp}/out", "--model", "no_such_module_xyz:make", "--weights", "{inp}/weights.pt"],
        2,
        r"--model no_such_module_xyz:make: .*cannot import module 'no_such_module_xyz'",
    ),
    Row(
        "model-missing-file",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/absent.py:make", "--weights", "{inp}/weights.pt"],
        2,
        r"--model .*absent.py:make: .*module file .*absent.py does not exist",
    ),
    Row(
        "model-module-fails-on-import",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/broken.py:make", "--weights", "{inp}/weights.pt"],
        2,
        r"--model .*broken.py:make: .*SyntaxError",
    ),
    Row(
        "model-missing-factory",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:nothing", "--weights", "{inp}/weights.pt"],
        2,
        r"--model .*mymodel.py:nothing: .*has no attribute 'nothing'",
    ),
    Row(
        "model-factory-raises",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:boom", "--weights", "{inp}/weights.pt"],
        2,
        r"--model .*: calling the factory failed \(RuntimeError: needs a GPU\)",
    ),
    Row(
        "model-weights-missing",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:make", "--weights", "{inp}/absent.pt"],
        2,
        r"--model .*: weights file .*absent.pt does not exist",
    ),
    Row(
        "model-weights-do-not-fit",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:make_cnn", "--weights", "{inp}/weights.pt"],
        2,
        r"--model .*: .*the weights do not fit the model MnistCNN",
    ),
    Row(
        "model-without-weights",
        [*RUN, "--out", "{tmp}/out", "--model", "{inp}/mymodel.py:make"],
        2,
        r"--model needs --weights",
    ),
    Row(
        "embedding-layer-nope",
        [*RUN, "--out", "{tmp}/out", "--classifier", CKPT, "--embedding-layer", "nope"],
        2,
        r"--embedding-layer 'nope' is not a submodule of the model",
    ),
    # ---- data files
    Row(
        "cifar-corrupt-pickle",
        [*RUN, "--out", "{tmp}/out", "--dataset", "cifar10", "--data-root", "{inp}/cifar-corrupt"],
        1,
        r"cifar-corrupt/data_batch_3: .*(truncated|ran out of input|pickle data was truncated|not a readable)",
    ),
    Row(
        "cifar-hostile-pickle",
        [*RUN, "--out", "{tmp}/out", "--dataset", "cifar10", "--data-root", "{inp}/cifar-hostile"],
        1,
        r"cifar-hostile/test_batch: refusing to load global posix.system|refusing to load global os.system",
    ),
    Row(
        "cifar-missing-batch",
        [*RUN, "--out", "{tmp}/out", "--dataset", "cifar10", "--data-root", "{inp}/cifar-short"],
        1,
        r"CIFAR-10 file data_batch_5 not found in .*cifar-short",
    ),
    Row(
        "data-root-missing",
        [*RUN, "--out", "{tmp}/out", "--dataset", "fashion-mnist", "--data-root", "{inp}/nothing-here"],
        1,
        r"nothing-here",
    ),
    # ---- the process and its surroundings
    Row(
        "stray-world-size",
        ["atlas", "--out", "{tmp}/out", "--classifier", CKPT, *TINY_ATLAS],
        0,
        r"note: WORLD_SIZE=2, MASTER_ADDR=127.0.0.1 set but this process was not started by torchrun: running as one process",
        process=True,
        env={"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "DEEPDIG_PROGRESS": "off"},
    ),
    Row(
        "distributed-without-rank",
        ["atlas", "--out", "{tmp}/out", "--classifier", CKPT, *TINY_ATLAS, "--distributed"],
        2,
        r"distributed run: RANK, MASTER_PORT not set; start with torchrun",
        env={"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"},
    ),
    Row(
        "folder-in-use",
        [*RUN, "--out", "{tmp}/out", "--classifier", CKPT],
        1,
        r"out_dir .*out is in use by another deepdig process \(pid \d+.*\); wait for it to finish or use another folder",
        process=True,
        hold_lock="{tmp}/out",
    ),
    Row(
        "atlas-folder-in-use",
        ["atlas", "--out", "{tmp}/out", "--classifier", CKPT, *TINY_ATLAS, "--quiet"],
        1,
        r"out_dir .*out is in use by another deepdig process",
        process=True,
        hold_lock="{tmp}/out",
    ),
]


# --------------------------------------------------------------------------------------------------
# the inputs every row may point at
# --------------------------------------------------------------------------------------------------


def _cifar_batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return pickle.dumps(
        {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [int(v) for v in rng.integers(0, 10, n)]},
        protocol=2,
    )


def _cifar_folder(root: Path) -> None:
    root.mkdir(parents=True)
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(_cifar_batch(4, i))
    (root / "test_batch").write_bytes(_cifar_batch(4, 9))


class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from common_utils import train_small as _train_small

    from deepdig_fast.checkpoint import save_classifier
    from deepdig_fast.data import FASHION_MNIST_CLASSES

    inp = tmp_path_factory.mktemp("inputs")
    model, data = _train_small("fcn", n=1000, steps=30)
    save_classifier(inp / "ckpt" / "fcn", model, arch="fcn", dataset="mnist", classes=data.classes, accuracy=None)
    # a torn weights file; weights that do not match their metadata; another data set's classifier
    (inp / "corrupt").mkdir()
    shutil.copy(inp / "ckpt" / "fcn.json", inp / "corrupt" / "fcn.json")
    (inp / "corrupt" / "fcn.pt").write_bytes((inp / "ckpt" / "fcn.pt").read_bytes()[:300])
    (inp / "tampered").mkdir()
    shutil.copy(inp / "ckpt" / "fcn.json", inp / "tampered" / "fcn.json")
    torch.save({k: v + 1 for k, v in model.state_dict().items()}, inp / "tampered" / "fcn.pt")
    save_classifier(
        inp / "fashion" / "fcn",
        model,
        arch="fcn",
        dataset="fashion-mnist",
        classes=list(FASHION_MNIST_CLASSES),
        accuracy=None,
    )
    # a checkpoint stem with only its weights, and the default location half filled
    (inp / "two").mkdir()
    for stem in ("a", "b"):
        for ext in (".pt", ".json"):
            shutil.copy(inp / "ckpt" / f"fcn{ext}", inp / "two" / f"{stem}{ext}")
    (inp / "half").mkdir()
    shutil.copy(inp / "ckpt" / "fcn.pt", inp / "half" / "fcn.pt")
    (inp / "workdir" / "checkpoints").mkdir(parents=True)
    shutil.copy(inp / "ckpt" / "fcn.pt", inp / "workdir" / "checkpoints" / "mnist-cnn.pt")
    # a user model: a module, weights, a module that does not import
    torch.save(model.state_dict(), inp / "weights.pt")
    (inp / "mymodel.py").write_text(
        "from deepdig_fast.models import MnistCNN, MnistFCN\n\n"
        "def make():\n    return MnistFCN()\n\ndef make_cnn():\n    return MnistCNN()\n\n"
        "def boom():\n    raise RuntimeError('needs a GPU')\n"
    )
    (inp / "broken.py").write_text("def make(:\n    pass\n")
    # folders of other kinds, other scopes, and half-finished or inconsistent run folders
    (inp / "afile.txt").write_text("not a folder\n")
    (inp / "readonly").mkdir()
    for name, directions in (("atlas", [[3, 5], [5, 3]]), ("atlas2", [[3, 5], [5, 3]])):
        (inp / name).mkdir()
        (inp / name / "manifest.json").write_text(
            json.dumps({"kind": "deepdig-atlas", "scope": {"directions": directions}, "run_id": "c" * 64})
        )
        (inp / name / "atlas.json").write_text(
            json.dumps({"schema": 2, "kind": "deepdig-atlas", "run_id": "c" * 64, "classes": [3, 5], "directions": []})
        )
    manifest = {"kind": "deepdig-run", "scope": {"pair": [1, 2]}, "pair": [1, 2], "run_id": "a" * 64}
    folders = {
        "run-1-2": {"manifest.json": json.dumps(manifest), "results.json": json.dumps({**manifest, "directions": {}})},
        "orphan-results": {"results.json": json.dumps({"kind": "deepdig-run", "pair": [3, 5]})},
        "broken-manifest": {"manifest.json": '{"kind": "deepdig-run", '},
        "deep-manifest": {"manifest.json": '{"a": ' * 200_000 + "1" + "}" * 200_000},
        "report-no-results": {"manifest.json": json.dumps(manifest)},
        "report-bad-json": {"manifest.json": json.dumps(manifest), "results.json": '{"pair": [1, 2'},
        "report-other-run": {
            "manifest.json": json.dumps(manifest),
            "results.json": json.dumps({**manifest, "run_id": "b" * 64, "directions": {}}),
        },
        "report-no-manifest": {"results.json": json.dumps({**manifest, "directions": {}})},
    }
    for folder, files in folders.items():
        (inp / folder).mkdir()
        for name, text in files.items():
            (inp / folder / name).write_text(text)
    # CIFAR-10 python batches: one torn, one asking for os.system, one folder missing a batch
    _cifar_folder(inp / "cifar-corrupt")
    (inp / "cifar-corrupt" / "data_batch_3").write_bytes(_cifar_batch(4, 3)[:100])
    _cifar_folder(inp / "cifar-hostile")
    (inp / "cifar-hostile" / "test_batch").write_bytes(pickle.dumps(_Hostile(), protocol=2))
    _cifar_folder(inp / "cifar-short")
    (inp / "cifar-short" / "data_batch_5").unlink()
    # a data file to train on; an image folder; things a careless or hostile user may leave
    torch.save({"x": data.x_train[:40], "y": data.y_train[:40]}, inp / "data.pt")
    from PIL import Image

    for c in ("3", "5"):
        (inp / "images" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((28, 28), 40 * i, np.uint8)).save(inp / "images" / c / f"{i}.png")
    (inp / "victim.txt").write_text("a file of the user's\n")
    (inp / "linked-lock").mkdir()
    os.symlink(inp / "victim.txt", inp / "linked-lock" / ".lock")
    (inp / "victim-folder").mkdir()
    (inp / "victim-folder" / "keep.txt").write_text("the user's\n")
    run_manifest = {"kind": "deepdig-run", "scope": {"pair": [3, 5]}, "run_id": "d" * 64}
    (inp / "linked-components").mkdir()
    (inp / "linked-components" / "manifest.json").write_text(json.dumps(run_manifest))
    os.symlink(inp / "victim-folder", inp / "linked-components" / "components")
    (inp / "linked-figures").mkdir()
    (inp / "linked-figures" / "manifest.json").write_text(json.dumps(run_manifest))
    (inp / "linked-figures" / "results.json").write_text(json.dumps({**run_manifest, "directions": {}}))
    os.symlink(inp / "victim-folder", inp / "linked-figures" / "figures")
    (inp / "linked-compare").mkdir()
    os.symlink(inp / "victim-folder", inp / "linked-compare" / "figures")
    (inp / "foreign-folder").mkdir()
    (inp / "foreign-folder" / "notes.txt").write_text("not deepdig's\n")
    (inp / "evil.pkl").write_bytes(pickle.dumps(_Hostile(), protocol=4))
    (inp / "hostile").mkdir()
    shutil.copy(inp / "ckpt" / "fcn.json", inp / "hostile" / "fcn.json")
    (inp / "hostile" / "fcn.pt").write_bytes(pickle.dumps(_Hostile(), protocol=4))
    # an unwritable folder: chmod stops an ordinary user; root writes anywhere except on a
    # read-only file system, so as root the folder is a read-only tmpfs
    mounted = os.geteuid() == 0 and (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(inp / "readonly")], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        os.chmod(inp / "readonly", 0o500)
    yield inp
    if mounted:
        subprocess.run(["umount", "-l", str(inp / "readonly")], capture_output=True)
    else:
        os.chmod(inp / "readonly", 0o700)


def _snapshot(root: Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under root (folders as 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _fill(text: str, inp: Path, tmp: Path) -> str:
    return text.replace("{inp}", str(inp)).replace("{tmp}", str(tmp))


def _run_row(row: Row, argv: list[str], env: dict, cwd: Path, capfd) -> tuple[int, str]:
    if row.process:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
        for k in ("RANK", "LOCAL_RANK", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
            full_env.pop(k, None)
        if "WORLD_SIZE" not in env:
            full_env.pop("WORLD_SIZE", None)
        r = subprocess.run(
            [sys.executable, "-m", "deepdig_fast", *argv],
            capture_output=True,
            text=True,
            timeout=180,
            env=full_env,
            cwd=cwd,
        )
        return r.returncode, r.stderr
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capfd.readouterr().err


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, inputs: Path, tmp_path: Path, monkeypatch, capfd):
    from deepdig_fast.rundir import FolderLock

    if row.needs_unwritable and os.access(inputs / "readonly", os.W_OK):
        pytest.skip("no unwritable folder could be made here (root, and no read-only tmpfs could be mounted)")
    argv = [_fill(a, inputs, tmp_path) for a in row.argv]
    cwd = Path(_fill(row.cwd, inputs, tmp_path)) if row.cwd else tmp_path
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    if not row.process:
        monkeypatch.chdir(cwd)
        for k, v in row.env.items():
            monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    lock = FolderLock(Path(_fill(row.hold_lock, inputs, tmp_path))).acquire() if row.hold_lock else None
    made_before = {p for p in tmp_path.rglob("*")}
    before = _snapshot(inputs)
    capfd.readouterr()
    try:
        status, err = _run_row(row, argv, row.env, cwd, capfd)
    finally:
        if lock is not None:
            lock.release()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert status == row.status, f"exit status {status}, expected {row.status}; stderr: {err[-2000:]}"
    assert lines, "no message on stderr"
    assert re.search(row.message, lines[-1]), f"{lines[-1]!r} does not match {row.message!r}"
    if row.status != 0:
        assert len(lines) == 1, f"expected one line, got:\n{err}"
        assert lines[0].startswith(f"deepdig {argv[0]}: error: ") or lines[0].startswith("deepdig"), lines[0]
        # a refused command makes nothing: no output folder it was not given, no file in one it was
        made = {p for p in tmp_path.rglob("*")} - made_before - {out / ".lock"}
        assert not made, f"a failed command created {sorted(map(str, made))}"
    else:
        assert (out / "atlas.json").is_file()
    assert _snapshot(inputs) == before, "an input file changed"
    assert not list(tmp_path.rglob("*.tmp")) and not list(inputs.rglob("*.tmp"))


def test_the_table_covers_every_command_with_errors():
    """The table is the one place bad inputs are listed: every command that takes paths has rows,
    and ids are unique."""
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids))
    commands = {r.argv[0] for r in ROWS}
    assert {"run", "atlas", "report", "compare"} <= commands
    assert sum(r.status == 2 for r in ROWS) > 20 and sum(r.status == 1 for r in ROWS) >= 8
