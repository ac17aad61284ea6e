"""What a run's figures rest on, flat, for the trackers an adapter writes to (params, config, text).

Every tracker gets it once per run: Lightning's loggers through ``log_hyperparams``, the Hugging Face
integrations through their config and params, Keras' TensorBoard writer as text. Keys are
``co2cb/<what>``; values are strings or numbers, so that MLflow params, the W&B config and
TensorBoard's hparams all take them. The record's header holds the same facts, in full.
"""

from __future__ import annotations

from collections.abc import Mapping

from co2cb.core.tracker import Tracker
from co2cb.meters.base import COMPONENTS

NOT_GIVEN = "none"
"""What a fact without a value reads as (a year for a live or user-given figure)."""


def provenance(tracker: Tracker) -> dict[str, str | float]:
    """The facts behind ``tracker``'s figures: region and why, intensity, PUE, each component's meters.

    Args:
        tracker: A started tracker.

    Returns:
        ``co2cb/run_id``, ``co2cb/region``, ``co2cb/region_reason``, ``co2cb/intensity_g_per_kwh``
        (gCO2e/kWh), ``co2cb/intensity_source``, ``co2cb/intensity_year``, ``co2cb/intensity_kind``
        (average or marginal), ``co2cb/pue``, ``co2cb/pue_source``, ``co2cb/scope``, and per component
        ``co2cb/meter_<component>``: each of its meters with how it measures (``measured-counter``,
        ``sampled-power`` or ``estimate``), or ``not measured``.
    """
    info = tracker.intensity.info
    pue = tracker.choice.pue
    facts: dict[str, str | float] = {
        "co2cb/run_id": tracker.run_id or NOT_GIVEN,
        "co2cb/region": info.region,
        "co2cb/region_reason": tracker.choice.region_reason or info.reason,
        "co2cb/intensity_g_per_kwh": info.g_per_kwh,
        "co2cb/intensity_source": info.source,
        "co2cb/intensity_year": str(info.year) if info.year else NOT_GIVEN,
        "co2cb/intensity_kind": info.kind,
        "co2cb/pue": pue.value,
        "co2cb/pue_source": f"{pue.source}, {pue.year}" if pue.year else pue.source,
        "co2cb/scope": tracker.config.scope,
    }
    for component in COMPONENTS:
        meters = [m.info for m in tracker.meter_set.meters if m.info.component.value == component]
        described = ", ".join(f"{m.name} ({m.provenance.value})" for m in meters)
        facts[f"co2cb/meter_{component}"] = described or "not measured"
    return facts


def as_markdown(facts: Mapping[str, str | float]) -> str:
    """``facts`` as a two-column Markdown table (TensorBoard's text dashboard renders it)."""
    rows = [f"| {key} | {str(value).replace('|', '/')} |" for key, value in facts.items()]
    return "\n".join(["| what | value |", "|---|---|", *rows])
