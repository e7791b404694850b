"""The run report's sections on the run as a whole: title and summary, what the report shows, the
run's settings, finding the boundary (tables and figures of the borderline search) and the files of
the run folder. Each appends its blocks to a Doc in the order the page shows them."""

from __future__ import annotations

from deepdig_fast.document import Doc, Figures, fmt, fmt_g, int_text, num, pct, secs
from deepdig_fast.report.figures import fig_attempts, fig_success
from deepdig_fast.report.folder import METHOD_NAMES, METHODS, RunFolder
from deepdig_fast.report.shape import linearity_reading
from deepdig_fast.report.shared import classifier_training, short_sha, training_steps, written_at
from deepdig_fast.status import STATUS_TEXT as _STATUS_TEXT
from deepdig_fast.tables import model_name

STATUS_TEXT = {status.name: text for status, text in _STATUS_TEXT.items()}


# --------------------------------------------------------------------------------------------------
# title, summary and explanation
# --------------------------------------------------------------------------------------------------


def title_and_summary(doc: Doc, run: RunFolder) -> str:
    """The page's heading, its provenance line, what could not be read and the summary; returns the title."""
    names, S, T = run.names, run.S, run.T
    title = f"DeepDIG report: {run.dataset}, classes {names[S]} and {names[T]}"
    doc.h(1, title)
    doc.p(
        f"Run folder `{run.root.name}` · model {model_name(run.manifest)} · classifier `{run.classifier.get('class', '?')}` · "
        f"deepdig_fast {run.manifest.get('version', '?')} · report written {written_at()}"
    )
    unusable = run.files.summary()
    if unusable:
        doc.note(unusable)
    doc.h(2, "Summary")
    doc.ul(_summary(run) or ["results.json lists no direction."])
    return title


def _summary(run: RunFolder) -> list[str]:
    """One line per direction (DeepDIG's yield, the oscillation) and the linearity's reading."""
    summary = []
    for key, d in run.directions.items():
        label = run.labels[key]
        m = (d.get("methods") or {}).get("deepdig") or {}
        if m.get("skipped"):
            summary.append(f"**{label}**: DeepDIG found no borderline samples ({m['skipped']}).")
            continue
        line = (
            f"**{label}**: DeepDIG refined {int_text(m.get('pairs'))} pairs into "
            f"{int_text(m.get('successes'))} borderline samples (success rate {pct(m.get('success_rate'))}, "
            f"{fmt(m.get('mean_attempts_success'), 1)} attempts on average)."
        )
        tr = d.get("trajectory") or {}
        if num(tr.get("oscillation")) is not None:
            line += f" Trajectory oscillation {fmt_g(tr['oscillation'])}."
        summary.append(line)
    lin = run.linearity
    if isinstance(lin, dict) and lin.get("sets"):
        summary.append(linearity_reading(lin))
    return summary


