"""What-if: a recorded run's CO2 had it drawn the same energy from other grids.

The energy is the record's own (before PUE): the summary's ``energy_kwh.total``, or,
for a run that never wrote its summary (killed), the sum of its outermost closed
windows, a lower bound. Each region's CO2 is ``energy x PUE x intensity``, compared
with the CO2 the run recorded. Patterson et al. (2022, "The Carbon Footprint of
Machine Learning Training Will Plateau, Then Shrink") put the gain from choosing a
clean region at 5 to 10 times for the same training energy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from co2cb.intensity.database import lookup
from co2cb.records.reader import outermost_windows, read_records, window_totals
from co2cb.records.writer import RECORD_FILE, SCHEMA_VERSION

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
        run_name: Run name from the header.
        energy_kwh: Energy before PUE, kWh.
        co2_kg: CO2 the run recorded (with its PUE), kg CO2e.
        pue: PUE the run used.
        g_per_kwh: Energy-weighted intensity the run used, gCO2e/kWh.
        region: Region code the run recorded (``"user"`` for a number given by hand).
        region_name: Its name.
        source: Publisher of the run's intensity.
        year: Year of the run's intensity, or None.
        kind: ``"average"`` or ``"marginal"``.
        complete: True when the summary was written (the run ended normally).
        energy_from: Where the energy figure comes from, in words.
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
        ratio: ``co2_kg / original co2_kg`` (None when the original is 0).
        saved_kg: ``original - co2_kg`` (negative: more CO2).
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


@dataclass(frozen=True)
class WhatIf:
    """A run and its CO2 in other regions.

    Attributes:
        run: The run as recorded.
        outcomes: One per region asked, in the order asked.
        pue: PUE used for the outcomes.
        pue_from: ``"the record"`` or ``"--pue"``.
        note: Patterson et al. (2022)'s observation.
    """

    run: RunEnergy
    outcomes: list[RegionOutcome]
    pue: float
    pue_from: str
    note: str = PATTERSON_2022

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _record_path(folder: str | Path) -> Path:
    path = Path(folder)
    if path.is_file() and path.name == RECORD_FILE:
        return path.parent
    if path.is_dir() and not (path / RECORD_FILE).is_file():
        runs = sorted(p.name for p in path.iterdir() if (p / RECORD_FILE).is_file())
        if runs:
            shown = ", ".join(runs[-5:])
            raise WhatIfError(
                f"{folder} holds {len(runs)} run folder{'s' if len(runs) > 1 else ''} but is not one; name one, e.g. "
                f"{path / runs[-1]} (latest: {shown})"
            )
    return path


def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return default
    return float(value)


def _total(line: dict[str, Any], key: str) -> float:
    energy = line.get(key)
    return _number(energy.get("total")) if isinstance(energy, dict) else 0.0


def load_run(folder: str | Path) -> RunEnergy:
    """Read a run folder's energy, CO2, PUE and intensity.

    Args:
        folder: A run folder made by co2cb (or its ``run.jsonl``).

    Raises:
        WhatIfError: Not a run folder, a record from a newer co2cb, unreadable, or no energy recorded yet.
    """
    path = _record_path(folder)
    try:
        lines = read_records(path)
    except FileNotFoundError:
        raise WhatIfError(f"{folder} is not a co2cb run folder (no {RECORD_FILE} in it)") from None
    except ValueError as exc:  # a newer schema, or a line that is not JSON
        raise WhatIfError(str(exc)) from None
    except OSError as exc:
        raise WhatIfError(f"cannot read {folder}: {exc}") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("type") != "header":
        raise WhatIfError(f"{path / RECORD_FILE} is not a co2cb run record (its first line is not a header)")
    header = lines[0]
    schema = header.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema > SCHEMA_VERSION:
        raise WhatIfError(
            f"{path / RECORD_FILE} has record schema {schema!r}; this co2cb reads schema "
            f"{SCHEMA_VERSION}: upgrade co2cb"
        )
    summaries = [x for x in lines if isinstance(x, dict) and x.get("type") == "summary"]
    windows = [x for x in lines if isinstance(x, dict) and x.get("type") == "window"]
    intensity = header.get("intensity") if isinstance(header.get("intensity"), dict) else {}
    used: list[str] = []
    if summaries:
        summary = summaries[-1]
        energy, co2 = _total(summary, "energy_kwh"), _number(summary.get("co2_kg"))
        pue = _number(summary.get("pue"), _number(header.get("pue"), 1.0))
        g = _number(summary.get("intensity_g_per_kwh"), _number(intensity.get("g_per_kwh")))
        energy_from = "the summary's energy_kwh.total"
    elif windows:
        chosen, skipped = outermost_windows(windows)
        if not chosen:
            raise WhatIfError(f"{path / RECORD_FILE} has no summary and no window with valid times")
        totals = [window_totals(w) for w in chosen]  # an adapter's epoch with its validation added back
        energy = sum(sum(e.values()) for e, _ in totals)
        co2 = sum(c for _, c in totals)
        pue = _number(header.get("pue"), 1.0)
        g = co2 * 1000.0 / (energy * pue) if energy > 0 and pue > 0 else _number(intensity.get("g_per_kwh"))
        used = [str(w.get("name", "?")) for w in chosen]
        energy_from = (
            f"no summary (the run did not end normally): the sum of its {len(chosen)} outermost "
            "closed windows, a lower bound (energy outside them is not in the record)"
        )
        if skipped:
            energy_from += f"; {skipped} window(s) overlapping those were left out"
    else:
        raise WhatIfError(f"{path / RECORD_FILE} has no closed window and no summary yet: no energy to recompute")
    if pue <= 0:
        pue = 1.0
    year = intensity.get("year")
    return RunEnergy(
        folder=str(path),
        run_id=str(header.get("run_id", path.name)),
        run_name=str(header.get("run_name", "")),
        energy_kwh=energy,
        co2_kg=co2,
        pue=pue,
        g_per_kwh=g,
        region=str(intensity.get("region", "?")),
        region_name=str(intensity.get("region_name", "")),
        source=str(intensity.get("source", "")),
        year=year if isinstance(year, int) and not isinstance(year, bool) else None,
        kind=str(intensity.get("kind", "average")),
        complete=bool(summaries),
        energy_from=energy_from,
        windows_used=used,
    )


def whatif(folder: str | Path, regions: Sequence[str], *, pue: float | None = None, marginal: bool = False) -> WhatIf:
    """Recompute a recorded run's CO2 for other regions.

    Args:
        folder: A run folder made by co2cb.
        regions: Region codes (``FR``, ``US-CA``, ``aws:eu-north-1``...), at least one.
        pue: PUE to use instead of the run's own (1.0 to 3.0).
        marginal: Use each region's marginal factor where there is one.

    Returns:
        The run and, per region, its CO2 (kg CO2e) and ratio to the recorded CO2.

    Raises:
        WhatIfError: See :func:`load_run`; also no region given, or a PUE out of range.
        co2cb.intensity.UnknownRegionError: A region is in no table; the message names the nearest codes.
    """
    if not regions:
        raise WhatIfError("give at least one --region to compare with, e.g. --region FR --region aws:eu-north-1")
    if pue is not None and not (isinstance(pue, (int, float)) and 1.0 <= pue <= 3.0):
        raise WhatIfError(f"--pue {pue!r} is outside 1.0..3.0; give e.g. 1.1")
    run = load_run(folder)
    found = [lookup(code, marginal=marginal) for code in regions]  # every region checked before any output
    use_pue = run.pue if pue is None else float(pue)
    outcomes = []
    for code, hit in zip(regions, found):
        row = hit.row
        co2 = run.energy_kwh * use_pue * row.g_per_kwh / 1000.0
        ratio = co2 / run.co2_kg if run.co2_kg > 0 else None
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
                run.co2_kg - co2,
            )
        )
    return WhatIf(run, outcomes, use_pue, "the record" if pue is None else "--pue")
