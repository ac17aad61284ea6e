"""The lines of a run record, read: parsing ``run.jsonl``, the figures of one line, and the epoch and provenance views.

A record (see :mod:`co2cb.records.writer`) is JSON Lines: a ``header``, ``window`` lines, ``event``
lines and, when the run ended normally, a ``summary``. These helpers read one line at a time and
never fail on a missing field (it counts as 0 or absent); a line whose figures are not numbers is
skipped, with a warning, when the record is read; the loader that checks a
whole folder and builds a :class:`~co2cb.records.reader.RecordedRun` is :mod:`co2cb.records.reader`.

Units: energy in kWh (before PUE), CO2 in kg CO2e (PUE included), times in seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from co2cb.records.writer import RECORD_FILE, SCHEMA_VERSION

log = logging.getLogger(__name__)

#: Component order for display; other components follow alphabetically.
COMPONENT_ORDER: tuple[str, ...] = ("gpu", "cpu", "ram")


def read_records(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every line of a run folder's record, parsed; a damaged line is skipped with a warning naming file and line.

    A damaged line is one that is not valid UTF-8 or JSON, is not a JSON object, or holds a figure
    that is not a number (``"energy_kwh": {"gpu": "lots"}``); the last line of a run killed while
    writing it may be cut short. The first line must be the run's header.

    Raises:
        FileNotFoundError: ``folder`` holds no ``run.jsonl``.
        ValueError: The first line is not a co2cb header, its ``schema`` is not a whole number, or the
            schema is newer than this co2cb reads (the message names the file and says what to do).
    """
    path = Path(folder) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a co2cb run folder (no {RECORD_FILE})")
    lines: list[dict[str, Any]] = []
    skipped: list[str] = []
    with open(path, "rb") as f:
        for position, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            value, problem = _parse(raw)
            if not lines:
                _check_header(path, position, value, problem)
            elif problem:
                skipped.append(f"line {position} ({problem})")
                continue
            lines.append(value)
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        log.warning("co2cb: %s: skipped %d damaged line(s): %s", path, len(skipped), shown)
    return lines


def _parse(raw: bytes) -> tuple[Any, str]:
    """A record line parsed, and what is wrong with it ("" when nothing)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1}"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        cut = "" if raw.endswith(b"\n") else "cut short, as when a run is killed while writing it: "
        return None, f"{cut}not valid JSON ({e.msg}; column {e.colno})"
    if not isinstance(value, dict):
        return value, f"a JSON {type(value).__name__} where a JSON object belongs"
    return value, _figures_problem(value)


#: Fields of ``window`` and ``summary`` lines that hold numbers (or null), and those that map names to numbers.
NUMBER_FIELDS = ("start_unix_s", "end_unix_s", "seconds", "co2_kg", "co2_kg_marginal", "pue", "mean_power_w")
NUMBER_MAPS = ("energy_kwh", "meter_energy_kwh")


def _not_number(value: Any) -> bool:
    return value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)))


def _figures_problem(line: dict[str, Any]) -> str:
    """What makes a line's figures unreadable, e.g. ``energy_kwh.gpu is 'lots', not a number`` ("" when nothing)."""
    if line.get("type") not in ("window", "summary"):
        return ""
    for key in NUMBER_FIELDS:
        if _not_number(line.get(key)):
            return f"{key} is {line[key]!r}, not a number"
    for key in NUMBER_MAPS:
        figures = line.get(key)
        if figures is None:
            continue
        if not isinstance(figures, dict):
            return f"{key} is {figures!r}, not an object of numbers"
        for name, value in figures.items():
            if _not_number(value):
                return f"{key}.{name} is {value!r}, not a number"
    return ""


def _check_header(path: Path, position: int, value: Any, problem: str) -> None:
    """Raise ValueError unless the record's first line is a co2cb header of a schema this co2cb reads."""
    where = f"{path}:{position}"
    if problem and not isinstance(value, dict):
        raise ValueError(f"{where}: not a co2cb run record: its first line is not a header ({problem})")
    if not isinstance(value, dict) or value.get("type") != "header":
        raise ValueError(f"{where}: not a co2cb run record: its first line is not a header")
    schema = value.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ValueError(
            f"{where}: no valid record schema ({schema!r}; a whole number such as {SCHEMA_VERSION} is expected): "
            "this record was not written by co2cb, or was edited"
        )
    if schema > SCHEMA_VERSION:
        raise ValueError(
            f"{path} uses record schema {schema}, newer than this co2cb reads ({SCHEMA_VERSION}); upgrade co2cb"
        )


