"""The embedded carbon-intensity database: rows, counts, lookups, search.

Expected values are cross-checked against the raw files in the shared data
folder (``CO2CB_SHARED_DATA``, default ``/work/shared/data``) when it exists;
those cross-checks are skipped without it, the rest still runs.
"""

from __future__ import annotations

import csv
import io
import os
from importlib import resources
from pathlib import Path

import pytest

from co2cb.intensity import database as db
from co2cb.intensity.base import FixedIntensity, IntensityInfo
from co2cb.intensity.database import (
    UnknownRegionError,
    count_by_table,
    count_grids,
    lookup,
    rows,
    search,
    to_intensity_info,
)
from co2cb.intensity.tables import ALIAS_FILES, TABLE_FILES, validate_row

SHARED = Path(os.environ.get("CO2CB_SHARED_DATA", "/work/shared/data"))
HAVE_SHARED = (SHARED / "country_intensity_owid_ember_2000_2024.csv").is_file()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=f"raw data folder {SHARED} is absent")

EXPECTED_LICENCE = {
    "countries": "CC-BY-4.0",
    "egrid": "Public domain (US Government work)",
    "zones": "ODbL-1.0",
    "marginal": "CC-BY-SA-4.0",
    "gcp": "Apache-2.0",
}


# -- raw files, read directly -------------------------------------------------------------


