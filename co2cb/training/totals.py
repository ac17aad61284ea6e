"""The run's total as loggers get it: one definition for every framework.

The total is everything the run measured since its tracker started: start-up, every training epoch
and validation, the time between them; for a resumed run, the earlier segments too (from the
checkpoint). During the run it is taken up to the last reading of the meters, never extended past it,
so it never exceeds the final figure; at the end it is the record's own total (the summary's
``resumed_total`` for a resumed run, else its ``co2_kg`` and ``energy_kwh``).
"""

from __future__ import annotations

from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.training import names
from co2cb.training.checkpoint import Resume
from co2cb.training.energy import Energy, sum_over_ranks
from co2cb.training.job import Job, Shares


class RunTotal:
    """The job's run so far, kept up to date at each gather (an epoch's or a validation's close) and at the end.

    Args:
        resume: The earlier segments of a resumed run (their totals count in).
    """

    def __init__(self, resume: Resume) -> None:
        self.resume = resume
        self.segment = Energy()  # the job's, this segment, at the last gather or the end
        self.gathered_at: int | None = None  # this rank's mark of the last gather

    @property
    def before(self) -> Energy:
        """The job's totals from earlier segments of a resumed run."""
        return self.resume.totals_before

    @property
    def value(self) -> Energy:
        """The job's whole run, earlier segments included."""
        return self.before.plus(self.segment)

    def metrics(self) -> dict[str, float]:
        """The total as logged (``co2cb/total_energy_kwh``, ``co2cb/total_co2_kg``)."""
        run = self.value
        return names.totals(run.kwh, run.co2_kg)

    def this_process(self, tracker: Tracker | None) -> Energy:
        """This process's run up to the last reading, earlier segments included (no meter read, no collective)."""
        run = Energy.of(tracker.totals(settled=True)) if tracker is not None and tracker.running else Energy()
        return self.before.plus(run)

    def gather(self, tracker: Tracker, job: Job, window: WindowResult, earlier: WindowResult | None = None) -> Shares:
        """Every rank's share of a window just closed (a collective); the job's run so far is updated with it.

        Args:
            tracker: This rank's tracker.
            job: The job's ranks.
            window: The window just closed.
            earlier: A window closed with it as of an earlier moment (a validation that ended its epoch),
                gathered in the same collective (``Shares.earlier``).
        """
        run = Energy.of(tracker.totals(settled=True))
        self.gathered_at = tracker.mark()
        shares = job.shares(window, also=run, earlier=earlier)  # one gather: the windows and the run so far
        self.segment = sum_over_ranks(shares.also)
        return shares

    def end(self, segment: Energy) -> None:
        """The run ended: ``segment`` is the record's figure for this segment (the job's, with several ranks)."""
        self.segment = segment
