"""A report a person can read: report.md, a self-contained report.html and figures/*.png in a run folder.

    paths = write_report("runs/mnist-cnn-1-2")     # {"report.md": Path, "report.html": Path, "figures/...": Path}

Reads the folder written by pipeline.run_pair (S, T = the run's pair, manifest["pair"]; every .pt is
loaded with torch.load(weights_only=True)):

    manifest.json                    required: dataset fingerprint ("data"), classifier, settings, "pair"
    results.json                     required: directions["S->T" / "T->S"]["methods"][method] summaries,
                                     component_one / component_two stats
    components/ae2_<s>-<t>.pt        "a2", "a": pair row r of borderline/deepdig_<s>-<t>.pt has the ends
                                     a2[r] (class s) and a[r] (class t)
    borderline/<method>_<s>-<t>.pt   method in deepdig, rpbs, epbs: points, status, attempts, probs, lam,
                                     a_index / b_index (rpbs, epbs: rows of the training set)

and, when present, the characterization (deepdig_fast.characterize):

    results.json directions["<s>-><t>"]["trajectory"]
                                     TrajectoryResult.to_dict(), or {"skipped": "why"}
    results.json "linearity"         linearity(...).to_dict(), or
                                     {"skipped": "why"}
    results.json "characterization"  optional {"note": "..."}: shown as is (e.g. why nothing was run)
    characterize/trajectory_<s>-<t>.pt
                                     TrajectoryResult.tensors(): {"stats": [S, 4] int64 (changes, distinct
                                     labels, third-class changes, points in band), "i": [S] int64,
                                     "j": [S] int64, "T": int, "columns": [4 str], "source": int,
                                     "target": int}
    characterize/linearity_S-T.pt    linearity(...).tensors(): {"distances": {"train" | "test" |
                                     "borderline": [n] float64 signed distances}, "labels": {same keys:
                                     [n] int64 true classes}, "positive_class": int, "source": int,
                                     "target": int}

Every JSON file is read by readers.read_json against the shapes declared there (readers.MANIFEST,
RUN_RESULTS, RUN_TIMINGS): a manifest.json or results.json that is not JSON, nests too deep, holds a
number no deepdig file holds or has a field of the wrong type stops the report with one line naming
the file and the field (DamagedFileError, a ValueError), before anything is written.

Anything the run did not produce (a stage not run, a method skipped, a data set that cannot be
reloaded to show the baselines' pair ends) is stated in the report instead of failing. A file the
report could show but cannot use -- a .pt file that is unreadable or holds the wrong contents, one
that results.json says exists but is missing, a damaged timings.json -- is stated where its
section would be and listed at the end, with how to compute it again; the report is written and
then ReportIncompleteError (a ValueError: `deepdig report` prints its one line and exits 1) says
which file. Figures are drawn on matplotlib's Agg canvas without pyplot, so no global matplotlib
state changes.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import torch

from deepdig_fast.document import Doc, Figures, finish_report, fmt, fmt_g, int_text, num, pct, secs
from deepdig_fast.readers import MANIFEST, RUN_RESULTS, RUN_TIMINGS, FolderFiles, read_json
from deepdig_fast.rundir import check_same_run
from deepdig_fast.status import STATUS_TEXT as _STATUS_TEXT

METHOD_NAMES = {"deepdig": "DeepDIG", "rpbs": "RPBS", "epbs": "EPBS"}
METHOD_COLORS = {"deepdig": "#1f77b4", "rpbs": "#ff7f0e", "epbs": "#2ca02c"}
STATUS_TEXT = {status.name: text for status, text in _STATUS_TEXT.items()}
RERUN = "the same `deepdig run` command"

# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------


def _arrow(key: str) -> str:
    return key.replace("->", "→")


class _Names(dict):
    """Class id -> name; an id the manifest names no class for reads as itself."""

    def __missing__(self, c) -> str:
        return str(c)


def _rows_of(d: dict, names: tuple[str, ...]) -> str | None:
    """None when each of `names` is a tensor of d with one row per pair (all the same length), else what is wrong."""
    n = None
    for k in names:
        v = d.get(k)
        if not isinstance(v, torch.Tensor) or v.dim() == 0:
            return f"no per-pair tensor {k!r}"
        if n is None:
            n = v.shape[0]
        elif v.shape[0] != n:
            return f"{k!r} has {v.shape[0]} rows but {names[0]!r} {n}"
    return None


def _borderline_check(method: str):
    names = ("status", "attempts", "points", "probs", "lam") + (() if method == "deepdig" else ("a_index", "b_index"))
    return lambda d: _rows_of(d, names)


def _ends_check(d: dict) -> str | None:
    return _rows_of(d, ("a", "a2"))


def _trajectory_check(d: dict) -> str | None:
    stats = d.get("stats")
    if not (isinstance(stats, torch.Tensor) and stats.dim() == 2 and stats.shape[1] >= 2):
        return "no [segments, 4] tensor 'stats'"
    if not (d.get("T") is None or (isinstance(d["T"], int) and not isinstance(d["T"], bool))):
        return f"'T' is a {type(d['T']).__name__}, not an int"
    return None


def _linearity_check(d: dict) -> str | None:
    for k in ("distances", "labels"):
        v = d.get(k)
        if v is not None and not (isinstance(v, dict) and all(isinstance(x, torch.Tensor) for x in v.values())):
            return f"{k!r} is not a dict of tensors"
    return None


def _as_image(x: torch.Tensor):
    """One sample -> (array for imshow, cmap) or None when it is not an image."""
    x = x.detach().float().cpu()
    if x.dim() == 3 and x.shape[0] == 1:
        return x[0].clamp(0, 1).numpy(), "gray"
    if x.dim() == 3 and x.shape[0] == 3:
        return x.permute(1, 2, 0).clamp(0, 1).numpy(), None
    if x.dim() == 3 and x.shape[-1] in (1, 3):
        return (x[..., 0].clamp(0, 1).numpy(), "gray") if x.shape[-1] == 1 else (x.clamp(0, 1).numpy(), None)
    if x.dim() == 2:
        return x.clamp(0, 1).numpy(), "gray"
    if x.dim() == 1:
        side = int(round(math.sqrt(x.numel())))
        if side * side == x.numel() and side >= 4:
            return x.view(side, side).clamp(0, 1).numpy(), "gray"
    return None


def _spread(idx: torch.Tensor, k: int) -> torch.Tensor:
    """k entries of idx spread evenly over it (all when it has <= k)."""
    if idx.numel() <= k:
        return idx
    pos = torch.linspace(0, idx.numel() - 1, k).round().long()
    return idx[pos]


# --------------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------------


def _fig_success(fig, directions: dict, labels: dict) -> str | None:
    keys = list(directions)
    if not keys:
        return "results.json lists no direction"
    methods = ["deepdig", "rpbs", "epbs"]
    fig.set_size_inches(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.26
    for mi, m in enumerate(methods):
        for di, key in enumerate(keys):
            info = (directions[key].get("methods") or {}).get(m)
            x = di + (mi - 1) * width
            if info is None:
                continue
            rate = num(info.get("success_rate"))
            if info.get("skipped") or rate is None:
                ax.text(
                    x,
                    0.02,
                    "skipped" if info.get("skipped") else "no pairs",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="0.4",
                )
                continue
            ax.bar(x, rate, width * 0.92, color=METHOD_COLORS[m], label=METHOD_NAMES[m] if di == 0 else None)
            ax.text(
                x, rate + 0.015, f"{100 * rate:.0f}%\nn={info.get('pairs', 0)}", ha="center", va="bottom", fontsize=8.5
            )
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([labels.get(k, _arrow(k)) for k in keys])
    ax.set_ylim(0, 1.35)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("success rate (borderline found / pairs)")
    ax.set_title("Share of starting pairs that reached the decision boundary")
    ax.legend(loc="upper center", ncol=3, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return None


def _fig_attempts(fig, key: str, borderline: dict) -> str | None:
    from matplotlib.ticker import MaxNLocator

    methods = [m for m in ("deepdig", "rpbs", "epbs") if borderline.get(m) is not None]
    if not methods:
        return "no borderline file for this direction"
    fig.set_size_inches(4.0 * len(methods), 3.4)
    for k, m in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), k + 1)
        d = borderline[m]
        att, st = d["attempts"].long(), d["status"].long()
        if att.numel() == 0:
            ax.text(0.5, 0.5, "no pairs", ha="center", va="center", transform=ax.transAxes)
        else:
            top = int(att.max())
            bins = [b - 0.5 for b in range(1, top + 2)]
            ok = st == 0
            data = [att[ok].numpy(), att[~ok].numpy()]
            ax.hist(
                data,
                bins=bins,
                stacked=True,
                color=[METHOD_COLORS[m], "#d62728"],
                label=[f"success ({int(ok.sum())})", f"failure ({int((~ok).sum())})"],
            )
            ax.legend(frameon=False, fontsize=9)
        ax.set_title(f"{METHOD_NAMES[m]}, {_arrow(key)}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("attempts (points evaluated)")
        if k == 0:
            ax.set_ylabel("pairs")
        ax.grid(axis="y", alpha=0.3)
    return None


def _mosaic(points: torch.Tensor, cols: int, pad: int = 2):
    """Tile images into one array (gray padding between tiles): (array, cmap)."""
    imgs = [_as_image(x) for x in points]
    cmap = imgs[0][1]
    arrs = [torch.as_tensor(a) for a, _ in imgs]
    h, w = arrs[0].shape[:2]
    rows = -(-len(arrs) // cols)
    extra = arrs[0].shape[2:]
    out = torch.full((rows * (h + pad) + pad, cols * (w + pad) + pad, *extra), 0.5, dtype=torch.float32)
    for k, a in enumerate(arrs):
        r, c = divmod(k, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y : y + h, x : x + w] = a
    return out.numpy(), cmap


def _fig_grid(fig, points: torch.Tensor, title: str, n_max: int = 64) -> str | None:
    if points.shape[0] == 0:
        return "no successful borderline sample"
    if _as_image(points[0]) is None:
        return f"samples of shape {list(points.shape[1:])} are not images"
    idx = _spread(torch.arange(points.shape[0]), n_max)
    cols = min(8, idx.numel())
    img, cmap = _mosaic(points[idx], cols)
    aspect = img.shape[0] / img.shape[1]
    fig.set_size_inches(8.0, 8.0 * aspect + 0.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return None


def _fig_strips(fig, rows: list[dict], s: int, t: int, names: dict[int, str]) -> str | None:
    if not rows:
        return "no pair to show"
    if _as_image(rows[0]["a"]) is None:
        return "samples are not images"
    n = len(rows)
    fig.set_size_inches(6.6, 1.9 * n + 0.3)
    for k, r in enumerate(rows):
        panels = [
            (r["a"], f"end a: class {names[s]}"),
            (r["m"], f"borderline, λ={r['lam']:.3f}\np({names[s]})={r['ps']:.4f} p({names[t]})={r['pt']:.4f}"),
            (r["b"], f"end b: class {names[t]}"),
        ]
        for c, (x, label) in enumerate(panels):
            ax = fig.add_subplot(n, 3, 3 * k + c + 1)
            img, cmap = _as_image(x)
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=9)
            if c == 0:
                ax.set_ylabel(METHOD_NAMES[r["method"]], fontsize=10)
    return None


def _fig_oscillation(fig, stats: torch.Tensor, T: int, key: str, mean: float | None) -> str | None:
    if stats.shape[0] == 0:
        return "no segment was evaluated"
    fig.set_size_inches(9.5, 3.5)
    changes = stats[:, 0].long()
    ax = fig.add_subplot(1, 2, 1)
    top = int(changes.max())
    ax.hist((changes.double() / T).numpy(), bins=[(c - 0.5) / T for c in range(0, top + 2)], color="#1f77b4")
    if mean is not None:
        ax.axvline(mean, color="#d62728", linestyle="--", label=f"mean {mean:.4f}")
        ax.legend(frameon=False)
    ax.set_xlabel("oscillation of a segment (label changes / T)")
    ax.set_ylabel("segments")
    ax.set_title(f"Oscillation, {_arrow(key)} (T = {T})")
    ax.grid(axis="y", alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    distinct = stats[:, 1].long()
    vals = torch.bincount(distinct)
    xs = [v for v in range(vals.numel()) if vals[v] > 0]
    ax2.bar(xs, [int(vals[v]) for v in xs], color="#9467bd")
    ax2.set_xticks(xs)
    ax2.set_xlabel("distinct labels on a segment")
    ax2.set_ylabel("segments")
    ax2.set_title("Labels met along a segment")
    ax2.grid(axis="y", alpha=0.3)
    return None


def _fig_svm(fig, arrays: dict, sets: dict, names: dict[int, str]) -> str | None:
    dist = arrays.get("distances") or {}
    labels = arrays.get("labels") or {}
    present = [k for k in ("train", "test", "borderline") if k in dist]
    if not present:
        return "the linearity file holds no distances"
    fig.set_size_inches(4.2 * len(present), 3.5)
    s, t = arrays.get("source"), arrays.get("target")
    for k, name in enumerate(present):
        ax = fig.add_subplot(1, len(present), k + 1)
        d = dist[name].double()
        y = labels.get(name)
        if d.numel() == 0:
            ax.text(0.5, 0.5, "empty set", ha="center", va="center", transform=ax.transAxes)
        else:
            lo, hi = float(d.min()), float(d.max())
            if hi - lo < 1e-12:
                lo, hi = lo - 1e-6, hi + 1e-6
            bins = torch.linspace(lo, hi, 41).numpy()
            for c, color in ((s, "#1f77b4"), (t, "#ff7f0e")):
                if y is None or c is None:
                    continue
                sel = d[y == c]
                if sel.numel():
                    ax.hist(sel.numpy(), bins=bins, alpha=0.6, color=color, label=f"class {names[c]} ({sel.numel()})")
            if y is None:
                ax.hist(d.numpy(), bins=bins, color="0.5")
            ax.axvline(0.0, color="k", linewidth=1)
            ax.legend(frameon=False, fontsize=9)
        info = sets.get(name) or {}
        ax.set_title(f"{name}: m1 = {fmt_g(info.get('m1'))}, SVM acc. {pct(info.get('accuracy'))}", fontsize=11)
        ax.set_xlabel("signed distance to the SVM hyperplane")
        if k == 0:
            ax.set_ylabel("inputs")
        ax.grid(axis="y", alpha=0.3)
    return None


# --------------------------------------------------------------------------------------------------
# data for the baselines' pair ends
# --------------------------------------------------------------------------------------------------


def _training_inputs(manifest: dict) -> tuple[torch.Tensor | None, str | None]:
    """The run's training inputs when they can be reloaded and verified (MNIST only), else a reason."""
    fp = manifest.get("data") or {}
    name = manifest.get("dataset") or fp.get("name")
    if name != "mnist":
        return None, (
            f"the training inputs of data set {name!r} are not reloaded by the report (only the shipped MNIST is)"
        )
    try:
        from deepdig_fast.data import load_mnist
        from deepdig_fast.identity import data_fingerprint

        data = load_mnist()
        n_train = (fp.get("train") or [None])[0]
        n_test = (fp.get("test") or [None])[0]
        for cand in (data, data.take(n_train, n_test)):
            if data_fingerprint(cand) == fp:
                return cand.x_train, None
    except Exception as exc:  # missing files, changed loader: say so
        return None, f"MNIST could not be loaded ({type(exc).__name__}: {exc})"
    return None, "the shipped MNIST does not match the run's data fingerprint (a different subset was used)"


