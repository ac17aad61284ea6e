"""Where a recorded run's figures come from (:class:`Provenance`), read from its header and last line."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from co2cb.records.lines import mapping, number

_CLOUD_REGION = re.compile(r"\b(aws|gcp|azure):([a-z0-9][a-z0-9-]*[a-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class Provenance:
    """Where a run's figures come from.

    Attributes:
        components: Per component, how its energy was obtained: ``measured-counter`` (an energy
            counter such as NVML or RAPL), ``sampled-power`` (power readings integrated over time),
            ``estimate`` (a model, e.g. TDP x utilisation), or several joined by ``+``.
        meters: The header's meter descriptions (name, component, provenance, details with sources).
        meter_choices: Per component, which meters were chosen and why.
        intensity: The header's intensity: ``g_per_kwh``, ``region``, ``region_name``, ``source``,
            ``year``, ``kind`` and ``reason`` (why that region and figure).
        intensity_used_g_per_kwh: Energy-weighted intensity the run's CO2 used, gCO2e/kWh.
        pue: The PUE applied.
        pue_info: The header's ``pue_info``: ``value``, ``source``, ``year``, ``reason``, ``url``.
        cloud_region: The cloud region the record names (``"aws:eu-west-3"``), or None.
        region_guessed: True when the region was guessed (time zone or world average).
        region: The header's structured region choice (``step``, ``confidence``, ``source``, ``overruled``,
            ``reason``; see :meth:`co2cb.intensity.region.Resolution.as_record`), or None (an older record,
            or an intensity given without a region).
    """

    components: dict[str, str]
    meters: list[dict[str, Any]]
    meter_choices: list[dict[str, Any]]
    intensity: dict[str, Any]
    intensity_used_g_per_kwh: float
    pue: float
    pue_info: dict[str, Any]
    cloud_region: str | None
    region_guessed: bool
    region: dict[str, Any] | None = None

    def component_words(self, component: str) -> str:
        """``"measured"``, ``"estimated"`` or ``"measured + estimated"`` for a component (``"?"`` if unknown)."""
        kinds = self.components.get(component, "")
        words = sorted({"estimated" if k == "estimate" else "measured" for k in kinds.split("+") if k})
        return " + ".join(words) or "?"


def read_provenance(
    header: Mapping[str, Any],
    last: Mapping[str, Any],
    meters: list[dict[str, Any]],
    summarized: bool,
    total_kwh: float,
    co2_kg: float,
) -> Provenance:
    """A run's provenance from its header and its last line (the summary, else the newest window).

    Args:
        header: The record's header.
        last: The summary, else the newest window line, else ``{}``.
        meters: The header's meter descriptions.
        summarized: Whether ``last`` is the summary (else the intensity used comes from the totals).
        total_kwh: The run's energy, kWh before PUE.
        co2_kg: The run's CO2, kg CO2e.
    """
    intensity = mapping(header.get("intensity"))
    pue_info = mapping(header.get("pue_info"))
    components = mapping(last.get("provenance"))
    if not components:
        by_component: dict[str, set[str]] = {}
        for meter in meters:
            by_component.setdefault(str(meter.get("component")), set()).add(str(meter.get("provenance")))
        components = {c: "+".join(sorted(p)) for c, p in by_component.items()}
    pue = number(last.get("pue"), number(header.get("pue"), 1.0))
    g_used = number(last.get("intensity_g_per_kwh"), math.nan)
    if not math.isfinite(g_used) or not summarized:
        fallback = number(intensity.get("g_per_kwh"))
        g_used = co2_kg * 1000.0 / (total_kwh * pue) if total_kwh > 0 and pue > 0 else fallback
    region = mapping(header.get("region")) or None  # the structured region choice (newer records)
    reason = str(intensity.get("reason", ""))
    if region is not None:
        cloud = _CLOUD_REGION.fullmatch(str(region.get("code", "")))
        guessed = bool(region.get("guessed"))
    else:  # an older record: its region's own words come before the first ";" (a hint may follow)
        pue_reason = str(pue_info.get("reason", "")).split(";")[0]
        texts = [str(intensity.get("region", "")), reason.split(";")[0], pue_reason]
        cloud = None if "guess" in reason else next((m for m in map(_CLOUD_REGION.search, texts) if m), None)
        guessed = "guess" in reason
    choices = header.get("meter_choices")
    return Provenance(
        components={str(k): str(v) for k, v in components.items()},
        meters=meters,
        meter_choices=[c for c in choices if isinstance(c, dict)] if isinstance(choices, list) else [],
        intensity=dict(intensity),
        intensity_used_g_per_kwh=g_used,
        pue=pue,
        pue_info=dict(pue_info),
        cloud_region=f"{cloud.group(1).lower()}:{cloud.group(2).lower()}" if cloud else None,
        region_guessed=guessed,
        region=region,
    )
