"""The `deepdig` command line (also `python -m deepdig_fast`). The only module that parses arguments.

    deepdig train --dataset mnist --arch cnn            train (or refresh) a reference classifier
    deepdig run --dataset mnist --arch cnn --pair 1,2 --out runs/mnist-cnn-1-2
    deepdig report RUN_DIR                              (re)write report.md / report.html of a run
    deepdig info                                        how the extension was built
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DATASETS = ("mnist", "fashion-mnist", "cifar10")
TRAJECTORY_SEGMENTS = 5000  # CLI default: estimate mode (the exact design is |B| * 50 segments)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line and exits with status 2."""

    def error(self, message):  # noqa: D401
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


class CLIError(Exception):
    """A problem with the user's arguments or files, reported in one line."""


def _device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as exc:
        raise CLIError(f"--device must be cpu, cuda, cuda:N or auto, got {spec!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {spec}: no CUDA device is available")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CLIError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def _pair(text: str) -> tuple[int, int]:
    parts = text.replace("-", ",").split(",")
    try:
        s, t = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two class ids like 1,2, got {text!r}") from None
    if s == t:
        raise argparse.ArgumentTypeError(f"the two classes must differ, got {text!r}")
    return s, t


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _load_data(name: str, root: str | None):
    from deepdig_fast import data as D

    if name == "mnist":
        return D.load_mnist(root)
    if root is None:
        raise CLIError(f"--dataset {name} needs --data-root (a folder with the {name} files)")
    return D.load_fashion_mnist(root) if name == "fashion-mnist" else D.load_cifar10(root)


def _default_arch(dataset: str) -> str:
    return "resnet" if dataset == "cifar10" else "cnn"


def _classifier(args, data, device, log):
    """The classifier of `deepdig run`: a user model, a given checkpoint, or the cached reference one."""
    from deepdig_fast.checkpoint import load_classifier, load_or_train_classifier, load_user_model

    if args.model:
        if not args.weights:
            raise CLIError("--model needs --weights (a state_dict file)")
        model = load_user_model(args.model, args.weights, device=device)
        return model, {"model": args.model, "weights": str(args.weights)}
    if args.classifier and Path(args.classifier).suffix in (".pt", ".json") or (args.classifier and Path(args.classifier).is_dir()):
        model, meta = load_classifier(args.classifier, device=device)
        return model, meta
    arch = args.arch or _default_arch(args.dataset)
    path = Path(args.classifier or f"checkpoints/{args.dataset}-{arch}")
    model, meta = load_or_train_classifier(path, arch, data, seed=args.seed, device=device, progress=not args.quiet, log=log)
    return model, meta


def cmd_train(args) -> int:
    from deepdig_fast.checkpoint import load_or_train_classifier

    device = _device(args.device)
    data = _load_data(args.dataset, args.data_root)
    arch = args.arch or _default_arch(args.dataset)
    out = Path(args.out or f"checkpoints/{args.dataset}-{arch}")
    _, meta = load_or_train_classifier(
        out, arch, data, seed=args.seed, epochs=args.epochs, device=device, progress=not args.quiet,
        retrain=True, log=print,
    )
    print(f"{arch} on {args.dataset}: test accuracy {meta['accuracy']:.4f}; saved to {out}.pt (+ .json)")
    return 0


def cmd_run(args) -> int:
    import torch

    from deepdig_fast.adversarial import AdversarialConfig
    from deepdig_fast.pipeline import PairConfig, run_pair

    device = _device(args.device)
    torch.manual_seed(args.seed)
    log = (lambda m: None) if args.quiet else (lambda m: print(f"[deepdig] {m}", flush=True))
    data = _load_data(args.dataset, args.data_root)
    s, t = args.pair
    if not (0 <= s < data.num_classes and 0 <= t < data.num_classes):
        raise CLIError(f"--pair classes must lie in [0, {data.num_classes}) for {args.dataset}, got {s},{t}")
    model, meta = _classifier(args, data, device, log)
    adv = AdversarialConfig(steps=args.steps)
    config = PairConfig(adversarial=adv, beta=args.beta, max_steps=args.max_steps, method=args.method,
                        seed=args.seed, baselines=not args.no_baselines, characterize=not args.no_characterize,
                        trajectory_segments=None if args.trajectory_exact else args.trajectory_segments)
    t0 = time.perf_counter()
    result = run_pair(
        model, data, s, t, config, out_dir=args.out, embedding_layer=args.embedding_layer,
        progress=not args.quiet, log=log,
        manifest_extra={"command": sys.argv, "classifier_meta": meta, "dataset": args.dataset},
    )
    _print_summary(result, time.perf_counter() - t0, args.out)
    if not args.no_report:
        from deepdig_fast.report import write_report

        paths = write_report(args.out)
        print(f"report: {paths.get('report.html', Path(args.out) / 'report.html')}")
    return 0


