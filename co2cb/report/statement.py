"""A statement of a training's energy and CO2e for a paper's appendix or a model card, from its run records.

:func:`statement` reads the figures of one or more recorded runs (:mod:`co2cb.records.reader`) into a
:class:`Statement`: :mod:`co2cb.report.statement_text` writes it as a paragraph in plain text, Markdown
or LaTeX, and :mod:`co2cb.report.model_card` as the ``co2_eq_emissions`` metadata of a Hugging Face
model card; ``co2cb statement --format`` picks one (:mod:`co2cb.cli.statement`). Every figure is the
record's own: energy before PUE (kWh), CO2e with PUE (kg), the intensity, region, source, year and PUE
the run used. Each component says whether it was measured or estimated and how; an estimated figure is
named as an estimate in every format. Several runs (pre-training, then fine-tuning) give one statement:
their totals first, then a paragraph per run. How the figures are made: ``co2cb/docs/methodology.md``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from co2cb.records.reader import RecordedRun, mapping, number
from co2cb.units import format_energy, format_mass

LABELS = {"gpu": "GPU", "cpu": "CPU", "ram": "RAM"}
ESTIMATE = "estimate"
MAX_NOTES = 3


def join_names(items: Sequence[str]) -> str:
    """``"a"``, ``"a and b"``, ``"a, b and c"``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class Part:
    """One component's energy in a run.

    Attributes:
        component: ``"gpu"``, ``"cpu"``, ``"ram"``...
        kwh: Energy, kWh before PUE.
        provenance: How it was obtained (``measured-counter``, ``sampled-power``, ``estimate``, several
            joined by ``+``), or ``""`` when the record does not say.
        method: The meters or models behind it, with their constants and sources, in words.
    """

    component: str
    kwh: float
    provenance: str
    method: str

    @property
    def title(self) -> str:
        """The component's name in a sentence (``"GPU"``)."""
        return LABELS.get(self.component, self.component)

    @property
    def estimated(self) -> bool:
        """True when any of the figure comes from a model rather than a measurement."""
        return ESTIMATE in self.provenance.split("+")

    @property
    def label(self) -> str:
        """``"measured"``, ``"estimated"``, ``"partly estimated"`` or ``"provenance not recorded"``."""
        kinds = set(self.provenance.split("+")) - {""}
        if not kinds:
            return "provenance not recorded"
        if kinds == {ESTIMATE}:
            return "estimated"
        return "partly estimated" if ESTIMATE in kinds else "measured"


@dataclass(frozen=True)
class RunFigures:
    """What a statement says about one run; figures as recorded.

    Attributes:
        name: Run name.
        run_id: Run id.
        start_date: Start day, ``YYYY-MM-DD`` (UTC).
        seconds: Wall-clock duration, seconds.
        hardware: The GPUs and CPU, in words.
        parts: Energy per component, in display order.
        co2_kg: Emissions, kg CO2e (PUE included).
        g_per_kwh: Energy-weighted carbon intensity the run used, gCO2e/kWh.
        intensity_kind: ``"average"`` or ``"marginal"``.
        intensity_source: Publisher and year of the intensity.
        location: The region the intensity is for, in words (says when it was guessed).
        pue: The PUE applied.
        pue_source: Where the PUE comes from, in words.
        marginal: ``(kg CO2e, gCO2e/kWh, source)`` with a marginal intensity recorded next to an average
            one, or None.
        caveats: Sentences on what the figures leave out or only bound (incomplete record, lost meters,
            components not measured, notes on the intensity).
        version: The co2cb version that recorded the run.
        training_type: The run's ``training_type`` tag (``"pre-training"``, ``"fine-tuning"``), or None.
    """

    name: str
    run_id: str
    start_date: str
    seconds: float
    hardware: str
    parts: tuple[Part, ...]
    co2_kg: float
    g_per_kwh: float
    intensity_kind: str
    intensity_source: str
    location: str
    pue: float
    pue_source: str
    marginal: tuple[float, float, str] | None
    caveats: tuple[str, ...]
    version: str
    training_type: str | None = None

    @property
    def kwh(self) -> float:
        """Energy of all components, kWh before PUE."""
        return sum(p.kwh for p in self.parts)

    @property
    def title(self) -> str:
        """How the run is named in a sentence."""
        return f'run "{self.name}"' if self.name != self.run_id else f"run {self.run_id}"


