"""The HTML report: one self-contained file a person who has never seen co2cb can read.

For the runs given: the comparison table and figure; then, per run, its totals and how they were
computed, its per-epoch table, where every figure comes from (measured or estimated, the
intensity's source and year, the region and how it was chosen, the PUE), everyday equivalents
with their published sources, and what the same energy would have emitted on the cleanest grids
of its cloud provider (or of all three providers). Images are embedded as data URIs; no CSS or script is
fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from co2cb._version import __version__
from co2cb.planning.whatif import PATTERSON_2022
from co2cb.records.reader import RecordedRun
from co2cb.report.compare import html
from co2cb.report.compare.cleanest import cleanest_regions
from co2cb.report.compare.equivalents import EQUIVALENTS, equivalents
from co2cb.report.compare.plot import PlotUnavailableError, figure_png
from co2cb.report.compare.quality import Metric, choose_metric
from co2cb.report.compare.table import comparison_rows, readable_cells, run_labels
from co2cb.units import format_duration, format_energy, format_mass

log = logging.getLogger(__name__)

PROVENANCE_WORDS = {
    "measured-counter": "measured by an energy counter (such as NVIDIA NVML or Intel/AMD RAPL)",
    "sampled-power": "measured: power readings sampled and integrated over time",
    "estimate": "estimated from a power model (no energy counter was readable)",
}
HOW_TO_READ = (
    "CO2e (carbon dioxide equivalent) is the warming effect of the greenhouse gases emitted to produce the "
    "electricity a run used. co2cb measures or estimates the energy of each component (GPU, CPU, RAM), "
    "multiplies it by the data centre's PUE (power usage effectiveness: its total energy over its IT energy) "
    "and by the carbon intensity of the grid (grams of CO2e per kWh). Units: J = joules, Wh/kWh = watt-hours/"
    "kilowatt-hours, µg/mg/g/kg = micrograms to kilograms of CO2e."
)


def _utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _overview(runs: Sequence[RecordedRun], metric: Metric | None) -> str:
    headers, cells = readable_cells(comparison_rows(runs))
    parts = [
        f"<h2>Totals</h2>{html.table(headers, cells, numeric=range(2, len(headers)))}",
        '<p class="note">"CO2e x first" is each run\'s CO2e over the first run\'s. Per-step CO2e is the whole '
        "run's CO2e over its training steps. Metric columns hold the final value each run recorded.</p>",
    ]
    try:
        image = html.png_image(
            figure_png(runs, metric),
            "Cumulative CO2e by epoch and over time, totals by "
            "component, and CO2e against the quality metric, for each run",
        )
        parts.append(f"<h2>Figures</h2>{image}")
    except PlotUnavailableError as exc:
        log.warning("co2cb: the report has no figures: %s", exc)
        parts.append(f'<h2>Figures</h2><p class="warn">No figures: {html.text(exc)}.</p>')
    return "".join(parts)


def _totals(run: RecordedRun) -> str:
    p = run.provenance
    energy = run.energy_kwh
    rows = [
        [c.upper(), format_energy(energy[c]), p.component_words(c), format_mass(run.co2_by_component()[c])]
        for c in run.components
    ]
    rows.append(["all", format_energy(run.total_kwh), "", format_mass(run.co2_kg)])
    formula = (
        f"{format_energy(run.total_kwh)} x PUE {p.pue:g} x {p.intensity_used_g_per_kwh:.4g} gCO2e/kWh "
        f"= {format_mass(run.co2_kg)} CO2e"
    )
    parts = [
        html.table(["component", "energy", "how", "CO2e (share of energy)"], rows, numeric=(1, 3)),
        f"<p>{html.text(formula)}.</p>",
    ]
    if not run.complete:
        parts.append(f'<p class="warn">Incomplete run, {html.text(run.totals_from)}.</p>')
    if run.resumed_from is not None:
        parts.append(f'<p class="note">{html.text(_segment_note(run))}</p>')
    return "".join(parts)


def _segment_note(run: RecordedRun) -> str:
    """What a run resumed from a checkpoint holds: this segment alone, and the whole path's total if recorded."""
    link = run.resumed_from or {}
    whole = run.resumed_total or {}
    said = (
        f"Resumed from run {link.get('run_id')} after {run.epochs_before} epoch(s): the figures here are this segment's"
    )
    if isinstance(whole.get("co2_kg"), (int, float)):
        said += f"; the run's checkpointed path so far is {format_mass(whole['co2_kg'])} CO2e (resumed_total)"
    return said + "."


