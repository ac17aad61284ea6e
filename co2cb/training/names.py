"""The names of the values co2cb logs: one scheme for every framework, and which ones are logged by default.

Every name is ``co2cb/<what>_<unit>``. A validation (or evaluation) value carries the framework's own
validation prefix in front of that: ``val_`` in Lightning and Keras, ``eval_`` in Hugging Face, whose
integrations then show it under ``eval/`` (as they show ``eval_loss``). The adapters only add that
prefix (:func:`for_framework`); the values and the rest of the names come from here.

By default (8 tags):

* per training epoch, validation left out: :data:`EPOCH_ENERGY`, :data:`EPOCH_CO2`, :data:`EPOCH_POWER`;
* per validation: :data:`EPOCH_ENERGY`, :data:`EPOCH_CO2` with the validation prefix;
* the run's total so far, at each training epoch's end and once more at the run's end:
  :data:`TOTAL_ENERGY`, :data:`TOTAL_CO2` (see :func:`totals`);
* the forecast of the whole run: :data:`FORECAST_CO2`.

``log_detail`` adds the energy per measured component (``co2cb/epoch_energy_cpu_kwh``...), the
validation's power, the intensity used (:data:`INTENSITY`) and :data:`FORECAST_ENERGY`; ``log_steps`` adds
the per-step series :data:`STEP_ENERGY`, :data:`STEP_CO2`, :data:`STEP_POWER` (with the totals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from co2cb.core.results import EnergySums
from co2cb.units import JOULES_PER_KWH

PREFIX = "co2cb/"
EPOCH_ENERGY = PREFIX + "epoch_energy_kwh"
EPOCH_CO2 = PREFIX + "epoch_co2_kg"
EPOCH_POWER = PREFIX + "epoch_power_w"
TOTAL_ENERGY = PREFIX + "total_energy_kwh"
TOTAL_CO2 = PREFIX + "total_co2_kg"
FORECAST_CO2 = PREFIX + "forecast_co2_kg"
FORECAST_ENERGY = PREFIX + "forecast_energy_kwh"
INTENSITY = PREFIX + "intensity_g_per_kwh"
STEP_ENERGY = PREFIX + "step_energy_kwh"
STEP_CO2 = PREFIX + "step_co2_kg"
STEP_POWER = PREFIX + "step_power_w"

TRAIN, VAL = "train", "val"


def component_energy(component: str) -> str:
    """The name of a window's energy for one component (``co2cb/epoch_energy_gpu_kwh``)."""
    return PREFIX + f"epoch_energy_{component}_kwh"


def window(
    kind: str,
    energy: EnergySums,
    co2_kg: float,
    g_per_kwh: float,
    components: Sequence[str],
    detail: bool,
) -> dict[str, float]:
    """The values of a closed training epoch (``kind="train"``) or validation (``"val"``), unprefixed.

    Args:
        kind: ``"train"`` or ``"val"``.
        energy: The window's energy (joules per component, seconds).
        co2_kg: Its CO2, kg CO2e.
        g_per_kwh: The intensity it used, gCO2e/kWh.
        components: The components some meter measures (only those get a value of their own).
        detail: Add the per-component energy, the validation's power and the intensity.
    """
    values = {EPOCH_ENERGY: energy.kwh, EPOCH_CO2: co2_kg}
    if kind == TRAIN or detail:
        values[EPOCH_POWER] = energy.mean_watts
    if detail:
        values.update({component_energy(c): energy.joules.get(c, 0.0) / JOULES_PER_KWH for c in components})
        values[INTENSITY] = g_per_kwh
    return values


def totals(kwh: float, co2_kg: float) -> dict[str, float]:
    """The run's total so far: everything measured since the run started, start-up and validation included."""
    return {TOTAL_ENERGY: kwh, TOTAL_CO2: co2_kg}


def step(kwh: float, co2_kg: float, seconds: float) -> dict[str, float]:
    """The values of one step-log interval: energy, CO2 and mean power (watts) since the last log."""
    return {STEP_ENERGY: kwh, STEP_CO2: co2_kg, STEP_POWER: kwh * JOULES_PER_KWH / seconds if seconds > 0 else 0.0}


def for_framework(metrics: Mapping[str, float], kind: str, val_prefix: str) -> dict[str, float]:
    """``metrics`` as the framework names them: a validation's with the framework's prefix (``val_``, ``eval_``)."""
    if kind != VAL:
        return dict(metrics)
    return {val_prefix + name: value for name, value in metrics.items()}
