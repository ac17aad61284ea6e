"""``co2cb statement RUN [RUN...]``: a paragraph on the runs' energy and CO2e for a paper or a model card."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from co2cb.cli.recorded import load_runs
from co2cb.records.reader import RecordedRun
from co2cb.report import model_card
from co2cb.report.statement import Statement, statement
from co2cb.report.statement_text import render_latex, render_markdown, render_text

#: Each ``--format`` and what writes it, given the statement and the model card's training type.
RENDERERS: dict[str, Callable[[Statement, str | None], str]] = {
    "text": lambda s, _: render_text(s),
    "markdown": lambda s, _: render_markdown(s),
    "latex": lambda s, _: render_latex(s),
    model_card.FORMAT: model_card.model_card,
}
FORMATS = tuple(RENDERERS)


def register(sub: Any) -> None:
    """Add the ``statement`` subcommand."""
    p = sub.add_parser(
        "statement",
        help="print a paragraph on recorded runs' energy and CO2e, for a paper, a model card or a report",
        description="Print a statement of the energy and CO2e of one or more recorded runs (e.g. pre-training, "
        "then fine-tuning: their totals, then each run): hardware, duration, energy per component and whether it "
        "was measured or estimated (and how), CO2e, the region, carbon intensity (source, year) and PUE, and the "
        "co2cb version. Every figure is the run record's. --format hf-model-card prints the co2_eq_emissions "
        "metadata a Hugging Face model card's YAML front matter holds (emissions in grams).",
        epilog="How the figures are made: co2cb/docs/methodology.md (in the installed package). Exit status: "
        "0 printed, 1 a RUN is not a readable run folder.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folder made by co2cb (e.g. co2cb-runs/20261127-021939-3fa2c1), or a folder holding "
        "run folders (all of its runs, oldest first)",
    )
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument(
        "--training-type",
        choices=model_card.TRAINING_TYPES,
        help="for hf-model-card: the model card's training_type (default: the runs' training_type tag)",
    )
    p.set_defaults(handler=handle)


def render(runs: Sequence[RecordedRun], fmt: str = "text", *, training_type: str | None = None) -> str:
    """The statement of ``runs`` in a format: ``text``, ``markdown``, ``latex`` or ``hf-model-card``.

    Args:
        runs: Recorded runs, in the order to state them.
        fmt: Output format (one of :data:`FORMATS`).
        training_type: For ``hf-model-card``: ``"pre-training"`` or ``"fine-tuning"`` (default: the runs'
            ``training_type`` tag, else left out).

    Raises:
        ValueError: No run, or an unknown format.
    """
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](statement(runs), training_type)


def handle(args: argparse.Namespace) -> int:
    """Print the statement; 1 when a RUN cannot be read."""
    sys.stdout.write(render(load_runs(args.runs), args.format, training_type=args.training_type))
    return 0
