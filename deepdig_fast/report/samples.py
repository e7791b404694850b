"""The run report's "Borderline samples" section: per direction a grid of the borderline samples
found and strips of pairs (end a, the borderline point, end b). The baselines' pair ends are rows of
the training set, so the section reloads it (the shipped MNIST only) and checks it against the
run's data fingerprint first."""

from __future__ import annotations

import torch

from deepdig_fast.document import Doc, Figures
from deepdig_fast.report.figures import fig_grid, fig_strips, spread
from deepdig_fast.report.folder import METHOD_NAMES, METHODS, RunFolder


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
    """Up to k successful pairs of a borderline file, spread over it, with their ends and the point
    between them; ValueError when the ends given are not the ones the point was found between."""
    ok = (d["status"] == 0).nonzero().flatten()
    a_all, b_all = ends
    rows = []
    for r in spread(ok, k).tolist():
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


def samples_section(doc: Doc, figs: Figures, run: RunFolder) -> None:
    """The section: per direction its grid of borderline samples and its strips of pairs."""
    names = run.names
    doc.h(2, "Borderline samples")
    doc.p(
        "These inputs sit on the decision boundary: the classifier cannot tell whether they are "
        f"{names[run.S]} or {names[run.T]}. The strips show how they were found: the two ends of a pair, one on "
        "each side of the boundary, and the borderline point between them (λ = position on the segment from end "
        "a, 0, to end b, 1)."
    )
    train: tuple[torch.Tensor | None, str | None] = (None, None)
    if any(run.borderline[k].get(m) is not None for k in run.directions for m in ("rpbs", "epbs")):
        train = _training_inputs(run.manifest)
    for key in run.directions:
        doc.h(3, run.labels[key])
        _grid(doc, figs, run, key)
        _strips(doc, figs, run, key, train)


def _grid(doc: Doc, figs: Figures, run: RunFolder, key: str) -> None:
    """The borderline samples of one direction: DeepDIG's, else the first method's that found any."""
    d, label, borderline = run.directions[key], run.labels[key], run.borderline[key]
    tag = f"{d['source']}-{d['target']}"
    damaged = {m: run.files.problem(f"borderline/{m}_{tag}.pt") for m in METHODS}
    shown = next(
        (m for m in METHODS if borderline.get(m) is not None and bool((borderline[m]["status"] == 0).any())),
        None,
    )
    if shown is None:
        for m, problem in damaged.items():
            if problem:
                doc.note(f"{METHOD_NAMES[m]}'s borderline samples of {label} cannot be shown: {problem}.")
        if not any(damaged.values()):
            doc.note(f"No method found a borderline sample for {label}.")
        return
    ok = borderline[shown]["status"] == 0
    pts = borderline[shown]["points"][ok]
    if shown != "deepdig" and damaged["deepdig"]:
        doc.note(
            f"DeepDIG's borderline samples of {label} cannot be shown: {damaged['deepdig']}; "
            f"the grid shows {METHOD_NAMES[shown]}'s."
        )
    elif shown != "deepdig":
        doc.note(f"DeepDIG has no borderline samples for {label}; the grid shows {METHOD_NAMES[shown]}'s.")
    rel, why = figs.draw(
        f"borderline_{tag}.png",
        fig_grid,
        pts,
        f"{METHOD_NAMES[shown]} borderline samples, {label} ({min(64, pts.shape[0])} of {pts.shape[0]})",
    )
    doc.fig(rel, f"{METHOD_NAMES[shown]} borderline samples {label}, spread evenly over the successful pairs.", why)


def _strips(doc: Doc, figs: Figures, run: RunFolder, key: str, train: tuple) -> None:
    """Pairs of one direction with the borderline point between their ends (3 of DeepDIG, 2 of each
    baseline), and why a method's pairs cannot be shown. train: (training inputs or None, why not)."""
    d, label, names = run.directions[key], run.labels[key], run.names
    s, t = d["source"], d["target"]
    tag = f"{s}-{t}"
    x_train, train_why = train
    strip_rows, notes = [], []
    for m in METHODS:
        b = run.borderline[key].get(m)
        if b is None or not bool((b["status"] == 0).any()):
            continue
        if m == "deepdig":
            e = run.ae2.get(key)
            problem = run.files.problem(f"components/ae2_{tag}.pt")
            if problem:
                notes.append(f"DeepDIG pairs: {problem}")
                continue
            if e is None or e["a"].shape[0] != b["status"].shape[0]:
                notes.append(f"DeepDIG pairs: components/ae2_{tag}.pt is missing or does not match the borderline file")
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
        rel, why = figs.draw(f"pairs_{tag}.png", fig_strips, strip_rows, s, t, names)
        doc.fig(
            rel,
            f"Pairs {label}: end a (class {names[s]}), the borderline point found between the ends, "
            f"end b (class {names[t]}); p(·) are the classifier's probabilities at the borderline point.",
            why,
        )
