"""``co2cb compare RUN [RUN...]``: recorded runs side by side, as a table and optionally a figure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from co2cb.cli.recorded import METRIC_HELP, RUNS_HELP, CommandError, load_runs, metric_for
from co2cb.report.compare.jobs import job_rows, render_jobs
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
    p.add_argument(
        "--by-job",
        action="store_true",
        help="one row per scheduler job instead of per run: the runs of a SLURM job, a Ray job or a CO2CB_JOB_ID "
        "summed (a run that names no job is one by itself)",
    )
    p.set_defaults(handler=handle)


def compare(
    paths: Sequence[str], fmt: str = "table", plot: str | None = None, metric: str | None = None, by_job: bool = False
) -> None:
    """Print the comparison of the runs under ``paths``, and draw it to ``plot`` when given.

    Args:
        paths: Run folders, or folders holding them; the first run is the reference of the ratios.
        fmt: ``table``, ``csv``, ``json`` or ``markdown``.
        plot: Where to write the figure (PNG), or None for none.
        metric: The quality metric (``NAME``, ``NAME:min`` or ``NAME:max``); None picks the one most runs recorded.
        by_job: One row per scheduler job (:mod:`co2cb.report.compare.jobs`) instead of one per run.

    Raises:
        CommandError: A run cannot be read (exit code 1), a bad ``metric``, or a figure that cannot be made (2).
    """
    runs = load_runs(paths)
    chosen = metric_for(runs, metric)
    sys.stdout.write(render_jobs(job_rows(runs), fmt) if by_job else render(comparison_rows(runs), fmt))
    if plot:
        try:
            path = write_plot(runs, plot, chosen)
        except (PlotUnavailableError, OSError) as exc:
            raise CommandError(f"--plot: {exc}", 2) from exc
        print(f"co2cb compare: figure written to {path}", file=sys.stderr)


def handle(args: argparse.Namespace) -> int:
    """Load, print, plot; 1 for a bad run folder, 2 for a bad option or a figure that cannot be made."""
    compare(args.runs, args.format, args.plot, args.metric, args.by_job)
    return 0
