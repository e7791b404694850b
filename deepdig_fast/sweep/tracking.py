"""Each finished cell's metrics and figures, also logged where users already look: TensorBoard,
MLflow or Weights & Biases (spec key `track`; each an optional dependency, imported only when asked
for, off by default).

Where each one writes, unless its own environment variable says otherwise:
    tensorboard   SWEEP_DIR/tensorboard/<cell>/ (event files; `tensorboard --logdir SWEEP_DIR/tensorboard`)
    mlflow        MLFLOW_TRACKING_URI, else a local file store at SWEEP_DIR/mlruns (experiment: the sweep
                  folder's name; one run per cell; MLflow 3 wants MLFLOW_ALLOW_FILE_STORE=true for it,
                  which is set for this process when unset)
    wandb         offline (WANDB_MODE, else "offline") into SWEEP_DIR/wandb; `wandb sync` uploads later

What is logged: per cell, the mean over its directions of success_rate, oscillation, m1_borderline
and margin_l2_mean, its settings and covariates as parameters, and the heatmaps of its report; per
direction (step = its index in the atlas), the same metrics. A tracker that fails to import or to
write is reported in one line and never fails the sweep: the results table is the record.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TRACKED", "cell_metrics", "log_cell"]

#: the direction columns logged per cell (means) and per direction
TRACKED = ("success_rate", "oscillation", "m1_borderline", "margin_l2_mean")


def cell_metrics(rows: Sequence[dict]) -> dict[str, float]:
    """mean_<metric> over the directions that have a value (absent when none has)."""
    out = {}
    for m in TRACKED:
        vals = [float(r[m]) for r in rows if isinstance(r.get(m), (int, float)) and math.isfinite(r[m])]
        if vals:
            out[f"mean_{m}"] = sum(vals) / len(vals)
    out["directions"] = float(len(rows))
    return out


def _params(cell) -> dict[str, str]:
    return {
        "model": cell.model,
        "settings": cell.settings,
        **{f"setting_{k}": str(v) for k, v in cell.values.items()},
        **{f"covariate_{k}": str(v) for k, v in cell.covariates.items()},
    }


def _rows(folder: Path) -> list[dict]:
    from deepdig_fast.sweep.results import results_rows

    return results_rows(folder)


def _figures(folder: Path) -> list[Path]:
    return sorted((folder / "figures").glob("*.png"))


def _tensorboard(root: Path, cell, folder: Path, rows: list[dict]) -> str:
    from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

    logdir = root / "tensorboard" / cell.id
    with SummaryWriter(log_dir=str(logdir)) as w:
        for k, v in cell_metrics(rows).items():
            w.add_scalar(f"cell/{k}", v, 0)
        for i, r in enumerate(rows):
            for m in TRACKED:
                if isinstance(r.get(m), (int, float)):
                    w.add_scalar(f"direction/{m}", float(r[m]), i)
        w.add_text("cell/params", "\n".join(f"{k}: {v}" for k, v in _params(cell).items()), 0)
        try:
            import numpy as np
            from PIL import Image
        except ImportError:
            return str(logdir)
        for png in _figures(folder):
            with Image.open(png) as im:
                w.add_image(f"figures/{png.stem}", np.asarray(im.convert("RGB")), 0, dataformats="HWC")
    return str(logdir)


def _mlflow(root: Path, cell, folder: Path, rows: list[dict]) -> str:
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        # a local store in the sweep folder: MLflow's file store, which MLflow 3 keeps (in
        # maintenance) behind MLFLOW_ALLOW_FILE_STORE; its database store needs SQLAlchemy
        uri = (root / "mlruns").resolve().as_uri()
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(root.resolve().name)
    with mlflow.start_run(run_name=cell.id):
        mlflow.log_params(_params(cell))
        mlflow.log_metrics(cell_metrics(rows))
        for i, r in enumerate(rows):
            mlflow.log_metrics(
                {f"direction_{m}": float(r[m]) for m in TRACKED if isinstance(r.get(m), (int, float))}, step=i
            )
        for png in _figures(folder):
            mlflow.log_artifact(str(png), artifact_path="figures")
    return uri


def _wandb(root: Path, cell, folder: Path, rows: list[dict]) -> str:
    import wandb

    mode: Any = os.environ.get("WANDB_MODE", "offline")  # wandb checks the value itself
    (root / "wandb").mkdir(exist_ok=True)
    run = wandb.init(
        project=os.environ.get("WANDB_PROJECT", root.resolve().name),
        name=cell.id,
        config=_params(cell),
        dir=str(root),
        mode=mode,
        reinit=True,
    )
    try:
        for i, r in enumerate(rows):
            run.log({f"direction/{m}": float(r[m]) for m in TRACKED if isinstance(r.get(m), (int, float))}, step=i)
        run.summary.update(cell_metrics(rows))
        run.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in _figures(folder)})
    finally:
        run.finish()
    return f"wandb ({mode})"


_BACKENDS: dict[str, Callable] = {"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}


def log_cell(trackers: Sequence[str], root: Path, cell, folder: Path, log: Callable[[str], None]) -> dict[str, str]:
    """Log one finished cell to each tracker; returns tracker -> where it went (or why it did not)."""
    rows = _rows(folder)
    out = {}
    for name in trackers:
        try:
            out[name] = _BACKENDS[name](root, cell, folder, rows)
        except ImportError as exc:
            out[name] = f"not logged: {exc.name or exc} is not installed"
            log(f"cell {cell.id}: {name} {out[name]}")
        except Exception as exc:  # a tracker's trouble never loses the cell
            out[name] = f"not logged: {type(exc).__name__}: {exc}"
            log(f"cell {cell.id}: {name} {out[name]}")
    return out
