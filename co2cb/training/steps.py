"""The per-step hot path: a clock read and an append per step boundary, nothing else.

The stamps list of the thread that marks steps is looked up once (:meth:`co2cb.Tracker.step_stamps`,
or a chained buffer for a marker) and its ``append`` kept: a boundary then reads the clock and appends
(begin and end check the thread first). After a training step the caches are cold, so every object a
boundary touches costs.
"""

from __future__ import annotations

from collections.abc import Callable
from threading import get_ident
from time import perf_counter_ns

from co2cb.core.tracker import Tracker

STEP = "step"


class StepClock:
    """Marks training steps on the tracker of the run being measured (none before it starts: a no-op)."""

    def __init__(self) -> None:
        self._tracker: Tracker | None = None
        self._thread: int | None = None  # the thread whose stamps ``_append`` adds to
        self._append: Callable[[int], None] = _nowhere
        self._chain: Callable[[int], None] | None = None  # the append of the chain a marker adds to

    @property
    def tracker(self) -> Tracker | None:
        """The tracker steps are marked on (None: steps are not marked)."""
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: Tracker | None) -> None:
        self._tracker, self._thread, self._append, self._chain = tracker, None, _nowhere, None

    def _here(self) -> Callable[[int], None]:
        """This thread's stamps' ``append``, kept for the next boundaries (call with a tracker set)."""
        assert self._tracker is not None
        self._append = self._tracker.step_stamps(STEP).append
        self._thread = get_ident()
        return self._append

    def begin(self) -> None:
        """A training batch starts."""
        if get_ident() == self._thread:
            self._append(perf_counter_ns())
        elif self._tracker is not None:
            self._here()(perf_counter_ns())

    def end(self) -> None:
        """A training batch ended."""
        if get_ident() == self._thread:
            self._append(-perf_counter_ns())
        elif self._tracker is not None:
            self._here()(-perf_counter_ns())

    def marker(self) -> Callable[[int], None]:
        """What a batch-start hook gives a clock read, ``mark(perf_counter_ns())``: a step ends, the next starts.

        For a framework whose step runs from one batch start to the next and which calls its batch-start
        hook on one thread (Lightning, Keras): take it once the tracker is set, call it at each batch
        start until the fit ends, on that thread. It is the ``append`` of the tracker's chained buffer
        (:meth:`co2cb.Tracker.step_chain`), which every marker of the tracker shares: no thread check, no
        state, no attribute walk and no Python frame of its own, as after a training step every object a
        boundary touches is cold. Without a tracker: :func:`no_step`.
        """
        if self._tracker is None:
            return no_step
        if self._chain is None:
            self._chain = self._tracker.step_chain(STEP).append
        return self._chain

    def close(self) -> None:
        """End the step a :meth:`marker` opened, if any (before validation, at the end of an epoch or of the run)."""
        if self._chain is not None:
            self._chain(-perf_counter_ns())


def _nowhere(stamp: int) -> None:
    """Where stamps go before a thread's stamps are known (never called: the thread check fails first)."""


def no_step(stamp: int) -> None:
    """A step marker while nothing is measured: ignores the stamp."""
