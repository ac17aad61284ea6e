"""Comparing recorded runs: a table, a figure and a self-contained HTML report.

* :func:`comparison_rows` and :func:`render`: one row per run (``table``, ``csv``, ``json``, ``markdown``);
* :func:`write_plot`: the comparison figure as a PNG (needs matplotlib: ``pip install "co2cb[plot]"``);
* :func:`write_report`: one HTML file with the figure embedded, per-epoch tables, the provenance
  of every figure, everyday equivalents and the cleanest grids the run could have used.

Runs are loaded with :func:`co2cb.records.reader.find_runs`.
"""

from co2cb.report.compare.plot import PlotUnavailableError, write_plot
from co2cb.report.compare.report import write_report
from co2cb.report.compare.table import FORMATS, ComparisonRow, comparison_rows, render

__all__ = [
    "FORMATS",
    "ComparisonRow",
    "PlotUnavailableError",
    "comparison_rows",
    "render",
    "write_plot",
    "write_report",
]
