"""One background thread that reads every meter and extends the energy curve.

Once started, the sampler's thread is the only one that reads hardware meters: every ``interval_s``
(0.05 to 60 s), and whenever a window boundary asks for a reading (:meth:`Sampler.read_now`). A window
that opens with nothing but estimates to read (``Meter.boundary_reads`` False) wakes nobody: its
start is settled from the curve once the next reading passes it. A closing boundary always ends on a
reading, so that windows that meet never overlap: its own, or with nothing but estimates one taken
since the window opened and less than :data:`ESTIMATES_FRESH_S` ago. Where every live meter is one of
co2cb's estimates (``Meter.caller_reads``), the closing thread takes that reading itself
(``Meter.read_at_boundary``: CPU times, no tree walk, no memory read; the read lock keeps it from
overlapping the sampler's), as a wake-up of the sampler's thread costs 100 to 300 us on a small VM.
A boundary waits on a meter call at most ``deadline_s`` (:data:`BOUNDARY_DEADLINE_S`): a meter slow
to answer (a hung NVML call) never holds the training thread longer, and such a boundary is read off
the curve instead, as without ``sync_boundaries``. It waits longer only for the thread to get a CPU on
a busy machine, up to :data:`WAIT_CAP_S`. The lock guards the :class:`~co2cb.core.timeline.Timeline`
only, never a meter read.

Faults: a meter that raises :class:`~co2cb.meters.base.MeterError` is dropped to "unavailable" with
one warning (its energy so far is kept); a :class:`~co2cb.meters.base.TransientMeterError` costs that
reading only (said once, recorded as an event; windows that close meanwhile name the meter as
unavailable) and the meter is read again next time. Events the
meters note (a counter restart) and counters that go back are recorded in :attr:`Sampler.events`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from co2cb.core.timeline import COUNTER_SPAN_S, Timeline
from co2cb.meters.base import Meter, TransientMeterError

log = logging.getLogger(__name__)

BOUNDARY_DEADLINE_S = 0.05
"""Longest a window boundary waits on one meter call, seconds; past it the boundary is read off the curve."""
WAIT_CAP_S = 1.0
"""Longest a window boundary waits for the sampler's thread to read at all (a machine too busy to run it)."""
ESTIMATES_FRESH_S = 0.005
"""A reading this recent ends a window of estimates as a new one would: their inputs change in 10 ms clock ticks
and the process tree's CPU times are cached this long (a validation's close and its epoch's share one reading)."""


@dataclass(frozen=True)
class MeterLoss:
    """A meter that stopped working during the run.

    Attributes:
        meter: Channel name, e.g. ``"gpu:0"``.
        at_ns: perf_counter_ns of the failed read.
        error: What went wrong.
    """

    meter: str
    at_ns: int
    error: str


@dataclass(frozen=True)
class MeterEvent:
    """Something the record should say about a meter that goes on working (a counter reset, failed readings).

    Attributes:
        meter: Channel name, e.g. ``"gpu:0"``.
        at_ns: perf_counter_ns of the reading where it was seen.
        what: What happened and what co2cb did, in words.
    """

    meter: str
    at_ns: int
    what: str


