"""Column names of deepdig's tables, in a module without torch: the rows of atlas.csv and the
results table of sweeps (docs/SWEEPS.md), for the readers that need only the names (the sweep's
spec checks and summaries)."""

from __future__ import annotations

__all__ = [
    "SWEEP_KIND",
    "ATLAS_ROW_FIELDS",
    "BASE_COLUMNS",
    "COST_COLUMNS",
    "DIRECTION_COLUMNS",
    "FIXED_COLUMNS",
    "RESOLVED_COLUMNS",
    "SETTINGS_COLUMNS",
]

#: the kind of a `deepdig sweep` folder (its manifest.json), whose cells are atlas or run folders
SWEEP_KIND = "deepdig-sweep"

#: the columns of atlas.csv / the keys of every row of atlas.json["directions"] (docs/ATLAS.md)
ATLAS_ROW_FIELDS = (
    "source",
    "target",
    "inputs",
    "inputs_correct",
    "adversarial",
    "adversarial_rate",
    "pairs",
    "pair_rate",
    "successes",
    "success_rate",
    "yield_rate",
    "mean_attempts",
    "mean_attempts_all",
    "third_class",
    "stalled",
    "max_steps",
    "invalid_bracket",
    "nonfinite",
    "forwards",
    "oscillation",
    "oscillation_ci_low",
    "oscillation_ci_high",
    "trajectory_segments",
    "third_class_oscillation",
    "m1_borderline",
    "m1_train",
    "svm_accuracy_borderline",
    "svm_accuracy_train",
    "margin_l2_mean",
    "margin_l2_median",
    "skipped",
)

#: the results table (docs/SWEEPS.md): its leading columns, in order (covariates, then the
#: setting_<key> columns, follow `settings`)
BASE_COLUMNS = (
    "cell",
    "model",
    "kind",
    "folder",
    "dataset",
    "arch",
    "classifier_class",
    "weights_sha256",
    "test_accuracy",
    "recipe",
    "regime",
)
SETTINGS_COLUMNS = ("settings",)
#: the settings as each cell resolved them
RESOLVED_COLUMNS = ("strategy", "seed", "steps", "ae_lr", "beta")
DIRECTION_COLUMNS = (
    "source",
    "target",
    "source_name",
    "target_name",
    *[c for c in ATLAS_ROW_FIELDS if c not in ("source", "target")],
    "rpbs_success_rate",
    "epbs_success_rate",
)
#: measured wall times (timings.json): the only columns that vary between two runs of one cell
COST_COLUMNS = ("direction_seconds", "cell_seconds")
#: every column the schema defines; any other is a covariate or a setting_<key>
FIXED_COLUMNS = frozenset(BASE_COLUMNS + SETTINGS_COLUMNS + RESOLVED_COLUMNS + DIRECTION_COLUMNS + COST_COLUMNS)
