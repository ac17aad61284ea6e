"""``co2cb`` entry point: parses the subcommand and hands over to its module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from co2cb._version import __version__
from co2cb.cli import compare, demo, estimate, info, monitor, regions, report, run, statement, whatif, when
from co2cb.cli.errors import guarded


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="co2cb", description="Energy and CO2 of ML training.")
    parser.add_argument("--version", action="version", version=f"co2cb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (demo, info, run, monitor, regions, whatif, estimate, when, compare, report, statement):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    return guarded(args.command, args.handler, args)
