"""The comparison table: one row per recorded run, rendered as text, CSV, JSON or Markdown.

Every figure comes from the run records (see :mod:`co2cb.records.reader`); ratios are to the first run
given. Per-step and per-sample CO2 are the whole run's CO2 over its steps or samples, shown only
where the record counts them.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from co2cb.records.reader import RecordedRun, ordered_components
from co2cb.units import format_duration, format_energy, format_mass

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown")
LABEL_CHARS = 40


@dataclass(frozen=True)
class ComparisonRow:
    """One run's figures in the comparison.

    Attributes:
        label: A short name, unique among the runs compared (for tables and plot legends).
        name: The run's name.
        run_id: The run's id.
        path: The run folder.
        status: ``"completed"``, ``"failed: ..."``, or the incomplete status of a run without summary.
        complete: Whether the run wrote its summary (else its totals are a lower bound).
        duration_s: Wall-clock duration, seconds.
        energy_kwh: Energy per component, kWh before PUE.
        total_kwh: Energy of all components, kWh before PUE.
        co2_kg: Emissions, kg CO2e (PUE included).
        epochs: Number of epochs recorded.
        co2_per_epoch_kg: Mean CO2 of an epoch (training and its validation), kg CO2e; None without epochs.
        steps: Training steps counted, or None.
        co2_per_step_kg: ``co2_kg / steps``, kg CO2e; None when steps are unknown.
        samples: Training samples processed, or None.
        co2_per_sample_kg: ``co2_kg / samples``, kg CO2e; None when samples are unknown.
        final_metrics: Final value of each monitored metric.
        region: Region code of the carbon intensity.
        intensity_g_per_kwh: Energy-weighted carbon intensity used, gCO2e/kWh.
        pue: PUE applied.
        co2_ratio: ``co2_kg`` over the first run's; None when the first run's is 0.
        energy_ratio: ``total_kwh`` over the first run's; None when the first run's is 0.
    """

    label: str
    name: str
    run_id: str
    path: str
    status: str
    complete: bool
    duration_s: float
    energy_kwh: dict[str, float]
    total_kwh: float
    co2_kg: float
    epochs: int
    co2_per_epoch_kg: float | None
    steps: int | None
    co2_per_step_kg: float | None
    samples: int | None
    co2_per_sample_kg: float | None
    final_metrics: dict[str, float]
    region: str
    intensity_g_per_kwh: float
    pue: float
    co2_ratio: float | None
    energy_ratio: float | None


def run_labels(runs: Sequence[RecordedRun], max_chars: int = LABEL_CHARS) -> list[str]:
    """Short names for the runs, unique among them.

    Each run's name is cut to ``max_chars``, followed by its position in the comparison (``"mlp [2]"``)
    when another run has the same short name.
    """
    short = [r.name if len(r.name) <= max_chars else r.name[: max_chars - 1] + "…" for r in runs]
    return [f"{s} [{i + 1}]" if short.count(s) > 1 else s for i, s in enumerate(short)]


def _per(total: float, count: int | None) -> float | None:
    return total / count if count else None


def _ratio(value: float, first: float) -> float | None:
    return value / first if first > 0 else None


def comparison_rows(runs: Sequence[RecordedRun]) -> list[ComparisonRow]:
    """One row per run, in the order given; ratios are to the first run."""
    if not runs:
        return []
    first = runs[0]
    rows = []
    for run, label in zip(runs, run_labels(runs)):
        epochs = run.epochs
        provenance = run.provenance
        rows.append(
            ComparisonRow(
                label=label,
                name=run.name,
                run_id=run.run_id,
                path=str(run.path),
                status=run.status,
                complete=run.complete,
                duration_s=run.duration_s,
                energy_kwh=run.energy_kwh,
                total_kwh=run.total_kwh,
                co2_kg=run.co2_kg,
                epochs=len(epochs),
                co2_per_epoch_kg=_per(run.epochs_co2_kg, len(epochs)),
                steps=run.steps,
                co2_per_step_kg=_per(run.co2_kg, run.steps),
                samples=run.samples,
                co2_per_sample_kg=_per(run.co2_kg, run.samples),
                final_metrics=run.final_metrics,
                region=str(provenance.intensity.get("region", "?")),
                intensity_g_per_kwh=provenance.intensity_used_g_per_kwh,
                pue=provenance.pue,
                co2_ratio=_ratio(run.co2_kg, first.co2_kg),
                energy_ratio=_ratio(run.total_kwh, first.total_kwh),
            )
        )
    return rows


def _components(rows: Sequence[ComparisonRow]) -> list[str]:
    return ordered_components(c for row in rows for c in row.energy_kwh)


def _metrics(rows: Sequence[ComparisonRow]) -> list[str]:
    return sorted({m for row in rows for m in row.final_metrics})


def _optional(value: float | None, fmt: Any = format_mass) -> str:
    return "" if value is None else fmt(value)


def readable_cells(rows: Sequence[ComparisonRow]) -> tuple[list[str], list[list[str]]]:
    """Headers and cells with readable units; columns empty for every run are left out."""
    components = _components(rows)
    metrics = _metrics(rows)
    headers = [
        "run",
        "status",
        "duration",
        "energy",
        *components,
        "region",
        "gCO2e/kWh",
        "PUE",
        "CO2e",
        "CO2e/epoch",
        "CO2e/step",
        "CO2e/sample",
        *metrics,
        "CO2e x first",
    ]
    cells = []
    for row in rows:
        cells.append(
            [
                row.label,
                row.status if row.complete else "incomplete",
                format_duration(row.duration_s),
                format_energy(row.total_kwh),
                *[format_energy(row.energy_kwh[c]) if c in row.energy_kwh else "" for c in components],
                row.region,
                f"{row.intensity_g_per_kwh:.4g}",
                f"{row.pue:g}",
                format_mass(row.co2_kg) + ("" if row.complete else " (lower bound)"),
                _optional(row.co2_per_epoch_kg),
                _optional(row.co2_per_step_kg),
                _optional(row.co2_per_sample_kg),
                *[f"{row.final_metrics[m]:.4g}" if m in row.final_metrics else "" for m in metrics],
                "n/a" if row.co2_ratio is None else f"{row.co2_ratio:.3g}x",
            ]
        )
    keep = [i for i, h in enumerate(headers) if h in ("run", "status") or any(c[i] for c in cells)]
    return [headers[i] for i in keep], [[c[i] for i in keep] for c in cells]


def _csv_table(rows: Sequence[ComparisonRow]) -> tuple[list[str], list[list[Any]]]:
    """Headers (with units) and raw numbers."""
    components = _components(rows)
    metrics = _metrics(rows)
    headers = [
        "run",
        "run_id",
        "path",
        "status",
        "complete",
        "duration_s",
        "energy_kwh",
        *[f"energy_{c}_kwh" for c in components],
        "region",
        "intensity_g_per_kwh",
        "pue",
        "co2_kg",
        "epochs",
        "co2_per_epoch_kg",
        "steps",
        "co2_per_step_kg",
        "samples",
        "co2_per_sample_kg",
        *[f"metric:{m}" for m in metrics],
        "co2_ratio",
        "energy_ratio",
    ]
    table = [
        [
            row.name,
            row.run_id,
            row.path,
            row.status,
            row.complete,
            row.duration_s,
            row.total_kwh,
            *[row.energy_kwh.get(c) for c in components],
            row.region,
            row.intensity_g_per_kwh,
            row.pue,
            row.co2_kg,
            row.epochs,
            row.co2_per_epoch_kg,
            row.steps,
            row.co2_per_step_kg,
            row.samples,
            row.co2_per_sample_kg,
            *[row.final_metrics.get(m) for m in metrics],
            row.co2_ratio,
            row.energy_ratio,
        ]
        for row in rows
    ]
    return headers, table


def text_table(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    """Rows as text columns, each as wide as its widest cell, with a rule under the headers."""
    all_rows = [list(headers), *[list(c) for c in cells]]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in all_rows]
    return [lines[0], "  ".join("-" * w for w in widths), *lines[1:]]


def _markdown(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[str]:
    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    return [line(headers), "|" + "|".join("---" for _ in headers) + "|", *[line(c) for c in cells]]


def render(rows: Sequence[ComparisonRow], fmt: str = "table") -> str:
    """The rows in ``fmt``.

    ``table`` (aligned text), ``csv`` or ``json`` (raw numbers: kWh, kg CO2e, seconds) or ``markdown``.

    Raises:
        ValueError: An unknown format.
    """
    if fmt == "json":
        return json.dumps({"runs": [asdict(row) for row in rows]}, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        headers, table = _csv_table(rows)
        writer.writerow(headers)
        writer.writerows([["" if v is None else v for v in r] for r in table])
        return out.getvalue()
    if fmt not in ("table", "markdown"):
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    headers, cells = readable_cells(rows)
    lines = text_table(headers, cells) if fmt == "table" else _markdown(headers, cells)
    notes = [
        f"{row.label}: {row.status}; its totals are the sum of its closed windows, a lower bound"
        for row in rows
        if not row.complete
    ]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"
