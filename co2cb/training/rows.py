"""Values waiting for a framework's loggers, one row per step and epoch.

A validation closes just before its training epoch, at the same logging step: held here, its values
go to the loggers in the epoch's row, one ``log_metrics`` call instead of two (a call can cost a file
write: Lightning's ``CSVLogger`` writes its file at every log at a step before a multiple of 100).
"""

from __future__ import annotations


class PendingRows:
    """Rows of values for the loggers, merged per ``(step, epoch)``, in the order they came."""

    def __init__(self) -> None:
        self._rows: dict[tuple[int, int], dict[str, float]] = {}

    def add(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Add values to the row at ``step`` and ``epoch`` (made if new)."""
        self._rows.setdefault((step, epoch), {}).update(values)

    def take(self) -> list[tuple[int, int, dict[str, float]]]:
        """Every row as ``(step, epoch, values)``, oldest first; none are left."""
        rows, self._rows = self._rows, {}
        return [(step, epoch, values) for (step, epoch), values in rows.items()]
