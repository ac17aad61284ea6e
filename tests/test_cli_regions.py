"""`co2cb regions [QUERY]`: listing, searching, the grid count and unknown queries."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from co2cb.cli import regions
from co2cb.intensity.database import count_by_table, count_grids, search
from co2cb.intensity.listing import list_regions
from tests.cli import run_cli

ECO2AI_ROWS = 365  # rows Eco2AI ships, none with a year or a source


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(["regions", *argv], capsys)


def test_search_shows_rows_aliases_and_the_count_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["quebec"], capsys)
    assert code == 0 and not err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["code", "name", "gCO2e/kWh", "year"]
    assert any(line.startswith("CA-QC ") for line in lines)
    assert any("aws:ca-central-1" in line and "-> CA-QC" in line for line in lines), "alias shown with its grid"
    count = [line for line in lines if "grids have their own value, source and year" in line]
    assert len(count) == 1 and count[0].split(" grids")[0].split()[-1] == str(count_grids())


def test_count_is_honest_and_beats_eco2ai(capsys: pytest.CaptureFixture[str]) -> None:
    by_table = count_by_table()
    assert count_grids() == by_table["countries"] + by_table["egrid"] + by_table["zones"] > ECO2AI_ROWS
    code, out, _ = _cli(["--format", "json", "FR"], capsys)
    assert code == 0
    found = json.loads(out)
    assert found["count"]["grids"] == count_grids()
    assert found["count"]["aliases"] == by_table["aliases"] and found["count"]["gcp"] == by_table["gcp"]
    assert found["entries"][0]["code"] == "FR", "the exact code first"


def test_a_code_that_is_no_substring_still_answers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["DEU"], capsys)
    assert code == 0
    assert out.splitlines()[0] == "DEU: alpha-3 DEU -> DE"
    assert any(line.startswith("DE ") and "Germany" in line for line in out.splitlines())


def test_csv_and_json_formats(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["aws:eu-west-3", "--format", "csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == regions.COLUMNS
    assert rows[0]["code"] == "aws:eu-west-3" and rows[0]["alias_of"] == "FR"
    assert float(rows[0]["g_per_kwh"]) > 0 and int(rows[0]["year"]) > 2000 and rows[0]["source"]
    code, out, _ = _cli(["--format", "json"], capsys)
    assert len(json.loads(out)["entries"]) == len(search(""))


def test_marginal_rows_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _cli(["FR", "--format", "json"], capsys)
    assert {e["kind"] for e in json.loads(out)["entries"]} == {"average"}
    _, out, _ = _cli(["FR", "--format", "json", "--marginal"], capsys)
    assert "marginal" in {e["kind"] for e in json.loads(out)["entries"]}


def test_unknown_query_says_so_and_names_near_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["Frnace"], capsys)
    assert code == 1 and not out
    assert "no region matches 'Frnace'" in err and "FR (France)" in err
    code, _, err = _cli(["xqzqxq"], capsys)
    assert code == 1 and "no close match" in err


def test_list_everything(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli([], capsys)
    assert code == 0
    assert f"{len(search(''))} shown." in out


@settings(max_examples=150, deadline=None)
@given(query=st.text(max_size=30), marginal=st.booleans())
def test_listing_never_raises(query: str, marginal: bool) -> None:
    listing = list_regions(query, marginal=marginal)
    assert listing.entries or isinstance(listing.suggestions, list)
    assert listing.count.grids == count_grids()
