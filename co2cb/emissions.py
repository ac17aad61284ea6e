"""Turning joules into CO2: carbon intensity sources, PUE and the conversion.

Emissions = energy x carbon intensity x PUE. Intensity may vary with time, so a
window's CO2 integrates energy x intensity(t) over the window's energy curve
(see :func:`co2_kg`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class IntensityInfo:
    """Which carbon intensity is used, where it comes from and why.

    Attributes:
        g_per_kwh: Representative intensity in gCO2e/kWh (for a time-varying source,
            its mean; each window records the value it actually used).
        region: Region code (``"FR"``, ``"US-CAL-CISO"``, ``"WORLD"``).
        region_name: Human-readable name of the region.
        source: Publisher of the figure (e.g. ``"Ember/OWID"``, ``"U.S. EPA eGRID2022"``).
        year: Year the figure stands for, or None for a live or user-supplied value.
        kind: ``"average"`` (attributional) or ``"marginal"``.
        reason: Why this region and figure were chosen, and whether it is a guess.
    """

    g_per_kwh: float
    region: str
    region_name: str
    source: str
    year: int | None
    kind: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class IntensitySource(ABC):
    """Carbon intensity of the electricity used, possibly varying with time."""

    @property
    @abstractmethod
    def info(self) -> IntensityInfo:
        """Provenance of the figures this source gives."""

    @abstractmethod
    def g_per_kwh_at(self, unix_s: float) -> float:
        """Intensity in gCO2e/kWh at a wall-clock time (seconds since the epoch)."""


class FixedIntensity(IntensitySource):
    """One intensity for all times."""

    def __init__(self, info: IntensityInfo) -> None:
        if not 0 <= info.g_per_kwh <= 5000:
            raise ValueError(
                f"carbon intensity {info.g_per_kwh!r} gCO2e/kWh is out of range; "
                "give a value between 0 and 5000 gCO2e/kWh"
            )
        self._info = info

    @property
    def info(self) -> IntensityInfo:
        return self._info

    def g_per_kwh_at(self, unix_s: float) -> float:
        return self._info.g_per_kwh


def co2_kg(segments: Iterable[tuple[float, float, float]], source: IntensitySource, pue: float) -> tuple[float, float]:
    """CO2 of energy spread over time.

    Args:
        segments: ``(start_unix_s, end_unix_s, joules)`` pieces of one window's energy.
        source: Carbon intensity over time.
        pue: Power usage effectiveness of the data centre (>= 1.0).

    Returns:
        ``(kg CO2e, energy-weighted mean intensity in gCO2e/kWh)``; the mean is the
        source's representative value when no energy was used.
    """
    grams = 0.0
    joules_total = 0.0
    for start, end, joules in segments:
        if joules <= 0:
            continue
        grams += joules / JOULES_PER_KWH * source.g_per_kwh_at((start + end) / 2) * pue
        joules_total += joules
    if joules_total <= 0:
        return 0.0, source.info.g_per_kwh
    mean = grams / pue / (joules_total / JOULES_PER_KWH) if pue > 0 else source.info.g_per_kwh
    return grams / 1000.0, mean
