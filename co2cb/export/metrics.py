"""What co2cb exports live: plain snapshots of a run, and the metric families made from them.

The tracker's sampler thread builds a :class:`Snapshot` after each reading; every exporter
(Prometheus, Pushgateway, OpenTelemetry) turns the newest one into the same :class:`Family` list
with :func:`families`. Names follow Prometheus' conventions (base unit in the name, ``_total`` on
counters, ``_info`` on the info metric); OpenTelemetry gets dotted names with UCUM units.

No label holds a step, an epoch or a time: a run exports one series per component and device,
one per meter, and one per intensity kind.
"""

from __future__ import annotations

from dataclasses import dataclass

from co2cb.intensity.base import IntensityInfo

MEASURED = "measured"
ESTIMATED = "estimated"


@dataclass(frozen=True)
class MeterSpec:
    """One meter, as exported.

    Attributes:
        name: Channel name (``"gpu:0"``, ``"rapl:package-0"``, ``"ram:estimate"``).
        component: ``"gpu"``, ``"cpu"`` or ``"ram"``.
        device: The GPU's index for a GPU meter, the host name for the others.
        provenance: ``"measured-counter"``, ``"sampled-power"`` or ``"estimate"``.
        reason: Why this meter was chosen for its component.
    """

    name: str
    component: str
    device: str
    provenance: str
    reason: str

    @property
    def measurement(self) -> str:
        """``"measured"`` (a hardware counter or power reading) or ``"estimated"`` (a model)."""
        return ESTIMATED if self.provenance == "estimate" else MEASURED


@dataclass(frozen=True)
class RunInfo:
    """What stays fixed for a run: its name, host, meters and the provenance of its CO2 figures.

    Attributes:
        run: The run's name (its id unless one was given).
        run_id: The run's id (one run's series apart from another's of the same name).
        host: The host name.
        meters: Every meter, in the order of :attr:`Snapshot.joules`.
        intensity: The carbon intensity behind the emissions, as chosen when the run started.
        pue_source: Where the PUE comes from.
    """

    run: str
    run_id: str
    host: str
    meters: tuple[MeterSpec, ...]
    intensity: IntensityInfo
    pue_source: str


@dataclass(frozen=True)
class IntensityNow:
    """A carbon intensity at the time of a snapshot.

    Attributes:
        g_per_kwh: gCO2e/kWh.
        kind: ``"average"`` or ``"marginal"``.
        region: Region code.
        source: Publisher of the figure.
        basis: ``"lifecycle"``, ``"operational"`` or ``"unknown"`` (see :func:`intensity_basis`).
    """

    g_per_kwh: float
    kind: str
    region: str
    source: str
    basis: str

    @classmethod
    def of(cls, info: IntensityInfo, g_per_kwh: float) -> IntensityNow:
        """The value ``g_per_kwh`` of a source described by ``info``."""
        return cls(g_per_kwh, info.kind, info.region, info.source, intensity_basis(info))


@dataclass(frozen=True)
class Snapshot:
    """The run so far, after one reading of the meters.

    Attributes:
        joules: Per meter (order of :attr:`RunInfo.meters`), energy since the run started, joules, before PUE.
        watts: Per meter, mean power over the last interval between snapshots, watts; None before the
            first interval (no power is exported then).
        alive: Per meter, False once the meter was lost (its energy stays at its last reading).
        co2_grams: Emissions since the run started, gCO2e, including PUE.
        co2_grams_marginal: The same with the marginal intensity, or None when none is recorded.
        intensities: The intensity behind ``co2_grams``, then the marginal one if any.
        pue: Power usage effectiveness applied.
    """

    joules: tuple[float, ...]
    watts: tuple[float, ...] | None
    alive: tuple[bool, ...]
    co2_grams: float
    co2_grams_marginal: float | None
    intensities: tuple[IntensityNow, ...]
    pue: float


# Basis of the embedded tables' sources (see co2cb/docs/methodology.md, "Which figure"), by the start of their name.
_BASES = (
    ("Ember/OWID", "lifecycle"),
    ("Electricity Maps", "lifecycle"),  # yearly table and live API (lifecycle is the API's default)
    ("Google Cloud", "operational"),
    ("U.S. EPA eGRID", "operational"),  # stack emissions, CO2 only
    ("UNFCCC/IFI", "operational"),  # combined-margin factors from combustion emissions
)


def intensity_basis(info: IntensityInfo) -> str:
    """Whether an intensity counts the plants' whole life cycle or only their operation.

    Returns:
        ``"lifecycle"``, ``"operational"``, or ``"unknown"`` for a figure given by the user or
        read from a series, whose basis co2cb cannot know.
    """
    for prefix, basis in _BASES:
        if info.source.startswith(prefix):
            return basis
    return "unknown"


