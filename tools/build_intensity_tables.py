"""Regenerate the embedded carbon-intensity tables from the raw public files.

Usage::

    python -m tools.build_intensity_tables --shared /work/shared/data [--out DIR]

Reads the raw files described in ``shared/data/SOURCES.md`` and writes the
package's own tables (one per licence) under ``co2cb/intensity/data/``:

* ``countries_owid_ember.csv``: every ISO-coded country (latest year each) and WORLD; CC-BY-4.0.
* ``us_egrid2022.csv``: the 27 eGRID2022 subregions (CO2 only); public domain.
* ``zones_electricitymaps.csv``: sub-national zones (and countries OWID lacks), latest year each; ODbL-1.0.
* ``marginal_unfccc_ifi_2021.csv``: combined-margin factors per country or territory; CC-BY-SA-4.0.
* ``cloud_gcp_google.csv``: GCP regions with Google's latest yearly figure; Apache-2.0.
* ``aliases_cloud.csv``: AWS / Azure regions -> the grid row serving them; licence per row.
* ``aliases_subdivisions.csv``: ISO 3166-2 codes -> the grid row serving them; Apache-2.0 (co2cb).

All intensities are in gCO2e/kWh (eGRID: gCO2/kWh). Every row says its ``basis`` (``lifecycle``: Ember/OWID,
Electricity Maps, Google before 2021; ``operational``: Google from 2021, eGRID, the UNFCCC/IFI factors) and, in
``note``, what is doubtful about it: a value the source repeats for at least :data:`REPEATED_YEARS` years (a
placeholder or a modelled estimate, not a yearly figure), or another source used instead. A country whose
Ember/OWID figure is outside co2cb's plausible band (:data:`co2cb.intensity.base.PLAUSIBLE_G_PER_KWH`) takes
Electricity Maps' figure for the country where that one is inside it (Central African Republic: 0 -> 24,
Turkmenistan: 1306 -> 490); those rows move to ``zones_electricitymaps.csv`` (ODbL), with a note.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import tools.intensity_hand_tables as hand
from co2cb.intensity.base import PLAUSIBLE_G_PER_KWH

LB_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh

OWID_FILE = "country_intensity_owid_ember_2000_2024.csv"
MARGINAL_FILE = "country_marginal_unfccc_ifi_2021.csv"
EM_FILE = "zone_intensity_electricitymaps_2021_2025.csv"
EGRID_FILE = "us_egrid2022_subregion_co2_rate.csv"
GCP_FILE = "cloud_gcp_region_carbon_2019_2024.csv"
ECO2AI_FILE = "eco2ai_carbon_index_365.csv"
CCF_AWS_FILE = "cloud_region_grid_factors_ccf_aws.csv"
CCF_AZURE_FILE = "cloud_region_grid_factors_ccf_azure.csv"
MLCO2_FILE = "cloud_regions_mlco2_impact.csv"

SOURCE_OWID = "Ember/OWID"
SOURCE_EGRID = "U.S. EPA eGRID2022 (CO2 only, not CO2e)"
SOURCE_EM = "Electricity Maps yearly average, via CO2.js"
SOURCE_MARGINAL = "UNFCCC/IFI Harmonized Default Grid Factors 2021 v3.1 (combined margin, electricity consumption)"
SOURCE_GCP = "Google Cloud region carbon data"

LICENCE_OWID = "CC-BY-4.0"
LICENCE_EGRID = "Public domain (US Government work)"
LICENCE_EM = "ODbL-1.0"
LICENCE_MARGINAL = "CC-BY-SA-4.0"
LICENCE_GCP = "Apache-2.0"
LICENCE_CCF = "Apache-2.0"
LICENCE_MLCO2 = "MIT"
LICENCE_OWN = "Apache-2.0 (co2cb)"

GRID_COLUMNS = ["code", "name", "g_per_kwh", "year", "source", "kind", "licence", "basis", "note"]
LIFECYCLE, OPERATIONAL = "lifecycle", "operational"
REPEATED_YEARS = 5  # a value the source gives for this many years in a row, up to its latest, is flagged


def _plausible(value: float) -> bool:
    low, high = PLAUSIBLE_G_PER_KWH
    return low <= value <= high


def _repeated(years: dict[int, float], source: str) -> str:
    """A note when the latest value is the same for at least :data:`REPEATED_YEARS` years up to the latest."""
    latest = max(years)
    value, first = years[latest], latest
    while first - 1 in years and years[first - 1] == value:
        first -= 1
    if latest - first + 1 < REPEATED_YEARS:
        return ""
    years_said = f"every year {first}-{latest}"
    return f"{source} gives {_num(value)} gCO2e/kWh for {years_said}: a placeholder or estimate, not a yearly figure"


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        # Extra trailing fields (a stray comma in the CCF Azure file) land under the key None: dropped.
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in csv.DictReader(fh)]


def _write(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> int:
    rows = sorted(rows, key=lambda r: str(r["code"]))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _num(value: float) -> str:
    """A value rounded to 0.01, without trailing zeros."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def alpha3_to_alpha2(shared: Path) -> dict[str, str]:
    """ISO 3166-1 alpha-3 -> alpha-2, from the UNFCCC/IFI and Eco2AI files plus fixes."""
    mapping: dict[str, str] = {}
    eco = shared / ECO2AI_FILE
    if eco.is_file():
        for row in _read(eco):
            if row["region"] == "Whole country" and row["alpha_3_code"] and row["alpha_2_code"]:
                mapping[row["alpha_3_code"]] = row["alpha_2_code"]
    for row in _read(shared / MARGINAL_FILE):
        if row["iso3"] and row["iso2"]:
            mapping[row["iso3"]] = row["iso2"]
    mapping.update(hand.ALPHA3_FIXES)
    return mapping


