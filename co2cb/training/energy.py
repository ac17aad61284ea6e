"""Energy and CO2 of a stretch of training, summable across ranks and windows; the run's forecast."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from co2cb.core.results import EnergySums, WindowResult
from co2cb.meters.base import COMPONENTS
from co2cb.units import JOULES_PER_KWH


@dataclass
class Energy(EnergySums):
    """Energy and CO2 of a stretch of training (summable across ranks and windows).

    Attributes:
        joules: Per component (``gpu``, ``cpu``, ``ram``), joules, before PUE.
        co2_kg: Emissions, kg CO2e, including PUE.
        seconds: Wall-clock duration, seconds (the longest rank's, when summed across ranks).
        co2_kg_marginal: Emissions with the marginal intensity given next to the average one, kg CO2e including
            PUE; None when no marginal intensity was given.
    """

    joules: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))
    co2_kg: float = 0.0
    seconds: float = 0.0
    co2_kg_marginal: float | None = None

    @classmethod
    def of(cls, result: WindowResult) -> Energy:
        """The energy of a window result."""
        joules = dict.fromkeys(COMPONENTS, 0.0)
        joules.update(result.joules)
        return cls(joules, result.co2_kg, result.seconds, result.co2_kg_marginal)

    def vector(self) -> list[float]:
        """Flat form for collectives and checkpoints: joules per component, CO2, seconds[, marginal CO2 if any]."""
        marginal = [] if self.co2_kg_marginal is None else [self.co2_kg_marginal]
        return [self.joules[c] for c in COMPONENTS] + [self.co2_kg, self.seconds, *marginal]

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> Energy:
        """Inverse of :meth:`vector`."""
        n = len(COMPONENTS)
        marginal = values[n + 2] if len(values) > n + 2 else None
        return cls(dict(zip(COMPONENTS, values[:n])), values[n], values[n + 1], marginal)

    def plus(self, other: Energy) -> Energy:
        """Sum of two consecutive stretches (durations add)."""
        joules = {c: self.joules[c] + other.joules[c] for c in COMPONENTS}
        marginal = _add(self.co2_kg_marginal, other.co2_kg_marginal)
        return Energy(joules, self.co2_kg + other.co2_kg, self.seconds + other.seconds, marginal)

    def minus(self, other: Energy) -> Energy:
        """What is left of this stretch without a part of it (floored at zero)."""
        joules = {c: max(0.0, self.joules[c] - other.joules[c]) for c in COMPONENTS}
        marginal = (
            None if self.co2_kg_marginal is None else max(0.0, self.co2_kg_marginal - (other.co2_kg_marginal or 0.0))
        )
        return Energy(joules, max(0.0, self.co2_kg - other.co2_kg), max(0.0, self.seconds - other.seconds), marginal)

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form (kWh, kg, seconds); the marginal CO2 where a marginal intensity was given."""
        energy = {c: j / JOULES_PER_KWH for c, j in self.joules.items()}
        energy["total"] = self.kwh
        fields: dict[str, Any] = {"energy_kwh": energy, "co2_kg": self.co2_kg, "seconds": self.seconds}
        if self.co2_kg_marginal is not None:
            fields["co2_kg_marginal"] = self.co2_kg_marginal
        return fields


def _add(a: float | None, b: float | None) -> float | None:
    """Two marginal CO2 figures added (None: no marginal intensity on either side)."""
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def sum_over_ranks(per_rank: Sequence[Energy]) -> Energy:
    """The job's energy: every rank's joules and CO2 added; the duration is the longest rank's."""
    total = Energy()
    for e in per_rank:
        total = Energy(
            {c: total.joules[c] + e.joules[c] for c in COMPONENTS},
            total.co2_kg + e.co2_kg,
            max(total.seconds, e.seconds),
            _add(total.co2_kg_marginal, e.co2_kg_marginal),
        )
    return total


@dataclass
class Forecast:
    """Predicted energy and CO2 of the whole run, from the share of it done so far.

    Attributes:
        energy_kwh: Predicted energy of the whole run, kWh.
        co2_kg: Predicted emissions of the whole run, kg CO2e.
        progress: Share of the run done (optimizer steps done / steps planned), 0..1.
    """

    energy_kwh: float
    co2_kg: float
    progress: float


def weighted_intensity(co2_kg: float, energy: EnergySums, pue: float, fallback: float) -> float:
    """The energy-weighted intensity behind ``co2_kg`` for ``energy``, gCO2e/kWh (``fallback`` without energy)."""
    kwh = energy.kwh
    return co2_kg * 1000.0 / (kwh * pue) if kwh > 0 and pue > 0 else fallback


def job_result(
    local: WindowResult,
    job: Energy,
    meta: dict[str, Any],
    summed: SummedRanks | None = None,
) -> WindowResult:
    """The job's energy, CO2 and marginal CO2 in this rank's window result (per-meter energy: this rank's, left out).

    Args:
        local: This rank's window.
        job: The job's energy for it (every rank's summed).
        meta: The window's extra fields (its split per rank and per host...).
        summed: What the ranks say together, for a job of several; None: this rank's own (one process).
    """
    g, g_marginal = local.g_per_kwh, local.g_per_kwh_marginal
    if summed is not None:  # the intensities behind the job's CO2, not this rank's
        g = weighted_intensity(job.co2_kg, job, local.pue, g)
        if job.co2_kg_marginal is not None and g_marginal is not None:
            g_marginal = weighted_intensity(job.co2_kg_marginal, job, local.pue, g_marginal)
    return WindowResult(
        name=local.name,
        start_unix_s=local.start_unix_s,
        end_unix_s=local.end_unix_s,
        seconds=job.seconds,
        joules={c: job.joules[c] for c in COMPONENTS if c in local.joules or job.joules[c]},
        meter_joules={},
        co2_kg=job.co2_kg,
        g_per_kwh=g,
        pue=local.pue,
        provenance=dict(local.provenance if summed is None else summed.provenance),
        unavailable=local.unavailable if summed is None else summed.unavailable,
        meta=meta,
        intensity_kind=local.intensity_kind,
        co2_kg_marginal=job.co2_kg_marginal,
        g_per_kwh_marginal=g_marginal,
        intensity_notes=local.intensity_notes if summed is None else summed.notes,
    )


@dataclass(frozen=True)
class SummedRanks:
    """What a job's ranks say together about a window, beside their energy.

    Attributes:
        provenance: Component -> every provenance the ranks report, joined by ``+``.
        unavailable: Every rank's lost meters, host first (``node-b/rapl:package-0``).
        notes: Every rank's intensity notes, once each (host first where not every rank has it).
    """

    provenance: Mapping[str, str]
    unavailable: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass
class EpochReport:
    """What an adapter logs when a training epoch or a validation closes.

    Attributes:
        kind: ``"train"`` or ``"val"``.
        epoch: The framework's epoch index.
        metrics: Name -> value to log, without the framework's validation prefix
            (:func:`co2cb.training.names.for_framework` adds it); only measured components.
        energy: The job's energy for the epoch (validation excluded from a training epoch).
        totals: The run's total at the close (in ``metrics`` too for a training epoch), for what a
            framework lets callbacks monitor (Lightning's ``callback_metrics``).
    """

    kind: str
    epoch: int
    metrics: dict[str, float]
    energy: Energy
    totals: dict[str, float]
