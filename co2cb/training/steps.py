"""The per-step hot path: a clock read and an append per step boundary, nothing else.

The stamps list of the thread that marks steps is looked up once (:meth:`co2cb.Tracker.step_stamps`)
and its ``append`` kept: a boundary then checks the thread, reads the clock and appends. After a
training step the caches are cold, so every object a boundary touches costs: it touches four.
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
        self._open = False
        self._thread: int | None = None  # the thread whose stamps ``_append`` adds to
        self._append: Callable[[int], None] = _nowhere

    @property
    def tracker(self) -> Tracker | None:
        """The tracker steps are marked on (None: steps are not marked)."""
        return self._tracker

    @tracker.setter
    def tracker(self, tracker: Tracker | None) -> None:
        self._tracker, self._thread, self._append = tracker, None, _nowhere

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

    def marker(self) -> Callable[[], None]:
        """A function that marks "a step ends and the next starts", bound to this thread's stamps.

        For a framework whose step runs from one batch start to the next and which calls its batch-start
        hook on the thread that started the fit (Lightning, Keras): take it there once the tracker is set,
        call it at each batch start until the fit ends. No thread check and no attribute walk: after a
        training step every object a boundary touches is cold, and this touches the fewest (about 1.2 us
        a step less than a method that checks the thread, in a Lightning fit). Without a tracker:
        :func:`no_step`.
        """
        if self._tracker is None:
            return no_step
        append, clock, state = self._here(), perf_counter_ns, self

        def next_step() -> None:
            t = clock()
            if state._open:
                append(-t)
            append(t)
            state._open = True

        return next_step

    def close(self) -> None:
        """End the step a :meth:`marker` opened, if any (before validation, at the end of an epoch or of the run)."""
        if self._open:
            self._open = False
            if self._tracker is not None:
                self._tracker.step_stamps(STEP).append(-perf_counter_ns())


def _nowhere(stamp: int) -> None:
    """Where stamps go before a thread's stamps are known (never called: the thread check fails first)."""


def no_step() -> None:
    """A step marker while nothing is measured: does nothing."""