def em_yearly(shared: Path) -> dict[str, dict[int, float]]:
    """Electricity Maps' yearly figures per zone."""
    years: dict[str, dict[int, float]] = {}
    for row in _read(shared / EM_FILE):
        if row["carbon_intensity_gco2eq_per_kwh"]:
            years.setdefault(row["zone_key"], {})[int(row["year"])] = float(row["carbon_intensity_gco2eq_per_kwh"])
    return years


def build_countries(shared: Path, a3: dict[str, str], em: dict[str, dict[int, float]]) -> list[dict[str, object]]:
    """Latest year per ISO-coded country (and Kosovo), plus the World aggregate.

    A country outside the plausible band whose Electricity Maps figure is inside it is left out here (with a
    ``replaced`` entry naming the figure it replaces): :func:`build_zones` adds that country's zone instead.
    """
    latest: dict[str, dict[str, str]] = {}
    years: dict[str, dict[int, float]] = {}
    for row in _read(shared / OWID_FILE):
        code = row["Code"]
        if not (len(code) == 3 or code in ("OWID_KOS", "OWID_WRL")):
            continue
        years.setdefault(code, {})[int(row["Year"])] = float(row["Carbon intensity of electricity - gCO2/kWh"])
        if code not in latest or int(row["Year"]) > int(latest[code]["Year"]):
            latest[code] = row
    out = []
    for a3code, row in latest.items():
        if a3code == "OWID_WRL":
            code = "WORLD"
        elif a3code in a3:
            code = a3[a3code]
        else:
            print(f"build_tables: no alpha-2 code for {a3code} ({row['Entity']}); skipped", file=sys.stderr)
            continue
        value = float(row["Carbon intensity of electricity - gCO2/kWh"])
        note = _repeated(years[a3code], SOURCE_OWID)
        em_latest = em.get(code, {})
        if not _plausible(value) and em_latest and _plausible(em_latest[max(em_latest)]):
            stretch = [y for y, v in years[a3code].items() if v == value]
            when = str(min(stretch)) if min(stretch) == max(stretch) else f"{min(stretch)}-{max(stretch)}"
            out.append({"code": code, "replaced": f"{_num(value)} gCO2e/kWh ({when})"})
            continue
        out.append(
            {
                "code": code,
                "alpha3": a3code,
                "name": row["Entity"],
                "g_per_kwh": _num(value),
                "year": row["Year"],
                "source": SOURCE_OWID,
                "kind": "average",
                "licence": LICENCE_OWID,
                "basis": LIFECYCLE,
                "note": note,
            }
        )
    return out


def build_egrid(shared: Path) -> list[dict[str, object]]:
    """The 27 eGRID2022 subregions, lb/MWh x 0.45359237 = g/kWh (CO2 only)."""
    out = []
    for row in _read(shared / EGRID_FILE):
        code = row["Region"]
        if code == "US":  # national average: the US country row already stands for it
            continue
        lb = float(row["CO2 total output emission rate (lb/MWh) by eGRID subregion 2022"])
        out.append(
            {
                "code": code,
                "name": f"eGRID {code} ({hand.EGRID_NAMES[code]})",
                "g_per_kwh": _num(lb * LB_PER_MWH_TO_G_PER_KWH),
                "year": row["Year"],
                "source": SOURCE_EGRID,
                "kind": "average",
                "licence": LICENCE_EGRID,
                "basis": OPERATIONAL,
                "note": "",
                "lb_per_mwh": row["CO2 total output emission rate (lb/MWh) by eGRID subregion 2022"],
            }
        )
    return out


