"""Doubtful figures are said, not hidden: the plausible band, values repeated for years, the basis of each row."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import co2cb
from co2cb.cli.when import best_start
from co2cb.intensity.base import plausibility
from co2cb.intensity.choice import announce, choose
from co2cb.intensity.database import lookup, rows
from co2cb.intensity.series import SeriesIntensity
from co2cb.records.reader import load_run
from co2cb.report.statement import statement
from tests.cli import run_cli


def test_every_row_says_its_basis() -> None:
    bases = {table: {r.basis for r in rows(table)} for table in ("countries", "egrid", "zones", "gcp", "marginal")}
    assert bases == {
        "countries": {"lifecycle"},  # Ember/OWID
        "egrid": {"operational"},  # EPA: the plants' own CO2
        "zones": {"lifecycle"},  # Electricity Maps' default
        "gcp": {"operational"},  # Google's 2021 and later figures, "operational (gross)"
        "marginal": {"operational"},
    }


def test_an_implausible_country_takes_a_better_source_and_says_so() -> None:
    """Ember/OWID gives the Central African Republic 0 gCO2e/kWh for 2013-2022; Electricity Maps gives 24."""
    found = lookup("CF")
    assert (found.row.g_per_kwh, found.row.year) == (24.0, 2025)
    assert found.row.source.startswith("Electricity Maps") and found.row.licence == "ODbL-1.0"
    assert "instead of Ember/OWID's implausible 0 gCO2e/kWh (2013-2022)" in found.row.note
    assert lookup("CAF").row is found.row  # its alpha-3 code still answers
    assert lookup("TM").row.g_per_kwh == 490.0 and "1306.3" in lookup("TM").row.note  # above the band before
    assert all(plausibility(r.g_per_kwh) == "" for r in rows("countries"))  # no country row outside the band left


def test_values_repeated_for_years_are_flagged() -> None:
    for code, value, years in (("MS", 1000, "2000-2022"), ("SH", 1000, "2000-2022"), ("PM", 600, "2013-2022")):
        note = lookup(code).row.note
        assert f"gives {value} gCO2e/kWh for every year {years}: a placeholder or estimate" in note, code
    assert lookup("FR").row.note == "" and lookup("WORLD").row.note == ""


def test_a_doubtful_figure_is_warned_once_recorded_and_stated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CO2CB_QUIET", "1")  # the announcement is silenced; the warning is not
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        with co2cb.Tracker(output_dir=tmp_path, region="MS", cpu_tdp_w=50, interval_s=0.05) as tracker:
            pass
        announce(tracker.choice)  # a second time: said once
    warned = [r.getMessage() for r in caplog.records if "is doubtful" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("co2cb: the carbon intensity for MS is doubtful: Ember/OWID")
    assert tracker.run_folder is not None
    run = load_run(tracker.run_folder)
    assert "every year 2000-2022" in run.header["intensity"]["caveat"]
    assert run.header["intensity"]["basis"] == "lifecycle"
    (figures,) = statement([run]).runs
    assert any(c.startswith("The intensity figure is doubtful: Ember/OWID gives 1000") for c in figures.caveats)


def test_a_hand_given_figure_outside_the_band_is_said_to_be_doubtful() -> None:
    low, high = choose(intensity=3.0), choose(intensity=1400.0)
    assert "below 10" in low.source.info.caveat and "above 1200" in high.source.info.caveat
    assert low.source.info.basis == "" and choose(intensity=400.0).source.info.caveat == ""


def test_regions_marks_doubtful_figures_and_shows_the_basis(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["regions", "europe-north"], capsys)
    assert code == 0 and "basis" in out.splitlines()[0]
    assert "2.73 !" in out and "gcp:europe-north2: 2.73 gCO2e/kWh is below 10" in out
    code, out, _ = run_cli(["regions", "montserrat", "--format", "csv"], capsys)
    assert "lifecycle" in out and "every year 2000-2022" in out


def test_when_notes_series_values_outside_the_band(tmp_path: Path) -> None:
    path = tmp_path / "series.csv"
    path.write_text("timestamp,g\n" + "".join(f"2024-05-01T{h:02d}:00Z,{v}\n" for h, v in enumerate([4, 300, 1400])))
    plan = best_start(SeriesIntensity(path), 1.0, earliest=1714521600.0)
    assert any("2 of the series' 3 values are outside 10 to 1200 gCO2e/kWh (4 to 1400)" in n for n in plan.notes)