def _strip_rows(method: str, d: dict, s: int, t: int, ends, k: int) -> list[dict]:
    ok = (d["status"] == 0).nonzero().flatten()
    a_all, b_all = ends
    rows = []
    for r in _spread(ok, k).tolist():
        if method == "deepdig":
            a, b = a_all[r], b_all[r]
        else:
            a, b = a_all[int(d["a_index"][r])], a_all[int(d["b_index"][r])]
        m = d["points"][r]
        lam = float(d["lam"][r])
        # the point must lie on the segment a -> b; otherwise the ends are not this pair's
        if not torch.allclose(a.double() + lam * (b.double() - a.double()), m.double(), atol=1e-4, rtol=0):
            raise ValueError("pair ends do not match the borderline point")
        p = d["probs"][r]
        rows.append({"method": method, "a": a, "b": b, "m": m, "lam": lam, "ps": float(p[s]), "pt": float(p[t])})
    return rows


# --------------------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------------------


def _training_text(meta: dict) -> str:
    """How the classifier was trained (recipe, regime, settings), from its checkpoint metadata."""
    from .training import describe_training

    how = describe_training(meta)
    if how["recipe"] == "unrecorded":
        return "not recorded (a checkpoint from before recipes were recorded, or a model from elsewhere)"
    return f"recipe {how['recipe']}, regime {how['regime']}; {how['settings']}"


