"""The per-step hot path: a clock read and an append per step boundary, nothing else."""

from __future__ import annotations

from co2cb.core.tracker import Tracker

STEP = "step"


class StepClock:
    """Marks training steps on the tracker of the run being measured (none before it starts: a no-op)."""

    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        self._open = False

    def begin(self) -> None:
        """A training batch starts."""
        tracker = self.tracker
        if tracker is not None:
            tracker.begin(STEP, record=False)

    def end(self) -> None:
        """A training batch ended."""
        tracker = self.tracker
        if tracker is not None:
            tracker.end(STEP)

    def next(self) -> None:
        """A step ends and the next starts here (frameworks whose step runs from batch start to batch start)."""
        tracker = self.tracker
        if tracker is not None:
            if self._open:
                tracker.end(STEP)
            tracker.begin(STEP, record=False)
            self._open = True

    def close(self) -> None:
        """End the step :meth:`next` opened, if any (before validation, at the end of an epoch or of the run)."""
        if self._open:
            self._open = False
            if self.tracker is not None:
                self.tracker.end(STEP)
