"""Report and compare DeepDIG atlases: the folders holding an atlas.json written by deepdig_fast.atlas.

    paths = write_atlas_report("atlases/mnist-cnn")    # {"atlas.md": Path, "atlas.html": Path, "figures/...": Path}
    result = compare_atlases("atlases/cnn", "atlases/fcn", "atlases/cnn-vs-fcn")
    print(format_compare_table(result))

Every file is written atomically; figures are drawn on matplotlib's Agg canvas without pyplot (no
global state changes).

Modules:
    page          write_atlas_report: atlas.md / atlas.html, section by section, and the heatmaps
    compare       compare_atlases: the numbers of two atlases side by side, compare.json
    compare_page  the comparison's compare.md / compare.html and format_compare_table
    folder        reading an atlas folder (load_atlas) and a metric's K x K matrix (atlas_matrix)
    metrics       the per-direction numbers shown (HEATMAP_METRICS) and how each is read
    heatmaps      the K x K heatmaps of an atlas or of a difference
    text          short texts of an atlas's settings and data set
What the run report writes alike (the written time, a checksum's short form, the classifier's
training) comes from deepdig_fast.report.shared.
"""

# the names written `X as X` are importable from here as they were from the single module, and stay
# outside __all__ as they were there
from deepdig_fast.atlas_report.compare import COMPARE_FILES as COMPARE_FILES
from deepdig_fast.atlas_report.compare import COMPARE_KIND as COMPARE_KIND
from deepdig_fast.atlas_report.compare import compare_atlases
from deepdig_fast.atlas_report.compare_page import TOP_RULE as TOP_RULE
from deepdig_fast.atlas_report.compare_page import format_compare_table
from deepdig_fast.atlas_report.folder import Pair as Pair
from deepdig_fast.atlas_report.folder import atlas_matrix, load_atlas
from deepdig_fast.atlas_report.metrics import DIRECTION_COLUMNS, HEATMAP_METRICS, MetricSpec
from deepdig_fast.atlas_report.page import write_atlas_report

__all__ = [
    "DIRECTION_COLUMNS",
    "HEATMAP_METRICS",
    "MetricSpec",
    "atlas_matrix",
    "compare_atlases",
    "format_compare_table",
    "load_atlas",
    "write_atlas_report",
]
