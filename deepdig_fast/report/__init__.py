"""The run report: report.md, a self-contained report.html and figures/*.png in a run folder.

    paths = write_report("runs/mnist-cnn-1-2")     # {"report.md": Path, "report.html": Path, "figures/...": Path}

Modules:
    write     write_report: the page, section by section
    folder    reading a run folder (every file read, and what a usable .pt file holds)
    sections  title and summary, what the report shows, the run's settings, finding the boundary, the files
    samples   the borderline samples: grids and strips of pairs (reloading MNIST for the baselines' ends)
    shape     the shape of the boundary: trajectory oscillation and linearity in embedding space
    figures   the figures (matplotlib's Agg canvas, no pyplot)
    shared    what the run report and the atlas report (deepdig_fast.atlas_report) write alike
"""

from deepdig_fast.report.figures import METHOD_COLORS
from deepdig_fast.report.folder import METHOD_NAMES, RERUN
from deepdig_fast.report.sections import STATUS_TEXT
from deepdig_fast.report.write import write_report

__all__ = ["METHOD_COLORS", "METHOD_NAMES", "RERUN", "STATUS_TEXT", "write_report"]
