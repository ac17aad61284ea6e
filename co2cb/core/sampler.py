"""One background thread that reads every meter and extends the energy curve.

The sampler wakes every ``interval_s`` (0.05 to 60 s), reads each meter under
its lock and appends a point to the :class:`~co2cb.core.timeline.Timeline`.
Synchronous reads at window boundaries go through the same lock. A meter that
raises is dropped to "unavailable" with one warning; the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from co2cb.core.timeline import Timeline
from co2cb.meters.base import Meter

log = logging.getLogger(__name__)


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


class Sampler:
    """Reads meters into a timeline, in the background and on demand."""

    def __init__(self, meters: Sequence[Meter], interval_s: float, on_tick: Callable[[], None] | None = None) -> None:
        """Prepare the sampler; nothing is read before :meth:`start`.

        Args:
        meters: The meters to read, in channel order.
        interval_s: Seconds between background reads.
        on_tick: Called after each background read, outside the lock (used to fold step stamps).
        """
        self.meters = list(meters)
        self.names = [m.info.name for m in self.meters]
        self.interval_s = interval_s
        self.timeline = Timeline([m.reading for m in self.meters], min_span_ns=int(interval_s * 1e9))
        self.lock = threading.Lock()
        self.losses: list[MeterLoss] = []
        self._dead = [False] * len(self.meters)
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_seconds = 0.0  # thread CPU time spent sampling, for the benchmark

    def read_now(self) -> int:
        """Read every meter now and add the point; returns its time (perf_counter_ns)."""
        with self.lock:
            t0 = time.perf_counter_ns()
            raw: list[float | None] = []
            for i, meter in enumerate(self.meters):
                if self._dead[i]:
                    raw.append(None)
                    continue
                try:
                    raw.append(meter.read())
                except Exception as e:  # noqa: BLE001 - any failure makes the meter unavailable
                    raw.append(None)
                    self._lose(i, t0, e)
            t = (t0 + time.perf_counter_ns()) // 2
            self.timeline.append(t, raw)
            return t

    def _lose(self, i: int, t_ns: int, error: BaseException) -> None:
        self._dead[i] = True
        self.timeline.mark_dead(i)
        self.losses.append(MeterLoss(self.names[i], t_ns, f"{type(error).__name__}: {error}"))
        log.warning(
            "co2cb: meter %s is unavailable from now on (%s); its energy so far is kept, the others go on",
            self.names[i],
            error,
        )

    def start(self) -> None:
        """Take the first reading and start the background thread."""
        self.read_now()
        self._thread = threading.Thread(target=self._run, name="co2cb-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and take a last reading. Safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
        self._thread = None
        self.read_now()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_at = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            try:
                self.read_now()
                if self._on_tick is not None:
                    self._on_tick()
            except Exception:  # the sampler must outlive any bug
                log.exception("co2cb: sampler tick failed")
            next_at += self.interval_s
            now = time.monotonic()
            if next_at < now:  # fell behind (suspended, overloaded): skip, don't burst
                next_at = now + self.interval_s
            self.cpu_seconds = time.thread_time() - cpu0
