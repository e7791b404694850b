"""write_report: the run report of a run folder, section by section.

    paths = write_report("runs/mnist-cnn-1-2")     # {"report.md": Path, "report.html": Path, "figures/...": Path}

Anything the run did not produce (a stage not run, a method skipped, a data set that cannot be
reloaded to show the baselines' pair ends) is stated in the report instead of failing. A file the
report could show but cannot use -- a .pt file that is unreadable or holds the wrong contents, one
that results.json says exists but is missing, a damaged timings.json -- is stated where its
section would be and listed at the end, with how to compute it again; the report is written and
then ReportIncompleteError (a ValueError: `deepdig report` prints its one line and exits 1) says
which file. Figures are drawn on matplotlib's Agg canvas without pyplot, so no global matplotlib
state changes. The files read are listed in deepdig_fast.report.folder.
"""

from __future__ import annotations

from pathlib import Path

from deepdig_fast.document import Doc, Figures, finish_report
from deepdig_fast.report.folder import read_run
from deepdig_fast.report.samples import samples_section
from deepdig_fast.report.sections import boundary_section, explanation, files_section, run_table, title_and_summary
from deepdig_fast.report.shape import shape_section


def write_report(run_dir) -> dict[str, Path]:
    """Write report.md, report.html (figures embedded) and figures/*.png into a run folder.

    Args:
        run_dir: the folder written by pipeline.run_pair (manifest.json and results.json required;
            see deepdig_fast.report.folder for every file read and the characterization layout).
    Returns:
        {path relative to run_dir: absolute Path} of every file written.
    Raises:
        FileNotFoundError / DamagedFileError (a ValueError) when manifest.json or results.json is
        missing or unusable; nothing is written then.
        ReportIncompleteError (a ValueError; its `paths` are the files written) when the report was
        written without what a damaged or missing file of the run holds: the report says which.
    """
    run = read_run(run_dir)
    figs = Figures(run.root)
    doc = Doc()
    title = title_and_summary(doc, run)
    explanation(doc, run)
    run_table(doc, run)
    boundary_section(doc, figs, run)
    samples_section(doc, figs, run)
    shape_section(doc, figs, run)
    files_section(doc)
    return finish_report(doc, figs, run.root, "report", title, files=run.files)
