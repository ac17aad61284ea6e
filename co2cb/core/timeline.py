"""The cumulative energy curve: joules per meter channel against time.

Points are ``(t_ns, [cumulative joules per channel])`` with ``t_ns`` from
``time.perf_counter_ns()``. Counter channels store what the meter counts
(relative to the first reading); a counter that goes back (a driver reload the
meter did not handle) starts a new segment from that reading, with the energy
before it kept. Power channels are integrated with the trapezoid rule, across a
reading the channel missed too. Between points the curve is linear (power constant between
samples). After the last point a power channel is extended with its last reading
(watts), and a counter channel with its rate over the last ``min_span_ns`` at
least (one sampler interval): never over the tiny gap between two synchronous
boundary reads, where a counter that updates every few milliseconds (RAPL, NVML)
would read as zero or as several times its true power.

Memory stays bounded: past ``max_points`` the older half is thinned to every
second point. Windows resolve their start energy when they open, so thinning
only coarsens the time-varying-intensity split of long windows and very old
marks.

Not thread-safe by itself: :class:`co2cb.core.sampler.Sampler` owns the lock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence

from co2cb.meters.base import ReadingKind

Vector = list[float]

COUNTER_SPAN_S = 1.0
"""The shortest span, seconds, a counter's rate past the last point is taken over (the sampler passes the
larger of this and its interval): RAPL and NVML counters move in steps of 1 to 100 ms, so a shorter span
holds too few of them (at a 0.1 s interval, ten 10 ms ticks would make the rate 10 % uncertain)."""


class Timeline:
    """Cumulative joules per channel, sampled in time."""

    def __init__(self, kinds: Sequence[ReadingKind], max_points: int = 4096, min_span_ns: int = 0) -> None:
        """An empty curve.

        Args:
        kinds: Reading kind of each channel, in channel order.
        max_points: Points kept before the older half is thinned (at least 16).
        min_span_ns: Shortest stretch a counter's rate past the last point is taken over (the
            sampler's interval).
        """
        self._kinds = list(kinds)
        self._min_span_ns = min_span_ns
        self._max_points = max(16, max_points)
        self.times: list[int] = []
        self.cum: list[Vector] = []
        self._origin: list[float | None] = [None] * len(kinds)  # counter value at the first reading
        self._last_raw: list[float | None] = [None] * len(kinds)  # last watts (power) or counter value
        self._last_t: list[int | None] = [None] * len(kinds)  # time of each channel's last reading
        self._alive = [True] * len(kinds)

    @property
    def channels(self) -> int:
        """Number of channels."""
        return len(self._kinds)

    @property
    def last_time(self) -> int | None:
        """Time of the newest point, ns, or None before the first."""
        return self.times[-1] if self.times else None

    @property
    def steady(self) -> bool:
        """Whether the points span at least ``min_span_ns``: a counter's rate past the last point is then stable."""
        return len(self.times) > 1 and self.times[-1] - self.times[0] >= self._min_span_ns

    def mark_dead(self, channel: int) -> None:
        """Freeze a channel: its curve stays flat from its last reading on."""
        self._alive[channel] = False

    def append(self, t_ns: int, raw: Sequence[float | None]) -> list[int]:
        """Add a reading taken at ``t_ns``.

        Args:
            t_ns: perf_counter_ns of the reading; must not be older than the last point.
            raw: Per channel, cumulative joules (counter) or watts (power), or None when
                the channel could not be read this time.

        Returns:
            The counter channels that went back and start a new segment here (usually none).
        """
        if self.times and t_ns <= self.times[-1]:
            return []
        prev = self.cum[-1] if self.cum else [0.0] * len(self._kinds)
        row: Vector = []
        went_back: list[int] = []
        for i, kind in enumerate(self._kinds):
            value = raw[i] if self._alive[i] else None
            if value is None:
                row.append(prev[i])
                continue
            if kind is ReadingKind.COUNTER:
                origin = self._origin[i]
                if origin is not None and value - origin < prev[i] - 1e-6:
                    went_back.append(i)
                    origin = None
                if origin is None:
                    # A channel's first reading is its zero (also when it starts late, or after it went back).
                    self._origin[i] = origin = value - prev[i]
                row.append(max(prev[i], value - origin))
            else:
                last_w, last_t = self._last_raw[i], self._last_t[i]
                if last_t is None or last_w is None:
                    row.append(prev[i])
                else:
                    row.append(prev[i] + (last_w + value) / 2 * (t_ns - last_t) * 1e-9)
            self._last_raw[i] = value
            self._last_t[i] = t_ns
        self.times.append(t_ns)
        self.cum.append(row)
        if len(self.times) > self._max_points:
            self._thin()
        return went_back

    def _thin(self) -> None:
        half = len(self.times) // 2
        self.times[:half] = self.times[:half:2]
        self.cum[:half] = self.cum[:half:2]

    def at(self, t_ns: int) -> Vector:
        """Cumulative joules per channel at ``t_ns``: interpolated, or extended past the last point."""
        times, cum = self.times, self.cum
        n = len(times)
        if n == 0:
            return [0.0] * len(self._kinds)
        if t_ns <= times[0]:
            return list(cum[0])
        i = bisect_right(times, t_ns)
        if i < n:
            t0, t1 = times[i - 1], times[i]
            f = (t_ns - t0) / (t1 - t0)
            a, b = cum[i - 1], cum[i]
            return [x + (y - x) * f for x, y in zip(a, b)]
        return self._extend(t_ns)

    def _extend(self, t_ns: int) -> Vector:
        """The curve past its last point: power channels at their last watts, counters at a stable rate."""
        times, cum = self.times, self.cum
        t_last, last = times[-1], cum[-1]
        j = bisect_right(times, t_last - self._min_span_ns) - 1  # the newest point at least min_span before
        j = max(0, min(j, len(times) - 2))
        span = t_last - times[j]
        out: Vector = []
        for i, (kind, y) in enumerate(zip(self._kinds, last)):
            watts = self._last_raw[i] if kind is ReadingKind.POWER else None
            if not self._alive[i]:
                out.append(y)
            elif watts is not None:  # from the channel's own last reading: it may have missed the last point
                out.append(y + watts * (t_ns - (self._last_t[i] or t_last)) * 1e-9)
            elif span > 0:
                out.append(y + (y - cum[j][i]) * (t_ns - t_last) / span)
            else:
                out.append(y)
        return out

    def points_between(self, t0_ns: int, t1_ns: int) -> Iterator[tuple[int, Vector]]:
        """The stored points strictly inside ``(t0_ns, t1_ns)``, oldest first."""
        i = bisect_right(self.times, t0_ns)
        while i < len(self.times) and self.times[i] < t1_ns:
            yield self.times[i], self.cum[i]
            i += 1
