"""``co2cb report RUN [RUN...] -o report.html``: one self-contained HTML report on recorded runs."""

from __future__ import annotations

import argparse
import sys
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


def handle(args: argparse.Namespace) -> int:
    """Load and write; 1 for a bad run folder, 2 for a bad option or an unwritable file."""
    runs = load_runs(args.runs)
    metric = metric_for(runs, args.metric)
    try:
        path = write_report(runs, args.output, metric)
    except OSError as exc:
        raise CommandError(f"cannot write {args.output}: {exc}", 2) from exc
    print(f"co2cb report: {len(runs)} run{'s' if len(runs) > 1 else ''} reported in {path}", file=sys.stderr)
    return 0
