"""`co2cb whatif RUN --region X ...`: a recorded run's CO2 in other regions."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import co2cb
from co2cb.cli import whatif as whatif_cli
from co2cb.intensity.database import UnknownRegionError, lookup
from co2cb.planning.inputs import PlanningInputError, parse_pue
from co2cb.planning.whatif import WhatIfError, run_energy, whatif
from co2cb.records.writer import RECORD_FILE
from tests.cli import run_cli

RUN_G_PER_KWH = 100.0
RUN_PUE = 1.2


def _busy() -> None:
    sum(i * i for i in range(200_000))


def _make_run(parent: Path, *, nested: bool = False) -> Path:
    """A finished run: two epoch windows (each with a validation window inside when ``nested``)."""
    with co2cb.Tracker(
        output_dir=parent, intensity=RUN_G_PER_KWH, cpu_tdp_w=50, interval_s=0.05, pue=RUN_PUE
    ) as tracker:
        for epoch in range(2):
            with tracker.window("epoch", meta={"epoch": epoch}):
                _busy()
                if nested:
                    with tracker.window("validation"):
                        _busy()
    assert tracker.run_folder is not None
    return Path(tracker.run_folder)


def _lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / RECORD_FILE).read_text().splitlines() if x.strip()]


def _rewrite(folder: Path, lines: list[dict], tail: str = "") -> None:
    (folder / RECORD_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines) + tail)


def _kill(folder: Path) -> None:
    """Make the record look like a run killed before it ended: no summary, no run window."""
    _rewrite(folder, [x for x in _lines(folder) if x["type"] != "summary" and x.get("name") != "run"])


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return _make_run(tmp_path / "runs")


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(["whatif", *argv], capsys)


def test_ratio_is_the_intensity_ratio(run: Path) -> None:
    result = whatif(run, ["FR", "aws:us-east-1", "DEU"])
    summary = _lines(run)[-1]
    assert summary["type"] == "summary"
    assert result.run.complete and result.run.energy_kwh == summary["energy_kwh"]["total"] > 0
    assert result.run.co2_kg == summary["co2_kg"] and result.pue == RUN_PUE and result.pue_from == "the record"
    for outcome, code in zip(result.outcomes, ["FR", "aws:us-east-1", "DEU"]):
        g = lookup(code).row.g_per_kwh
        assert outcome.g_per_kwh == g and outcome.region == lookup(code).row.code
        assert outcome.co2_kg == result.run.energy_kwh * RUN_PUE * g / 1000.0
        assert outcome.ratio == pytest.approx(g / RUN_G_PER_KWH, rel=1e-9)
        assert outcome.saved_kg == pytest.approx(result.run.co2_kg - outcome.co2_kg, rel=1e-12, abs=1e-18)
    assert result.outcomes[1].via and "alpha-3" in result.outcomes[2].via


def test_pue_override(run: Path) -> None:
    result = whatif(run, ["FR"], pue=1.5)
    g = lookup("FR").row.g_per_kwh
    assert result.pue == 1.5 and result.pue_from == "--pue"
    assert result.outcomes[0].ratio == pytest.approx(g * 1.5 / (RUN_G_PER_KWH * RUN_PUE), rel=1e-9)
    with pytest.raises(WhatIfError, match=r"1\.0\.\.3\.0"):
        whatif(run, ["FR"], pue=0.5)


def test_killed_run_sums_its_closed_windows(run: Path) -> None:
    epochs = [x for x in _lines(run) if x["type"] == "window" and x["name"] == "epoch"]
    _kill(run)
    energy = run_energy(run)
    assert not energy.complete and energy.windows_used == ["epoch", "epoch"]
    assert energy.energy_kwh == pytest.approx(sum(w["energy_kwh"]["total"] for w in epochs), rel=1e-12)
    assert energy.co2_kg == pytest.approx(sum(w["co2_kg"] for w in epochs), rel=1e-12)
    assert energy.pue == RUN_PUE and energy.g_per_kwh == pytest.approx(RUN_G_PER_KWH, rel=1e-9)
    assert "lower bound" in energy.energy_from
    assert whatif(run, ["FR"]).outcomes[0].ratio == pytest.approx(lookup("FR").row.g_per_kwh / RUN_G_PER_KWH, rel=1e-9)


def test_killed_run_counts_nested_windows_once(tmp_path: Path) -> None:
    folder = _make_run(tmp_path, nested=True)
    epochs = [x for x in _lines(folder) if x["type"] == "window" and x["name"] == "epoch"]
    _kill(folder)
    energy = run_energy(folder)
    assert energy.windows_used == ["epoch", "epoch"], "validation windows are inside the epochs"
    assert energy.energy_kwh == pytest.approx(sum(w["energy_kwh"]["total"] for w in epochs), rel=1e-12)


def test_cut_short_last_line_is_skipped(run: Path) -> None:
    lines = [x for x in _lines(run) if x["type"] != "summary" and x.get("name") != "run"]
    _rewrite(run, lines, tail='{"type":"window","name":"epo')
    assert run_energy(run).windows_used == ["epoch", "epoch"]


def test_the_run_jsonl_file_itself_is_accepted(run: Path) -> None:
    assert run_energy(run / RECORD_FILE).run_id == run.name


def test_not_a_run_folder(tmp_path: Path, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(WhatIfError, match="nothing-here does not exist"):
        run_energy(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WhatIfError, match="is not a co2cb run folder"):
        run_energy(tmp_path / "empty")
    with pytest.raises(WhatIfError, match="holds 1 run folder but is not one; name one, e.g. .*" + run.name):
        run_energy(run.parent)
    code, out, err = _cli([str(tmp_path / "empty"), "--region", "FR"], capsys)
    assert code == 1 and not out and "not a co2cb run folder" in err


def test_newer_schema_is_refused(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _lines(run)
    lines[0]["schema"] = 99
    _rewrite(run, lines)
    with pytest.raises(WhatIfError, match="upgrade co2cb"):
        run_energy(run)
    code, _, err = _cli([str(run), "--region", "FR"], capsys)
    assert code == 1 and "schema 99" in err and "upgrade co2cb" in err


def test_not_a_record_and_no_energy(run: Path) -> None:
    header = _lines(run)[0]
    _rewrite(run, [header])
    with pytest.raises(WhatIfError, match="no energy to recompute"):
        run_energy(run)
    _rewrite(run, [{"type": "window", "name": "epoch"}])
    with pytest.raises(WhatIfError, match="not a co2cb run record"):
        run_energy(run)
    (run / RECORD_FILE).write_text("not json\n")
    with pytest.raises(WhatIfError, match="not valid JSON"):
        run_energy(run)


def test_unknown_region_names_near_matches(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownRegionError) as caught:
        whatif(run, ["FR", "Frnace"])
    assert "FR (France)" in caught.value.suggestions
    code, out, err = _cli([str(run), "--region", "FR", "--region", "Frnace"], capsys)
    assert code == 2 and not out, "nothing printed before every region is checked"
    assert "unknown region 'Frnace'" in err and "FR (France)" in err


def test_cli_table_csv_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli([str(run), "--region", "FR", "--region", "PL"], capsys)
    assert code == 0 and not err
    assert f"run {run.name}" in out and "x recorded" in out and "PUE 1.2" in out
    assert "Patterson et al. (2022" in out and "5 to 10 times" in out
    fr_ratio = lookup("FR").row.g_per_kwh / RUN_G_PER_KWH
    assert f"{fr_ratio:.3g}x" in out
    code, out, _ = _cli([str(run), "--region", "FR", "--format", "csv"], capsys)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["region"] == "FR" and float(row["ratio"]) == pytest.approx(fr_ratio, rel=1e-9)
    code, out, _ = _cli([str(run), "--region", "FR", "--format", "json", "--pue", "1.4"], capsys)
    found = json.loads(out)
    assert found["pue"] == 1.4 and found["run"]["run_id"] == run.name and "Patterson" in found["note"]


def test_help_names_patterson() -> None:
    parser = argparse.ArgumentParser(prog="co2cb")
    sub = parser.add_subparsers(dest="command")
    whatif_cli.register(sub)
    text = sub.choices["whatif"].format_help()
    assert "Patterson" in text and "5 to 10" in text


def test_bad_pue_is_an_argparse_error(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        _cli([str(run), "--region", "FR", "--pue", "0.9"], capsys)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --pue: '0.9' is outside 1.0..3.0" in err and "--pue: --pue" not in err


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=20), st.from_regex(r"-?[0-9]{0,3}(\.[0-9]{0,3})?(e[+-]?[0-9]{1,3})?", fullmatch=True)
    )
)
def test_pue_parser_raises_only_its_error(text: str) -> None:
    try:
        value = parse_pue(text)
    except PlanningInputError as exc:
        assert str(exc).startswith("--pue: ")
        return
    assert 1.0 <= value <= 3.0


@settings(max_examples=100, deadline=None)
@given(region=st.text(max_size=15))
def test_whatif_regions_raise_only_unknown_region(tmp_path_factory: pytest.TempPathFactory, region: str) -> None:
    folder = _RUN_CACHE.get("run")
    if folder is None:
        folder = _RUN_CACHE["run"] = _make_run(tmp_path_factory.mktemp("prop"))
    try:
        result = whatif(folder, [region])
    except UnknownRegionError:
        return
    assert result.outcomes[0].co2_kg >= 0


_RUN_CACHE: dict[str, Path] = {}


# --------------------------------------------------------------------------- one basis
def test_operational_and_lifecycle_figures_get_no_ratio_and_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run on France's lifecycle figure against Google's operational europe-north2 (2.7 gCO2e/kWh): no
    '0.06x recorded', a warning instead; against Germany's lifecycle figure, a ratio."""
    with co2cb.Tracker(output_dir=tmp_path, region="FR", cpu_tdp_w=50, interval_s=0.05) as tracker:
        _busy()
    assert tracker.run_folder is not None
    result = whatif(tracker.run_folder, ["gcp:europe-north2", "DE"])
    assert result.run.basis == "lifecycle"
    north, germany = result.outcomes
    assert (north.basis, north.ratio) == ("operational", None)
    assert germany.basis == "lifecycle" and germany.ratio == pytest.approx(
        lookup("DE").row.g_per_kwh / lookup("FR").row.g_per_kwh, rel=1e-6
    )
    assert any(w.startswith("no ratio for gcp:europe-north2: its figure is operational") for w in result.warnings)
    assert any("gcp:europe-north2: 2.73 gCO2e/kWh is below 10" in w for w in result.warnings)
    code, out, _ = _cli([str(tracker.run_folder), "--region", "gcp:europe-north2", "--region", "DE"], capsys)
    assert code == 0
    header = next(line for line in out.splitlines() if line.startswith("region "))
    assert "basis" in header and "n/a" in out and "warning: no ratio for gcp:europe-north2" in out


def test_a_hand_given_intensity_has_no_basis_and_says_so(run: Path) -> None:
    result = whatif(run, ["FR"])
    assert result.run.basis == "" and result.outcomes[0].ratio is not None
    assert any("does not say whether it is a lifecycle or an operational figure" in w for w in result.warnings)
