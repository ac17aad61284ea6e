"""A statement of a training's energy and CO2e for a paper's appendix or a model card, from its run records.

:func:`statement` reads the figures of one or more recorded runs (:mod:`co2cb.records.reader`) and
:func:`render` writes them as a paragraph in plain text, Markdown or LaTeX, or as the
``co2_eq_emissions`` metadata of a Hugging Face model card (:mod:`co2cb.report.model_card`). Every figure is the
record's own: energy before PUE (kWh), CO2e with PUE (kg), the intensity, region, source, year and PUE the
run used. Each component says whether it was measured or estimated and how; an estimated figure is named
as an estimate in every format. Several runs (pre-training, then fine-tuning) give one statement: their
totals first, then a paragraph per run. How the figures are made: ``docs/methodology.md``.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from co2cb.records.reader import RecordedRun, number
from co2cb.report.model_card import FORMAT as MODEL_CARD
from co2cb.report.model_card import model_card
from co2cb.units import format_duration, format_energy, format_mass

FORMATS = ("text", "markdown", "latex", MODEL_CARD)
LABELS = {"gpu": "GPU", "cpu": "CPU", "ram": "RAM"}
ESTIMATE = "estimate"
MAX_NOTES = 3
METHODOLOGY = "co2cb's docs/methodology.md"


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
        return ", ".join(f"{label} in {_names(names)}" for label, names in by_label.items())

    @property
    def versions(self) -> str:
        """The co2cb versions that recorded the runs."""
        return ", ".join(dict.fromkeys(r.version for r in self.runs))


# --------------------------------------------------------------------------- figures from a record
def _meter_method(meter: Mapping[str, Any], interval_s: float) -> str:
    """One meter's method in words, with its model's constants and sources."""
    name = str(meter.get("name", "?"))
    provenance = str(meter.get("provenance", ""))
    d = meter.get("details") if isinstance(meter.get("details"), dict) else {}
    year = f", {d['year']}" if d.get("year") else ""
    if name.startswith("gpu:"):
        device = d.get("name") or name
        if provenance == "measured-counter":
            return f"NVML energy counter of the {device}"
        return f"NVML power of the {device} sampled every {interval_s:g} s"
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
    return "; ".join(text if n == 1 else f"{text} (x{n})" for text, n in found.items()) or "meters not recorded"


def _hardware(run: RecordedRun) -> str:
    hardware = run.header.get("hardware") if isinstance(run.header.get("hardware"), dict) else {}
    gpus = Counter(str(g.get("name", "GPU")) for g in hardware.get("gpus") or [] if isinstance(g, dict))
    cpu = hardware.get("cpu") if isinstance(hardware.get("cpu"), dict) else {}
    sockets = int(number(cpu.get("sockets"), 1))
    cpu_text = f"{cpu.get('model') or 'a CPU of unknown model'} ({sockets} socket{'s' if sockets != 1 else ''}"
    cpu_text += f", virtual machine: {cpu['virtualization']})" if cpu.get("virtualization") else ")"
    text = ", ".join([*(f"{n} x {name}" for name, n in gpus.items()), cpu_text])
    job = run.header.get("job") if isinstance(run.header.get("job"), dict) else {}
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
    if prov.region_guessed:
        reason = str(intensity.get("reason", ""))
        where += (
            ", guessed from the machine's time zone"
            if "time zone" in reason
            else ", guessed: the world average, no region given"
        )
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
    notes = list(dict.fromkeys((run.summary or {}).get("intensity_notes") or []))
    said += [f"Note on the intensity: {n}." for n in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        said.append(f"({len(notes) - MAX_NOTES} more notes on the intensity are in the record.)")
    return tuple(said)


def figures(run: RecordedRun) -> RunFigures:
    """The figures a statement gives for one recorded run, as the record has them."""
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
        caveats=_caveats(run),
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
    return Statement(tuple(figures(r) for r in runs))


# --------------------------------------------------------------------------- sentences
def _names(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _estimated_sentence(parts: Sequence[tuple[str, str]]) -> str:
    """``parts`` are (component label, where); empty -> all measured."""
    if not parts:
        return "All energy figures were measured."
    named = _names([f"{label}{where}" for label, where in parts])
    return f"Estimated, not measured: {named}; estimates rest on the models and constants named above."


def run_sentences(f: RunFigures) -> list[str]:
    """The paragraph on one run, as plain-text sentences."""
    parts = ", ".join(f"{p.title} {format_energy(p.kwh)} ({p.label}: {p.method})" for p in f.parts)
    said = [
        f"The {f.title} ran for {format_duration(f.seconds)} from {f.start_date} on {f.hardware}.",
        f"It used {format_energy(f.kwh)} of electricity before PUE: {parts or 'no energy recorded'}.",
        f"With a PUE of {f.pue:g} ({f.pue_source}) and a carbon intensity of {f.g_per_kwh:.4g} gCO2e/kWh "
        f"({f.intensity_kind}, for {f.location}; {f.intensity_source}), this amounts to {format_mass(f.co2_kg)} "
        "CO2e.",
    ]
    if f.marginal is not None:
        co2, g, source = f.marginal
        said.append(
            f"With the marginal intensity of {g:.4g} gCO2e/kWh ({source}) the same energy amounts to "
            f"{format_mass(co2)} CO2e."
        )
    said.append(_estimated_sentence([(p.title, "") for p in f.parts if p.estimated]))
    said += list(f.caveats)
    said.append(f"Recorded with co2cb {f.version}; method in {METHODOLOGY}.")
    return said


def total_sentences(s: Statement) -> list[str]:
    """The paragraph on several runs together, as plain-text sentences."""
    runs = "; ".join(f'"{r.name}" ({format_duration(r.seconds)})' for r in s.runs)
    parts = ", ".join(
        f"{LABELS.get(c, c)} {format_energy(s.component_kwh(c))} ({s.component_label(c)})" for c in s.components()
    )
    said = [
        f"This work comprises {len(s.runs)} runs recorded with co2cb {s.versions}: {runs}; "
        f"{format_duration(s.seconds)} in all.",
        f"Together they used {format_energy(s.kwh)} of electricity before PUE: {parts or 'no energy recorded'}, "
        f"amounting to {format_mass(s.co2_kg)} CO2e with each run's own PUE and carbon intensity (below).",
    ]
    if all(r.marginal is not None for r in s.runs):
        said.append(
            f"With each run's marginal intensity they amount to "
            f"{format_mass(sum(r.marginal[0] for r in s.runs if r.marginal))} CO2e."
        )
    estimated = [(p.title, f' in "{r.name}"') for r in s.runs for p in r.parts if p.estimated]
    said.append(_estimated_sentence(estimated))
    return said


# --------------------------------------------------------------------------- formats
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))
_MARKDOWN_RE = re.compile(r"([\\`*_\[\]<>|#])")
_QUOTED_RE = re.compile(r'"([^"]*)"')


def latex_escape(text: str) -> str:
    """Plain text as LaTeX: special characters escaped, quotes typeset, CO2 with a subscript 2, µ in math."""
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], text)
    text = _QUOTED_RE.sub(r"``\1''", text)
    return text.replace("CO2", "CO$_2$").replace("µ", "$\\mu$")


def markdown_escape(text: str) -> str:
    """Plain text as Markdown: characters that would format escaped."""
    return _MARKDOWN_RE.sub(r"\\\1", text)


def _table(s: Statement, escape: Callable[[str], str]) -> list[list[str]]:
    """Rows of the per-run breakdown: header first; every cell escaped."""
    components = s.components()
    rows = [
        [
            "run",
            "duration",
            *(f"{LABELS.get(c, c)} (kWh)" for c in components),
            "total (kWh)",
            "CO2e",
            "gCO2e/kWh",
            "PUE",
        ]
    ]
    for r in s.runs:
        by = {p.component: p for p in r.parts}
        cells = [
            f"{by[c].kwh:.4g}" + (f" ({by[c].label})" if by[c].label != "measured" else "") if c in by else "-"
            for c in components
        ]
        rows.append(
            [
                r.name,
                format_duration(r.seconds),
                *cells,
                f"{r.kwh:.4g}",
                format_mass(r.co2_kg),
                f"{r.g_per_kwh:.4g}",
                f"{r.pue:g}",
            ]
        )
    totals = [f"{s.component_kwh(c):.4g}" for c in components]
    rows.append(["total", format_duration(s.seconds), *totals, f"{s.kwh:.4g}", format_mass(s.co2_kg), "", ""])
    return [[escape(c) for c in row] for row in rows]


def _paragraphs(s: Statement) -> list[list[str]]:
    if len(s.runs) == 1:
        return [run_sentences(s.runs[0])]
    return [total_sentences(s), *(run_sentences(r) for r in s.runs)]


def render_text(s: Statement, width: int = 100) -> str:
    """Plain text: a paragraph per run, after the totals when there are several."""
    return "\n\n".join(textwrap.fill(" ".join(p), width=width, break_on_hyphens=False) for p in _paragraphs(s)) + "\n"


def render_markdown(s: Statement) -> str:
    """Markdown: the paragraphs, and a breakdown table when there are several runs."""
    paragraphs = [markdown_escape(" ".join(p)) for p in _paragraphs(s)]
    if len(s.runs) > 1:
        rows = _table(s, markdown_escape)
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        paragraphs.insert(1, "\n".join(lines))
    return "\n\n".join(paragraphs) + "\n"


def render_latex(s: Statement) -> str:
    """LaTeX: the paragraphs, and a breakdown ``tabular`` when there are several runs (no package needed)."""
    paragraphs = [latex_escape(" ".join(p)) for p in _paragraphs(s)]
    if len(s.runs) > 1:
        rows = _table(s, latex_escape)
        body = [
            "\\begin{tabular}{l" + "r" * (len(rows[0]) - 1) + "}",
            "\\hline",
            " & ".join(rows[0]) + " \\\\",
            "\\hline",
            *(" & ".join(r) + " \\\\" for r in rows[1:-1]),
            "\\hline",
            " & ".join(rows[-1]) + " \\\\",
            "\\hline",
            "\\end{tabular}",
        ]
        paragraphs.insert(1, "\n".join(body))
    return "\n\n".join(paragraphs) + "\n"


def render(runs: Sequence[RecordedRun], fmt: str = "text", *, training_type: str | None = None) -> str:
    """The statement of ``runs`` in a format: ``text``, ``markdown``, ``latex`` or ``hf-model-card``.

    Args:
        runs: Recorded runs, in the order to state them.
        fmt: Output format.
        training_type: For ``hf-model-card``: ``"pre-training"`` or ``"fine-tuning"`` (default: the runs'
            ``training_type`` tag, else left out).

    Raises:
        ValueError: No run, or an unknown format.
    """
    s = statement(runs)
    renderers: dict[str, Callable[[Statement], str]] = {
        "text": render_text,
        "markdown": render_markdown,
        "latex": render_latex,
        MODEL_CARD: lambda st: model_card(st, training_type),
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return renderers[fmt](s)
