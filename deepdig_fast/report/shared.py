"""What the run report and the atlas report (deepdig_fast.atlas_report) write alike: the time a page
was written, a classifier checksum's short form, a direction's label, how the classifier was
trained and how long an autoencoder trained."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["classifier_training", "direction_label", "short_sha", "training_steps", "written_at"]


def written_at() -> str:
    """The local time, to the minute, that a page says it was written."""
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def short_sha(sha: Any) -> str:
    """The first 12 characters of a SHA-256 and an ellipsis ("?…" when none is recorded)."""
    return f"{str(sha or '?')[:12]}…"


def direction_label(names: Mapping[Any, str], s: Any, t: Any) -> str:
    """ "s → t" with the classes' names (a class without a name reads as its id)."""
    return f"{names.get(s, s)} → {names.get(t, t)}"


def classifier_training(manifest: Any) -> dict[str, str]:
    """training.describe_training of the classifier a folder's manifest.json records:
    {"recipe", "regime", "settings"}, each "unrecorded" when the manifest does not say."""
    # imported here so that importing a report does not load the training code
    from deepdig_fast.training import describe_training

    meta = manifest.get("classifier_meta") if isinstance(manifest, Mapping) else None
    return describe_training(meta if isinstance(meta, Mapping) else None)


def training_steps(stats: Mapping) -> str:
    """How long an autoencoder trained and why it stopped (steps "auto", a collapse), the step whose
    weights were restored, with its tries, and its learning rate when recorded: "5,000", "2,250
    (plateau)", "500 (collapsed), 2 tries", "1,250 (collapsed, step 750 restored)", "300 at lr 0.001"."""
    steps = stats.get("steps")
    text = f"{steps:,}" if isinstance(steps, int) and not isinstance(steps, bool) else "–"
    lr = stats.get("lr")
    rate = f" at lr {lr:g}" if isinstance(lr, float) and math.isfinite(lr) else ""
    stop = stats.get("stop")
    if isinstance(stop, str) and stop != "fixed":
        restored = stats.get("restored_step")
        kept = f", step {restored:,} restored" if isinstance(restored, int) and not isinstance(restored, bool) else ""
        text += f" ({stop.split(' at step')[0].split(':')[0]}{kept})"
    tries = stats.get("tries")
    if isinstance(tries, list) and len(tries) > 1:
        text += f", {len(tries)} tries"
    return text + rate
