"""Parsers of planning input: job length, accelerator count, utilisation, PUE, watts and RAM.

Each takes what a user typed (``"36h"``, ``"70%"``, ``"400W"``) or a number, and returns the value
in co2cb's units (hours, a count, a fraction, watts, GB), or raises :class:`PlanningInputError`
whose message names the option and gives an example. ``co2cb estimate`` and ``co2cb when`` read
``--hours`` with the one :func:`parse_hours`, so both take the same units and the same range.
"""

from __future__ import annotations

import math
import re

#: Limits of user input (inclusive).
MAX_HOURS = 1_000_000.0
MAX_COUNT = 1_000_000
MIN_PUE, MAX_PUE = 1.0, 3.0
MAX_BOARD_WATTS = 5_000.0
MAX_CPU_WATTS = 1_000_000.0
MAX_RAM_GB = 1_000_000.0

#: ``--help`` text of a job length read by :func:`parse_hours`.
HOURS_HELP = "job length: hours (36, 36h), days (1.5d) or minutes (90m, 90min)"

_HOUR_UNITS = {
    "": 1.0,
    "h": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "hour": 1.0,
    "hours": 1.0,
    "d": 24.0,
    "day": 24.0,
    "days": 24.0,
    "m": 1 / 60,
    "min": 1 / 60,
    "mins": 1 / 60,
    "minute": 1 / 60,
    "minutes": 1 / 60,
}
_NUMBER_UNIT = re.compile(r"^([0-9.eE+\-_]+)\s*([a-z]*)$")


class PlanningInputError(ValueError):
    """A planning input (GPU count, hours, utilisation, PUE, watts) that cannot be used; says what to give."""


def _number(text: object, what: str, example: str) -> tuple[float, str]:
    """A finite number and its (lower-case) unit word from ``text``."""
    if isinstance(text, bool):
        raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
    if isinstance(text, (int, float)):
        try:
            value, unit = float(text), ""
        except OverflowError:
            raise PlanningInputError(f"{what}: {text!r} is too large; give e.g. {example}") from None
    elif isinstance(text, str):
        match = _NUMBER_UNIT.match(text.strip().casefold())
        if match is None:
            raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
        try:
            value = float(match.group(1))
        except ValueError:
            raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}") from None
        unit = match.group(2)
    else:
        raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
    if not math.isfinite(value):
        raise PlanningInputError(f"{what}: {text!r} is not a finite number; give e.g. {example}")
    return value, unit


def _plain(text: object, what: str, example: str) -> float:
    value, unit = _number(text, what, example)
    if unit:
        raise PlanningInputError(f"{what}: {text!r} has a unit co2cb does not take here; give e.g. {example}")
    return value


def parse_hours(text: object) -> float:
    """Job length in hours, from ``"36"``, ``"36h"``, ``"1.5 d"``, ``"90m"`` or ``"90min"``.

    Raises:
        PlanningInputError: Not a number, an unknown unit, or outside (0, 1,000,000] hours.
    """
    value, unit = _number(text, "--hours", "36 (hours), 36h, 1.5d or 90min")
    if unit not in _HOUR_UNITS:
        raise PlanningInputError(
            f"--hours: unknown unit {unit!r} in {text!r}; use h, d, m or min (default hours), e.g. 36h"
        )
    hours = value * _HOUR_UNITS[unit]
    if not 0 < hours <= MAX_HOURS:
        raise PlanningInputError(f"--hours: {text!r} is outside 0 < hours <= {MAX_HOURS:,.0f}; give e.g. 36")
    return hours


def parse_count(text: object) -> int:
    """Number of accelerators: a whole number from 1 to 1,000,000.

    Raises:
        PlanningInputError: Not a whole number, or out of range.
    """
    value = _plain(text, "--count", "8")
    if not value.is_integer():
        raise PlanningInputError(f"--count: {text!r} is not a whole number of accelerators; give e.g. 8")
    if not 1 <= value <= MAX_COUNT:
        raise PlanningInputError(f"--count: {text!r} is outside 1..{MAX_COUNT:,}; give e.g. 8")
    return int(value)


def parse_utilization(text: object) -> float:
    """Mean fraction of board power drawn: ``0.7`` or ``"70%"``, in (0, 1].

    Raises:
        PlanningInputError: Not a number, or outside (0, 1] (0-100%).
    """
    percent = isinstance(text, str) and text.strip().endswith("%")
    body = text.strip()[:-1] if isinstance(text, str) and percent else text
    try:
        value = _plain(body, "--utilization", "0.7 or 70%")
    except PlanningInputError:
        raise PlanningInputError(
            f"--utilization: {text!r} is not a fraction or a percentage; give e.g. 0.7 or 70%"
        ) from None
    if percent:
        value /= 100.0
    if not 0 < value <= 1:
        raise PlanningInputError(f"--utilization: {text!r} is outside 0 < u <= 1 (0-100%); give e.g. 0.7 or 70%")
    return value


def parse_pue(text: object) -> float:
    """Data centre power usage effectiveness, 1.0 to 3.0.

    Raises:
        PlanningInputError: Not a number, or outside 1.0..3.0.
    """
    value = _plain(text, "--pue", "1.1")
    if not MIN_PUE <= value <= MAX_PUE:
        raise PlanningInputError(f"--pue: {text!r} is outside {MIN_PUE}..{MAX_PUE}; give e.g. 1.1 (1.0 = no overhead)")
    return value


def parse_watts(
    text: object, *, option: str = "--gpu-watts", maximum: float = MAX_BOARD_WATTS, allow_zero: bool = False
) -> float:
    """A power in watts (``"400"`` or ``"400W"``) within ``(0, maximum]`` (``[0, maximum]`` with ``allow_zero``).

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    value, unit = _number(text, option, "400 or 400W")
    if unit not in ("", "w"):
        raise PlanningInputError(f"{option}: {text!r} is not in watts; give e.g. 400 or 400W")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= maximum):
        low = "0 <=" if allow_zero else "0 <"
        raise PlanningInputError(f"{option}: {text!r} is outside {low} W <= {maximum:,.0f}; give e.g. 400")
    return value


def parse_cpu_watts(text: object) -> float:
    """Mean CPU power of the whole job in watts (``"300"`` or ``"300W"``), 0 to 1,000,000.

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    return parse_watts(text, option="--cpu-watts", maximum=MAX_CPU_WATTS, allow_zero=True)


def parse_ram_gb(text: object) -> float:
    """RAM in use for the job, GB (``"512"`` or ``"512GB"``), 0 to 1,000,000.

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    value, unit = _number(text, "--ram-gb", "512")
    if unit not in ("", "gb", "g"):
        raise PlanningInputError(f"--ram-gb: {text!r} is not in GB; give e.g. 512")
    if not 0 <= value <= MAX_RAM_GB:
        raise PlanningInputError(f"--ram-gb: {text!r} is outside 0..{MAX_RAM_GB:,.0f} GB; give e.g. 512")
    return value
