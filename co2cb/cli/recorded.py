"""What the commands that read run folders share: loading them, choosing the quality metric, failing clearly."""

from __future__ import annotations

from collections.abc import Sequence

from co2cb.records.reader import RecordedRun, RunFolderError, find_runs
from co2cb.report.compare.quality import Metric, choose_metric

RUNS_HELP = "run folders made by co2cb, or folders holding them (e.g. co2cb-runs); the first is the reference"
METRIC_HELP = (
    "quality metric for the CO2e-against-quality plot, as recorded with monitor=[...]; NAME:min or "
    "NAME:max says which way is better (default: the metric most runs recorded)"
)


class CommandError(Exception):
    """A command cannot go on: :func:`co2cb.cli.main.main` prints ``co2cb COMMAND: message`` and exits with the code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_runs(paths: Sequence[str]) -> list[RecordedRun]:
    """The runs under ``paths`` (see :func:`co2cb.records.reader.find_runs`); exit code 1 when one cannot be read."""
    try:
        return find_runs(paths)
    except RunFolderError as exc:
        raise CommandError(str(exc), 1) from exc


def metric_for(runs: Sequence[RecordedRun], requested: str | None) -> Metric | None:
    """The quality metric to show (see :func:`co2cb.report.compare.quality.choose_metric`); exit code 2 when bad."""
    try:
        return choose_metric(runs, requested)
    except ValueError as exc:
        raise CommandError(f"--metric: {exc}", 2) from exc
