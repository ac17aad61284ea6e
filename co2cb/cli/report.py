"""``co2cb report RUN [RUN...] -o report.html``: one self-contained HTML report on recorded runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from co2cb.cli.recorded import METRIC_HELP, RUNS_HELP, CommandError, load_runs, metric_for
from co2cb.report.compare.report import write_report

DEFAULT_OUTPUT = "co2cb-report.html"


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="write an HTML report on recorded runs (figures embedded)",
        description="Write one HTML file, readable offline and by someone who has never used co2cb: the "
        "comparison table and figures, then per run its totals, per-epoch table, where every figure comes from "
        "(measured or estimated; carbon-intensity source and year; region and how it was chosen; PUE), everyday "
        "equivalents with their published sources, and what the same energy would have emitted on the cleanest "
        "grids of its cloud provider (or of AWS, Google Cloud and Azure). "
        'Figures need matplotlib (pip install "co2cb[plot]"); '
        "without it the report is written without them.",
        epilog="Exit status: 0 done, 1 a RUN is not a readable co2cb run, 2 a bad option or the file cannot be "
        "written.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help=RUNS_HELP)
    p.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="FILE.html",
        help=f"where to write the report (default: {DEFAULT_OUTPUT})",
    )
    p.add_argument("--metric", metavar="NAME", help=METRIC_HELP)
    p.set_defaults(handler=handle)


def report(paths: Sequence[str], output: str | Path = DEFAULT_OUTPUT, metric: str | None = None) -> Path:
    """Write the HTML report on the runs under ``paths`` to ``output``; returns where it went.

    Args:
        paths: Run folders, or folders holding them; the first run is the reference of the ratios.
        output: The HTML file to write.
        metric: The quality metric (``NAME``, ``NAME:min`` or ``NAME:max``); None picks the one most runs recorded.

    Raises:
        CommandError: A run cannot be read (exit code 1), a bad ``metric``, or a file that cannot be written (2).
    """
    runs = load_runs(paths)
    chosen = metric_for(runs, metric)
    try:
        path = write_report(runs, output, chosen)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc}", 2) from exc
    print(f"co2cb report: {len(runs)} run{'s' if len(runs) > 1 else ''} reported in {path}", file=sys.stderr)
    return path


def handle(args: argparse.Namespace) -> int:
    """Load and write; 1 for a bad run folder, 2 for a bad option or an unwritable file."""
    report(args.runs, args.output, args.metric)
    return 0
