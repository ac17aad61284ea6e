"""What-if: a recorded run's CO2 had it drawn the same energy from other grids.

The energy is the record's own (before PUE), as the one run loader
(:func:`co2cb.records.reader.load_run`) reads it: the summary's total, or, for a run that
never wrote its summary (killed), the sum of its outermost closed windows, a lower bound.
Each region's CO2 is ``energy x PUE x intensity``, compared
with the CO2 the run recorded. Patterson et al. (2022, "The Carbon Footprint of
Machine Learning Training Will Plateau, Then Shrink") put the gain from choosing a
clean region at 5 to 10 times for the same training energy.

Figures of two bases do not compare: an operational figure (Google's 2021+ region data, eGRID)
leaves out fuel supply and plant construction that a lifecycle one (Ember/OWID, Electricity Maps)
counts, so it reads lower for the same grid. A region whose figure is of another basis than the
run's gets no ratio, and a warning says why; a basis that is not known (a figure given by hand, an
older record) gets a ratio and a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from co2cb.intensity.database import caveat_of, lookup
from co2cb.intensity.tables import GridRow
from co2cb.records.reader import RecordedRun, RunFolderError, load_run
from co2cb.records.writer import RECORD_FILE

PATTERSON_2022 = (
    "Patterson et al. (2022, 'The Carbon Footprint of Machine Learning Training Will Plateau, Then Shrink', "
    "IEEE Computer) found that choosing the region of a cleaner grid cuts the CO2e of the same training "
    "5 to 10 times"
)


class WhatIfError(ValueError):
    """A folder that is not a readable co2cb run, or a run without energy to recompute."""


@dataclass(frozen=True)
class RunEnergy:
    """What a run record says about its energy and CO2.

    Attributes:
        folder: The run folder.
        run_id: Run id from the header.
        run_name: Run name (the run id when none was given).
        energy_kwh: Energy before PUE, kWh.
        co2_kg: CO2 the run recorded (with its PUE), kg CO2e.
        pue: PUE the run used.
        g_per_kwh: Energy-weighted intensity the run used, gCO2e/kWh.
        region: Region code the run recorded (``"user"`` for a number given by hand).
        region_name: Its name.
        source: Publisher of the run's intensity.
        year: Year of the run's intensity, or None.
        kind: ``"average"`` or ``"marginal"``.
        basis: ``"lifecycle"``, ``"operational"``, or ``""`` when the record does not say.
        complete: True when the summary was written (the run ended normally).
        energy_from: Where the energy figure comes from, in words (the loader's ``totals_from``).
        windows_used: Names of the windows summed (empty when the summary is used).
    """

    folder: str
    run_id: str
    run_name: str
    energy_kwh: float
    co2_kg: float
    pue: float
    g_per_kwh: float
    region: str
    region_name: str
    source: str
    year: int | None
    kind: str
    basis: str
    complete: bool
    energy_from: str
    windows_used: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RegionOutcome:
    """The run's CO2 for one other region.

    Attributes:
        query: The region as asked.
        region: Code of the grid row used.
        region_name: Its name.
        g_per_kwh: Its intensity, gCO2e/kWh.
        year: Year of that figure.
        source: Publisher of that figure.
        kind: ``"average"`` or ``"marginal"``.
        via: How the query led to the row (alias, cloud region...).
        pue: PUE used for this region.
        co2_kg: ``energy x pue x intensity``, kg CO2e.
        ratio: ``co2_kg / original co2_kg`` (None when the original is 0, or the figures' bases differ).
        saved_kg: ``original - co2_kg`` (negative: more CO2).
        basis: ``"lifecycle"`` or ``"operational"``.
        note: What is doubtful about the figure (see :func:`co2cb.intensity.database.caveat_of`), or ``""``.
    """

    query: str
    region: str
    region_name: str
    g_per_kwh: float
    year: int
    source: str
    kind: str
    via: str
    pue: float
    co2_kg: float
    ratio: float | None
    saved_kg: float
    basis: str = ""
    note: str = ""


@dataclass(frozen=True)
class WhatIf:
    """A run and its CO2 in other regions.

    Attributes:
        run: The run as recorded.
        outcomes: One per region asked, in the order asked.
        pue: PUE used for the outcomes.
        pue_from: ``"the record"`` or ``"--pue"``.
        note: Patterson et al. (2022)'s observation.
        warnings: Figures of another basis than the run's (no ratio), a basis not known, doubtful figures.
    """

    run: RunEnergy
    outcomes: list[RegionOutcome]
    pue: float
    pue_from: str
    note: str = PATTERSON_2022
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def run_energy(run: str | Path | RecordedRun) -> RunEnergy:
    """A recorded run's energy, CO2, PUE and intensity, as :func:`whatif` recomputes them.

    The run is read by the one loader, :func:`co2cb.records.reader.load_run`; its totals are
    :attr:`~co2cb.records.reader.RecordedRun.total_kwh` and ``co2_kg`` (a lower bound for a run
    killed before its summary, as :attr:`~co2cb.records.reader.RecordedRun.totals_from` says).

    Args:
        run: A run folder made by co2cb (or its ``run.jsonl``), or a run already loaded.

    Raises:
        WhatIfError: Not a readable run folder (the loader's message), or no energy recorded yet.
    """
    if not isinstance(run, RecordedRun):
        try:
            run = load_run(run)
        except RunFolderError as exc:
            raise WhatIfError(str(exc)) from None
    if not run.complete and not run.totals_windows:
        raise WhatIfError(
            f"{run.path / RECORD_FILE} has no summary and no closed window with valid times yet: no energy to recompute"
        )
    prov = run.provenance
    intensity = prov.intensity
    year = intensity.get("year")
    return RunEnergy(
        folder=str(run.path),
        run_id=run.run_id,
        run_name=run.name,
        energy_kwh=run.total_kwh,
        co2_kg=run.co2_kg,
        pue=prov.pue if prov.pue > 0 else 1.0,
        g_per_kwh=prov.intensity_used_g_per_kwh,
        region=str(intensity.get("region", "?")),
        region_name=str(intensity.get("region_name", "")),
        source=str(intensity.get("source", "")),
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        kind=str(intensity.get("kind", "average")),
        basis=str(intensity.get("basis") or ""),
        complete=run.complete,
        energy_from=run.totals_from,
        windows_used=run.totals_windows,
    )


def whatif(
    run: str | Path | RecordedRun, regions: Sequence[str], *, pue: float | None = None, marginal: bool = False
) -> WhatIf:
    """Recompute a recorded run's CO2 for other regions.

    Args:
        run: A run folder made by co2cb, or a run already loaded.
        regions: Region codes (``FR``, ``US-CA``, ``aws:eu-north-1``...), at least one.
        pue: PUE to use instead of the run's own (1.0 to 3.0).
        marginal: Use each region's marginal factor where there is one.

    Returns:
        The run and, per region, its CO2 (kg CO2e) and ratio to the recorded CO2.

    Raises:
        WhatIfError: See :func:`run_energy`; also no region given, or a PUE out of range.
        co2cb.intensity.UnknownRegionError: A region is in no table; the message names the nearest codes.
    """
    if not regions:
        raise WhatIfError("give at least one --region to compare with, e.g. --region FR --region aws:eu-north-1")
    if pue is not None and not (isinstance(pue, (int, float)) and 1.0 <= pue <= 3.0):
        raise WhatIfError(f"--pue {pue!r} is outside 1.0..3.0; give e.g. 1.1")
    energy = run_energy(run)
    found = [lookup(code, marginal=marginal) for code in regions]  # every region checked before any output
    use_pue = energy.pue if pue is None else float(pue)
    outcomes = []
    warnings = basis_warnings(energy, [hit.row for hit in found])
    for code, hit in zip(regions, found):
        row = hit.row
        co2 = energy.energy_kwh * use_pue * row.g_per_kwh / 1000.0
        same_basis = comparable(energy.basis, row.basis)
        ratio = co2 / energy.co2_kg if energy.co2_kg > 0 and same_basis else None
        note = caveat_of(row)
        if note:
            warnings.append(f"{row.code}: {note}")
        outcomes.append(
            RegionOutcome(
                code,
                row.code,
                row.name,
                row.g_per_kwh,
                row.year,
                row.source,
                row.kind,
                hit.via,
                use_pue,
                co2,
                ratio,
                energy.co2_kg - co2,
                row.basis,
                note,
            )
        )
    return WhatIf(energy, outcomes, use_pue, "the record" if pue is None else "--pue", warnings=warnings)


def comparable(a: str, b: str) -> bool:
    """Whether figures of bases ``a`` and ``b`` may be compared (the same, or one not known)."""
    return a == b or not a or not b


def basis_warnings(run: RunEnergy, rows: Sequence[GridRow]) -> list[str]:
    """What the comparison of the run's figure with ``rows`` cannot say, in words."""
    said: list[str] = []
    other = list(dict.fromkeys(r.code for r in rows if not comparable(run.basis, r.basis)))
    if other:
        said.append(
            f"no ratio for {', '.join(other)}: {'its' if len(other) == 1 else 'their'} figure is "
            f"{'operational' if run.basis == 'lifecycle' else 'lifecycle'} and the run's is {run.basis}; "
            "operational figures leave out fuel supply and plant construction, so they read lower for the same grid"
        )
    if not run.basis:
        said.append(
            "the run's intensity does not say whether it is a lifecycle or an operational figure (given by hand, or an "
            "older record): its ratios assume the same basis as each region's"
        )
    return said
