"""What a checkpoint carries from one segment of a run to the next: the job's totals and epochs so far."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from co2cb.core.tracker import Tracker
from co2cb.training.collective import Collective
from co2cb.training.energy import Energy, sum_over_ranks

log = logging.getLogger("co2cb.training")

STATE_VERSION = 1
LINK_KEYS = ("run_id", "run_folder", "epochs_done")


class Resume:
    """The earlier segments of a resumed run, and the snapshot a checkpoint of this segment will hold."""

    def __init__(self) -> None:
        self.saved: dict[str, Any] | None = None  # the state this segment resumed from
        self.snapshot: Energy | None = None  # the job's energy this segment, gathered when a save was decided

    @property
    def totals_before(self) -> Energy:
        """The job's totals from earlier segments."""
        return Energy.from_vector(self.saved["totals"]) if self.saved else Energy()

    @property
    def epochs_before(self) -> int:
        """Training epochs done in earlier segments."""
        return int((self.saved or {}).get("epochs_done", 0))

    @property
    def link(self) -> dict[str, Any] | None:
        """Where this run resumed from (for the record), or None."""
        return {k: self.saved.get(k) for k in LINK_KEYS} if self.saved else None

    def load(self, state: Mapping[str, Any]) -> bool:
        """Take a checkpoint's state; False (with a warning) for a state of an unknown version."""
        if state.get("version") != STATE_VERSION:
            log.warning("co2cb: checkpoint state of an unknown version %r ignored", state.get("version"))
            return False
        self.saved = dict(state)
        return True

    def take_snapshot(self, tracker: Tracker, collective: Collective) -> None:
        """Gather the job's energy this segment so far (a collective: call it on every rank)."""
        mine = Energy.of(tracker.totals())
        self.snapshot = sum_over_ranks([Energy.from_vector(v) for v in collective.gather(mine.vector())])

    def state(
        self, tracker: Tracker | None, gathered: Energy, gathered_at: int | None, world_size: int, epochs: int
    ) -> dict[str, Any]:
        """The state to save (no collective: frameworks may save on one rank only).

        Args:
            tracker: This rank's tracker.
            gathered: The job's run so far this segment, at the last gather (an epoch's or validation's close).
            gathered_at: This rank's mark of that gather (None before the first).
            world_size: Processes in the job.
            epochs: Training epochs done across the run.

        One process: exact at any moment. Several: the job's run at the last gather plus this rank's
        share since, or the last snapshot where that is larger.
        """
        so_far = gathered
        if tracker is not None and tracker.running:
            if world_size == 1:
                so_far = Energy.of(tracker.totals(read=True))
            else:
                if gathered_at is not None:
                    so_far = so_far.plus(Energy.of(tracker.between(gathered_at, name="since_gather")))
                else:
                    so_far = Energy.of(tracker.totals())
                if self.snapshot is not None and self.snapshot.total_joules > so_far.total_joules:
                    so_far = self.snapshot
        return {
            "version": STATE_VERSION,
            "run_id": tracker.run_id if tracker else None,
            "run_folder": str(tracker.run_folder) if tracker and tracker.run_folder else None,
            "totals": self.totals_before.plus(so_far).vector(),
            "epochs_done": epochs,
        }