def _raw(name: str) -> list[dict[str, str]]:
    with (SHARED / name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _latest(records: list[dict[str, str]], key: str, value: str, match: str, year: str = "year") -> tuple[int, float]:
    found = [r for r in records if r[key] == match and r[value]]
    best = max(found, key=lambda r: int(r[year]))
    return int(best[year]), float(best[value])


def owid_latest(code3: str) -> tuple[int, float]:
    return _latest(
        _raw("country_intensity_owid_ember_2000_2024.csv"),
        "Code",
        "Carbon intensity of electricity - gCO2/kWh",
        code3,
        "Year",
    )


def em_latest(zone: str) -> tuple[int, float]:
    return _latest(
        _raw("zone_intensity_electricitymaps_2021_2025.csv"), "zone_key", "carbon_intensity_gco2eq_per_kwh", zone
    )


def gcp_latest(region: str) -> tuple[int, float]:
    return _latest(
        _raw("cloud_gcp_region_carbon_2019_2024.csv"), "gcp_region", "grid_carbon_intensity_gco2eq_per_kwh", region
    )


def egrid_lb_per_mwh(code: str) -> float:
    for row in _raw("us_egrid2022_subregion_co2_rate.csv"):
        if row["Region"] == code:
            return float(row[" CO2 total output emission rate (lb/MWh) by eGRID subregion 2022"])
    raise KeyError(code)


def marginal_raw(iso2: str) -> float:
    for row in _raw("country_marginal_unfccc_ifi_2021.csv"):
        if row["iso2"] == iso2:
            return float(row["cm_electricity_consumption_gco2_per_kwh"])
    raise KeyError(iso2)


# -- every row ----------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLE_FILES))
def test_every_row_is_valid(table: str) -> None:
    table_rows = rows(table)
    assert table_rows
    for row in table_rows:
        assert validate_row(row) == [], row
        assert 0 <= row.g_per_kwh <= 1500
        assert 2000 <= row.year <= 2026
        assert row.source and row.name and row.code
        assert row.kind == ("marginal" if table == "marginal" else "average")
        assert row.licence == EXPECTED_LICENCE[table]
    codes = [row.code.upper() for row in table_rows]
    assert len(codes) == len(set(codes)), "duplicate codes"


@pytest.mark.parametrize("name", [*TABLE_FILES.values(), *ALIAS_FILES.values()])
def test_every_embedded_file_names_its_licence(name: str) -> None:
    text = (resources.files("co2cb.intensity") / "data" / name).read_text(encoding="utf-8")
    records = list(csv.DictReader(io.StringIO(text)))
    assert records
    assert all(r["licence"] for r in records)


def test_share_alike_tables_are_separate_files() -> None:
    licences = {name: {r.licence for r in rows(table)} for table, name in TABLE_FILES.items()}
    assert licences["zones_electricitymaps.csv"] == {"ODbL-1.0"}
    assert licences["marginal_unfccc_ifi_2021.csv"] == {"CC-BY-SA-4.0"}
    for name, found in licences.items():
        if name not in ("zones_electricitymaps.csv", "marginal_unfccc_ifi_2021.csv"):
            assert not found & {"ODbL-1.0", "CC-BY-SA-4.0"}


def test_aliases_point_at_grid_rows_and_do_not_shadow_them() -> None:
    base = db.database()
    assert len(base.aliases) > 300
    for key, alias in base.aliases.items():
        assert alias.target.upper() in base.grids, alias
        assert key not in base.grids, f"alias {alias.code} shadows a grid row"
        assert alias.via


# -- counts -------------------------------------------------------------------------------


def test_count_grids_exceeds_365_and_counts_only_own_values() -> None:
    counts = count_by_table()
    assert counts["countries"] == 213  # 213 ISO-coded + Kosovo + WORLD, less CF and TM (Electricity Maps zones)
    assert counts["egrid"] == 27
    assert counts["zones"] >= 147 + 2
    assert count_grids() == counts["countries"] + counts["egrid"] + counts["zones"]
    assert count_grids() > 365
    assert counts["gcp"] >= 40 and counts["marginal"] >= 220
    assert sum(1 for r in rows("zones") if "-" in r.code) == 147  # the sub-national zones


def test_world_row_exists() -> None:
    world = lookup("WORLD").row
    assert world.code == "WORLD" and world.source == "Ember/OWID"


@needs_shared
def test_country_table_covers_every_iso_coded_owid_country() -> None:
    codes = {r["Code"] for r in _raw("country_intensity_owid_ember_2000_2024.csv") if len(r["Code"]) == 3}
    assert len(codes) == 213
    alpha3 = db.database().alpha3
    assert codes <= set(alpha3)


@needs_shared
def test_all_egrid_subregions_present() -> None:
    codes = {r["Region"] for r in _raw("us_egrid2022_subregion_co2_rate.csv")} - {"US"}
    assert codes == {r.code for r in rows("egrid")}


@needs_shared
def test_all_subnational_zones_present_with_latest_year() -> None:
    raw = _raw("zone_intensity_electricitymaps_2021_2025.csv")
    sub = {r["zone_key"] for r in raw if "-" in r["zone_key"]}
    assert len(sub) == 147
    zones = {r.code: r for r in rows("zones")}
    assert sub <= set(zones)
    for key in ("US-CAL-CISO", "IN-SO", "AU-NSW", "SE-SE3", "JP-TK", "BR-CS", "IT-NO"):
        year, value = em_latest(key)
        assert (zones[key].year, zones[key].g_per_kwh) == (year, pytest.approx(value, abs=0.01))


# -- lookups of each code form -------------------------------------------------------------


def test_alpha2_and_alpha3() -> None:
    two, three = lookup("FR"), lookup("FRA")
    assert two.row == three.row and two.row.code == "FR"
    assert two.via == "" and three.via == "alpha-3 FRA -> FR"
    assert two.row.source == "Ember/OWID" and two.row.kind == "average"


@needs_shared
@pytest.mark.parametrize(
    ("code", "code3"),
    [
        ("FR", "FRA"),
        ("US", "USA"),
        ("IN", "IND"),
        ("DE", "DEU"),
        ("WORLD", "OWID_WRL"),
        ("XK", "OWID_KOS"),
        ("KY", "CYM"),
    ],
)
def test_country_values_match_owid(code: str, code3: str) -> None:
    year, value = owid_latest(code3)
    row = lookup(code).row
    assert row.year == year
    assert row.g_per_kwh == pytest.approx(value, abs=0.01)


def test_iso_3166_2_state_resolves_to_the_serving_grid() -> None:
    found = lookup("US-CA")
    assert found.row.code == "US-CAL-CISO"
    assert found.via == "US-CA is served mainly by the CAISO balancing authority (US-CAL-CISO)"
    assert lookup("US-TX").row.code == "US-TEX-ERCO"
    assert lookup("US-FL").row.code == "FRCC"  # split state: eGRID subregion
    assert lookup("IN-MH").row.code == "IN-WE"
    assert lookup("JP-27").row.code == "JP-KN"  # Ōsaka
    assert lookup("AU-ACT").row.code == "AU-NSW"


def test_every_us_state_and_dc_resolves() -> None:
    states = [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
    ]
    assert len(states) == 51
    for st in states:
        found = lookup(f"US-{st}")
        assert found.row.code != "US", st
        if found.row.code == f"US-{st}":  # Alaska and Hawaii are Electricity Maps zones of their own
            continue
        assert found.via.startswith(f"US-{st} is served mainly by"), found.via


@needs_shared
def test_province_and_zone_keys_match_electricity_maps() -> None:
    for code in ("CA-QC", "AU-NSW", "US-CAL-CISO", "IN-SO"):
        year, value = em_latest(code)
        row = lookup(code).row
        assert (row.code, row.year) == (code, year)
        assert row.g_per_kwh == pytest.approx(value, abs=0.01)
        assert row.licence == "ODbL-1.0"


def test_unknown_subdivision_of_other_countries_falls_back_to_the_nation() -> None:
    found = lookup("DE-BY")
    assert found.row.code == "DE"
    assert "national grid DE" in found.via


def test_unknown_subdivision_of_a_complete_country_raises() -> None:
    with pytest.raises(UnknownRegionError):
        lookup("US-ZZ")


@pytest.mark.parametrize("code", ["CAMX", "egrid:CAMX", "EGRID:camx"])
def test_egrid_subregion(code: str) -> None:
    row = lookup(code).row
    assert row.code == "CAMX" and row.year == 2022
    assert "CO2 only" in row.source
    if HAVE_SHARED:
        assert row.g_per_kwh == pytest.approx(egrid_lb_per_mwh("CAMX") * 0.45359237, abs=0.01)


def test_aws_region_is_an_alias_of_its_grid() -> None:
    found = lookup("aws:eu-west-3")
    assert found.row.code == "FR"
    assert found.via == "aws:eu-west-3 is in Paris -> FR"
    assert lookup("aws:us-east-1").row.code == "US-MIDA-PJM"


def test_azure_region_is_an_alias_of_its_grid() -> None:
    found = lookup("azure:francecentral")
    assert found.row.code == "FR" and "Paris" in found.via
    assert lookup("azure:France Central").row.code == "FR"  # display name, Azure's own normalisation
    assert lookup("azure:westus2").row.code == "US-NW-GCPD"


def test_gcp_region_has_googles_own_figure() -> None:
    row = lookup("gcp:europe-west9").row
    assert row.code == "gcp:europe-west9"
    assert row.source.startswith("Google Cloud region carbon data")
    if HAVE_SHARED:
        year, value = gcp_latest("europe-west9")
        assert (row.year, row.g_per_kwh) == (year, pytest.approx(value, abs=0.01))


def test_unprefixed_cloud_region_when_unambiguous() -> None:
    found = lookup("eu-west-3")
    assert found.row.code == "FR" and found.via.startswith("eu-west-3 taken as aws:eu-west-3")


@needs_shared
def test_cloud_aliases_agree_with_raw_files_on_country() -> None:
    base = db.database()
    names = {r.name.casefold(): r.code for r in rows("countries")}
    names.update({"england": "GB", "usa": "US", "south korea": "KR", "hong kong": "HK"})
    checked = 0
    for record in _raw("cloud_region_grid_factors_ccf_aws.csv"):
        country = names[record["Country"].casefold()]
        row = lookup(f"aws:{record['Region']}").row
        assert base.country_of[row.code] == country, record
        checked += 1
    for record in _raw("cloud_regions_mlco2_impact.csv"):
        if record["provider"] != "azure":
            continue
        country = names[record["country"].casefold()]
        row = lookup(f"azure:{record['region']}").row
        assert base.country_of[row.code] == country, record
        checked += 1
    assert checked > 50


def test_marginal_option() -> None:
    found = lookup("FR", marginal=True)
    assert found.row.kind == "marginal" and found.row.code == "FR"
    assert found.row.licence == "CC-BY-SA-4.0"
    if HAVE_SHARED:
        assert found.row.g_per_kwh == pytest.approx(marginal_raw("FR"))
    state = lookup("US-CA", marginal=True)
    assert state.row.code == "US" and state.row.kind == "marginal"
    assert "US-CA is served mainly" in state.via and "per country" in state.via
    assert lookup("ES-CN", marginal=True).row.code == "ES-CN"  # Canary Islands have their own factor
    none = lookup("AX", marginal=True)
    assert none.row.kind == "average" and "no marginal factor" in none.via


def test_marginal_only_code() -> None:
    with pytest.raises(UnknownRegionError, match="marginal=True"):
        lookup("AI")  # Anguilla: marginal factor, no average row
    assert lookup("AI", marginal=True).row.kind == "marginal"


# -- errors, case, search -----------------------------------------------------------------


def test_unknown_code_names_nearest_matches_and_how_to_list() -> None:
    with pytest.raises(UnknownRegionError) as info:
        lookup("Frnace")
    message = str(info.value)
    assert "FR (France)" in message
    assert "co2cb regions" in message
    assert isinstance(info.value, ValueError)
    assert info.value.suggestions[0] == "FR (France)"
    with pytest.raises(UnknownRegionError, match="aws:eu-west-3"):
        lookup("aws:eu-west-9")


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("fr", "FR"),
        ("fra", "FRA"),
        ("us-ca", "US-CA"),
        ("camx", "CAMX"),
        ("us-cal-ciso", "US-CAL-CISO"),
        ("AWS:EU-WEST-3", "aws:eu-west-3"),
        ("GCP:Europe-West9", "gcp:europe-west9"),
        ("Azure:FranceCentral", "azure:francecentral"),
        ("world", "WORLD"),
        ("  fr  ", "FR"),
    ],
)
def test_case_insensitive(lower: str, upper: str) -> None:
    assert lookup(lower).row == lookup(upper).row


