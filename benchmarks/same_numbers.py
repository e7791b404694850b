"""results.json of one small run_pair, or atlas.json of one small 3-class atlas, without what
identifies the run (`run_id`, `inputs`), for comparing two versions of the code number for number
(benchmarks/RESULTS.md, "Stage keys" and "Orchestrator").

Run it from each checkout into its own folder and compare the two .cmp.json files byte for byte:

    PYTHONPATH=OLD_CHECKOUT .venv/bin/python benchmarks/same_numbers.py /tmp/old fcn
    .venv/bin/python benchmarks/same_numbers.py /tmp/new fcn
    cmp /tmp/old.cmp.json /tmp/new.cmp.json

(arch: fcn or cnn, a run of MNIST 3|5; atlas-fcn or atlas-cnn, an atlas of classes 3, 5, 8, pairwise
and per-target. A classifier trained briefly by tests/common_utils.train_small, 200 autoencoder
steps, 300 trajectory segments. Or a checkpoint, e.g. checkpoints/mnist-cnn-paper: its run of MNIST
3|5 with the paper's settings, PairConfig's defaults and `deepdig run`'s 5000 trajectory segments.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(out: str, arch: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from common_utils import train_small

    from deepdig_fast.adversarial import AdversarialConfig

    adversarial = AdversarialConfig(steps=200)
    if arch.startswith("atlas-"):
        from deepdig_fast.atlas import AtlasConfig, run_atlas

        model, data = train_small(arch[len("atlas-") :], n=3000, steps=200)
        results = {}
        for strategy in ("pairwise", "per-target"):
            cfg = AtlasConfig(strategy=strategy, adversarial=adversarial, trajectory_segments=300)
            folder = f"{out}-{strategy}"
            run_atlas(model, data.take(3000, 1000), cfg, classes=[3, 5, 8], out_dir=folder, report=False)
            results[strategy] = json.loads((Path(folder) / "atlas.json").read_text())
            results[strategy].pop("run_id")
    elif arch not in ARCHS:  # a checkpoint: the paper's settings on all of MNIST
        from deepdig_fast.checkpoint import load_classifier
        from deepdig_fast.data import load_mnist
        from deepdig_fast.pipeline import PairConfig, run_pair

        model, _ = load_classifier(arch)
        run_pair(model, load_mnist(), 3, 5, PairConfig(trajectory_segments=5000), out_dir=out)
        results = json.loads((Path(out) / "results.json").read_text())
        results.pop("run_id")
        results.pop("inputs")
    else:
        from deepdig_fast.pipeline import PairConfig, run_pair

        model, data = train_small(arch, n=3000, steps=200)
        cfg = PairConfig(adversarial=adversarial, trajectory_segments=300)
        run_pair(model, data.take(3000, 1000), 3, 5, cfg, out_dir=out)
        results = json.loads((Path(out) / "results.json").read_text())
        results.pop("run_id")
        results.pop("inputs")
    Path(out + ".cmp.json").write_text(json.dumps(results, indent=1, sort_keys=True))


ARCHS = ("fcn", "cnn", "atlas-fcn", "atlas-cnn")

if __name__ == "__main__":
    if len(sys.argv) != 3 or not (sys.argv[2] in ARCHS or Path(sys.argv[2] + ".pt").is_file()):
        raise SystemExit(f"usage: same_numbers.py OUT_DIR {'|'.join(ARCHS)}|CHECKPOINT")
    main(sys.argv[1], sys.argv[2])
