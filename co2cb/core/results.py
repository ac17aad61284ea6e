"""Small result types returned by the tracker. Energies in joules, times in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from co2cb.units import JOULES_PER_KWH


def iso(unix_s: float) -> str:
    """ISO 8601 UTC timestamp with milliseconds, as ``datetime.fromtimestamp(unix_s, timezone.utc)`` writes it.

    The day's part is made once per day: a record line's stamps cost a few arithmetic steps.
    """
    global _day
    whole = math.floor(unix_s)
    micros = round((unix_s - whole) * 1e6)  # as datetime rounds: to the microsecond, half to even
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    day, second = divmod(whole, 86_400)
    known = _day  # read once: another thread may replace it
    if known[0] != day:
        known = _day = (day, datetime.fromtimestamp(day * 86_400, tz=timezone.utc).strftime("%Y-%m-%dT"))
    hours, second = divmod(second, 3600)
    return f"{known[1]}{hours:02d}:{second // 60:02d}:{second % 60:02d}.{micros // 1000:03d}+00:00"


_day: tuple[int | None, str] = (None, "")  # a day (days since the epoch) and its date, as iso() last made them


class EnergySums:
    """Totals of anything holding ``joules`` per component (before PUE) over ``seconds``."""

    joules: dict[str, float]
    seconds: float

    @property
    def total_joules(self) -> float:
        """Energy of all components, joules, before PUE."""
        return sum(self.joules.values())

    @property
    def kwh(self) -> float:
        """Energy of all components, kWh, before PUE."""
        return self.total_joules / JOULES_PER_KWH

    @property
    def mean_watts(self) -> float:
        """Mean power of all components, watts (0 for an empty stretch)."""
        return self.total_joules / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class WindowResult(EnergySums):
    """Energy and CO2 of one closed window.

    Attributes:
        name: The window's name (``"run"``, ``"epoch"``, ...).
        start_unix_s: Start, seconds since the epoch.
        end_unix_s: End, seconds since the epoch.
        seconds: Duration, seconds.
        joules: Energy per component (``"gpu"``, ``"cpu"``, ``"ram"``), joules, before PUE.
        meter_joules: Energy per meter (``"gpu:0"``, ``"rapl:package-0"``, ...), joules.
        co2_kg: Emissions, kg CO2e, including PUE.
        g_per_kwh: Energy-weighted carbon intensity used, gCO2e/kWh.
        pue: Power usage effectiveness applied.
        provenance: Per component, how its figure was made (``measured-counter``,
            ``sampled-power``, ``estimate``, or several joined by ``+``).
        unavailable: Meters lost before the window ended (their energy after the loss is missing).
        meta: Extra fields given by the caller (epoch index, step count, ...).
        intensity_kind: Kind of the intensity behind ``co2_kg``: ``"average"`` or ``"marginal"``.
        co2_kg_marginal: Emissions with the marginal intensity given next to an average one,
            kg CO2e including PUE; None when no marginal intensity was given.
        g_per_kwh_marginal: Energy-weighted marginal intensity used, gCO2e/kWh, or None.
        intensity_notes: What the intensity sources say about this window (parts outside a
            series, gaps, live-provider fallbacks).
    """

    name: str
    start_unix_s: float
    end_unix_s: float
    seconds: float
    joules: dict[str, float]
    meter_joules: dict[str, float]
    co2_kg: float
    g_per_kwh: float
    pue: float
    provenance: dict[str, str]
    unavailable: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    intensity_kind: str = "average"
    co2_kg_marginal: float | None = None
    g_per_kwh_marginal: float | None = None
    intensity_notes: tuple[str, ...] = ()

    def as_record(self) -> dict[str, Any]:
        """The window as a run-record line (energy in kWh, CO2 in kg)."""
        energy = {k: v / JOULES_PER_KWH for k, v in self.joules.items()}
        energy["total"] = self.kwh
        return {
            "type": "window",
            "name": self.name,
            "start": iso(self.start_unix_s),
            "end": iso(self.end_unix_s),
            "start_unix_s": self.start_unix_s,
            "end_unix_s": self.end_unix_s,
            "seconds": self.seconds,
            "energy_kwh": energy,
            "meter_energy_kwh": {k: v / JOULES_PER_KWH for k, v in self.meter_joules.items()},
            "mean_power_w": self.mean_watts,
            "co2_kg": self.co2_kg,
            "intensity_g_per_kwh": self.g_per_kwh,
            "intensity_kind": self.intensity_kind,
            "co2_kg_marginal": self.co2_kg_marginal,
            "intensity_g_per_kwh_marginal": self.g_per_kwh_marginal,
            "intensity_notes": list(self.intensity_notes),
            "pue": self.pue,
            "provenance": self.provenance,
            "unavailable": list(self.unavailable),
            "meta": self.meta,
        }