def number(value: Any, default: float = 0.0) -> float:
    """``value`` as a finite float, or ``default`` (None, NaN, text and booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object (a dict), else an empty dict: a field that may be missing or malformed."""
    return value if isinstance(value, dict) else {}


def energy_by_component(line: Mapping[str, Any]) -> dict[str, float]:
    """A record line's ``energy_kwh`` per component (kWh, without the ``total`` key)."""
    energy = line.get("energy_kwh")
    if not isinstance(energy, dict):
        return {}
    return {str(k): number(v) for k, v in energy.items() if k != "total"}


def validation_excluded(window: Mapping[str, Any]) -> tuple[dict[str, float], float]:
    """Energy per component (kWh) and CO2 (kg) of the validation an adapter left out of a ``train_epoch`` window.

    The adapters report a training epoch without the validation run inside it (that has its own
    ``val_epoch`` window) and keep its figures in ``meta.validation_excluded``; other windows give
    ``({}, 0.0)``.
    """
    meta = window.get("meta")
    excluded = meta.get("validation_excluded") if isinstance(meta, dict) else None
    if not isinstance(excluded, dict):
        return {}, 0.0
    return {k: v for k, v in energy_by_component(excluded).items() if v}, number(excluded.get("co2_kg"))


def outermost_windows(windows: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Windows inside no other, without overlaps, earliest first; and how many overlapping ones were left out.

    A window nested in another (a validation inside an epoch) is counted by its parent; a
    window that partly overlaps an earlier chosen one is left out rather than counted twice.
    """
    spans = [(w, number(w.get("start_unix_s"), math.nan), number(w.get("end_unix_s"), math.nan)) for w in windows]
    spans = [(w, s, e) for w, s, e in spans if math.isfinite(s) and math.isfinite(e) and e >= s]
    spans.sort(key=lambda t: (t[1], -t[2]))  # by start, the longest first among equal starts
    chosen: list[Mapping[str, Any]] = []
    max_end = last_end = -math.inf
    skipped = 0
    for w, s, e in spans:
        if e <= max_end:  # inside a window that starts no later and ends no earlier
            continue
        max_end = e
        if s < last_end:
            skipped += 1
            continue
        chosen.append(w)
        last_end = e
    return chosen, skipped


def window_totals(window: Mapping[str, Any]) -> tuple[dict[str, float], float]:
    """Energy per component (kWh) and CO2 (kg) of a window, with the validation an adapter left out added back."""
    energy = energy_by_component(window)
    extra_energy, extra_co2 = validation_excluded(window)
    for component, kwh in extra_energy.items():
        energy[component] = energy.get(component, 0.0) + kwh
    return energy, number(window.get("co2_kg")) + extra_co2


def ordered_components(names: Iterable[str]) -> list[str]:
    """Component names in display order: gpu, cpu, ram, then the others alphabetically."""
    found = set(names)
    return [c for c in COMPONENT_ORDER if c in found] + sorted(found - set(COMPONENT_ORDER))


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of a run: a ``train_epoch`` window and the validation inside it (or an ``epoch`` window).

    Attributes:
        index: The epoch's index as recorded (``meta.epoch``), else its position (0-based).
        start_unix_s: Start, seconds since the Unix epoch.
        end_unix_s: End, seconds since the Unix epoch.
        energy_kwh: Energy per component, kWh before PUE, training and validation together.
        co2_kg: CO2 of training and validation together, kg CO2e (PUE included).
        validation_kwh: The validation's part of ``energy_kwh`` (all components), kWh.
        validation_co2_kg: The validation's part of ``co2_kg``, kg CO2e.
        window: The window's record line, as read.
    """

    index: int
    start_unix_s: float
    end_unix_s: float
    energy_kwh: dict[str, float]
    co2_kg: float
    validation_kwh: float
    validation_co2_kg: float
    window: Mapping[str, Any] = field(repr=False)

    @property
    def seconds(self) -> float:
        """Wall-clock duration, validation included, seconds."""
        return max(0.0, self.end_unix_s - self.start_unix_s)

    @property
    def total_kwh(self) -> float:
        """Energy of all components, kWh before PUE."""
        return sum(self.energy_kwh.values())
