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

    def state(self, tracker: Tracker | None, closed: Energy, world_size: int, epochs: int) -> dict[str, Any]:
        """The state to save (no collective: frameworks may save on one rank only).

        Args:
            tracker: This rank's tracker.
            closed: The job's energy of this segment's closed epochs.
            world_size: Processes in the job.
            epochs: Training epochs done across the run.

        One process: exact at any moment. Several: the closed epochs plus this rank's share of the
        open one, or the last snapshot where that is larger.
        """
        so_far = closed
        if tracker is not None and tracker.running:
            if world_size == 1:
                so_far = Energy.of(tracker.totals(read=True))
            else:
                open_epoch = tracker.open_windows("train_epoch")
                if open_epoch:
                    so_far = so_far.plus(Energy.of(tracker.between(open_epoch[-1], name="open_epoch")))
                if self.snapshot is not None and self.snapshot.total_joules > so_far.total_joules:
                    so_far = self.snapshot
        return {
            "version": STATE_VERSION,
            "run_id": tracker.run_id if tracker else None,
            "run_folder": str(tracker.run_folder) if tracker and tracker.run_folder else None,
            "totals": self.totals_before.plus(so_far).vector(),
            "epochs_done": epochs,
        }
