"""A training monitor's checkpoint methods: what it saves in a framework's checkpoint, and how it resumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from co2cb.core.tracker import Tracker
from co2cb.training.checkpoint import Resume
from co2cb.training.collective import Collective
from co2cb.training.totals import RunTotal


class CheckpointState:
    """The checkpoint methods of :class:`co2cb.training.monitor.TrainingMonitor` (a base class of it)."""

    resume: Resume
    tracker: Tracker | None
    collective: Collective
    total: RunTotal
    epochs_done: int

    @property
    def epochs_measured(self) -> int:
        """Training epochs measured in the run: this segment's and those of the segments it resumed."""
        return self.epochs_done + self.resume.epochs_before

    def take_snapshot(self) -> None:
        """The job's energy so far, for a checkpoint about to be written (a collective: call it on every rank).

        Frameworks save callback state on one process only, where :meth:`state_dict` cannot gather.
        With one process it does nothing: the state is exact at any moment.
        """
        if self.tracker is not None and self.tracker.running and self.collective.world_size > 1:
            self.resume.take_snapshot(self.tracker, self.collective)

    def state_dict(self) -> dict[str, Any]:
        """Totals to save in a checkpoint (see :meth:`co2cb.training.checkpoint.Resume.state`)."""
        return self.resume.state(
            self.tracker,
            self.total.segment,
            self.total.gathered_at,
            self.collective.world_size,
            self.epochs_measured,
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the totals of a checkpointed run; its run folder is linked from the new one."""
        if self.resume.load(state) and self.tracker is not None and self.tracker.running:
            self.tracker.write_event({"type": "resume", "resumed_from": self.resume.link})