def test_name_lookup_and_common_codes() -> None:
    assert lookup("France").row.code == "FR"
    assert lookup("UK").row.code == "GB" and "United Kingdom" in lookup("UK").via


def test_search() -> None:
    hits = search("quebec")
    assert "CA-QC" in [h.code for h in hits]
    assert search("CA-QC")[0].code == "CA-QC"
    assert all(h.alias_of == "CA-QC" for h in hits if h.code.startswith(("aws:", "azure:")))
    us_ca = next(h for h in search("us-ca") if h.code == "US-CA")
    assert us_ca.alias_of == "US-CAL-CISO" and us_ca.g_per_kwh == lookup("US-CAL-CISO").row.g_per_kwh
    assert len(search("")) == count_grids() + count_by_table()["gcp"] + count_by_table()["aliases"]
    assert any(h.kind == "marginal" for h in search("france", marginal=True))
    assert search("no such place xyz") == []


def test_to_intensity_info() -> None:
    found = lookup("aws:eu-west-3")
    info = to_intensity_info(found, "AWS_REGION=eu-west-3")
    assert isinstance(info, IntensityInfo)
    assert (info.region, info.g_per_kwh, info.kind) == ("FR", found.row.g_per_kwh, "average")
    assert info.year == found.row.year and info.source == "Ember/OWID" and info.region_name == "France"
    assert info.reason == "AWS_REGION=eu-west-3; aws:eu-west-3 is in Paris -> FR"
    assert FixedIntensity(info).g_per_kwh_at(0.0) == found.row.g_per_kwh
    assert to_intensity_info(lookup("FR"), "given").reason == "given"


def test_is_known() -> None:
    assert db.is_known("US-CA") and db.is_known("gcp:us-central1")
    assert not db.is_known("nowhere")