@dataclass(frozen=True)
class Statement:
    """The figures of one or more runs, in the order given."""

    runs: tuple[RunFigures, ...]

    @property
    def co2_kg(self) -> float:
        """Emissions of all runs, kg CO2e."""
        return sum(r.co2_kg for r in self.runs)

    @property
    def kwh(self) -> float:
        """Energy of all runs, kWh before PUE."""
        return sum(r.kwh for r in self.runs)

    @property
    def seconds(self) -> float:
        """Duration of all runs added, seconds."""
        return sum(r.seconds for r in self.runs)

    def components(self) -> list[str]:
        """Components that any run has, in display order."""
        return list(dict.fromkeys(p.component for r in self.runs for p in r.parts))

    def component_kwh(self, component: str) -> float:
        """Energy of one component over all runs, kWh before PUE."""
        return sum(p.kwh for r in self.runs for p in r.parts if p.component == component)

    def component_label(self, component: str) -> str:
        """How a component was obtained across runs: one label, or each label with its runs."""
        by_label: dict[str, list[str]] = {}
        for run in self.runs:
            for part in run.parts:
                if part.component == component:
                    by_label.setdefault(part.label, []).append(f'"{run.name}"')
        if len(by_label) == 1:
            return next(iter(by_label))
        return ", ".join(f"{label} in {join_names(names)}" for label, names in by_label.items())

    @property
    def versions(self) -> str:
        """The co2cb versions that recorded the runs."""
        return ", ".join(dict.fromkeys(r.version for r in self.runs))


# --------------------------------------------------------------------------- figures from a record
def _meter_method(meter: Mapping[str, Any], interval_s: float) -> str:
    """One meter's method in words, with its model's constants and sources."""
    name = str(meter.get("name", "?"))
    provenance = str(meter.get("provenance", ""))
    d = mapping(meter.get("details"))
    year = f", {d['year']}" if d.get("year") else ""
    if name.startswith("gpu:"):
        device = d.get("name") or name
        if d.get("power_scope") == "module":
            device += " module (GPU, CPU and memory)"
        if provenance == "measured-counter":
            return f"NVML energy counter of the {device}"
        return f"NVML power of the {device} sampled every {interval_s:g} s"
    if d.get("method"):  # meters that describe themselves (AMD SMI, Apple silicon)
        return str(d["method"]) + (f" every {interval_s:g} s" if provenance == "sampled-power" else "")
    if name.startswith("rapl:"):
        shared = ", attributed by CPU-time share" if str(d.get("attribution", "")).startswith("share") else ""
        return f"RAPL {name.split(':', 1)[1]} counter{shared}"
    if "tdp_w" in d:
        return f"TDP x utilisation with a TDP of {number(d['tdp_w']):g} W ({d.get('tdp_source', 'source?')}{year})"
    if "min_w_per_vcpu" in d:
        return (
            f"per-vCPU model, {number(d['min_w_per_vcpu']):g} to {number(d['max_w_per_vcpu']):g} W per vCPU "
            f"for {d.get('architecture', '?')} ({d.get('source', 'source?')}{year})"
        )
    if "watts_per_gb" in d:
        return f"{number(d['watts_per_gb']):g} W per GB of memory in use ({d.get('source', 'source?')})"
    return f"meter {name}" + (f" ({provenance})" if provenance else "")