def write_report(run_dir) -> dict[str, Path]:
    """Write report.md, report.html (figures embedded) and figures/*.png into a run folder.

    Args:
        run_dir: the folder written by pipeline.run_pair (manifest.json and results.json required;
            see the module docstring for every file read and the characterization layout).
    Returns:
        {path relative to run_dir: absolute Path} of every file written.
    Raises:
        FileNotFoundError / DamagedFileError (a ValueError) when manifest.json or results.json is
        missing or unusable; nothing is written then.
        ReportIncompleteError (a ValueError; its `paths` are the files written) when the report was
        written without what a damaged or missing file of the run holds: the report says which.
    """
    if not isinstance(run_dir, (str, Path)):
        raise TypeError(f"run_dir must be a path (str or Path), got {type(run_dir).__name__}")
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"run_dir must be a run folder written by `deepdig run`; {root} is not a directory")
    manifest = read_json(root / "manifest.json", "the run's settings", spec=MANIFEST)
    results = read_json(root / "results.json", "the run's results; is the run finished?", spec=RUN_RESULTS)
    check_same_run(root, manifest, results, "results.json")
    files = FolderFiles(root, RERUN)
    timings = files.json("timings.json", RUN_TIMINGS) or {}

    pair = results.get("pair") or manifest.get("pair")
    if not (isinstance(pair, list) and len(pair) == 2):
        raise ValueError(f'{root / "results.json"} must name the class pair as "pair": [s, t], got {pair!r}')
    S, T = int(pair[0]), int(pair[1])
    names = _Names(enumerate(str(c) for c in (manifest.get("classes") or [])))
    directions: dict = results["directions"]
    labels = {k: f"{names[v['source']]} → {names[v['target']]}" for k, v in directions.items()}
    figs = Figures(root)
    doc = Doc()
    cfg = manifest.get("config") or results.get("config") or {}
    adv = cfg.get("adversarial") or {}
    dataset = manifest.get("dataset") or (manifest.get("data") or {}).get("name") or "?"
    clf = manifest.get("classifier") or {}
    meta = manifest.get("classifier_meta") or {}

    # ---- load per-direction files; a file results.json says the run wrote is expected
    borderline: dict[str, dict] = {}
    ae2: dict[str, dict | None] = {}
    trajectory_pt: dict[str, dict | None] = {}
    for key, d in directions.items():
        tag = f"{d['source']}-{d['target']}"
        methods = d.get("methods") or {}
        borderline[key] = {}
        for method in ("deepdig", "rpbs", "epbs"):
            info = methods.get(method)
            ran = isinstance(info, dict) and not info.get("skipped")
            borderline[key][method] = files.pt(
                f"borderline/{method}_{tag}.pt",
                expected=f"results.json reports {METHOD_NAMES[method]}'s search for {labels[key]}" if ran else None,
                check=_borderline_check(method),
            )
        deepdig_ran = isinstance(methods.get("deepdig"), dict) and not methods["deepdig"].get("skipped")
        c2 = files.pt(
            f"components/ae2_{tag}.pt",
            expected=f"results.json reports DeepDIG's pairs for {labels[key]}" if deepdig_ran else None,
            check=_ends_check,
        )
        ae2[key] = None if c2 is None else {"a": c2["a"], "a2": c2["a2"]}
        tr = d.get("trajectory")
        measured = isinstance(tr, dict) and not (tr.get("skipped") or tr.get("reason"))
        trajectory_pt[key] = files.pt(
            f"characterize/trajectory_{tag}.pt",
            expected=f"results.json reports the trajectory oscillation of {labels[key]}" if measured else None,
            check=_trajectory_check,
        )
    lin = results.get("linearity")
    linearity_pt = files.pt(
        f"characterize/linearity_{S}-{T}.pt",
        expected="results.json reports the embedding linearity" if isinstance(lin, dict) and lin.get("sets") else None,
        check=_linearity_check,
    )
    charac = results.get("characterization")

    # ---- title and summary
    title = f"DeepDIG report: {dataset}, classes {names[S]} and {names[T]}"
    doc.h(1, title)
    doc.p(
        f"Run folder `{root.name}` · classifier `{clf.get('class', '?')}` · deepdig_fast {manifest.get('version', '?')} · "
        f"report written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}"
    )
    unusable = files.summary()
    if unusable:
        doc.note(unusable)
    summary = []
    for key, d in directions.items():
        m = (d.get("methods") or {}).get("deepdig") or {}
        if m.get("skipped"):
            summary.append(f"**{labels[key]}**: DeepDIG found no borderline samples ({m['skipped']}).")
        else:
            summary.append(
                f"**{labels[key]}**: DeepDIG refined {int_text(m.get('pairs'))} pairs into "
                f"{int_text(m.get('successes'))} borderline samples (success rate {pct(m.get('success_rate'))}, "
                f"{fmt(m.get('mean_attempts_success'), 1)} attempts on average)."
            )
            tr = d.get("trajectory") or {}
            if num(tr.get("oscillation")) is not None:
                summary[-1] += f" Trajectory oscillation {fmt_g(tr['oscillation'])}."
    if isinstance(lin, dict) and lin.get("sets"):
        summary.append(_linearity_reading(lin))
    doc.h(2, "Summary")
    doc.ul(summary or ["results.json lists no direction."])

    # ---- explanation
    doc.h(2, "What this report shows")
    doc.p(
        "A classifier splits its input space into regions, one per class. Between the regions of two classes "
        f"*s* and *t* (here {names[S]} and {names[T]}) lies their **decision boundary**: the inputs the classifier "
        'finds equally likely to be *s* and *t*. DeepDIG (Karimi, Derr and Tang, "Characterizing the Decision '
        'Boundary of Deep Neural Networks") finds inputs on that boundary and then measures its shape.'
    )
    doc.p(
        f"A **borderline sample** is an input *x* whose softmax probabilities of the two classes agree to within "
        f"β = {fmt_g(cfg.get('beta', 1e-4))}: |p_s(x) − p_t(x)| < β, with *s* and *t* ahead of every other class. "
        "Every method below starts from **pairs** of inputs, one classified *s* and one classified *t*, and "
        "walks along the straight line between them by bisection: the midpoint is classified, and the half "
        "whose ends still have different classes is kept, until the midpoint is borderline (a **success**) or "
        f"the search fails (another class wins at the midpoint, float precision runs out, or {cfg.get('max_steps', 64)} "
        "points were tried). **Attempts** = the number of points the search classified for a pair."
    )
    doc.ul(
        [
            "**DeepDIG** makes its pairs with two autoencoders: the first turns training inputs of class *s* into "
            "look-alikes the classifier calls *t* (adversarial samples, component I); the second turns those back into "
            "inputs called *s* (component II). Both ends of a pair are close to each other and to the boundary.",
            "**RPBS** (random pair baseline) pairs random correctly classified training inputs of *s* and *t*.",
            "**EPBS** (embedding-nearest pair baseline) pairs each correctly classified *s* input with the *t* input "
            "whose embedding (the classifier's penultimate representation) is nearest.",
            "**Direction** *s* → *t* uses pairs built from class *s*; *t* → *s* repeats everything with the roles swapped.",
        ]
    )

    # ---- run settings
    doc.h(2, "The run")
    fp = manifest.get("data") or {}
    acc = meta.get("accuracy")
    rows = [
        [
            "data set",
            f"{dataset}: {int_text((fp.get('train') or [None])[0])} training / {int_text((fp.get('test') or [None])[0])} test inputs, "
            f"input shape {(fp.get('train') or [None])[1:]}",
        ],
        ["classes", f"s = {S} ({names[S]}), t = {T} ({names[T]})"],
        [
            "classifier",
            f"{clf.get('class', '?')}"
            + (f", test accuracy {pct(acc, 2)}" if num(acc) is not None else "")
            + f", weights SHA-256 {str(clf.get('sha256') or '?')[:12]}…",
        ],
        ["classifier training", _training_text(meta)],
        [
            "embedding layer",
            f"`{clf.get('embedding_layer')}`" if clf.get("embedding_layer") else "none (EPBS and linearity need one)",
        ],
        [
            "autoencoders",
            f"{int_text(adv.get('steps'))} steps, α = {adv.get('alpha', '?')}, Adam lr {adv.get('lr', '?')}, "
            f"batch {adv.get('batch_size', '?')}",
        ],
        [
            "borderline search",
            f"{cfg.get('method', '?')}, β = {fmt_g(cfg.get('beta'))}, at most {cfg.get('max_steps', '?')} attempts",
        ],
        ["seed", str(cfg.get("seed", manifest.get("seed", "?")))],
        [
            "software",
            f"deepdig_fast {manifest.get('version', '?')}, torch {manifest.get('torch', '?')}, Python {manifest.get('python', '?')}",
        ],
        [
            "wall time",
            "unknown: timings.json cannot be used (see the end of this report)"
            if files.problem("timings.json")
            else secs(timings.get("seconds", results.get("seconds"))),
        ],
    ]
    doc.table(["item", "value"], rows)

    # ---- borderline search
    doc.h(2, "Finding the boundary")
    doc.p(
        "**Success rate** = successes / pairs: how often a method's starting pairs lead to a borderline sample. "
        "**Mean attempts** = points classified per pair (lower is cheaper; each bisection step halves the "
        "segment). **Forwards** = inputs passed through the classifier, including the pairs' ends."
    )
    trows = []
    for key, d in directions.items():
        for m in ("deepdig", "rpbs", "epbs"):
            info = (d.get("methods") or {}).get(m)
            if info is None:
                trows.append([labels[key], METHOD_NAMES[m], "not run", "", "", "", "", "", ""])
                continue
            if info.get("skipped"):
                trows.append([labels[key], METHOD_NAMES[m], f"skipped: {info['skipped']}", "", "", "", "", "", ""])
                continue
            counts = info.get("counts") or {}
            fails = (
                ", ".join(f"{STATUS_TEXT.get(k, k)}: {v}" for k, v in counts.items() if k != "SUCCESS" and v) or "none"
            )
            trows.append(
                [
                    labels[key],
                    METHOD_NAMES[m],
                    int_text(info.get("pairs")),
                    int_text(info.get("successes")),
                    pct(info.get("success_rate")),
                    fmt(info.get("mean_attempts_success"), 1),
                    fmt(info.get("mean_attempts_failure"), 1),
                    fails,
                    int_text(info.get("forwards")),
                ]
            )
    doc.table(
        [
            "direction",
            "method",
            "pairs",
            "successes",
            "success rate",
            "mean attempts (successes)",
            "mean attempts (failures)",
            "failures by reason",
            "forwards",
        ],
        trows,
    )
    crows = []
    for key, d in directions.items():
        c1 = d.get("component_one") or {}
        tr = c1.get("train") or {}
        c2 = d.get("component_two") or {}
        crows.append(
            [
                labels[key],
                int_text(tr.get("n_inputs")),
                int_text(tr.get("kept")),
                pct(c1.get("fraction_of_all")),
                pct(c1.get("test_fraction_of_all")),
                int_text(c2.get("pairs")) if c2 else "–",
                c1.get("collapse") or (c2 or {}).get("collapse") or "",
            ]
        )
    doc.p(
        "DeepDIG's pairs come from its autoencoders. Component I turns the training inputs of the source class "
        "into adversarial samples (kept when the classifier called the original *s* and calls the output *t*); "
        "component II maps those back and keeps the pairs whose image is called *s* again."
    )
    doc.table(
        [
            "direction",
            "source-class training inputs",
            "adversarial kept",
            "share (train)",
            "share (test)",
            "pairs kept by component II",
            "problem",
        ],
        crows,
    )
    rel, why = figs.draw("success_rates.png", _fig_success, directions, labels)
    doc.fig(
        rel,
        "Success rate per direction and method. Bars are labelled with the rate and the number of pairs; "
        "a missing bar says why the method was not run.",
        why,
    )
    for key, d in directions.items():
        tag = f"{d['source']}-{d['target']}"
        rel, why = figs.draw(f"attempts_{tag}.png", _fig_attempts, key, borderline[key])
        doc.fig(
            rel,
            f"Attempts per pair, {labels[key]}: how many points each search classified before it "
            "succeeded (blue/orange/green) or failed (red).",
            why,
        )
        for m in ("deepdig", "rpbs", "epbs"):
            problem = files.problem(f"borderline/{m}_{tag}.pt")
            if problem:
                doc.note(f"{METHOD_NAMES[m]} is not in this figure: {problem}.")

    # ---- samples
    doc.h(2, "Borderline samples")
    doc.p(
        "These inputs sit on the decision boundary: the classifier cannot tell whether they are "
        f"{names[S]} or {names[T]}. The strips show how they were found: the two ends of a pair, one on each side "
        "of the boundary, and the borderline point between them (λ = position on the segment from end a, 0, to end b, 1)."
    )
    x_train, train_why = None, None
    need_train = any(borderline[k].get(m) is not None for k in directions for m in ("rpbs", "epbs"))
    if need_train:
        x_train, train_why = _training_inputs(manifest)
    for key, d in directions.items():
        s, t = d["source"], d["target"]
        tag = f"{s}-{t}"
        doc.h(3, labels[key])
        damaged = {m: files.problem(f"borderline/{m}_{tag}.pt") for m in ("deepdig", "rpbs", "epbs")}
        shown = next(
            (
                m
                for m in ("deepdig", "rpbs", "epbs")
                if borderline[key].get(m) is not None and bool((borderline[key][m]["status"] == 0).any())
            ),
            None,
        )
        if shown is None:
            for m, problem in damaged.items():
                if problem:
                    doc.note(f"{METHOD_NAMES[m]}'s borderline samples of {labels[key]} cannot be shown: {problem}.")
            if not any(damaged.values()):
                doc.note(f"No method found a borderline sample for {labels[key]}.")
        else:
            ok = borderline[key][shown]["status"] == 0
            pts = borderline[key][shown]["points"][ok]
            if shown != "deepdig" and damaged["deepdig"]:
                doc.note(
                    f"DeepDIG's borderline samples of {labels[key]} cannot be shown: {damaged['deepdig']}; "
                    f"the grid shows {METHOD_NAMES[shown]}'s."
                )
            elif shown != "deepdig":
                doc.note(
                    f"DeepDIG has no borderline samples for {labels[key]}; the grid shows {METHOD_NAMES[shown]}'s."
                )
            rel, why = figs.draw(
                f"borderline_{tag}.png",
                _fig_grid,
                pts,
                f"{METHOD_NAMES[shown]} borderline samples, {labels[key]} ({min(64, pts.shape[0])} of {pts.shape[0]})",
            )
            doc.fig(
                rel,
                f"{METHOD_NAMES[shown]} borderline samples {labels[key]}, spread evenly over the successful pairs.",
                why,
            )
        strip_rows, notes = [], []
        for m in ("deepdig", "rpbs", "epbs"):
            b = borderline[key].get(m)
            if b is None or not bool((b["status"] == 0).any()):
                continue
            if m == "deepdig":
                e = ae2.get(key)
                problem = files.problem(f"components/ae2_{tag}.pt")
                if problem:
                    notes.append(f"DeepDIG pairs: {problem}")
                    continue
                if e is None or e["a"].shape[0] != b["status"].shape[0]:
                    notes.append(
                        f"DeepDIG pairs: components/ae2_{tag}.pt is missing or does not match the borderline file"
                    )
                    continue
                ends = (e["a2"], e["a"])
            else:
                if x_train is None:
                    notes.append(f"{METHOD_NAMES[m]} pairs: {train_why}")
                    continue
                ends = (x_train, None)
            try:
                strip_rows += _strip_rows(m, b, s, t, ends, 3 if m == "deepdig" else 2)
            except (ValueError, IndexError) as exc:
                notes.append(f"{METHOD_NAMES[m]} pairs: {exc}")
        for n_ in notes:
            doc.note(f"Not shown in the strips: {n_}.")
        if strip_rows:
            rel, why = figs.draw(f"pairs_{tag}.png", _fig_strips, strip_rows, s, t, names)
            doc.fig(
                rel,
                f"Pairs {labels[key]}: end a (class {names[s]}), the borderline point found between the ends, "
                f"end b (class {names[t]}); p(·) are the classifier's probabilities at the borderline point.",
                why,
            )

    # ---- characterization
    doc.h(2, "Shape of the boundary")
    if isinstance(charac, dict) and charac.get("note"):
        doc.note(str(charac["note"]))
    _trajectory_section(doc, figs, directions, labels, trajectory_pt, timings.get("directions") or {}, files)
    _linearity_section(doc, figs, lin, linearity_pt, names, S, T, files)

    # ---- files
    doc.h(2, "Files in this run folder")
    doc.ul(
        [
            "`manifest.json`: versions, settings, the classifier's checksum, the data set's fingerprint.",
            "`results.json`: every number in this report (NaN written as null).",
            "`components/ae1_S-T.pt`, `components/ae2_S-T.pt`: the autoencoders and their adversarial sets / pairs.",
            "`borderline/<method>_S-T.pt`: per pair the final point, status, attempts, probabilities, λ and embedding.",
            "`characterize/trajectory_S-T.pt`, `characterize/linearity_S-T.pt`: per-segment statistics and SVM distances.",
            "`figures/*.png`: the figures of this report. Load `.pt` files with `torch.load(path, weights_only=True)`.",
        ]
    )
    return finish_report(doc, figs, root, "report", title, files=files)