def build_zones(
    shared: Path,
    country_codes: set[str],
    em: dict[str, dict[int, float]],
    replaced: dict[str, str],
    a3: dict[str, str] | None = None,
) -> list[dict[str, object]]:
    """Electricity Maps zones not already a country row: sub-national zones, missing countries, and the countries
    whose Ember/OWID figure is implausible (``replaced``: code -> the figure replaced)."""
    latest: dict[str, dict[str, str]] = {}
    for row in _read(shared / EM_FILE):
        key = row["zone_key"]
        if not row["carbon_intensity_gco2eq_per_kwh"]:
            continue
        if key not in latest or int(row["year"]) > int(latest[key]["year"]):
            latest[key] = row
    alpha3 = {a2: code for code, a2 in (a3 or {}).items() if len(code) == 3}
    out = []
    for key, row in latest.items():
        if "-" not in key and key in country_codes and key not in replaced:
            continue  # a country-level zone (FR, IN, VI...): the Ember/OWID row stands for it
        notes = [_repeated(em[key], "Electricity Maps")]
        if key in replaced:
            notes.insert(0, f"Electricity Maps' figure, used instead of Ember/OWID's implausible {replaced[key]}")
        country = key.split("-")[0]
        name = row["zone_name"]
        if row["country_name"] and "-" in key:
            name = f"{name}, {row['country_name']}"
        out.append(
            {
                "code": key,
                "alpha3": alpha3.get(key, "") if "-" not in key else "",
                "name": name,
                "country": country,
                "g_per_kwh": _num(float(row["carbon_intensity_gco2eq_per_kwh"])),
                "year": row["year"],
                "source": SOURCE_EM,
                "kind": "average",
                "licence": LICENCE_EM,
                "basis": LIFECYCLE,
                "note": "; ".join(n for n in notes if n),
            }
        )
    return out


def build_marginal(shared: Path) -> list[dict[str, object]]:
    """UNFCCC/IFI combined-margin factors for electricity consumption, one per country."""
    out = []
    for row in _read(shared / MARGINAL_FILE):
        name = row["country_or_territory"]
        code = hand.MARGINAL_NAME_FIXES.get(name, row["iso2"])
        if not code:
            print(f"build_tables: marginal row {name!r} has no region code; skipped", file=sys.stderr)
            continue
        out.append(
            {
                "code": code,
                "name": name,
                "g_per_kwh": _num(float(row["cm_electricity_consumption_gco2_per_kwh"])),
                "year": "2021",
                "source": SOURCE_MARGINAL,
                "kind": "marginal",
                "licence": LICENCE_MARGINAL,
                "basis": OPERATIONAL,
                "note": "",
            }
        )
    return out


def build_gcp(shared: Path, grids: dict[str, str]) -> list[dict[str, object]]:
    """GCP regions with Google's latest yearly grid figure."""
    latest: dict[str, dict[str, str]] = {}
    for row in _read(shared / GCP_FILE):
        region = row["gcp_region"]
        if not row["grid_carbon_intensity_gco2eq_per_kwh"]:
            continue
        if region not in latest or int(row["year"]) > int(latest[region]["year"]):
            latest[region] = row
    out = []
    for region, row in latest.items():
        grid = hand.GCP_GRID.get(region, "")
        if grid and grid not in grids:
            print(f"build_tables: GCP {region} grid {grid} is not a row; left blank", file=sys.stderr)
            grid = ""
        out.append(
            {
                "code": f"gcp:{region}",
                "name": f"Google Cloud {region} ({row['location']})",
                "g_per_kwh": _num(float(row["grid_carbon_intensity_gco2eq_per_kwh"])),
                "year": row["year"],
                "source": f"{SOURCE_GCP}, {row['intensity_basis']}",
                "kind": "average",
                "licence": LICENCE_GCP,
                "basis": OPERATIONAL if row["intensity_basis"].startswith(OPERATIONAL) else LIFECYCLE,
                "note": "",
                "country": grids.get(grid, ""),
                "grid": grid,
            }
        )
    return out


def _azure_key(name: str) -> str:
    return name.replace(" ", "").lower()