def _method(run: RecordedRun, component: str) -> str:
    interval = number(run.header.get("config", {}).get("interval_s"), 1.0)
    found = Counter(_meter_method(m, interval) for m in run.meters if m.get("component") == component)
    text = "; ".join(text if n == 1 else f"{text} (x{n})" for text, n in found.items()) or "meters not recorded"
    return text + _other_hosts(run, component)


def _other_hosts(run: RecordedRun, component: str) -> str:
    """How a job's other hosts measure ``component`` where rank 0's do otherwise (the header's meters are rank 0's)."""
    hosts = mapping(mapping((run.summary or {}).get("job")).get("hosts"))
    kinds = {h: str(mapping(mapping(info).get("provenance")).get(component, "")) for h, info in hosts.items()}
    first = next((h for h, info in hosts.items() if 0 in (mapping(info).get("ranks") or [])), None)
    if first is None:
        return ""
    others = [f"{h}: {kind}" for h, kind in kinds.items() if h != first and kind and kind != kinds[first]]
    return f" on rank 0's host {first}; " + ", ".join(others) if others else ""


def _hardware(run: RecordedRun) -> str:
    hardware = mapping(run.header.get("hardware"))
    gpus = Counter(str(g.get("name", "GPU")) for g in hardware.get("gpus") or [] if isinstance(g, dict))
    cpu = mapping(hardware.get("cpu"))
    sockets = int(number(cpu.get("sockets"), 1))
    cpu_text = f"{cpu.get('model') or 'a CPU of unknown model'} ({sockets} socket{'s' if sockets != 1 else ''}"
    cpu_text += f", virtual machine: {cpu['virtualization']})" if cpu.get("virtualization") else ")"
    text = ", ".join([*(f"{n} x {name}" for name, n in gpus.items()), cpu_text])
    job = mapping(run.header.get("job"))
    world = int(number(job.get("world_size"), 1))
    if world > 1:
        per_host = ((run.summary or {}).get("job") or {}).get("per_host") or {}
        hosts = f" on {len(per_host)} host(s)" if per_host else ""
        text = f"{world} processes{hosts} (seen from rank 0: {text})"
    return text


def _location(run: RecordedRun) -> str:
    prov = run.provenance
    intensity = prov.intensity
    region, name = str(intensity.get("region", "")), str(intensity.get("region_name", ""))
    if region in ("", "user"):
        where = "a region not given (intensity given by the user)"
    else:
        where = f"{name} ({region})" if name and name != region else region
        if prov.cloud_region and not prov.region_guessed:  # a guess never lands in a cloud; its hint names one
            where = f"{prov.cloud_region}, {where}"
    choice = prov.region
    if choice is None:  # an older record without the structured choice: only whether it was a guess
        return where + (", guessed" if prov.region_guessed else "")
    step, source = str(choice.get("step", "")), str(choice.get("source", ""))
    if step == "timezone":
        where += f", guessed from the machine's {source or 'time zone'}"
    elif step == "world":
        where += ", guessed: the world average, no region given"
    elif step == "cloud-env":
        where += f", from the environment variable {source} (a strong hint, not confirmed)"
    elif step == "metadata":
        where += ", as the cloud's metadata service reports"
    overruled = [str(x) for x in choice.get("overruled") or []]
    if overruled:
        where += f"; other hints disagreed: {'; '.join(overruled)}"
    return where


def _source(info: Mapping[str, Any]) -> str:
    year = info.get("year")
    return f"{info.get('source') or 'source not recorded'}" + (f", {year}" if year else "")


def _pue_source(run: RecordedRun) -> str:
    info = run.provenance.pue_info
    if info.get("source") == "co2cb default":
        return "no facility overhead known: IT energy only"
    return _source(info)


def _marginal(run: RecordedRun) -> tuple[float, float, str] | None:
    last = run.summary if run.summary is not None else {}
    co2 = number(last.get("co2_kg_marginal"), math.nan)
    info = run.header.get("marginal_intensity")
    if not math.isfinite(co2) or not isinstance(info, dict):
        return None
    return co2, number(last.get("intensity_g_per_kwh_marginal")), _source(info)