def _linearity_reading(lin: dict) -> str:
    """One sentence: how close the borderline samples are to the SVM hyperplane, and what that says."""
    sets = lin.get("sets") or {}
    b = sets.get("borderline") or {}
    refs = [(sets.get(k) or {}) for k in ("train", "test")]
    ref_m1 = [v for v in (num(r.get("m1")) for r in refs) if v is not None]
    ref_abs = [v for v in (num(r.get("mean_abs")) for r in refs) if v is not None]
    bm1, babs, bacc = num(b.get("m1")), num(b.get("mean_abs")), num(b.get("accuracy"))
    if bm1 is None or not ref_m1:
        return "Embedding linearity: not enough data for a reading (no borderline or train/test inputs)."
    ratio = bm1 / min(ref_m1) if min(ref_m1) > 0 else float("inf")
    closer = ""
    if babs and ref_abs:
        closer = f", {min(ref_abs) / babs:.0f}× closer to the SVM hyperplane than train/test inputs on average"
    if ratio <= 0.2 and bacc is not None and abs(bacc - 0.5) <= 0.15:
        verdict = "this is what a near-linear boundary in embedding space looks like (paper §4.2)"
    elif ratio <= 0.5:
        verdict = "the boundary is close to, but not exactly, a hyperplane in embedding space"
    else:
        verdict = "the boundary is far from a hyperplane in embedding space"
    return (
        f"Embedding linearity: borderline m1 = {fmt_g(bm1)} against {fmt_g(min(ref_m1))} for train/test "
        f"(ratio {fmt_g(ratio, 2)}{closer}); the SVM classifies the borderline samples with accuracy "
        f"{pct(bacc)} (50% = chance): {verdict}."
    )


