"""The run report's "Shape of the boundary" section, from the characterization
(deepdig_fast.characterize): the trajectory oscillation between borderline samples and the
linearity of the boundary in embedding space, with their tables, histograms and readings."""

from __future__ import annotations

from deepdig_fast.document import Doc, Figures, fmt, fmt_g, int_text, num, pct, secs
from deepdig_fast.report.figures import fig_oscillation, fig_svm
from deepdig_fast.report.folder import RunFolder


def shape_section(doc: Doc, figs: Figures, run: RunFolder) -> None:
    """The section: a note the characterization left, then the trajectory and linearity parts."""
    doc.h(2, "Shape of the boundary")
    charac = run.results.get("characterization")
    if isinstance(charac, dict) and charac.get("note"):
        doc.note(str(charac["note"]))
    _trajectory_section(doc, figs, run)
    _linearity_section(doc, figs, run)


def linearity_reading(lin: dict) -> str:
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


# --------------------------------------------------------------------------------------------------
# trajectory oscillation
# --------------------------------------------------------------------------------------------------

_TRAJECTORY_HEADER = [
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
]


def _trajectory_section(doc: Doc, figs: Figures, run: RunFolder) -> None:
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
    rows, any_result = _trajectory_rows(run)
    doc.table(_TRAJECTORY_HEADER, rows)
    if not any_result:
        doc.note("The trajectory oscillation was not computed for this run; the table lists why where known.")
    else:
        doc.p(
            "*exact* mode evaluates the paper's design (K partners per sample, all others when there are fewer); "
            "*estimate* mode samples segments at random and gives a 95% confidence interval for the same mean."
        )
    _oscillation_figures(doc, figs, run)


def _trajectory_rows(run: RunFolder) -> tuple[list[list[str]], bool]:
    """(one row per direction, whether any direction has a result)."""
    times = run.timings.get("directions") or {}
    rows = []
    any_result = False
    for key, d in run.directions.items():
        label = run.labels[key]
        tr = d.get("trajectory")
        if not isinstance(tr, dict):
            rows.append([label, "not computed", "", "", "", "", "", "", "", ""])
            continue
        if tr.get("skipped") or tr.get("reason"):
            rows.append([label, f"skipped: {tr.get('skipped') or tr.get('reason')}", "", "", "", "", "", "", "", ""])
            continue
        any_result = True
        ci = tr.get("ci95")
        osc = fmt_g(tr.get("oscillation"), 4)
        if ci and num(ci[0]) is not None:
            osc += f" (95% CI {fmt_g(ci[0], 4)} – {fmt_g(ci[1], 4)})"
        band = tr.get("band") or [None, None]
        rows.append(
            [
                label,
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
    return rows, any_result


def _oscillation_figures(doc: Doc, figs: Figures, run: RunFolder) -> None:
    """Per direction the histograms of its segments, or why there are none."""
    for key, d in run.directions.items():
        label = run.labels[key]
        tag = f"{d['source']}-{d['target']}"
        pt = run.trajectory_pt.get(key)
        problem = run.files.problem(f"characterize/trajectory_{tag}.pt")
        if problem:
            doc.note(f"No oscillation histogram of {label}: {problem}.")
        if pt is None:
            continue
        T = pt.get("T") or (d.get("trajectory") or {}).get("T")
        if not (isinstance(T, int) and T >= 1):
            doc.note(f"characterize/trajectory file of {label} has no T; histogram skipped.")
            continue
        mean = num((d.get("trajectory") or {}).get("oscillation"))
        rel, why = figs.draw(f"oscillation_{tag}.png", fig_oscillation, pt["stats"], T, key, mean)
        doc.fig(
            rel,
            f"Per-segment oscillation and number of classes met, {label}. A spike at 0 means most "
            "segments between borderline samples stay within one class.",
            why,
        )


# --------------------------------------------------------------------------------------------------
# linearity in embedding space
# --------------------------------------------------------------------------------------------------

_LINEARITY_HEADER = [
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
]


def _linearity_section(doc: Doc, figs: Figures, run: RunFolder) -> None:
    lin, S, T = run.linearity, run.S, run.T
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
    doc.table(_LINEARITY_HEADER, _linearity_rows(lin))
    svm = lin.get("svm") or {}
    conv = svm.get("converged")
    doc.p(
        f"SVM: LinearSVC(C = {svm.get('C', '?')}, max_iter = {svm.get('max_iter', '?')}) on the "
        f"{svm.get('embedding_dim', '?')}-d embedding `{lin.get('embedding_layer', '?')}`; "
        f"{'converged' if conv else 'did **not** converge' if conv is False else 'convergence unknown'} after "
        f"{svm.get('n_iter', '?')} iterations. d > 0 is the side of class {svm.get('positive_class', '?')}. "
        'The public DeepDIG code reports the mean of d under the name "min"; both are shown here.'
    )
    doc.p(linearity_reading(lin))
    if run.linearity_pt is None:
        problem = run.files.problem(f"characterize/linearity_{S}-{T}.pt")
        doc.note(f"No distance histograms: {problem or f'characterize/linearity_{S}-{T}.pt is missing'}.")
        return
    rel, why = figs.draw("svm_distances.png", fig_svm, run.linearity_pt, lin.get("sets") or {}, run.names)
    doc.fig(
        rel,
        "Signed distances to the SVM hyperplane (black line), by true class. Train and test inputs should "
        "sit on their class's side, away from 0; borderline samples near 0 indicate a near-linear boundary.",
        why,
    )


def _linearity_rows(lin: dict) -> list[list[str]]:
    """One row per set the SVM distances were measured on (train, test, borderline)."""
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
    return rows