def build_cloud_aliases(shared: Path, grids: dict[str, str]) -> list[dict[str, object]]:
    """AWS and Azure regions -> the grid row that serves them."""
    in_ccf = {("aws", r["Region"]) for r in _read(shared / CCF_AWS_FILE)}
    in_ccf |= {("azure", _azure_key(r["Region"])) for r in _read(shared / CCF_AZURE_FILE)}
    in_mlco2 = {(r["provider"], r["region"]) for r in _read(shared / MLCO2_FILE)}
    tables = [
        ("aws", hand.AWS_REGIONS, False),
        ("aws", hand.AWS_REGIONS_HAND, True),
        ("azure", hand.AZURE_REGIONS, False),
        ("azure", hand.AZURE_REGIONS_HAND, True),
    ]
    out = []
    for provider, table, by_hand in tables:
        for region, (place, grid) in table.items():
            key = (provider, region)
            found = [name for name, present in (("ccf", key in in_ccf), ("mlco2", key in in_mlco2)) if present]
            if not by_hand and not found:
                print(f"build_tables: {provider}:{region} is in neither CCF nor mlco2", file=sys.stderr)
            if grid not in grids:
                print(f"build_tables: {provider}:{region} -> {grid}: no such grid row; skipped", file=sys.stderr)
                continue
            licences = [{"ccf": LICENCE_CCF, "mlco2": LICENCE_MLCO2}[name] for name in found] or [LICENCE_OWN]
            out.append(
                {
                    "code": f"{provider}:{region}",
                    "name": f"{provider.upper()} {region} ({place})",
                    "target": grid,
                    "via": f"{provider}:{region} is in {place} -> {grid}",
                    "basis": "+".join(found) if found else "hand",
                    "licence": " AND ".join(licences),
                }
            )
    return out


def build_subdivision_aliases(grids: dict[str, str]) -> list[dict[str, object]]:
    """ISO 3166-2 codes -> the grid row that serves them (hand tables)."""
    out = []
    for code, name, grid, via in hand.subdivision_aliases():
        if code in grids:
            continue  # already a grid row of its own (Electricity Maps zone key)
        if grid not in grids:
            print(f"build_tables: {code} -> {grid}: no such grid row; skipped", file=sys.stderr)
            continue
        out.append({"code": code, "name": name, "target": grid, "via": via, "licence": LICENCE_OWN})
    return out


def build(shared: Path, out_dir: Path) -> dict[str, int]:
    """Write every table; returns rows written per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    a3 = alpha3_to_alpha2(shared)
    em = em_yearly(shared)
    found = build_countries(shared, a3, em)
    replaced = {str(r["code"]): str(r["replaced"]) for r in found if "replaced" in r}
    countries = [r for r in found if "replaced" not in r]
    egrid = build_egrid(shared)
    zones = build_zones(shared, {str(r["code"]) for r in countries}, em, replaced, a3)
    grids: dict[str, str] = {str(r["code"]): str(r["code"]) for r in countries}
    grids.update({str(r["code"]): "US" for r in egrid})
    grids.update({str(r["code"]): str(r["country"]) for r in zones})
    counts = {
        "countries_owid_ember.csv": _write(
            out_dir / "countries_owid_ember.csv", ["code", "alpha3", *GRID_COLUMNS[1:]], countries
        ),
        "us_egrid2022.csv": _write(out_dir / "us_egrid2022.csv", [*GRID_COLUMNS, "lb_per_mwh"], egrid),
        "zones_electricitymaps.csv": _write(
            out_dir / "zones_electricitymaps.csv", ["code", "alpha3", "name", "country", *GRID_COLUMNS[2:]], zones
        ),
        "marginal_unfccc_ifi_2021.csv": _write(
            out_dir / "marginal_unfccc_ifi_2021.csv", GRID_COLUMNS, build_marginal(shared)
        ),
        "cloud_gcp_google.csv": _write(
            out_dir / "cloud_gcp_google.csv", [*GRID_COLUMNS, "country", "grid"], build_gcp(shared, grids)
        ),
        "aliases_cloud.csv": _write(
            out_dir / "aliases_cloud.csv",
            ["code", "name", "target", "via", "basis", "licence"],
            build_cloud_aliases(shared, grids),
        ),
        "aliases_subdivisions.csv": _write(
            out_dir / "aliases_subdivisions.csv",
            ["code", "name", "target", "via", "licence"],
            build_subdivision_aliases(grids),
        ),
    }
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True, help="folder with the raw files (see SOURCES.md)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "co2cb" / "intensity" / "data",
        help="output folder",
    )
    args = parser.parse_args(argv)
    for name, n in build(args.shared, args.out).items():
        print(f"{name}: {n} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