def _trajectory_section(
    doc: Doc, figs: Figures, directions: dict, labels: dict, trajectory_pt: dict, times: dict, files: FolderFiles
) -> None:
    doc.h(3, "Trajectory oscillation")
    doc.p(
        "How often does the predicted class change when you walk from one borderline sample to another? For each "
        "borderline sample x_i, K other samples x_j of the same direction are drawn; T evenly spaced points on "
        "the segment from x_j towards x_i are classified, and the segment's **oscillation** = (number of label "
        "changes between consecutive points) / T. The table reports the mean over all segments (the paper's "
        "value). 0 means the segment never leaves one class: the boundary is smooth between the samples; larger "
        "values mean the line crosses the boundary back and forth. **Distinct labels** = classes met on a "
        "segment; **third-class changes** = changes to or from a class other than s and t; **band share** = "
        "share of points whose p_s − p_t lies in the band (a measure of boundary thickness)."
    )
    rows = []
    any_result = False
    for key, d in directions.items():
        tr = d.get("trajectory")
        if not isinstance(tr, dict):
            rows.append([labels[key], "not computed", "", "", "", "", "", "", "", ""])
            continue
        if tr.get("skipped") or tr.get("reason"):
            rows.append(
                [labels[key], f"skipped: {tr.get('skipped') or tr.get('reason')}", "", "", "", "", "", "", "", ""]
            )
            continue
        any_result = True
        ci = tr.get("ci95")
        osc = fmt_g(tr.get("oscillation"), 4)
        if ci and num(ci[0]) is not None:
            osc += f" (95% CI {fmt_g(ci[0], 4)} – {fmt_g(ci[1], 4)})"
        band = tr.get("band") or [None, None]
        rows.append(
            [
                labels[key],
                tr.get("mode", "?"),
                int_text(tr.get("n_samples")),
                f"K = {tr.get('K')}, T = {tr.get('T')}",
                int_text(tr.get("n_segments")),
                osc,
                fmt(tr.get("mean_distinct_labels"), 2),
                pct(tr.get("third_class_change_share")),
                f"{pct(tr.get('band_share'))} in [{fmt_g(band[0])}, {fmt_g(band[1])}]",
                f"{int_text(tr.get('forwards'))} / "
                f"{secs(((times.get(key) or {}).get('trajectory') or {}).get('seconds', tr.get('seconds')))}",
            ]
        )
    doc.table(
        [
            "direction",
            "mode",
            "samples",
            "design",
            "segments",
            "oscillation",
            "distinct labels (mean)",
            "third-class share of changes",
            "band share",
            "forwards / time",
        ],
        rows,
    )
    if not any_result:
        doc.note("The trajectory oscillation was not computed for this run; the table lists why where known.")
    else:
        doc.p(
            "*exact* mode evaluates the paper's design (K partners per sample, all others when there are fewer); "
            "*estimate* mode samples segments at random and gives a 95% confidence interval for the same mean."
        )
    for key, d in directions.items():
        tag = f"{d['source']}-{d['target']}"
        pt = trajectory_pt.get(key)
        problem = files.problem(f"characterize/trajectory_{tag}.pt")
        if problem:
            doc.note(f"No oscillation histogram of {labels[key]}: {problem}.")
        if pt is None:
            continue
        T = pt.get("T") or (d.get("trajectory") or {}).get("T")
        if not (isinstance(T, int) and T >= 1):
            doc.note(f"characterize/trajectory file of {labels[key]} has no T; histogram skipped.")
            continue
        mean = num((d.get("trajectory") or {}).get("oscillation"))
        rel, why = figs.draw(f"oscillation_{tag}.png", _fig_oscillation, pt["stats"], T, key, mean)
        doc.fig(
            rel,
            f"Per-segment oscillation and number of classes met, {labels[key]}. A spike at 0 means most "
            "segments between borderline samples stay within one class.",
            why,
        )


