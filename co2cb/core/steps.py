"""Step windows: timestamps on the hot path, statistics worked out in bulk later.

A step boundary appends one signed ``perf_counter_ns`` value to a list: ``+t`` opens, ``-t``
closes. Nothing else happens there: no lock, no I/O. (A list, not an ``array('q')``: after a training
step has emptied the CPU's caches, an array's append parses its argument through code that is cold
too, about 1.3 us against 0.3 us in a Lightning fit; the sampler folds a buffer once it holds 4,096
stamps, so it stays under about 160 kB.) Later (when someone asks, or when the sampler sees the buffer
grow) the stamps that the energy curve already covers are paired, their energy is read off the curve
in one pass, and they are folded into running statistics: count, seconds, joules per channel, and
log-scale histograms of duration and energy that give percentiles to within about 2%. An open
without a close (a step that raised) is dropped when the next one opens.

A chained buffer (:meth:`StepBook.new_chain`) holds one stamp per boundary instead: ``+t`` ends the
step open in it, if any, and opens the next; ``-t`` ends the open step. It serves a framework whose
step runs from one batch's start to the next's: one append a step instead of two.

Each thread that marks steps of a name gets its own buffer (:meth:`StepBook.stamps_here`), so
steps marked from two threads never pair across threads; their statistics are folded together.
Appends come from the marking threads and folding from another; this is safe under the GIL because
folding only deletes a prefix it has already read, and appends only add at the end.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import compress, count, repeat
from operator import mul, ne, neg, sub
from typing import Any

from co2cb.core.timeline import Timeline
from co2cb.units import JOULES_PER_KWH

_BUCKETS_PER_DOUBLING = 16


class LogHistogram:
    """Counts of positive values in log-spaced buckets (ratio 2^(1/16), about 4.4% wide)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.zeros = 0
        self.n = 0

    def add(self, value: float) -> None:
        """Count one value."""
        self.n += 1
        if value <= 0:
            self.zeros += 1
        else:
            self.counts[math.floor(math.log2(value) * _BUCKETS_PER_DOUBLING)] += 1

    def add_many(self, values: list[float]) -> None:
        """Count many values, at C speed when all are positive."""
        if not values:
            return
        if min(values) <= 0:
            for v in values:
                self.add(v)
            return
        self.n += len(values)
        self.counts.update(map(math.floor, map(mul, map(math.log2, values), repeat(_BUCKETS_PER_DOUBLING))))

    def percentile(self, q: float) -> float:
        """Approximate ``q``-th percentile (0..100): the geometric middle of its bucket."""
        if self.n == 0:
            return math.nan
        rank = q / 100 * (self.n - 1) + 1
        if rank <= self.zeros:
            return 0.0
        seen = self.zeros
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return float(2 ** ((bucket + 0.5) / _BUCKETS_PER_DOUBLING))
        return math.nan