def _epochs(run: RecordedRun) -> str:
    if not run.epochs:
        return (
            '<p class="note">No epochs recorded (a run measured with <code>co2cb run</code> has only its '
            "total; the Lightning, Hugging Face and Keras adapters record every epoch).</p>"
        )
    components = run.components
    rows = []
    cumulative = 0.0
    for epoch in run.epochs:
        cumulative += epoch.co2_kg
        rows.append(
            [
                str(epoch.index),
                format_duration(epoch.seconds),
                format_energy(epoch.total_kwh),
                *[format_energy(epoch.energy_kwh.get(c, 0.0)) for c in components],
                format_energy(epoch.validation_kwh) if epoch.validation_kwh else "",
                format_mass(epoch.co2_kg),
                format_mass(cumulative),
            ]
        )
    headers = [
        "epoch",
        "duration",
        "energy",
        *[c.upper() for c in components],
        "of which validation",
        "CO2e",
        "cumulative CO2e" + (", this segment" if run.resumed_from is not None else ""),
    ]
    outside = run.co2_kg - run.epochs_co2_kg
    note = (
        f"Time outside the epochs (start-up, teardown) emitted {format_mass(outside)} CO2e, counted in the "
        "run's total only."
        if outside > 1e-6 * run.co2_kg and run.complete
        else ""
    )
    return html.table(headers, rows, numeric=range(1, len(headers))) + (f'<p class="note">{note}</p>' if note else "")


def _provenance(run: RecordedRun) -> str:
    p = run.provenance
    choices = {str(c.get("component")): str(c.get("reason", "")) for c in p.meter_choices}
    pairs = []
    for component in run.components:
        kinds = [PROVENANCE_WORDS.get(k, k) for k in p.components.get(component, "?").split("+")]
        meters = [str(m.get("name")) for m in p.meters if m.get("component") == component]
        detail = "; ".join(x for x in (f"meters: {', '.join(meters)}" if meters else "", choices.get(component)) if x)
        pairs.append(
            (
                f"{component.upper()} energy",
                html.text("; ".join(kinds)) + (f'<br><span class="note">{html.text(detail)}</span>' if detail else ""),
            )
        )
    i = p.intensity
    year = i.get("year") or "no year (a value given by the user or a live feed)"
    intensity = (
        f"{p.intensity_used_g_per_kwh:.4g} gCO2e/kWh ({i.get('kind', 'average')}); source: "
        f"{i.get('source', '?')}, {year}"
    )
    region = f"{i.get('region', '?')} ({i.get('region_name', '')}); chosen because: {i.get('reason', '?')}"
    pairs += [
        ("Carbon intensity", html.text(intensity)),
        (
            "Region",
            html.text(region) + (' <strong class="warn">This region is a guess.</strong>' if p.region_guessed else ""),
        ),
    ]
    pue = p.pue_info
    pue_text = html.text(
        f"{p.pue:g}; source: {pue.get('source', '?')}"
        + (f", {pue['year']}" if pue.get("year") else "")
        + f"; why: {pue.get('reason', '?')}"
    )
    if pue.get("url"):
        pue_text += " (" + html.link(str(pue["url"]), str(pue["url"])) + ")"
    pairs.append(("PUE", pue_text))
    pairs.append(("Totals", html.text(f"taken from {run.totals_from}" if run.complete else run.totals_from)))
    notes = [str(n) for n in (run.summary or {}).get("intensity_notes") or []]
    notes += [
        f"meter {x.get('meter')} lost at {x.get('at')}: {x.get('error')}"
        for x in (run.summary or {}).get("meter_losses") or []
        if isinstance(x, dict)
    ]
    if notes:
        pairs.append(("Notes", "<br>".join(html.text(n) for n in notes)))
    return html.definitions(pairs)


def _equivalents(run: RecordedRun) -> str:
    rows = [
        [html.text(amount), html.text(e.published), html.link(e.url, f"{e.source} ({e.year})"), html.text(e.conversion)]
        for e, amount in equivalents(run.co2_kg)
    ]
    return (
        f"<p>{html.text(format_mass(run.co2_kg))} CO2e is about as much as:</p>"
        + html.table(["equivalent", "factor as published", "source", "conversion by co2cb"], rows, raw=True)
        + '<p class="note">For scale only: these factors describe U.S. averages.</p>'
    )


