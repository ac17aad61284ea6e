"""Runs grouped by the scheduler job they ran in: one row per job (``co2cb compare --by-job``).

A run's job comes from its header's ``scheduler`` field (:func:`co2cb.core.scheduler.job_key`):
``CO2CB_JOB_ID``, the SLURM job (an array task on its own), or the Ray job in its session. A run
without one is a job by itself. A run resumed from a checkpoint (``resumed_from`` in its header) joins
the job of the run it resumed, when that run is among those given: a pre-empted job requeued under a new
scheduler id is still one training. Energy and CO2 are the runs' sums; the duration runs from the first
run's start to the last one's end.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from co2cb.core.scheduler import job_key
from co2cb.records.reader import RecordedRun, ordered_components
from co2cb.report.compare.table import FORMATS, text_table
from co2cb.units import format_duration, format_energy, format_mass


@dataclass(frozen=True)
class JobRow:
    """One job's figures: the sum of its runs'.

    Attributes:
        job: The job's key (``slurm:1234``), or ``run <name>`` for a run that names no job.
        runs: Names of its runs, in the order given.
        complete: Whether every run wrote its summary (else the totals are a lower bound).
        duration_s: From the first run's start to the last run's end, seconds.
        energy_kwh: Energy per component, kWh before PUE.
        total_kwh: Energy of all components, kWh before PUE.
        co2_kg: Emissions, kg CO2e (PUE included).
        co2_ratio: ``co2_kg`` over the first job's; None when the first job's is 0.
    """

    job: str
    runs: list[str]
    complete: bool
    duration_s: float
    energy_kwh: dict[str, float]
    total_kwh: float
    co2_kg: float
    co2_ratio: float | None


def job_rows(runs: Sequence[RecordedRun]) -> list[JobRow]:
    """One row per job, in the order of each job's first run; ratios are to the first job."""
    groups: dict[str, list[RecordedRun]] = {}
    by_id = {r.run_id: r for r in runs}
    for run in runs:
        groups.setdefault(_job_of(run, by_id), []).append(run)
    rows: list[JobRow] = []
    for job, members in groups.items():
        energy: dict[str, float] = {}
        for run in members:
            for component, kwh in run.energy_kwh.items():
                energy[component] = energy.get(component, 0.0) + kwh
        co2 = sum(r.co2_kg for r in members)
        first = rows[0].co2_kg if rows else co2
        rows.append(
            JobRow(
                job=job,
                runs=[r.name for r in members],
                complete=all(r.complete for r in members),
                duration_s=max(r.end_unix_s for r in members) - min(r.start_unix_s for r in members),
                energy_kwh=energy,
                total_kwh=sum(r.total_kwh for r in members),
                co2_kg=co2,
                co2_ratio=co2 / first if first > 0 else None,
            )
        )
    return rows


def _job_of(run: RecordedRun, by_id: dict[str, RecordedRun]) -> str:
    """The job of ``run``: that of the earliest run it resumes from (through every segment given), else its own."""
    seen = {run.run_id}
    while (link := run.resumed_from) is not None and link.get("run_id") in by_id and link["run_id"] not in seen:
        run = by_id[link["run_id"]]
        seen.add(run.run_id)
    return job_key(run.header.get("scheduler")) or f"run {run.name}"


def render_jobs(rows: Sequence[JobRow], fmt: str = "table") -> str:
    """The job rows in ``fmt`` (see :data:`co2cb.report.compare.table.FORMATS`; csv and json in kWh, kg, s).

    Raises:
        ValueError: An unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps({"jobs": [asdict(row) for row in rows]}, indent=2) + "\n"
    components = ordered_components(c for row in rows for c in row.energy_kwh)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        energy = [f"energy_{c}_kwh" for c in components]
        writer.writerow(["job", "runs", "complete", "duration_s", "energy_kwh", *energy, "co2_kg", "co2_ratio"])
        for row in rows:
            per_component = [row.energy_kwh.get(c, "") for c in components]
            ratio = "" if row.co2_ratio is None else row.co2_ratio
            writer.writerow(
                [
                    row.job,
                    " ".join(row.runs),
                    row.complete,
                    row.duration_s,
                    row.total_kwh,
                    *per_component,
                    row.co2_kg,
                    ratio,
                ]
            )
        return out.getvalue()
    headers = ["job", "runs", "duration", "energy", *components, "CO2e", "CO2e x first"]
    cells = [
        [
            row.job,
            str(len(row.runs)),
            format_duration(row.duration_s),
            format_energy(row.total_kwh),
            *[format_energy(row.energy_kwh[c]) if c in row.energy_kwh else "" for c in components],
            format_mass(row.co2_kg) + ("" if row.complete else " (lower bound)"),
            "n/a" if row.co2_ratio is None else f"{row.co2_ratio:.3g}x",
        ]
        for row in rows
    ]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    else:
        lines = text_table(headers, cells)
    return "\n".join(lines) + "\n"
