"""Time-varying carbon intensity from a CSV file (``timestamp, gCO2e/kWh``).

File format, one row per line::

    # comments and blank lines are ignored
    timestamp,g_per_kwh                 <- optional header (first row only)
    2024-05-01T00:00:00Z,56
    2024-05-01T01:00+02:00,61.5
    1714528800,58                       <- unix seconds work too

* **Timestamps**: ISO 8601 with a time and a UTC offset (``Z``, ``+02:00``, ``+0200``,
  ``+02``; ``T`` or a space between date and time; fractions of a second allowed), or
  unix seconds. A time without an offset is refused (its zone would be a guess). Times
  must lie in 2000..2099 (this catches years, milliseconds and spreadsheet day numbers).
* **Values**: gCO2e/kWh, 0 to 1500.
* Rows must be in strictly increasing time order; any step, even uneven.

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

Any bad row fails at load with :class:`SeriesError` naming the file, the line and what
was wrong.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import logging
import math
import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from co2cb.intensity.base import MAX_G_PER_KWH, IntensityInfo, IntensitySource

log = logging.getLogger(__name__)


MIN_UNIX_S = 946_684_800.0  # 2000-01-01T00:00Z
MAX_UNIX_S = 4_102_444_800.0  # 2100-01-01T00:00Z
KINDS = ("average", "marginal")
DEFAULT_GAP_FACTOR = 3.0

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DIGITISH = re.compile(r"^\s*[+\-.]?\d")
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt ](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?"
    r"\s*(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?$"
)


class SeriesError(ValueError):
    """A series file co2cb cannot use; the message names the file, the line and the fault."""


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch for an ISO 8601 time with an offset, or unix seconds.

    Args:
        text: ``"2024-05-01T00:00Z"``, ``"2024-05-01 02:00:00.5+02:00"``, ``"1714521600"``...

    Returns:
        Unix seconds (UTC).

    Raises:
        ValueError: The text is not such a time, has no UTC offset, or lies outside 2000..2099.
    """
    s = text.strip()
    if not s:
        raise ValueError("the timestamp is empty")
    if _NUMBER.match(s):
        value = float(s)
        if not MIN_UNIX_S <= value < MAX_UNIX_S:
            ms = MIN_UNIX_S * 1000 <= value < MAX_UNIX_S * 1000
            hint = " (it looks like milliseconds; give seconds)" if ms else ""
            raise ValueError(
                f"unix time {s!r} is outside 2000..2099{hint}; give seconds since 1970-01-01T00:00Z "
                "or an ISO 8601 time such as 2024-05-01T00:00Z"
            )
        return value
    m = _ISO.match(s)
    if m is None:
        raise ValueError(
            f"{_short(s)!r} is not a timestamp: give ISO 8601 with an offset (2024-05-01T00:00Z, "
            "2024-05-01T02:00+02:00) or unix seconds"
        )
    if m["tz"] is None:
        raise ValueError(f"timestamp {s!r} has no UTC offset: add Z for UTC or an offset such as +02:00")
    try:
        fraction = int((m["f"] or "0").ljust(6, "0")[:6])
        tz = m["tz"]
        if tz in ("Z", "z"):
            offset = timezone.utc
        else:
            digits = tz[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:] or 0)
            if hours > 23 or minutes > 59:
                raise ValueError(f"offset {tz} is not valid")
            delta = timedelta(hours=hours, minutes=minutes)
            offset = timezone(-delta if tz[0] == "-" else delta)
        moment = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"] or 0), fraction, offset
        )
    except ValueError as e:
        raise ValueError(f"timestamp {s!r} is not a valid date and time ({e})") from None
    value = moment.timestamp()
    if not MIN_UNIX_S <= value < MAX_UNIX_S:
        raise ValueError(f"timestamp {s!r} is outside 2000..2099")
    return value


def parse_value(text: str) -> float:
    """A carbon intensity in gCO2e/kWh, 0 to 1500.

    Raises:
        ValueError: Not a finite number in range.
    """
    s = text.strip()
    if not _NUMBER.match(s):
        raise ValueError(f"value {_short(s)!r} is not a number: give gCO2e/kWh, e.g. 56 or 412.5")
    value = float(s)
    if not math.isfinite(value):
        raise ValueError(f"value {s!r} is not a finite number")
    if value < 0:
        raise ValueError(f"value {s!r} is negative: give gCO2e/kWh between 0 and {MAX_G_PER_KWH:g}")
    if value > MAX_G_PER_KWH:
        raise ValueError(
            f"value {s!r} is above {MAX_G_PER_KWH:g} gCO2e/kWh, more than any grid emits (is it in g/MWh or lb/MWh?)"
        )
    return value


