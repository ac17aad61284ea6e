"""Readable quantities for people: energy and CO2 with a unit that fits their size."""

from __future__ import annotations


def format_mass(kg: float) -> str:
    """A mass of CO2e with a readable unit: ``0.0417`` -> ``"41.7 g"``."""
    size = abs(kg)
    for limit, factor, unit in ((1e3, 1e-3, "t"), (1.0, 1.0, "kg"), (1e-3, 1e3, "g"), (1e-6, 1e6, "mg")):
        if size >= limit:
            return f"{kg * factor:.4g} {unit}"
    return f"{kg * 1e9:.4g} µg" if size else "0 g"


def format_energy(kwh: float) -> str:
    """An energy with a readable unit: ``0.000348`` -> ``"0.348 Wh"``."""
    size = abs(kwh)
    for limit, factor, unit in ((1e6, 1e-6, "GWh"), (1e3, 1e-3, "MWh"), (1.0, 1.0, "kWh"), (1e-3, 1e3, "Wh")):
        if size >= limit:
            return f"{kwh * factor:.4g} {unit}"
    return f"{kwh * 3.6e6:.4g} J" if size else "0 Wh"
