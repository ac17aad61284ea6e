"""Time-varying carbon intensity from a CSV series file: the :class:`SeriesIntensity` source.

The file format (``timestamp, gCO2e/kWh`` rows) and its checks are in
:mod:`co2cb.intensity.series_file`.

Rules, applied the same way by the tracker and ``co2cb when``:

* **Steps**: each value holds from its timestamp until the next row's; the last value
  holds for one median step. The series therefore covers ``[first, last + median step)``.
* **Gaps**: an interval longer than ``gap_factor`` (default 3) times the median step is a
  gap. The value before it is still held across it, but the gap is reported: in
  :attr:`SeriesIntensity.gaps`, in the intensity reason of the run header, in a warning
  at load, and in the notes of every window that overlaps it.
* **Outside the series**: a time before the first row or after the covered end takes the
  ``fallback`` source's value (the tracker passes the region's table value of the same
  kind); without a fallback, the first or last value is held. Either way every window
  that reaches outside says so in its ``intensity_notes``.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from co2cb.intensity.base import IntensityInfo, IntensitySource
from co2cb.intensity.series_file import human_seconds, iso_utc, read_series

log = logging.getLogger(__name__)


KINDS = ("average", "marginal")
DEFAULT_GAP_FACTOR = 3.0


@dataclass(frozen=True)
class Gap:
    """An interval between two rows longer than the gap threshold.

    Attributes:
        start_unix_s: Time of the row before the gap.
        end_unix_s: Time of the row after it.
        line: Line number of the row after the gap.
    """

    start_unix_s: float
    end_unix_s: float
    line: int

    @property
    def seconds(self) -> float:
        """Length of the gap, seconds."""
        return self.end_unix_s - self.start_unix_s


class SeriesIntensity(IntensitySource):
    """Carbon intensity that varies with time, read from a CSV file at construction.

    See the module docstring for the file format and the rules for steps, gaps and
    times outside the series.

    Args:
        path: The CSV file.
        kind: ``"average"`` (attributional) or ``"marginal"``.
        fallback: Source used outside the series (the tracker passes the region's table
            value); None holds the first or last value.
        region: Region code written in the intensity info (default: the fallback's, else ``"series"``).
        region_name: Its human-readable name.
        reason: Why this series is used (written before the series description).
        gap_factor: An interval longer than this many median steps is a gap.

    Raises:
        co2cb.intensity.series_file.SeriesError: The file is unreadable or a row is bad.
        ValueError: ``kind`` or ``gap_factor`` is not valid.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: str = "average",
        fallback: IntensitySource | None = None,
        region: str | None = None,
        region_name: str | None = None,
        reason: str = "",
        gap_factor: float = DEFAULT_GAP_FACTOR,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not valid: use 'average' or 'marginal'")
        if isinstance(gap_factor, bool) or not isinstance(gap_factor, (int, float)) or not gap_factor > 1:
            raise ValueError(f"gap_factor={gap_factor!r} is not valid: give a number of median steps above 1")
        self.path = Path(path)
        self.kind = kind
        self.fallback = fallback
        self.times, self.values, self.lines = read_series(path)
        steps = [b - a for a, b in zip(self.times, self.times[1:])]
        self.step_s = float(statistics.median(steps))
        self.start_unix_s = self.times[0]
        self.end_unix_s = self.times[-1] + self.step_s
        self.gaps = [
            Gap(a, b, self.lines[i + 1])
            for i, (a, b) in enumerate(zip(self.times, self.times[1:]))
            if b - a > gap_factor * self.step_s
        ]
        self.gap_factor = float(gap_factor)
        self._cum = [0.0]
        for i, dt in enumerate([*steps, self.step_s]):
            self._cum.append(self._cum[-1] + self.values[i] * dt)
        self.mean_g_per_kwh = self._cum[-1] / (self.end_unix_s - self.start_unix_s)
        if self.gaps:
            log.warning("co2cb: %s", self._gap_text())
        fb = fallback.info if fallback is not None else None
        outside = (
            f"outside it, the {fb.region} table value ({fb.g_per_kwh:g} gCO2e/kWh, {fb.source}"
            f"{f' {fb.year}' if fb.year else ''}, {fb.kind}) is used"
            if fb is not None
            else "outside it, the first or last value is held"
        )
        gaps = f"; {self._gap_text()}" if self.gaps else ""
        described = (
            f"{kind} intensity series {self.path} ({len(self.times)} rows, {iso_utc(self.start_unix_s)} to "
            f"{iso_utc(self.end_unix_s)}, median step {human_seconds(self.step_s)}, mean {self.mean_g_per_kwh:.1f} "
            f"gCO2e/kWh); each value holds until the next row, the last for one median step; {outside}{gaps}"
        )
        self._info = IntensityInfo(
            g_per_kwh=self.mean_g_per_kwh,
            region=region or (fb.region if fb is not None else "series"),
            region_name=region_name or (fb.region_name if fb is not None else f"intensity series {self.path.name}"),
            source=f"intensity series {self.path}",
            year=None,
            kind=kind,
            reason=f"{reason}; {described}" if reason else described,
        )

    def _gap_text(self) -> str:
        longest = max(self.gaps, key=lambda g: g.seconds)
        return (
            f"{self.path}: {len(self.gaps)} gap(s) longer than {self.gap_factor:g} x the median step "
            f"({human_seconds(self.step_s)}), the longest {human_seconds(longest.seconds)} from "
            f"{iso_utc(longest.start_unix_s)} (before line {longest.line}); the value before a gap is held across it"
        )

    @property
    def info(self) -> IntensityInfo:
        """Provenance of the figures this source gives."""
        return self._info

    def g_per_kwh_at(self, unix_s: float) -> float:
        """Intensity in gCO2e/kWh at ``unix_s`` (seconds since the epoch)."""
        if self.start_unix_s <= unix_s < self.end_unix_s:
            return self.values[bisect.bisect_right(self.times, unix_s) - 1]
        if self.fallback is not None:
            return self.fallback.g_per_kwh_at(unix_s)
        return self.values[0] if unix_s < self.start_unix_s else self.values[-1]

    def integral(self, start_unix_s: float, end_unix_s: float) -> float:
        """Integral of the intensity over an interval inside the coverage, gCO2e/kWh x seconds."""
        return self._cumulative(end_unix_s) - self._cumulative(start_unix_s)

    def mean_between(self, start_unix_s: float, end_unix_s: float) -> float:
        """Mean intensity over an interval inside the coverage, gCO2e/kWh."""
        if end_unix_s <= start_unix_s:
            return self.g_per_kwh_at(start_unix_s)
        return self.integral(start_unix_s, end_unix_s) / (end_unix_s - start_unix_s)

    def _cumulative(self, t: float) -> float:
        t = min(max(t, self.start_unix_s), self.end_unix_s)
        i = max(0, min(bisect.bisect_right(self.times, t) - 1, len(self.times) - 1))
        return self._cum[i] + self.values[i] * (t - self.times[i])

    def breakpoints(self, start_unix_s: float, end_unix_s: float) -> list[float]:
        """Times strictly inside ``(start, end)`` where the intensity may change (rows, coverage end)."""
        lo = bisect.bisect_right(self.times, start_unix_s)
        hi = bisect.bisect_left(self.times, end_unix_s)
        points = self.times[lo:hi]
        if start_unix_s < self.end_unix_s < end_unix_s:
            points = [*points, self.end_unix_s]
        return points

    def notes(self, start_unix_s: float, end_unix_s: float) -> list[str]:
        """What a window over ``[start, end]`` should know: the parts outside the series, the gaps it overlaps."""
        out: list[str] = []
        instead = (
            f"the {self.fallback.info.region} table value ({self.fallback.info.g_per_kwh:g} gCO2e/kWh) was used"
            if self.fallback is not None
            else None
        )
        if start_unix_s < self.start_unix_s:
            before = min(end_unix_s, self.start_unix_s) - start_unix_s
            out.append(
                f"{human_seconds(before)} of the window lie before the series starts ({iso_utc(self.start_unix_s)}): "
                + (instead or f"its first value ({self.values[0]:g} gCO2e/kWh) was held")
            )
        if end_unix_s > self.end_unix_s:
            after = end_unix_s - max(start_unix_s, self.end_unix_s)
            out.append(
                f"{human_seconds(after)} of the window lie after the series ends ({iso_utc(self.end_unix_s)}): "
                + (instead or f"its last value ({self.values[-1]:g} gCO2e/kWh) was held")
            )
        for gap in self.gaps:
            if gap.start_unix_s + self.step_s < end_unix_s and start_unix_s < gap.end_unix_s:
                out.append(
                    f"the window overlaps a {human_seconds(gap.seconds)} gap in the series from "
                    f"{iso_utc(gap.start_unix_s)} (before line {gap.line}): the value before the gap was held"
                )
        return out


def refine_segments(
    segments: Iterable[tuple[float, float, float]], source: IntensitySource
) -> list[tuple[float, float, float]]:
    """Split energy segments where a source's intensity changes, so midpoints are exact.

    A segment's energy is shared in proportion to time (constant power inside a segment,
    as the energy curve assumes). Sources without ``breakpoints`` are left as they are.

    Args:
        segments: ``(start_unix_s, end_unix_s, joules)`` pieces.
        source: The intensity source the pieces will be weighed with.
    """
    points_of = getattr(source, "breakpoints", None)
    if points_of is None:
        return list(segments)
    out: list[tuple[float, float, float]] = []
    for start, end, joules in segments:
        inner: Sequence[float] = points_of(start, end) if end > start else ()
        if not inner:
            out.append((start, end, joules))
            continue
        span = end - start
        edges = [start, *inner, end]
        for a, b in itertools.pairwise(edges):
            out.append((a, b, joules * (b - a) / span))
    return out


def notes_for(source: IntensitySource, start_unix_s: float, end_unix_s: float) -> list[str]:
    """A source's notes about a window (empty for sources that keep none)."""
    notes = getattr(source, "notes", None)
    return list(notes(start_unix_s, end_unix_s)) if notes is not None else []