def _segment(run: RecordedRun, given: Collection[str]) -> tuple[str, ...]:
    """A caveat for a run resumed from a checkpoint whose earlier segment is not in the statement."""
    link = run.resumed_from
    if link is None or link.get("run_id") in given:
        return ()
    whole = run.resumed_total or {}
    energy = number(mapping(whole.get("energy_kwh")).get("total"), math.nan)
    path = (
        f"the run's checkpointed path so far is {format_energy(energy)} and {format_mass(number(whole.get('co2_kg')))} "
        "CO2e (its resumed_total, which leaves out work done after a segment's last checkpoint)"
        if math.isfinite(energy)
        else "the record has no total of the whole run"
    )
    return (
        f"This run resumed run {link.get('run_id')} from a checkpoint after {run.epochs_before} epoch(s), so "
        f"its figures are this segment's alone: {path}. As the training's footprint they are a lower bound: give "
        "every segment's run folder for the whole job.",
    )


def _caveats(run: RecordedRun) -> tuple[str, ...]:
    said: list[str] = []
    if not run.complete:
        said.append(f"Incomplete record: {run.totals_from}.")
    elif run.status != "completed":
        said.append(f'The run ended with status "{run.status}".')
    for loss in (run.summary or {}).get("meter_losses") or []:
        said.append(
            f"Meter {loss.get('meter')} stopped working during the run ({loss.get('error')}); its energy "
            "after that is missing, so the totals are a lower bound."
        )
    for choice in run.provenance.meter_choices:
        if not choice.get("chosen"):
            label = LABELS.get(str(choice.get("component")), str(choice.get("component")))
            said.append(f"No {label} energy is included ({choice.get('reason', 'no meter')}).")
    caveat = run.provenance.intensity.get("caveat")
    if caveat:
        said.append(f"The intensity figure is doubtful: {caveat}.")
    notes = list(dict.fromkeys((run.summary or {}).get("intensity_notes") or []))
    said += [f"Note on the intensity: {n}." for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        said.append(f"({len(notes) - MAX_NOTES} more notes on the intensity are in the record.)")
    return tuple(said)


def figures(run: RecordedRun, given: Collection[str] = ()) -> RunFigures:
    """The figures a statement gives for one recorded run, as the record has them.

    Args:
        run: The run.
        given: The run ids of every run in the statement (a resumed run's earlier segment among them is not
            a caveat: its figures are in the statement).
    """
    prov = run.provenance
    energy = run.energy_kwh
    kind = str((run.summary or {}).get("intensity_kind") or prov.intensity.get("kind") or "average")
    start = datetime.fromtimestamp(run.start_unix_s, tz=timezone.utc).date().isoformat()
    return RunFigures(
        name=run.name,
        run_id=run.run_id,
        start_date=start,
        seconds=run.duration_s,
        hardware=_hardware(run),
        parts=tuple(Part(c, energy[c], prov.components.get(c, ""), _method(run, c)) for c in run.components),
        co2_kg=run.co2_kg,
        g_per_kwh=prov.intensity_used_g_per_kwh,
        intensity_kind=kind,
        intensity_source=_source(prov.intensity),
        location=_location(run),
        pue=prov.pue,
        pue_source=_pue_source(run),
        marginal=_marginal(run),
        caveats=_caveats(run) + _segment(run, given),
        version=str((run.header.get("versions") or {}).get("co2cb", "(version not recorded)")),
        training_type=str(run.tags["training_type"]) if run.tags.get("training_type") else None,
    )


def statement(runs: Sequence[RecordedRun]) -> Statement:
    """The statement of one or more recorded runs, in the order given.

    Raises:
        ValueError: No run given.
    """
    if not runs:
        raise ValueError("give at least one run")
    given = {r.run_id for r in runs}
    return Statement(tuple(figures(r, given) for r in runs))
