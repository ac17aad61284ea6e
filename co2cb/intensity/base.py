"""What every carbon-intensity source is, with its provenance, and the fixed source.

:class:`IntensitySource`, its provenance :class:`IntensityInfo`, and :class:`FixedIntensity` (one
figure for all times).

Intensities are in gCO2e/kWh, between 0 and :data:`MAX_G_PER_KWH`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

MAX_G_PER_KWH = 1500.0
"""Upper bound of any carbon intensity co2cb accepts, gCO2e/kWh: more than any grid emits (coal is about 1,000)."""

PLAUSIBLE_G_PER_KWH = (10.0, 1200.0)
"""A grid's yearly average outside this band, gCO2e/kWh, is doubtful and said so: no grid's lifecycle figure is
below about 10 (hydro, nuclear and wind alone are 4 to 24 over their life cycle, IPCC AR5) and coal alone is
about 1,000; an operational figure of a nearly carbon-free grid can be lower."""

BASES = ("lifecycle", "operational", "")
"""What a figure counts: ``"lifecycle"`` (generation, fuel supply and plant construction), ``"operational"``
(the generators' own emissions), or ``""`` when the source does not say (a figure given by the user)."""


def plausibility(g_per_kwh: float) -> str:
    """A note on a figure outside :data:`PLAUSIBLE_G_PER_KWH`, or ``""``."""
    low, high = PLAUSIBLE_G_PER_KWH
    if g_per_kwh < low:
        return (
            f"{g_per_kwh:g} gCO2e/kWh is below {low:g}, lower than any grid's lifecycle figure: plausible only "
            "as an operational figure of a nearly carbon-free grid; check the source"
        )
    if g_per_kwh > high:
        return f"{g_per_kwh:g} gCO2e/kWh is above {high:g}, more than coal alone emits: check the source and unit"
    return ""


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
        basis: ``"lifecycle"``, ``"operational"`` or ``""`` (not known, e.g. a figure given by the user);
            see :data:`BASES`.
        caveat: What is doubtful about the figure (outside :data:`PLAUSIBLE_G_PER_KWH`, a value the source
            repeats for years), or ``""``.
    """

    g_per_kwh: float
    region: str
    region_name: str
    source: str
    year: int | None
    kind: str
    reason: str
    basis: str = ""
    caveat: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (every field is a plain value)."""
        return dict(vars(self))


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
        if not 0 <= info.g_per_kwh <= MAX_G_PER_KWH:
            raise ValueError(
                f"carbon intensity {info.g_per_kwh!r} gCO2e/kWh is out of range; "
                f"give a value between 0 and {MAX_G_PER_KWH:g} gCO2e/kWh"
            )
        self._info = info

    @property
    def info(self) -> IntensityInfo:
        """Provenance of the figures this source gives."""
        return self._info

    def g_per_kwh_at(self, unix_s: float) -> float:
        """Intensity in gCO2e/kWh at ``unix_s`` (seconds since the epoch)."""
        return self._info.g_per_kwh
