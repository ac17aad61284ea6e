"""``co2cb compare RUN [RUN...]``: recorded runs side by side, as a table and optionally a figure."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from co2cb.compare.plot import PlotUnavailableError, write_plot
from co2cb.compare.quality import choose_metric
from co2cb.compare.table import FORMATS, comparison_rows, render
from co2cb.run_folder import RunFolderError, find_runs

RUNS_HELP = "run folders made by co2cb, or folders holding them (e.g. co2cb-runs); the first is the reference"
METRIC_HELP = ("quality metric for the CO2e-against-quality plot, as recorded with monitor=[...]; NAME:min or "
               "NAME:max says which way is better (default: the metric most runs recorded)")


def register(sub: Any) -> None:
    """Add the ``compare`` subcommand."""
    p = sub.add_parser(
        "compare",
        help="compare recorded runs: energy, CO2, per epoch, per step, final metrics",
        description="Print one row per run: name, status, duration, energy in total and per component, region, "
        "carbon intensity, PUE, CO2e, mean CO2e per epoch, CO2e per step and per sample where the record counts "
        "them, the final value of the monitored metrics, and each run's CO2e over the first run's. Runs of the "
        "Lightning, Hugging Face and Keras adapters and of `co2cb run` compare alike.",
        epilog="Exit status: 0 done, 1 a RUN is not a readable co2cb run, 2 a bad option, matplotlib missing for "
        "--plot, or the figure cannot be written.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help=RUNS_HELP)
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="table (readable units), csv or json (kWh, kg CO2e, seconds), markdown (default: table)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw cumulative CO2e by epoch and over time, totals by component and CO2e against the "
                   "quality metric with its Pareto front (needs matplotlib: pip install \"co2cb[plot]\")")
    p.add_argument("--metric", metavar="NAME", help=METRIC_HELP)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Load, print, plot; 1 for a bad run folder, 2 for a bad option or a figure that cannot be made."""
    try:
        runs = find_runs(args.runs)
    except RunFolderError as exc:
        print(f"co2cb compare: {exc}", file=sys.stderr)
        return 1
    try:
        metric = choose_metric(runs, args.metric)
    except ValueError as exc:
        print(f"co2cb compare: --metric: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(render(comparison_rows(runs), args.format))
    if args.plot:
        try:
            path = write_plot(runs, args.plot, metric)
        except (PlotUnavailableError, OSError) as exc:
            print(f"co2cb compare: --plot: {exc}", file=sys.stderr)
            return 2
        print(f"co2cb compare: figure written to {path}", file=sys.stderr)
    return 0
