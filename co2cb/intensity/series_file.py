"""Reading a carbon-intensity series file (``timestamp, gCO2e/kWh``): parsing and checking its rows.

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

Any bad row fails at load with :class:`SeriesError` naming the file, the line and what
was wrong.

How a series is used (steps, gaps, times outside it): :mod:`co2cb.intensity.series`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from co2cb.intensity.base import MAX_G_PER_KWH

MIN_UNIX_S = 946_684_800.0  # 2000-01-01T00:00Z
MAX_UNIX_S = 4_102_444_800.0  # 2100-01-01T00:00Z

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