def split_row(line: str) -> list[str]:
    """The fields of one CSV line (quotes allowed, trailing empty fields dropped).

    Raises:
        ValueError: The line does not hold exactly two fields.
    """
    try:
        fields = next(csv.reader([line]), [])
    except csv.Error as e:
        raise ValueError(f"the line is not valid CSV ({e})") from None
    while fields and not fields[-1].strip():
        fields.pop()
    if len(fields) != 2:
        hint = " (the separator must be a comma)" if len(fields) == 1 and (";" in line or "\t" in line) else ""
        raise ValueError(f"expected 2 comma-separated fields (timestamp, gCO2e/kWh), found {len(fields)}{hint}")
    return fields


def parse_row(line: str) -> tuple[float, float]:
    """``(unix seconds, gCO2e/kWh)`` from one data line ``timestamp, value``.

    Raises:
        ValueError: The line is not such a row; the message says what is wrong.
    """
    stamp, value = split_row(line)
    return parse_timestamp(stamp), parse_value(value)


def _looks_like_header(fields: Sequence[str]) -> bool:
    """Column names, not a mistyped row: neither field starts like a number or a date."""
    return not any(_DIGITISH.match(f) for f in fields)


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def iso_utc(unix_s: float) -> str:
    """Compact ISO 8601 UTC form (``2024-05-01T00:00:00Z``), whole seconds."""
    return datetime.fromtimestamp(round(unix_s), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_seconds(seconds: float) -> str:
    """A duration in the largest unit that suits it (``"15 min"``, ``"1 h"``, ``"2.5 d"``)."""
    if seconds >= 2 * 86_400:
        return f"{seconds / 86_400:.3g} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


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


def read_series(path: str | os.PathLike[str]) -> tuple[list[float], list[float], list[int]]:
    """Parse a series file: ``(unix seconds, gCO2e/kWh, line numbers)``, checked.

    Raises:
        SeriesError: The file is unreadable, empty, or a row is bad (``file:line: what``).
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise SeriesError(f"{name}: cannot read the intensity series ({e.strerror or e})") from None
    times: list[float] = []
    values: list[float] = []
    lines: list[int] = []
    first_row = True
    for number, raw_line in enumerate(raw.splitlines(), start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            raise SeriesError(f"{name}:{number}: the line is not UTF-8 text") from None
        if number == 1:
            line = line.lstrip("\ufeff")
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            fields = split_row(text)
        except ValueError as e:
            raise SeriesError(f"{name}:{number}: {e}") from None
        try:
            t = parse_timestamp(fields[0])
        except ValueError as e:
            if first_row and _looks_like_header(fields):
                first_row = False
                continue  # a header
            raise SeriesError(f"{name}:{number}: {e}") from None
        first_row = False
        try:
            v = parse_value(fields[1])
        except ValueError as e:
            raise SeriesError(f"{name}:{number}: {e}") from None
        if times and t <= times[-1]:
            what = "repeats" if t == times[-1] else "is earlier than"
            raise SeriesError(
                f"{name}:{number}: timestamp {fields[0].strip()} {what} line {lines[-1]}'s ({iso_utc(times[-1])}): "
                "rows must be in strictly increasing time order"
            )
        times.append(t)
        values.append(v)
        lines.append(number)
    if len(times) < 2:
        found = "no data rows" if not times else "only one data row"
        raise SeriesError(
            f"{name}: {found}; an intensity series needs at least two rows 'timestamp, gCO2e/kWh' "
            "(the step between rows is how long each value holds)"
        )
    return times, values, lines


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
        SeriesError: The file is unreadable or a row is bad.
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
        return self._info

    def covers(self, unix_s: float) -> bool:
        """Whether a time lies inside the series' coverage ``[first, last + median step)``."""
        return self.start_unix_s <= unix_s < self.end_unix_s

    def g_per_kwh_at(self, unix_s: float) -> float:
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