@dataclass(frozen=True)
class Spec:
    """One metric family's names and meaning.

    Attributes:
        name: Prometheus name without the ``_total``/``_info`` suffix its kind adds.
        kind: ``"counter"``, ``"gauge"`` or ``"info"``.
        otel_name: OpenTelemetry instrument name.
        unit: UCUM unit for OpenTelemetry (``"J"``, ``"W"``, ``"g"``, ``"g/kWh"``, ``"1"``).
        help: One line on what it is.
    """

    name: str
    kind: str
    otel_name: str
    unit: str
    help: str

    @property
    def exposed_name(self) -> str:
        """The name a scrape shows: with ``_total`` on a counter and ``_info`` on an info metric."""
        return self.name + {"counter": "_total", "info": "_info"}.get(self.kind, "")


ENERGY = Spec("co2cb_energy_joules", "counter", "co2cb.energy", "J", "Energy since the run started, before PUE.")
POWER = Spec("co2cb_power_watts", "gauge", "co2cb.power", "W", "Mean power over the last sampling interval.")
EMISSIONS = Spec(
    "co2cb_emissions_grams", "counter", "co2cb.emissions", "g", "Emissions since the run started, gCO2e, with PUE."
)
EMISSIONS_MARGINAL = Spec(
    "co2cb_emissions_marginal_grams",
    "counter",
    "co2cb.emissions.marginal",
    "g",
    "Emissions since the run started with the marginal intensity, gCO2e, with PUE.",
)
INTENSITY = Spec(
    "co2cb_carbon_intensity_grams_per_kwh",
    "gauge",
    "co2cb.carbon_intensity",
    "g/kWh",
    "Carbon intensity of the electricity now, gCO2e/kWh.",
)
PUE = Spec("co2cb_pue", "gauge", "co2cb.pue", "1", "Power usage effectiveness applied to the energy.")
METER_UP = Spec("co2cb_meter_up", "gauge", "co2cb.meter.up", "1", "1 while the meter is read, 0 once it was lost.")
PROVENANCE = Spec(
    "co2cb_provenance",
    "info",
    "co2cb.provenance",
    "1",
    "How each meter's figures are made, and which carbon intensity and PUE the emissions use, and why.",
)
SPECS = (ENERGY, POWER, EMISSIONS, EMISSIONS_MARGINAL, INTENSITY, PUE, METER_UP, PROVENANCE)

Labels = dict[str, str]


@dataclass(frozen=True)
class Family:
    """One metric family's samples: ``(labels, value)`` pairs that all have the same label names."""

    spec: Spec
    samples: tuple[tuple[Labels, float], ...]


def families(run: RunInfo, snap: Snapshot) -> list[Family]:
    """Every metric family of a run at one snapshot (a family with no sample is left out)."""
    common = {"run": run.run, "run_id": run.run_id, "host": run.host}
    per_device: dict[tuple[str, str], list[float]] = {}
    watts = snap.watts if snap.watts is not None else [0.0] * len(run.meters)
    for meter, joules, w in zip(run.meters, snap.joules, watts):
        sums = per_device.setdefault((meter.component, meter.device), [0.0, 0.0])
        sums[0] += joules
        sums[1] += w
    energy = [({**common, "component": c, "device": d}, s[0]) for (c, d), s in per_device.items()]
    power = [({**common, "component": c, "device": d}, s[1]) for (c, d), s in per_device.items()]
    if snap.watts is None:
        power = []
    intensity = [
        ({**common, "kind": i.kind, "region": i.region, "source": i.source, "basis": i.basis}, i.g_per_kwh)
        for i in snap.intensities
    ]
    meters = [{**common, "meter": m.name, "component": m.component, "device": m.device} for m in run.meters]
    info = run.intensity
    provenance = [
        (
            {
                **labels,
                "provenance": m.provenance,
                "measurement": m.measurement,
                "meter_reason": m.reason,
                "region": info.region,
                "region_name": info.region_name,
                "region_reason": info.reason,
                "intensity_source": info.source,
                "intensity_year": "" if info.year is None else str(info.year),
                "intensity_basis": intensity_basis(info),
                "pue_source": run.pue_source,
            },
            1.0,
        )
        for m, labels in zip(run.meters, meters)
    ]
    found = [
        Family(ENERGY, tuple(energy)),
        Family(POWER, tuple(power)),
        Family(EMISSIONS, ((common, snap.co2_grams),)),
        Family(EMISSIONS_MARGINAL, () if snap.co2_grams_marginal is None else ((common, snap.co2_grams_marginal),)),
        Family(INTENSITY, tuple(intensity)),
        Family(PUE, ((common, snap.pue),)),
        Family(METER_UP, tuple((labels, 1.0 if up else 0.0) for labels, up in zip(meters, snap.alive))),
        Family(PROVENANCE, tuple(provenance)),
    ]
    return [f for f in found if f.samples]