@dataclass
class StepStats:
    """What a named step window has seen so far.

    Attributes:
        name: The step window's name.
        count: Steps folded in.
        seconds: Their total duration, seconds.
        joules: Their total energy per channel (meter name -> joules).
        pending: Stamps not yet folded (the curve does not reach them yet).
        duration_percentiles_s: p50/p90/p99 of step duration, seconds.
        energy_percentiles_j: p50/p90/p99 of step energy (all channels), joules.
        steps: Every step as ``(start_ns, end_ns, joules)`` if kept, else empty.
    """

    name: str
    count: int
    seconds: float
    joules: dict[str, float]
    pending: int
    duration_percentiles_s: dict[str, float]
    energy_percentiles_j: dict[str, float]
    steps: list[tuple[int, int, float]] = field(default_factory=list)

    @property
    def total_joules(self) -> float:
        """Energy of all folded steps, all channels, joules."""
        return sum(self.joules.values())

    @property
    def mean_seconds(self) -> float:
        """Mean step duration, seconds (NaN before the first)."""
        return self.seconds / self.count if self.count else math.nan

    @property
    def mean_joules(self) -> float:
        """Mean step energy, joules (NaN before the first)."""
        return self.total_joules / self.count if self.count else math.nan

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form for the run summary (energy in kWh)."""
        return {
            "count": self.count,
            "seconds": self.seconds,
            "energy_kwh": self.total_joules / JOULES_PER_KWH,
            "mean_seconds": self.mean_seconds,
            "mean_joules": self.mean_joules,
            "duration_percentiles_s": self.duration_percentiles_s,
            "energy_percentiles_j": self.energy_percentiles_j,
        }


class StepSeries:
    """Stamps and running statistics of one named step window."""

    __slots__ = (
        "_count",
        "_dur_hist",
        "_energy_hist",
        "_joules",
        "_keep",
        "_kept",
        "_ns",
        "chains",
        "name",
        "others",
        "stamps",
    )

    def __init__(self, name: str, channels: int, keep: bool = False) -> None:
        self.name = name
        self.stamps: list[int] = []  # the first marking thread's buffer
        self.others: list[list[int]] = []  # one buffer per further thread marking this name
        self.chains: list[list[int]] = []  # chained buffers (see the module notes)
        self._count = 0
        self._ns = 0
        self._joules = [0.0] * channels
        self._dur_hist = LogHistogram()
        self._energy_hist = LogHistogram()
        self._keep = keep
        self._kept: list[tuple[int, int, float]] = []

    @property
    def pending(self) -> int:
        """Stamps not folded yet, every thread's."""
        return len(self.stamps) + sum(map(len, self.others)) + sum(map(len, self.chains))

    def fold(self, timeline: Timeline, max_steps: int = 1 << 62) -> int:
        """Fold complete steps that end at or before the curve's last point, at most ``max_steps`` per buffer.

        Returns:
            How many steps were folded (the most from any one thread's buffer).
        """
        paired = [self._fold(buffer, timeline, max_steps) for buffer in [self.stamps, *self.others]]
        return max(paired + [self._fold_chain(chain, timeline, max_steps) for chain in self.chains])

    def _fold_chain(self, stamps: list[int], timeline: Timeline, max_steps: int) -> int:
        """Fold the steps of a chained buffer that end by the curve's last point; returns the stamps used."""
        last = timeline.last_time
        if last is None:
            return 0
        raw = stamps[: max_steps + 1]
        ends = list(map(abs, raw[1:]))
        n = bisect_right(ends, last)  # stamps only grow in size: the steps ending by ``last`` come first
        opens = [i for i in range(n) if raw[i] > 0]  # a step from each +t to the next stamp
        del stamps[:n]  # the next step starts at the stamp left first (if it is a +t)
        if stamps and stamps[0] < 0:
            del stamps[0]  # it ended a step folded now: it opens none
        if opens:
            self._add([raw[i] for i in opens], [ends[i] for i in opens], timeline)
        return n

    def _fold(self, stamps: list[int], timeline: Timeline, max_steps: int) -> int:
        last = timeline.last_time
        if last is None:
            return 0
        raw = stamps[: min(len(stamps), 2 * max_steps + 1)]
        usable = len(raw) - len(raw) % 2
        starts = raw[0:usable:2]
        ends = list(map(neg, raw[1:usable:2]))
        if starts and min(starts) > 0 and min(ends) > 0:  # the usual case: open, close, open, close, ...
            n = min(bisect_right(ends, last), max_steps)
            if n:
                self._add(starts[:n], ends[:n], timeline)
                del stamps[: 2 * n]
            return n
        starts, ends, consumed = _pair(raw, last)
        if consumed:
            del stamps[:consumed]
        if starts:
            self._add(starts, ends, timeline)
        return len(starts)

    def _add(self, starts: list[int], ends: list[int], timeline: Timeline) -> None:
        """Read the steps' energy off the curve and fold it in, in bulk.

        Most steps lie inside one sampling interval, where every channel's power is
        constant: their energy is that interval's total power times their duration,
        and per-channel totals are settled once per interval from the time steps
        spent in it. Steps that span a reading are read off the curve one by one.
        """
        times, cum = timeline.times, timeline.cum
        locate = partial(bisect_left, times)
        js = list(map(locate, starts))  # index of the reading that ends each step's interval
        durations = list(map(sub, ends, starts))
        watts: dict[int, float] = {}  # total power x 1e-9 of each interval touched
        for j in set(js):
            if 0 < j < len(times):
                watts[j] = (sum(cum[j]) - sum(cum[j - 1])) / (times[j] - times[j - 1])
        energies = list(map(mul, map(watts.get, js, repeat(0.0)), durations))
        ns_in = {j: 0 for j in watts}
        for j in watts:
            ns_in[j] = sum(durations[bisect_left(js, j) : bisect_right(js, j)])
        totals = self._joules
        spanning = set(compress(count(), map(ne, js, map(locate, ends))))
        spanning.update(range(bisect_right(js, 0)))  # before the first reading
        for i in spanning:
            a, b = timeline.at(starts[i]), timeline.at(ends[i])
            energies[i] = sum(b) - sum(a)
            for c in range(len(totals)):
                totals[c] += b[c] - a[c]
            if js[i] in ns_in:
                ns_in[js[i]] -= durations[i]
        for j, ns in ns_in.items():
            f = ns / (times[j] - times[j - 1])
            for c in range(len(totals)):
                totals[c] += (cum[j][c] - cum[j - 1][c]) * f
        self._count += len(starts)
        self._ns += sum(durations)
        self._dur_hist.add_many([d * 1e-9 for d in durations])
        self._energy_hist.add_many(energies)
        if self._keep:
            self._kept.extend(zip(starts, ends, energies))

    def stats(self, channel_names: Sequence[str]) -> StepStats:
        """A snapshot of the statistics (call :meth:`fold` first for fresh values)."""
        qs = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
        return StepStats(
            name=self.name,
            count=self._count,
            seconds=self._ns * 1e-9,
            joules=dict(zip(channel_names, self._joules)),
            pending=self.pending,
            duration_percentiles_s={k: self._dur_hist.percentile(q) for k, q in qs.items()},
            energy_percentiles_j={k: self._energy_hist.percentile(q) for k, q in qs.items()},
            steps=list(self._kept),
        )


