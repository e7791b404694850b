"""Does reduced-precision arithmetic change the borderline engine's results? (CPU, no timing)

The engine decides |p_s - p_t| < beta = 1e-4 and the sign of the logit gap at every step, so what
matters is whether its outcomes move, not how fast it is. This runs component III (bisection) on
real MNIST pairs of the paper's CNN three ways and compares each with IEEE float32:

  tf32   TF32 as GPU tensor cores compute it, emulated on the CPU: every convolution's and linear
         layer's input and weight rounded to TF32 (10 explicit mantissa bits, round to nearest even),
         products summed in float32 -- what cuDNN does under PyTorch's default
         `torch.backends.cudnn.conv.fp32_precision == "tf32"`
  bf16   `torch.autocast("cpu", torch.bfloat16)` (oneDNN bfloat16 convolutions / GEMMs, as a GPU's
         bfloat16 autocast would run them), logits cast back to float32

Run:  .venv/bin/python benchmarks/reduced_precision.py [--pairs 2000] [--classes 4,9]
Prints, per mode: the largest |logit - float32 logit| on the pairs' ends, the success rate, the share
of pairs whose status or attempts differ from float32, and for pairs that succeed both ways the
largest distance between the two borderline points.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_utils import pairs_of  # noqa: E402

import deepdig_fast as dd  # noqa: E402


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 -> the nearest TF32 value (ties to even), kept in float32."""
    bits = x.contiguous().view(torch.int32)
    lsb = (bits >> 13) & 1
    rounded = (bits + 0x0FFF + lsb) & ~0x1FFF
    finite = torch.isfinite(x)
    return torch.where(finite, rounded.view(torch.float32), x)


class TF32(nn.Module):
    """A copy of `model` whose conv / linear layers see TF32-rounded inputs and weights."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model)
        for m in self.model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                with torch.no_grad():
                    m.weight.copy_(round_tf32(m.weight))
                m.register_forward_pre_hook(lambda _m, args: (round_tf32(args[0]),) + tuple(args[1:]))

    def forward(self, x):
        return self.model(x)


class BF16(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.model(x).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--classes", default="4,9")
    args = ap.parse_args()
    s, t = (int(c) for c in args.classes.split(","))
    from deepdig_fast.checkpoint import load_or_train_classifier
    from deepdig_fast.data import load_mnist

    data = load_mnist()
    model, _ = load_or_train_classifier(ROOT / "checkpoints" / "mnist-cnn", "cnn", data, device="cpu")
    model.eval()
    a, b = pairs_of(model, data, s, t, "cpu", n=args.pairs)
    base = dd.refine_borderline(model, a, b, s, t, loop="compact")
    with torch.no_grad():
        z_ends = model(torch.cat([a, b]))
    summary = base.summary()
    rows = {"fp32": {"pairs": len(a), "success_rate": summary["success_rate"], "counts": summary["counts"]}}
    for name, m in (("tf32", TF32(model).eval()), ("bf16", BF16(model).eval())):
        r = dd.refine_borderline(m, a, b, s, t, loop="compact")
        with torch.no_grad():
            dz = float((m(torch.cat([a, b])) - z_ends).abs().max())
        summary = r.summary()
        differ = (r.status != base.status) | (r.attempts != base.attempts)
        both = r.success & base.success
        dist = (r.points[both] - base.points[both]).flatten(1).norm(dim=1)
        rows[name] = {
            "max_abs_logit_diff_at_ends": dz,
            "success_rate": summary["success_rate"],
            "counts": summary["counts"],
            "status_or_attempts_differ": float(differ.float().mean()),
            "status_differs": float((r.status != base.status).float().mean()),
            "max_point_distance_both_succeed": float(dist.max()) if dist.numel() else 0.0,
            "median_point_distance_both_succeed": float(dist.median()) if dist.numel() else 0.0,
        }
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