def cmd_report(args) -> int:
    from deepdig_fast.report import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "results.json").is_file():
        raise CLIError(f"{run_dir} is not a finished run folder (no results.json); run `deepdig run ... --out {run_dir}` first")
    paths = write_report(run_dir)
    for name in ("report.md", "report.html"):
        if name in paths:
            print(paths[name])
    return 0


def _fmt(v, pct=False):
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.2f}"


def _print_summary(result, seconds, out) -> None:
    rows = result.summary_rows()
    print()
    print(f"{'direction':<10}{'method':<9}{'pairs':>7}{'success':>9}{'attempts':>10}{'forwards':>10}  note")
    for r in rows:
        print(f"{r['direction']:<10}{r['method']:<9}{r['pairs'] or 0:>7}{_fmt(r['success_rate'], True):>9}"
              f"{_fmt(r['mean_attempts_success']):>10}{r['forwards'] if r['forwards'] is not None else '-':>10}  {r['skipped'] or ''}")
    print(f"\n'attempts' = mean attempts over successes. Finished in {seconds:.0f} s; results in {out}/results.json")


def cmd_info(args) -> int:
    from deepdig_fast import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="deepdig", description="Find and characterize the decision boundaries of deep classifiers (DeepDIG).")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(q, data=True):
        q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
        q.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
        q.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
        if data:
            q.add_argument("--dataset", choices=DATASETS, default="mnist", help="data set (default mnist, shipped)")
            q.add_argument("--data-root", help="folder with the data set's files (default for mnist: the shipped copy)")
            q.add_argument("--arch", choices=("cnn", "fcn", "resnet"), help="reference classifier (default cnn; resnet for cifar10)")

    q = sub.add_parser("train", help="train a reference classifier and save it as a checkpoint")
    common(q)
    q.add_argument("--out", help="checkpoint path stem (default checkpoints/DATASET-ARCH)")
    q.add_argument("--epochs", type=_positive_int, help="training epochs (default: the architecture's)")
    q.set_defaults(fn=cmd_train)

    q = sub.add_parser("run", help="DeepDIG for one class pair, both directions, with baselines")
    common(q)
    q.add_argument("--pair", type=_pair, required=True, help="two class ids, e.g. 1,2")
    q.add_argument("--out", required=True, help="run folder (resumable: rerun the same command after a crash)")
    q.add_argument("--classifier", help="checkpoint (.pt/.json) to use; default checkpoints/DATASET-ARCH, trained if missing")
    q.add_argument("--model", help="your own architecture as package.module:factory (with --weights)")
    q.add_argument("--weights", help="state_dict file for --model (loaded with weights_only=True)")
    q.add_argument("--embedding-layer", help="submodule holding the embedding (NAME or NAME:input)")
    q.add_argument("--steps", type=_positive_int, default=5000, help="autoencoder training steps (paper: 5000)")
    q.add_argument("--method", choices=("bisect", "illinois"), default="bisect", help="borderline search (default bisect, the paper's)")
    q.add_argument("--beta", type=float, default=1e-4, help="success threshold on |p_s - p_t| (paper: 1e-4)")
    q.add_argument("--max-steps", type=_positive_int, default=64, help="cap on points evaluated per pair")
    q.add_argument("--no-baselines", action="store_true", help="skip the RPBS and EPBS baselines")
    q.add_argument("--trajectory-segments", type=_positive_int, default=TRAJECTORY_SEGMENTS,
                   help=f"estimate the trajectory oscillation from this many sampled segments, with a 95%% "
                   f"confidence interval (default {TRAJECTORY_SEGMENTS}; keeps a CPU run short)")
    q.add_argument("--trajectory-exact", action="store_true",
                   help="the paper's exact design instead: K = 50 partners per borderline sample, T = 50 points each")
    q.add_argument("--no-characterize", action="store_true", help="skip the trajectory and linearity metrics")
    q.add_argument("--no-report", action="store_true", help="do not write report.md / report.html at the end")
    q.set_defaults(fn=cmd_run)

    q = sub.add_parser("report", help="write report.md and a self-contained report.html for a run folder")
    q.add_argument("run_dir", help="a run folder written by `deepdig run`")
    q.set_defaults(fn=cmd_report)

    q = sub.add_parser("info", help="print how the C++/CUDA extension was built")
    q.set_defaults(fn=cmd_info)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except CLIError as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {exc}\n")
        return 2
    except (ValueError, TypeError, FileNotFoundError, KeyError) as exc:
        sys.stderr.write(f"deepdig {args.command}: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("deepdig: interrupted; rerun the same command to resume\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
