"""Carbon intensity of electricity by region: the embedded database and offline region resolution.

* :mod:`co2cb.intensity.database`: :func:`~co2cb.intensity.database.lookup` a region
  code (``FR``, ``US-CA``, ``CAMX``, ``aws:eu-west-3``...) in the embedded tables
  (gCO2e/kWh), :func:`~co2cb.intensity.database.search` them.
* :mod:`co2cb.intensity.region`: :func:`~co2cb.intensity.region.resolve_region`
  finds which region applies (argument, ``CO2CB_REGION``, cloud variables, opt-in
  metadata, time zone, world average).
* :mod:`tools.build_intensity_tables`: regenerates the embedded tables from the raw files.

Data is read on first lookup, not on import.
"""

from __future__ import annotations

from co2cb.intensity.database import (
    GridRow,
    Lookup,
    RegionEntry,
    UnknownRegionError,
    count_grids,
    lookup,
    search,
    to_intensity_info,
)
from co2cb.intensity.region import Resolution, resolve_region

__all__ = [
    "GridRow",
    "Lookup",
    "RegionEntry",
    "Resolution",
    "UnknownRegionError",
    "count_grids",
    "lookup",
    "resolve_region",
    "search",
    "to_intensity_info",
]