def _pair(stamps: list[int], last: int) -> tuple[list[int], list[int], int]:
    """Pair opens with closes when some step did not close (it raised) or a close had no open.

    Returns:
        ``(starts, ends, consumed)``: the complete steps ending by ``last`` and how many
        stamps they (and the dropped strays among them) used up.
    """
    starts: list[int] = []
    ends: list[int] = []
    consumed = 0
    i = 0
    while i < len(stamps):
        if stamps[i] < 0:  # a close with no open: drop it
            i += 1
        elif i + 1 >= len(stamps):
            break  # still open
        elif stamps[i + 1] > 0:  # reopened before closing: the first open raised, drop it
            i += 1
        elif -stamps[i + 1] > last:
            break
        else:
            starts.append(stamps[i])
            ends.append(-stamps[i + 1])
            i += 2
        consumed = i
    return starts, ends, consumed


class StepBook:
    """Every step window's series, folded into statistics by the sampler's thread, off the hot path.

    Args:
        channels: Number of meter channels.
        keep: Keep every step, not only the statistics.
        sampler: Owner of the energy curve and its lock (:class:`co2cb.core.sampler.Sampler`).
    """

    FOLD_THRESHOLD = 4096  # stamps buffered per step name before the sampler folds them
    FOLD_CHUNK = 16_384  # steps folded per hold of the curve's lock (bounds scratch memory and waits)

    def __init__(self, channels: int, keep: bool, sampler: Any) -> None:
        self.series: dict[str, StepSeries] = {}  # replaced, never mutated: the hot path reads it without a lock
        self._channels, self._keep, self._sampler = channels, keep, sampler
        self._fold_lock = threading.Lock()
        self._new_lock = threading.Lock()
        self._threads: dict[str, set[int]] = {}  # per name, the threads that have a buffer

    def new(self, name: str) -> StepSeries:
        """The series of a step name seen for the first time (the existing one if another thread made it first)."""
        with self._new_lock:
            series = self.series.get(name)
            if series is None:
                series = StepSeries(name, self._channels, keep=self._keep)
                self.series = {**self.series, name: series}
            return series

    def new_chain(self, name: str) -> list[int]:
        """A new chained buffer for step name ``name`` (see the module notes), for one thread to append to."""
        series = self.new(name)
        chain: list[int] = []
        with self._new_lock:
            series.chains.append(chain)
        return chain

    def stamps_here(self, name: str, local: threading.local) -> list[int]:
        """This thread's buffer for step name ``name``, made on its first use and kept in ``local.stamps``."""
        series = self.new(name)
        me = threading.get_ident()
        with self._new_lock:
            threads = self._threads.setdefault(name, set())
            if not threads:
                buffer = series.stamps
            else:
                buffer = []
                series.others.append(buffer)
            threads.add(me)
        if not hasattr(local, "stamps"):
            local.stamps = {}
        local.stamps[name] = buffer
        return buffer

    def stats(self, name: str, channel_names: Sequence[str]) -> StepStats:
        """Statistics of one step name, every step the curve covers folded in.

        Raises:
            KeyError: No step window of that name was opened.
        """
        series = self.series[name]
        self._fold(series)
        return series.stats(channel_names)

    def fold_big(self) -> None:
        """Fold the series whose buffers grew past :attr:`FOLD_THRESHOLD` (on the sampler's tick)."""
        for series in list(self.series.values()):
            if series.pending > self.FOLD_THRESHOLD:
                self._fold(series)

    def fold_all(self) -> None:
        """Fold every series (at stop)."""
        for series in list(self.series.values()):
            self._fold(series)

    def _fold(self, series: StepSeries) -> None:
        """Fold in chunks, releasing the curve's lock between them (boundary reads wait at most one chunk)."""
        with self._fold_lock:
            while True:
                with self._sampler.lock:
                    folded = series.fold(self._sampler.timeline, max_steps=self.FOLD_CHUNK)
                if folded < self.FOLD_CHUNK:
                    return


class StepWindows:
    """The step-window part of :class:`co2cb.Tracker`'s interface (a base class of it)."""

    _steps: StepBook
    _local: threading.local  # this thread's step buffers, by name
    _channels: list[str]

    def step_chain(self, name: str) -> list[int]:
        """A new buffer of step ``name`` for one thread whose steps follow one another.

        Append ``perf_counter_ns()`` at each boundary (it ends the open step and opens the next), and its
        negative to end the open step without opening one.
        """
        return self._steps.new_chain(name)

    def step_stamps(self, name: str) -> list[int]:
        """This thread's stamps of step ``name``: append perf_counter_ns() as a step opens, its negative as it ends."""
        try:
            return self._local.stamps[name]
        except (AttributeError, KeyError):
            return self._steps.stamps_here(name, self._local)

    def step_stats(self, name: str) -> StepStats:
        """Statistics of a step window, folding in every step the curve covers.

        Raises:
            KeyError: No step window of that name was opened.
        """
        return self._steps.stats(name, self._channels)

    def all_step_stats(self) -> dict[str, StepStats]:
        """:meth:`step_stats` of every step window."""
        return {name: self.step_stats(name) for name in self._steps.series}