def explanation(doc: Doc, run: RunFolder) -> None:
    """What a decision boundary, a borderline sample and the three methods are."""
    names, cfg = run.names, run.config
    doc.h(2, "What this report shows")
    doc.p(
        "A classifier splits its input space into regions, one per class. Between the regions of two classes "
        f"*s* and *t* (here {names[run.S]} and {names[run.T]}) lies their **decision boundary**: the inputs the "
        'classifier finds equally likely to be *s* and *t*. DeepDIG (Karimi, Derr and Tang, "Characterizing the '
        'Decision Boundary of Deep Neural Networks") finds inputs on that boundary and then measures its shape.'
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


# --------------------------------------------------------------------------------------------------
# the run's settings
# --------------------------------------------------------------------------------------------------


def _training_text(manifest: dict) -> str:
    """How the classifier was trained (recipe, regime, settings), from the checkpoint metadata in the manifest."""
    how = classifier_training(manifest)
    if how["recipe"] == "unrecorded":
        return "not recorded (a checkpoint from before recipes were recorded, or a model from elsewhere)"
    return f"recipe {how['recipe']}, regime {how['regime']}; {how['settings']}"


def run_table(doc: Doc, run: RunFolder) -> None:
    """The data, classes, classifier, settings, software and wall time of the run."""
    manifest, cfg, clf, names, S, T = run.manifest, run.config, run.classifier, run.names, run.S, run.T
    adv = cfg.get("adversarial") or {}
    meta = manifest.get("classifier_meta") or {}
    doc.h(2, "The run")
    fp = manifest.get("data") or {}
    acc = meta.get("accuracy")
    n_train, n_test = (fp.get("train") or [None])[0], (fp.get("test") or [None])[0]
    rows = [
        [
            "data set",
            f"{run.dataset}: {int_text(n_train)} training / {int_text(n_test)} test inputs, "
            f"input shape {(fp.get('train') or [None])[1:]}",
        ],
        ["classes", f"s = {S} ({names[S]}), t = {T} ({names[T]})"],
        [
            "classifier",
            f"{clf.get('class', '?')}"
            + (f", test accuracy {pct(acc, 2)}" if num(acc) is not None else "")
            + f", weights SHA-256 {short_sha(clf.get('sha256'))}",
        ],
        ["classifier training", _training_text(manifest)],
        [
            "embedding layer",
            f"`{clf.get('embedding_layer')}`" if clf.get("embedding_layer") else "none (EPBS and linearity need one)",
        ],
        [
            "autoencoders",
            (
                "steps by the stopping rule (auto)"
                if adv.get("steps") == "auto"
                else f"{int_text(adv.get('steps'))} steps"
            )
            + f", α = {adv.get('alpha', '?')}, Adam lr {adv.get('lr', '?')}, "
            f"batch {adv.get('batch_size', '?')}",
        ],
        [
            "borderline search",
            f"{cfg.get('method', '?')}, β = {fmt_g(cfg.get('beta'))}, at most {cfg.get('max_steps', '?')} attempts",
        ],
        ["seed", str(cfg.get("seed", manifest.get("seed", "?")))],
        [
            "software",
            f"deepdig_fast {manifest.get('version', '?')}, torch {manifest.get('torch', '?')}, "
            f"Python {manifest.get('python', '?')}",
        ],
        [
            "wall time",
            "unknown: timings.json cannot be used (see the end of this report)"
            if run.files.problem("timings.json")
            else secs(run.timings.get("seconds", run.results.get("seconds"))),
        ],
    ]
    doc.table(["item", "value"], rows)


# --------------------------------------------------------------------------------------------------
# finding the boundary
# --------------------------------------------------------------------------------------------------

_SEARCH_HEADER = [
    "direction",
    "method",
    "pairs",
    "successes",
    "success rate",
    "mean attempts (successes)",
    "mean attempts (failures)",
    "failures by reason",
    "forwards",
]

_COMPONENTS_HEADER = [
    "direction",
    "source-class training inputs",
    "adversarial kept",
    "share (train)",
    "share (test)",
    "pairs kept by component II",
    "training steps (AE_I / AE_II)",
    "problem",
]


def boundary_section(doc: Doc, figs: Figures, run: RunFolder) -> None:
    """How often and how cheaply each method reached the boundary: two tables and their figures."""
    doc.h(2, "Finding the boundary")
    doc.p(
        "**Success rate** = successes / pairs: how often a method's starting pairs lead to a borderline sample. "
        "**Mean attempts** = points classified per pair (lower is cheaper; each bisection step halves the "
        "segment). **Forwards** = inputs passed through the classifier, including the pairs' ends."
    )
    doc.table(_SEARCH_HEADER, _search_rows(run))
    doc.p(
        "DeepDIG's pairs come from its autoencoders. Component I turns the training inputs of the source class "
        "into adversarial samples (kept when the classifier called the original *s* and calls the output *t*); "
        "component II maps those back and keeps the pairs whose image is called *s* again."
    )
    doc.table(_COMPONENTS_HEADER, _component_rows(run))
    _boundary_figures(doc, figs, run)


def _search_rows(run: RunFolder) -> list[list[str]]:
    """One row per direction and method: pairs, successes, attempts, failures by reason, forwards."""
    rows = []
    for key, d in run.directions.items():
        for m in METHODS:
            info = (d.get("methods") or {}).get(m)
            if info is None:
                rows.append([run.labels[key], METHOD_NAMES[m], "not run", "", "", "", "", "", ""])
                continue
            if info.get("skipped"):
                rows.append([run.labels[key], METHOD_NAMES[m], f"skipped: {info['skipped']}", "", "", "", "", "", ""])
                continue
            counts = info.get("counts") or {}
            fails = (
                ", ".join(f"{STATUS_TEXT.get(k, k)}: {v}" for k, v in counts.items() if k != "SUCCESS" and v) or "none"
            )
            rows.append(
                [
                    run.labels[key],
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
    return rows


def _component_rows(run: RunFolder) -> list[list[str]]:
    """One row per direction: what DeepDIG's components I and II kept."""
    rows = []
    for key, d in run.directions.items():
        c1 = d.get("component_one") or {}
        tr = c1.get("train") or {}
        c2 = d.get("component_two") or {}
        rows.append(
            [
                run.labels[key],
                int_text(tr.get("n_inputs")),
                int_text(tr.get("kept")),
                pct(c1.get("fraction_of_all")),
                pct(c1.get("test_fraction_of_all")),
                int_text(c2.get("pairs")) if c2 else "–",
                " / ".join(training_steps(c) for c in (c1, c2) if c),
                c1.get("collapse") or (c2 or {}).get("collapse") or "",
            ]
        )
    return rows


def _boundary_figures(doc: Doc, figs: Figures, run: RunFolder) -> None:
    """The success rates of every direction, then the attempts per pair of each."""
    rel, why = figs.draw("success_rates.png", fig_success, run.directions, run.labels)
    doc.fig(
        rel,
        "Success rate per direction and method. Bars are labelled with the rate and the number of pairs; "
        "a missing bar says why the method was not run.",
        why,
    )
    for key, d in run.directions.items():
        tag = f"{d['source']}-{d['target']}"
        rel, why = figs.draw(f"attempts_{tag}.png", fig_attempts, key, run.borderline[key])
        doc.fig(
            rel,
            f"Attempts per pair, {run.labels[key]}: how many points each search classified before it "
            "succeeded (blue/orange/green) or failed (red).",
            why,
        )
        for m in METHODS:
            problem = run.files.problem(f"borderline/{m}_{tag}.pt")
            if problem:
                doc.note(f"{METHOD_NAMES[m]} is not in this figure: {problem}.")


# --------------------------------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------------------------------


def files_section(doc: Doc) -> None:
    """What each file of a run folder holds."""
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