def _linearity_section(
    doc: Doc, figs: Figures, lin, arrays, names: dict[int, str], S: int, T: int, files: FolderFiles
) -> None:
    doc.h(3, "Linearity in embedding space")
    doc.p(
        "Is the boundary a flat hyperplane in the classifier's embedding space (its penultimate layer)? A linear "
        "SVM is fitted to the embeddings of all training inputs of the two classes; for every input the "
        "**signed distance** d to the SVM's hyperplane is measured (sign = side). Per set: "
        "**m1** = mean|d| / (1 + mean|d|) (0 = on the hyperplane, towards 1 = far away); **m2** = the same over the "
        "inputs the SVM puts on the wrong side; max, mean and min of d; the SVM's **accuracy**. "
        "Reading (paper): if the classifier's boundary is near-linear in embedding space, the borderline samples "
        "lie on the SVM's hyperplane — borderline m1 much smaller than train/test m1 — and the SVM can only "
        "guess their class (accuracy near 50%)."
    )
    if not isinstance(lin, dict) or not lin.get("sets"):
        why = lin.get("skipped") if isinstance(lin, dict) else None
        doc.note(f"Embedding linearity was not computed for this run{': ' + why if why else ''}.")
        return
    rows = []
    for name in ("train", "test", "borderline"):
        s = (lin.get("sets") or {}).get(name)
        if s is None:
            continue
        rows.append(
            [
                name,
                int_text(s.get("n")),
                fmt_g(s.get("m1"), 4),
                fmt_g(s.get("m2"), 4),
                fmt_g(s.get("mean_abs"), 4),
                fmt_g(s.get("max"), 4),
                fmt_g(s.get("mean"), 4),
                fmt_g(s.get("min"), 4),
                pct(s.get("accuracy")),
                int_text(s.get("misclassified")),
            ]
        )
    doc.table(
        [
            "set",
            "n",
            "m1",
            "m2",
            "mean |d|",
            "max d",
            'mean d (public code: "min")',
            "min d",
            "SVM accuracy",
            "misclassified",
        ],
        rows,
    )
    svm = lin.get("svm") or {}
    conv = svm.get("converged")
    doc.p(
        f"SVM: LinearSVC(C = {svm.get('C', '?')}, max_iter = {svm.get('max_iter', '?')}) on the "
        f"{svm.get('embedding_dim', '?')}-d embedding `{lin.get('embedding_layer', '?')}`; "
        f"{'converged' if conv else 'did **not** converge' if conv is False else 'convergence unknown'} after "
        f"{svm.get('n_iter', '?')} iterations. d > 0 is the side of class {svm.get('positive_class', '?')}. "
        'The public DeepDIG code reports the mean of d under the name "min"; both are shown here.'
    )
    doc.p(_linearity_reading(lin))
    if arrays is None:
        problem = files.problem(f"characterize/linearity_{S}-{T}.pt")
        doc.note(f"No distance histograms: {problem or f'characterize/linearity_{S}-{T}.pt is missing'}.")
        return
    rel, why = figs.draw("svm_distances.png", _fig_svm, arrays, lin.get("sets") or {}, names)
    doc.fig(
        rel,
        "Signed distances to the SVM hyperplane (black line), by true class. Train and test inputs should "
        "sit on their class's side, away from 0; borderline samples near 0 indicate a near-linear boundary.",
        why,
    )
