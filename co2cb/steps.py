"""Step windows: timestamps on the hot path, statistics worked out in bulk later.

A step boundary appends one signed ``perf_counter_ns`` value to an
``array('q')``: ``+t`` opens, ``-t`` closes. Nothing else happens there: no lock,
no I/O. Later (when someone asks, or when the sampler sees the buffer grow) the
stamps that the energy curve already covers are paired, their energy is read off
the curve in one pass, and they are folded into running statistics: count,
seconds, joules per channel, and log-scale histograms of duration and energy
that give percentiles to within about 2%. An open without a close (a step that
raised) is dropped when the next one opens.

Appends come from the training thread and folding from another; this is safe
under the GIL because folding only deletes a prefix it has already read, and
appends only add at the end.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from co2cb.timeline import Timeline

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


class StepSeries:
    """Stamps and running statistics of one named step window."""

    __slots__ = ("name", "stamps", "_count", "_ns", "_joules", "_dur_hist", "_energy_hist", "_keep", "_kept")

    def __init__(self, name: str, channels: int, keep: bool = False) -> None:
        self.name = name
        self.stamps = array("q")
        self._count = 0
        self._ns = 0
        self._joules = [0.0] * channels
        self._dur_hist = LogHistogram()
        self._energy_hist = LogHistogram()
        self._keep = keep
        self._kept: list[tuple[int, int, float]] = []

    def fold(self, timeline: Timeline) -> None:
        """Fold every complete step that ends at or before the curve's last point."""
        last = timeline.last_time
        if last is None:
            return
        stamps = self.stamps[: len(self.stamps)].tolist()
        pairs: list[tuple[int, int]] = []
        consumed = 0
        i = 0
        while i < len(stamps):
            start = stamps[i]
            if start < 0:  # a close with no open: drop it
                i += 1
                consumed = i
                continue
            if i + 1 >= len(stamps):
                break  # still open
            end = stamps[i + 1]
            if end > 0:  # reopened before closing: the first open raised, drop it
                i += 1
                consumed = i
                continue
            if -end > last:
                break
            pairs.append((start, -end))
            i += 2
            consumed = i
        if consumed:
            del self.stamps[:consumed]
        if not pairs:
            return
        flat = [t for pair in pairs for t in pair]
        vectors = timeline.resolve(flat)
        totals = self._joules
        for k, (start, end) in enumerate(pairs):
            a, b = vectors[2 * k], vectors[2 * k + 1]
            step_j = 0.0
            for c in range(len(totals)):
                d = b[c] - a[c]
                totals[c] += d
                step_j += d
            self._count += 1
            self._ns += end - start
            self._dur_hist.add((end - start) * 1e-9)
            self._energy_hist.add(step_j)
            if self._keep:
                self._kept.append((start, end, step_j))

    def stats(self, channel_names: Sequence[str]) -> StepStats:
        """A snapshot of the statistics (call :meth:`fold` first for fresh values)."""
        qs = {"p50": 50.0, "p90": 90.0, "p99": 99.0}
        return StepStats(
            name=self.name,
            count=self._count,
            seconds=self._ns * 1e-9,
            joules=dict(zip(channel_names, self._joules)),
            pending=len(self.stamps),
            duration_percentiles_s={k: self._dur_hist.percentile(q) for k, q in qs.items()},
            energy_percentiles_j={k: self._energy_hist.percentile(q) for k, q in qs.items()},
            steps=list(self._kept),
        )
