"""Planning estimates before training: accelerators' published board power x hours x PUE x grid intensity.

In the manner of the ML CO2 Impact calculator (Lacoste et al. 2019): energy is
``count x hours x board power x utilisation``, plus optional CPU and RAM power, times
the data centre's PUE; CO2 is that energy times the region's carbon intensity. Board
power is the vendor's published maximum (TDP / total board power), not a measurement,
so the result is an *estimate*, an upper bound at utilisation 1.0.

The board power comes from the accelerator table (:mod:`co2cb.planning.accelerators`) and the
inputs are read by :mod:`co2cb.planning.inputs`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from co2cb.intensity.base import IntensityInfo
from co2cb.intensity.database import lookup, to_intensity_info
from co2cb.intensity.pue import resolve_pue
from co2cb.intensity.region import resolve_region
from co2cb.meters.estimates import RAM_WATTS_PER_GB, RAM_WATTS_PER_GB_SOURCE
from co2cb.planning.accelerators import Accelerator, find_accelerator
from co2cb.planning.inputs import (
    PlanningInputError,
    parse_count,
    parse_cpu_watts,
    parse_hours,
    parse_pue,
    parse_ram_gb,
    parse_utilization,
    parse_watts,
)

ESTIMATE_LABEL = "ESTIMATE from published board power, not a measurement"
RAM_SOURCE = RAM_WATTS_PER_GB_SOURCE


@dataclass(frozen=True)
class Factor:
    """One input of an estimate, with where it comes from.

    Attributes:
        name: ``"board power"``, ``"utilisation"``, ``"PUE"``, ``"carbon intensity"``...
        value: The number used.
        unit: Its unit (``"W"``, ``"gCO2e/kWh"``, ``""`` for ratios).
        source: Who publishes it, or ``"default"`` / ``"given by the user"``.
        year: Year the figure stands for, or None.
    """

    name: str
    value: float
    unit: str
    source: str
    year: int | None


@dataclass(frozen=True)
class PlanningEstimate:
    """Energy and CO2 of a planned job, from published figures.

    Attributes:
        label: Says this is an estimate, not a measurement.
        accelerator: The accelerator row used (None when ``--gpu-watts`` stands alone).
        accelerator_via: How the GPU name led to the row.
        count: Number of accelerators.
        hours: Job length, hours.
        board_power_w: Power per accelerator used, watts.
        board_power_source: Where that power comes from.
        utilization: Fraction of board power drawn on average (1.0 = all the time).
        cpu_watts: Extra CPU power for the whole job, watts (0 when not given).
        ram_gb: RAM in use for the whole job, GB (0 when not given).
        ram_watts_per_gb: RAM power constant, watts per GB.
        gpu_kwh: Accelerator energy, kWh (before PUE).
        cpu_kwh: CPU energy, kWh (before PUE).
        ram_kwh: RAM energy, kWh (before PUE).
        it_kwh: Sum of the above, kWh (before PUE).
        pue: Data centre power usage effectiveness.
        pue_source: Where the PUE comes from.
        total_kwh: ``it_kwh x pue``, kWh drawn from the grid.
        intensity: Carbon intensity used, its region, source, year and why.
        co2_kg: ``total_kwh x intensity``, kg CO2e.
        factors: Every factor with its source and year.
    """

    label: str
    accelerator: Accelerator | None
    accelerator_via: str
    count: int
    hours: float
    board_power_w: float
    board_power_source: str
    utilization: float
    cpu_watts: float
    ram_gb: float
    ram_watts_per_gb: float
    gpu_kwh: float
    cpu_kwh: float
    ram_kwh: float
    it_kwh: float
    pue: float
    pue_source: str
    total_kwh: float
    intensity: IntensityInfo
    co2_kg: float
    factors: list[Factor] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _intensity(region: str | None, marginal: bool) -> IntensityInfo:
    if region is None:
        resolution = resolve_region()
        return to_intensity_info(lookup(resolution.code, marginal=marginal), resolution.reason)
    return to_intensity_info(lookup(region, marginal=marginal), "--region argument")


def estimate(
    gpu: str | None,
    count: int,
    hours: float,
    region: str | None = None,
    *,
    pue: float | None = None,
    utilization: float | None = None,
    cpu_watts: float = 0.0,
    ram_gb: float = 0.0,
    gpu_watts: float | None = None,
    marginal: bool = False,
) -> PlanningEstimate:
    """Estimate a planned job's energy and CO2 from published board power.

    ``energy (kWh) = (count x hours x board W x utilisation + hours x cpu_watts
    + hours x ram_gb x 0.375 W/GB) / 1000 x PUE``; ``CO2 (kg) = energy x g/kWh / 1000``.

    Args:
        gpu: Accelerator name (see :func:`find_accelerator`); may be None when ``gpu_watts`` is given.
        count: Number of accelerators (>= 1).
        hours: Job length, hours (> 0).
        region: Region code for the carbon intensity; None resolves it offline as a run would.
        pue: Data centre PUE, 1.0 to 3.0 (default: the cloud provider's published figure for a cloud
            region, else 1.0: no overhead, as on premises).
        utilization: Mean fraction of board power drawn, (0, 1] (default 1.0: board power
            all the time, an upper bound).
        cpu_watts: Mean CPU power of the whole job, watts (not multiplied by ``count``).
        ram_gb: RAM in use by the whole job, GB, at 0.375 W per GB.
        gpu_watts: Board power per accelerator in watts, instead of (or overriding) the table's.
        marginal: Use the region's marginal (combined-margin) factor where there is one.

    Raises:
        PlanningInputError: An input is out of range (UnknownAcceleratorError for a GPU name).
        co2cb.intensity.UnknownRegionError: The region is in no table.
    """
    count = parse_count(count)
    hours = parse_hours(hours)
    cpu_watts = parse_cpu_watts(cpu_watts)
    ram_gb = parse_ram_gb(ram_gb)
    match = find_accelerator(gpu) if gpu is not None else None
    if match is None and gpu_watts is None:
        raise PlanningInputError("give --gpu NAME (see --list-gpus) or the board power with --gpu-watts")
    pue_info = resolve_pue(parse_pue(pue) if pue is not None else None, region or resolve_region().code)
    pue, pue_year = pue_info.value, pue_info.year
    pue_source = pue_info.source if pue_info.source == "given by the user" else f"{pue_info.source}: {pue_info.reason}"
    util_source = (
        "given by the user" if utilization is not None else "default: 1.0, board power all the time (an upper bound)"
    )
    utilization = parse_utilization(utilization if utilization is not None else 1.0)
    row = match.accelerator if match else None
    if gpu_watts is not None:
        board_w = parse_watts(gpu_watts)
        power_source, power_year = "given by the user (--gpu-watts)", None
    else:
        assert row is not None
        board_w = row.board_power_w
        power_source, power_year = f"{row.vendor}: {row.source} <{row.url}>", row.year
    intensity = _intensity(region, marginal)

    gpu_kwh = count * hours * board_w * utilization / 1000.0
    cpu_kwh = hours * cpu_watts / 1000.0
    ram_kwh = hours * ram_gb * RAM_WATTS_PER_GB / 1000.0
    it_kwh = gpu_kwh + cpu_kwh + ram_kwh
    total_kwh = it_kwh * pue
    co2_kg = total_kwh * intensity.g_per_kwh / 1000.0

    factors = [
        Factor("board power", board_w, "W", power_source, power_year),
        Factor("utilisation", utilization, "", util_source, None),
    ]
    if cpu_watts:
        factors.append(Factor("CPU power", cpu_watts, "W", "given by the user (--cpu-watts)", None))
    if ram_gb:
        factors.append(Factor("RAM power", RAM_WATTS_PER_GB, "W/GB", RAM_SOURCE, None))
    factors += [
        Factor("PUE", pue, "", pue_source, pue_year),
        Factor(
            "carbon intensity",
            intensity.g_per_kwh,
            "gCO2e/kWh",
            f"{intensity.source} ({intensity.kind}) for {intensity.region}",
            intensity.year,
        ),
    ]
    return PlanningEstimate(
        label=ESTIMATE_LABEL,
        accelerator=row,
        accelerator_via=match.via if match else "",
        count=count,
        hours=hours,
        board_power_w=board_w,
        board_power_source=power_source,
        utilization=utilization,
        cpu_watts=cpu_watts,
        ram_gb=ram_gb,
        ram_watts_per_gb=RAM_WATTS_PER_GB,
        gpu_kwh=gpu_kwh,
        cpu_kwh=cpu_kwh,
        ram_kwh=ram_kwh,
        it_kwh=it_kwh,
        pue=pue,
        pue_source=pue_source,
        total_kwh=total_kwh,
        intensity=intensity,
        co2_kg=co2_kg,
        factors=factors,
    )