def _cleanest(run: RecordedRun) -> str:
    found = cleanest_regions(run)
    if found.result is None:
        return f'<p class="note">Not computed: {html.text(found.problem)}.</p>'
    result = found.result
    recorded = result.run
    rows = [
        [
            o.query,
            o.region_name,
            f"{o.g_per_kwh:g}",
            f"{o.source}, {o.year}",
            o.basis,
            format_mass(o.co2_kg),
            "n/a" if o.ratio is None else f"{o.ratio:.3g}x",
        ]
        for o in result.outcomes
    ]
    lead = (
        f"The same energy ({format_energy(recorded.energy_kwh)}, PUE {result.pue:g}) on the cleanest grids of "
        f"the {found.scope} ({found.why}); as recorded: {format_mass(recorded.co2_kg)} CO2e at "
        f"{recorded.g_per_kwh:.4g} gCO2e/kWh."
    )
    return (
        f"<p>{html.text(lead)}</p>"
        + html.table(
            ["region", "grid", "gCO2e/kWh", "source, year", "basis", "CO2e", "x recorded"], rows, numeric=(2, 5, 6)
        )
        + "".join(f'<p class="note">Warning: {html.text(w)}.</p>' for w in result.warnings)
        + f'<p class="note">Yearly average intensities; a clean grid does not mean capacity is available there. '
        f"{html.text(PATTERSON_2022)}.</p>"
    )


def _run_section(index: int, run: RecordedRun, label: str) -> str:
    facts = [
        ("Folder", f"<code>{html.text(run.path)}</code>"),
        ("Run id", html.text(run.run_id)),
        ("Status", html.text(run.status)),
        ("Started", html.text(_utc(run.start_unix_s))),
        ("Duration", html.text(format_duration(run.duration_s))),
    ]
    if run.tags:
        facts.append(("Tags", html.text(", ".join(f"{k}={v}" for k, v in run.tags.items()))))
    if run.final_metrics:
        facts.append(("Final metrics", html.text(", ".join(f"{k} = {v:.4g}" for k, v in run.final_metrics.items()))))
    return (
        f'<h2 id="run-{index}">Run {index + 1}: {html.text(label)}</h2>{html.definitions(facts)}'
        f"<h3>Totals</h3>{_totals(run)}<h3>Per epoch</h3>{_epochs(run)}"
        f"<h3>Where the figures come from</h3>{_provenance(run)}"
        f"<h3>Everyday equivalents</h3>{_equivalents(run)}"
        f"<h3>On the cleanest grids</h3>{_cleanest(run)}"
    )


def _sources() -> str:
    items = "".join(
        f"<li>{html.text(e.label)}: {html.text(e.published)}; "
        f"{html.link(e.url, e.source)} "
        f"({e.year}); {html.text(e.conversion)}.</li>"
        for e in EQUIVALENTS
    )
    return f"<h2>Sources of the equivalents</h2><ul>{items}</ul>"


def render_report(runs: Sequence[RecordedRun], metric: Metric | None = None) -> str:
    """The report as an HTML string (see the module docstring).

    Raises:
        ValueError: No run given.
    """
    if not runs:
        raise ValueError("no run to report on")
    metric = metric if metric is not None else choose_metric(runs)
    labels = run_labels(runs)
    title = f"Energy and CO2e of {len(runs)} run{'s' if len(runs) > 1 else ''}"
    contents = "".join(f'<li><a href="#run-{i}">{html.text(label)}</a></li>' for i, label in enumerate(labels))
    quality = (
        f"Quality metric: final {metric.name} ({metric.direction})."
        if metric is not None
        else "No run recorded a quality metric."
    )
    now = datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"<h1>{html.text(title)}</h1>"
        f'<p class="note">Report made by co2cb {html.text(__version__)} on {html.text(now)} from the run folders '
        f"below. {html.text(quality)}</p><p>{html.text(HOW_TO_READ)}</p><ul>{contents}</ul>"
        + _overview(runs, metric)
        + "".join(_run_section(i, run, label) for i, (run, label) in enumerate(zip(runs, labels)))
        + _sources()
    )
    return html.page(title, body)


def write_report(runs: Sequence[RecordedRun], path: str | Path, metric: Metric | None = None) -> Path:
    """Write the HTML report to ``path``; returns the path.

    Without matplotlib the report has no figures (a warning is logged and the page says how to get them).

    Raises:
        ValueError: No run given.
        OSError: The file cannot be written.
    """
    target = Path(path)
    target.write_text(render_report(runs, metric), encoding="utf-8")
    return target
