"""The table builder: it regenerates exactly the embedded tables from the raw files."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import pytest

from co2cb.intensity.database import load_database
from co2cb.intensity.tables import ALIAS_FILES, TABLE_FILES
from tools import build_intensity_tables as build_tables

SHARED = Path(os.environ.get("CO2CB_SHARED_DATA", "/work/shared/data"))
needs_shared = pytest.mark.skipif(
    not (SHARED / "country_intensity_owid_ember_2000_2024.csv").is_file(), reason=f"raw data folder {SHARED} is absent"
)


@needs_shared
def test_builder_reproduces_the_embedded_tables(tmp_path: Path) -> None:
    counts = build_tables.build(SHARED, tmp_path)
    embedded = resources.files("co2cb.intensity") / "data"
    for name in [*TABLE_FILES.values(), *ALIAS_FILES.values()]:
        assert (tmp_path / name).read_text(encoding="utf-8") == embedded.joinpath(name).read_text(encoding="utf-8"), (
            f"{name} is stale: run python -m tools.build_intensity_tables --shared {SHARED}"
        )
    assert counts["countries_owid_ember.csv"] == 213  # CF and TM are Electricity Maps zones (see test_plausibility)
    assert counts["us_egrid2022.csv"] == 27
    rebuilt = load_database(tmp_path)
    assert len(rebuilt.grids) > 365


@needs_shared
def test_builder_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build_tables.main(["--shared", str(SHARED), "--out", str(tmp_path)]) == 0
    assert "us_egrid2022.csv: 27 rows" in capsys.readouterr().out


@needs_shared
def test_alpha3_fixes() -> None:
    a3 = build_tables.alpha3_to_alpha2(SHARED)
    assert a3["CYM"] == "KY"  # the raw marginal file says CY (Cyprus)
    assert a3["CYP"] == "CY" and a3["NAM"] == "NA" and a3["ESH"] == "EH" and a3["FRA"] == "FR"


def test_number_format() -> None:
    assert build_tables._num(473.0065) == "473.01"
    assert build_tables._num(229.0) == "229"
    assert build_tables._num(0.0) == "0"
    assert build_tables._num(497.443 * build_tables.LB_PER_MWH_TO_G_PER_KWH) == "225.64"
