"""Readable quantities for people: energy and CO2 with a unit that fits their size."""

from __future__ import annotations

JOULES_PER_KWH = 3.6e6
"""Joules in one kilowatt-hour."""

_MASS_UNITS = ((1e3, 1e-3, "t"), (1.0, 1.0, "kg"), (1e-3, 1e3, "g"), (1e-6, 1e6, "mg"))


def mass_unit(kg: float) -> tuple[float, str]:
    """The factor from kg and the unit that fit a mass of CO2e: ``0.0417`` -> ``(1000.0, "g")``."""
    size = abs(kg)
    for limit, factor, unit in _MASS_UNITS:
        if size >= limit:
            return factor, unit
    return 1e9, "µg"


def format_mass(kg: float) -> str:
    """A mass of CO2e with a readable unit: ``0.0417`` -> ``"41.7 g"``."""
    if not kg:
        return "0 g"
    factor, unit = mass_unit(kg)
    return f"{kg * factor:.4g} {unit}"


def format_energy(kwh: float) -> str:
    """An energy with a readable unit: ``0.000348`` -> ``"0.348 Wh"``."""
    size = abs(kwh)
    for limit, factor, unit in ((1e6, 1e-6, "GWh"), (1e3, 1e-3, "MWh"), (1.0, 1.0, "kWh"), (1e-3, 1e3, "Wh")):
        if size >= limit:
            return f"{kwh * factor:.4g} {unit}"
    return f"{kwh * JOULES_PER_KWH:.4g} J" if size else "0 Wh"


def format_duration(seconds: float) -> str:
    """A duration people read at a glance: ``4.2`` -> ``"4.2 s"``, ``3725`` -> ``"1 h 02 min"``."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60):02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