class Sampler:
    """Reads meters into a timeline, in the background and when a boundary asks."""

    def __init__(
        self,
        meters: Sequence[Meter],
        interval_s: float,
        on_tick: Callable[[], None] | None = None,
        deadline_s: float = BOUNDARY_DEADLINE_S,
    ) -> None:
        """Set up the sampler; nothing is read before :meth:`start`.

        Args:
            meters: The meters to read, in channel order.
            interval_s: Seconds between background reads.
            on_tick: Called on the sampler's thread after each background read, outside the lock.
            deadline_s: Longest a boundary waits for its reading, seconds.
        """
        self.meters = list(meters)
        self.names = [m.info.name for m in self.meters]
        self.interval_s = interval_s
        self.deadline_s = deadline_s
        span_s = max(interval_s, COUNTER_SPAN_S)  # a counter's rate past the last reading, over ticks enough
        self.timeline = Timeline([m.reading for m in self.meters], min_span_ns=int(span_s * 1e9))
        self.lock = threading.Lock()
        self.losses: list[MeterLoss] = []
        self.events: deque[MeterEvent] = deque()  # not written yet: :meth:`take_events` empties it
        self._point = threading.Condition(self.lock)  # notified when a point is added
        self._served = -1  # perf_counter_ns at which the newest point's read began
        self._reading: int | None = None  # the channel being read now (None: no read in progress)
        self._call_began = 0  # perf_counter_ns when the meter call in progress began
        self._dead = [False] * len(self.meters)
        self._boundary = any(m.boundary_reads for m in self.meters)  # some live meter is read at boundaries
        self._caller = all(m.caller_reads for m in self.meters)  # every live meter is read by a close's own thread
        self._read_lock = threading.Lock()  # held by whichever thread reads the meters
        self._failing = [0] * len(self.meters)  # consecutive failed readings per channel
        self._failing_since = [0] * len(self.meters)
        self._said: set[str] = set()
        self._on_tick = on_tick
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stuck: threading.Thread | None = None  # a thread still inside a meter call after stop
        self.cpu_seconds = 0.0  # thread CPU time spent sampling, for the benchmark

    # ------------------------------------------------------------------ boundaries
    def read_now(self, closing: bool = True, after: int = -1) -> int:
        """A reading for a window boundary, taken on the sampler's thread.

        The boundary waits while the sampler's thread gets to the reading (on a busy machine it may
        wait its turn for a CPU, up to :data:`WAIT_CAP_S`), but not on a meter call that has gone on
        for longer than ``deadline_s``.

        Args:
            closing: The boundary closes a window, whose energy is wanted now. An opening one with nothing
                but estimates to read needs no reading: its start is settled from the curve's next point.
            after: When the closing window opened (perf_counter_ns): with nothing but estimates to read, a
                reading taken since, within :data:`ESTIMATES_FRESH_S`, is the boundary's.

        Returns:
            The new point's time (perf_counter_ns); or, when the meters did not answer in time, or when a
            window opens and every live meter is an estimate, the time of the call, to be read off the curve.
        """
        asked = time.perf_counter_ns()
        if not self._boundary:
            if not closing:
                return asked
            last = self.timeline.last_time
            if last is not None and after < last and asked - last <= ESTIMATES_FRESH_S * 1e9:
                return last
        if self._thread is None:  # not started, or stopped: nothing else reads the meters now
            return self._read() if self._stuck is None else asked
        if self._caller:  # co2cb's estimates only: read here, no thread to wait for
            with self._read_lock:
                return self._read(at_boundary=True)
        if not self._slow_call(asked):  # a call already overdue: waiting for the next read would be longer still
            give_up = asked + WAIT_CAP_S * 1e9
            with self.lock:
                if self._served < asked:  # else a reading begun since the call serves it: no wake, no extra read
                    self._wake.set()
                while self._served < asked:
                    self._point.wait(self.deadline_s)
                    now = time.perf_counter_ns()
                    if self._served < asked and (self._slow_call(now) or now > give_up):
                        break
                else:
                    return self.timeline.last_time or asked
        self._late()
        return asked

    def opening_joules(self, t_ns: int) -> list[float] | None:
        """A window's start energy as it opens at ``t_ns`` when a reading covers it, else None.

        A start past the last reading is settled once the curve passes it, between two readings: on the line
        past the last one, which the next reading may come in under, windows that meet could overlap.
        """
        with self.lock:
            tl = self.timeline
            return tl.at(t_ns) if t_ns <= (tl.last_time or -1) else None

    def _slow_call(self, now_ns: int) -> bool:
        """Whether a meter call has gone on for longer than ``deadline_s`` at ``now_ns``."""
        return self._reading is not None and now_ns - self._call_began > self.deadline_s * 1e9

    def _late(self) -> None:
        index = self._reading
        slow = self.names[index] if index is not None else "a meter"
        self._say_once(
            "late",
            index,
            f"did not answer within {self.deadline_s * 1000:g} ms at a window boundary; such boundaries are read "
            "off the energy curve, and training never waits longer",
            f"co2cb: meter {slow} did not answer within {self.deadline_s * 1000:g} ms at a window boundary; such "
            "boundaries are read off the energy curve (training never waits longer for a meter)",
        )

    # ------------------------------------------------------------------ reading
    def _read(self, at_boundary: bool = False) -> int:
        """Read every meter and add the point; returns its time (perf_counter_ns).

        Args:
            at_boundary: A close's read on its own thread (``Meter.read_at_boundary``).
        """
        t0 = time.perf_counter_ns()
        raw: list[float | None] = []
        for i, meter in enumerate(self.meters):
            raw.append(None if self._dead[i] else self._read_one(i, meter, t0, at_boundary))
        self._reading = None
        t = (t0 + time.perf_counter_ns()) // 2
        with self.lock:
            went_back = self.timeline.append(t, raw)
            self._served = t0
            if not at_boundary:  # a close's own read: nobody waits for it
                self._point.notify_all()
        for i in went_back:
            self._event(
                i,
                t,
                "its counter went back (a driver reload?): counted on from this reading; energy before "
                "it is kept, the energy since the previous reading is not counted",
                "reset",
            )
        return t

    def _read_one(self, i: int, meter: Meter, t0: int, at_boundary: bool = False) -> float | None:
        self._call_began = time.perf_counter_ns()
        self._reading = i
        value: float | None = None
        try:
            value = meter.read_at_boundary() if at_boundary else meter.read()
        except TransientMeterError as e:
            self._failing[i] += 1
            if self._failing[i] == 1:
                self._failing_since[i] = t0
                self._event(i, t0, f"a reading failed ({e}); it is read again at each sampler interval", "failed")
        except Exception as e:  # noqa: BLE001 - any other failure makes the meter unavailable
            self._lose(i, t0, e)
        else:
            if self._failing[i]:
                self._event(i, t0, f"readable again after {self._failing[i]} failed reading(s)", "")
                self._failing[i] = 0
        for what in meter.take_events():
            self._event(i, t0, what, "noted")
        return value

    def take_events(self) -> list[MeterEvent]:
        """The events recorded since the last call, oldest first (appends on any thread are kept)."""
        taken: list[MeterEvent] = []
        while self.events:
            taken.append(self.events.popleft())
        return taken

    def unavailable(self) -> list[tuple[str, int]]:
        """``(meter, since_ns)`` of the meters lost for good, and of those whose latest readings failed."""
        failing = [(self.names[i], self._failing_since[i]) for i, n in enumerate(self._failing) if n]
        return [(x.meter, x.at_ns) for x in self.losses] + failing

    def _event(self, i: int, t_ns: int, what: str, kind: str) -> None:
        """Record an event; say the first of each ``kind`` for each meter ("": recorded only)."""
        self.events.append(MeterEvent(self.names[i], t_ns, what))
        if kind:
            self._say_once(kind, i, what, f"co2cb: meter {self.names[i]}: {what}", record=False)

    def _say_once(self, kind: str, i: int | None, what: str, message: str, record: bool = True) -> None:
        key = f"{kind}:{i}"
        if key in self._said:
            return
        self._said.add(key)
        if record and i is not None:
            self.events.append(MeterEvent(self.names[i], time.perf_counter_ns(), what))
        log.warning(message)

    def _lose(self, i: int, t_ns: int, error: BaseException) -> None:
        self._dead[i] = True
        self._boundary = any(m.boundary_reads and not d for m, d in zip(self.meters, self._dead))
        self._caller = all(m.caller_reads or d for m, d in zip(self.meters, self._dead))
        self.timeline.mark_dead(i)
        self.losses.append(MeterLoss(self.names[i], t_ns, f"{type(error).__name__}: {error}"))
        log.warning(
            "co2cb: meter %s is unavailable from now on (%s); its energy so far is kept, the others go on",
            self.names[i],
            error,
        )

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Take the first reading (on this thread) and start the background thread."""
        self._read()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="co2cb-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then take a last reading on this thread. Safe to call twice.

        A meter stuck in a call past the wait (``max(5, 2 x interval)`` seconds) leaves the curve at its
        last reading; the stuck call is left to finish on its own.
        """
        thread = self._thread
        if thread is None:
            if self._stuck is None or not self._stuck.is_alive():
                self._stuck = None
                self._read()
            return
        self._stop.set()
        self._wake.set()
        if thread is not threading.current_thread():
            thread.join(timeout=max(5.0, 2 * self.interval_s))
            if thread.is_alive():
                self._stuck = thread
                slow = self.names[self._reading] if self._reading is not None else "a meter"
                log.warning("co2cb: meter %s did not answer at stop; the run ends at its last reading", slow)
        self._thread = None
        if self._stuck is None:
            self._read()  # the last reading, here: the thread is gone, so no other reads the meters

    def forget_in_child(self) -> None:
        """In a forked child: no sampler thread runs here, and a lock the parent's thread held is replaced."""
        self._thread = None
        self.lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._point = threading.Condition(self.lock)

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_at = time.monotonic() + self.interval_s
        while True:
            self._wake.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self._read_lock:
                    self._read()
                now = time.monotonic()
                if now >= next_at:
                    next_at += self.interval_s
                    if next_at < now:  # fell behind (suspended, overloaded): skip, don't burst
                        next_at = now + self.interval_s
                    if self._on_tick is not None:
                        self._on_tick()
            except Exception:  # the sampler must outlive any bug
                log.exception("co2cb: sampler tick failed")
            self.cpu_seconds = time.thread_time() - cpu0
