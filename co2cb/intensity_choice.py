"""Pick the tracker's carbon-intensity source from its options and the environment."""

from __future__ import annotations

import logging

from co2cb.emissions import FixedIntensity, IntensityInfo, IntensitySource

log = logging.getLogger(__name__)


def choose_intensity(intensity: float | IntensitySource | None, region: str | None) -> IntensitySource:
    """The intensity source for a run.

    Args:
        intensity: gCO2e/kWh given by the user, or a ready :class:`IntensitySource`.
        region: Region code given by the user.

    Order: an ``intensity`` given by the user; else the region (explicit, then
    ``CO2CB_REGION``, cloud variables, time zone, world average; see
    :mod:`co2cb.intensity.region`) looked up in the embedded database.

    Raises:
        ValueError: ``intensity`` is out of range or ``region`` is unknown (the message
            names the nearest regions).
    """
    if isinstance(intensity, IntensitySource):
        return intensity
    if intensity is not None:
        if isinstance(intensity, bool) or not isinstance(intensity, (int, float)):
            raise ValueError(f"intensity={intensity!r} is not valid: give gCO2e/kWh as a number, or an IntensitySource")
        return FixedIntensity(
            IntensityInfo(
                g_per_kwh=float(intensity),
                region=region or "user",
                region_name=region or "given by the user",
                source="given by the user",
                year=None,
                kind="average",
                reason="intensity= argument",
            )
        )
    from co2cb.intensity.database import lookup, to_intensity_info
    from co2cb.intensity.region import resolve_region

    resolution = resolve_region(region)
    found = lookup(resolution.code)
    if resolution.guessed:
        log.warning("co2cb: %s", resolution.reason)
    return FixedIntensity(to_intensity_info(found, resolution.reason))
