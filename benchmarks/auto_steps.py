"""steps="auto" against the paper's fixed 5000 steps on the paper tables' runs (issue 25's goals):
for each pair, one `run_pair` with the paper's settings (S1) and one with `steps="auto"`, side by
side in this process, then per direction: DeepDIG / RPBS / EPBS success rates, the trajectory
oscillation and its 95% interval, the borderline m1 of the pair's SVM, and the autoencoders'
training steps and seconds.

    .venv/bin/python benchmarks/auto_steps.py checkpoints/mnist-fcn-paper 1-2 3-5 4-9 --out runs/auto-fcn

Writes OUT/<pair>-fixed and OUT/<pair>-auto (ordinary run folders; a rerun reuses them) and
OUT/comparison.json, and prints a Markdown table (benchmarks/RESULTS.md, "Training length").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _row(results: dict, timings: dict, key: str) -> dict:
    d = results["directions"][key]
    t = timings.get("directions", {}).get(key, {})
    comps = [d["component_one"], d["component_two"] or {}]
    times = [t.get("component_one", {}).get("train_seconds"), (t.get("component_two") or {}).get("train_seconds")]
    traj = d.get("trajectory") or {}
    return {
        "success": {m: v.get("success_rate") for m, v in d["methods"].items()},
        "oscillation": traj.get("oscillation"),
        "ci95": traj.get("ci95"),
        "steps": [c.get("steps") for c in comps],
        "stop": [c.get("stop") for c in comps],
        "train_seconds": sum(s or 0.0 for s in times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("classifier")
    ap.add_argument("pairs", nargs="+", help="pairs as S-T")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.checkpoint import load_classifier
    from deepdig_fast.data import load_mnist
    from deepdig_fast.pipeline import PairConfig, run_pair

    model, _ = load_classifier(args.classifier)
    data = load_mnist()
    out = Path(args.out)
    table = {}
    for pair in args.pairs:
        s, t = (int(c) for c in pair.split("-"))
        both = {}
        for name, steps in (("fixed", 5000), ("auto", "auto")):
            cfg = PairConfig(adversarial=AdversarialConfig(steps=steps), trajectory_segments=5000, seed=args.seed)
            r = run_pair(model, data, s, t, cfg, out_dir=out / f"{pair}-{name}")
            lin = r.results.get("linearity", {}).get("sets", {}).get("borderline", {})
            both[name] = {
                "m1_borderline": lin.get("m1"),
                "directions": {k: _row(r.results, r.timings, k) for k in r.results["directions"]},
            }
        table[pair] = both
    (out / "comparison.json").write_text(json.dumps(table, indent=1))
    print(
        "| pair | direction | DeepDIG fixed / auto | RPBS | EPBS | oscillation fixed [95%] | auto | AE steps fixed / auto | AE train s fixed / auto | stop (auto) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair, both in table.items():
        for key in both["fixed"]["directions"]:
            f, a = both["fixed"]["directions"][key], both["auto"]["directions"][key]

            def pct(v):
                return "—" if v is None else f"{100 * v:.1f}%"

            ci = f["ci95"] or [None, None]
            osc_f = "—" if f["oscillation"] is None else f"{f['oscillation']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"
            osc_a = "—" if a["oscillation"] is None else f"{a['oscillation']:.4f}"
            print(
                f"| {pair} | {key} | {pct(f['success'].get('deepdig'))} / {pct(a['success'].get('deepdig'))} "
                f"| {pct(f['success'].get('rpbs'))} / {pct(a['success'].get('rpbs'))} "
                f"| {pct(f['success'].get('epbs'))} / {pct(a['success'].get('epbs'))} "
                f"| {osc_f} | {osc_a} | {sum(s or 0 for s in f['steps'])} / {sum(s or 0 for s in a['steps'])} "
                f"| {f['train_seconds']:.0f} / {a['train_seconds']:.0f} | {'; '.join((x or '').split(':')[0] for x in a['stop'])} |"
            )
        print(
            f"| {pair} | m1 (borderline) | {both['fixed']['m1_borderline']} / {both['auto']['m1_borderline']} | | | | | | | |"
        )


if __name__ == "__main__":
    main()
