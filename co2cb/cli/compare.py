"""``co2cb compare RUN [RUN...]``: recorded runs side by side, as a table and optionally a figure."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from co2cb.cli.recorded import METRIC_HELP, RUNS_HELP, CommandError, load_runs, metric_for
from co2cb.report.compare.plot import PlotUnavailableError, write_plot
from co2cb.report.compare.table import FORMATS, comparison_rows, render


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
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (readable units), csv or json (kWh, kg CO2e, seconds), markdown (default: table)",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw cumulative CO2e by epoch and over time, totals by component and CO2e against the "
        'quality metric with its Pareto front (needs matplotlib: pip install "co2cb[plot]")',
    )
    p.add_argument("--metric", metavar="NAME", help=METRIC_HELP)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Load, print, plot; 1 for a bad run folder, 2 for a bad option or a figure that cannot be made."""
    runs = load_runs(args.runs)
    metric = metric_for(runs, args.metric)
    sys.stdout.write(render(comparison_rows(runs), args.format))
    if args.plot:
        try:
            path = write_plot(runs, args.plot, metric)
        except (PlotUnavailableError, OSError) as exc:
            raise CommandError(f"--plot: {exc}", 2) from exc
        print(f"co2cb compare: figure written to {path}", file=sys.stderr)
    return 0
