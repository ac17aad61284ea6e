"""Turning joules into CO2: energy x carbon intensity x PUE.

Emissions = energy x carbon intensity x PUE. Intensity may vary with time, so a
window's CO2 integrates energy x intensity(t) over the window's energy curve
(see :func:`co2_kg`).
"""

from __future__ import annotations

from collections.abc import Iterable

from co2cb.intensity.base import IntensitySource
from co2cb.units import JOULES_PER_KWH


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
