"""Kept for ``co2cb.compare.comparison_rows`` and friends: run comparison now lives in :mod:`co2cb.report.compare`."""

from co2cb.report.compare import (
    FORMATS,
    ComparisonRow,
    PlotUnavailableError,
    comparison_rows,
    render,
    write_plot,
    write_report,
)

__all__ = [
    "FORMATS",
    "ComparisonRow",
    "PlotUnavailableError",
    "comparison_rows",
    "render",
    "write_plot",
    "write_report",
]
