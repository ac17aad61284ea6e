"""``co2cb when``: the lowest-CO2 start in a series, its saving, and clear errors for bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from co2cb.cli.when import best_start, parse_start
from co2cb.intensity.series import SeriesIntensity
from co2cb.planning.inputs import MAX_HOURS, PlanningInputError, parse_hours
from tests.cli import run_cli

T0 = 1_714_521_600  # 2024-05-01T00:00:00Z
H = 3600


def _series(tmp_path: Path, values: list[float], step: float = H, name: str = "grid.csv") -> Path:
    path = tmp_path / name
    path.write_text("timestamp,g\n" + "".join(f"{T0 + i * step!r},{v!r}\n" for i, v in enumerate(values)))
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        return run_cli(argv, capsys)
    except SystemExit as e:
        out = capsys.readouterr()
        return int(e.code or 0), out.out, out.err


# ----------------------------------------------------------------------------- the search
DAY = [
    400,
    380,
    350,
    300,
    250,
    200,
    150,
    100,
    90,
    120,
    200,
    300,
    350,
    400,
    420,
    430,
    410,
    390,
    380,
    370,
    360,
    350,
    340,
    330,
]


def test_best_start_on_a_synthetic_day(tmp_path: Path) -> None:
    s = SeriesIntensity(_series(tmp_path, DAY))
    plan = best_start(s, 3, earliest=T0)
    assert plan.start_unix_s == T0 + 7 * H and plan.end_unix_s == T0 + 10 * H  # 100, 90, 120
    assert plan.mean_g_per_kwh == pytest.approx((100 + 90 + 120) / 3)
    assert plan.reference == "--from" and plan.reference_mean_g_per_kwh == pytest.approx((400 + 380 + 350) / 3)
    assert plan.saving_g_per_kwh == pytest.approx(plan.reference_mean_g_per_kwh - plan.mean_g_per_kwh)
    assert plan.saving_fraction == pytest.approx(plan.saving_g_per_kwh / plan.reference_mean_g_per_kwh)


def test_fractional_hours_can_start_between_rows(tmp_path: Path) -> None:
    s = SeriesIntensity(_series(tmp_path, [500, 500, 100, 500, 500]))
    plan = best_start(s, 0.5, earliest=T0)
    assert plan.mean_g_per_kwh == pytest.approx(100) and T0 + 2 * H <= plan.start_unix_s <= T0 + 2.5 * H
    assert plan.start_unix_s == T0 + 2 * H  # the earliest of equal starts
    wide = best_start(s, 1.5, earliest=T0)
    assert wide.mean_g_per_kwh == pytest.approx((100 + 0.5 * 500) / 1.5)


def test_now_inside_outside_and_without_room(tmp_path: Path) -> None:
    s = SeriesIntensity(_series(tmp_path, DAY))
    inside = best_start(s, 2, now=T0 + 10.5 * H)
    assert inside.reference == "now" and inside.reference_unix_s == T0 + 10.5 * H
    assert inside.start_unix_s >= T0 + 10.5 * H and not inside.notes
    after = best_start(s, 2, now=T0 + 48 * H)
    assert after.reference == "series start" and after.reference_unix_s == T0 and "outside the series" in after.notes[0]
    assert best_start(s, 2, now=T0 - H).reference == "series start"
    with pytest.raises(ValueError, match="would end after the series ends"):
        best_start(s, 3, now=T0 + 22 * H)


def test_jobs_that_do_not_fit(tmp_path: Path) -> None:
    s = SeriesIntensity(_series(tmp_path, DAY))
    with pytest.raises(ValueError, match="longer than the series"):
        best_start(s, 25, earliest=T0)
    with pytest.raises(ValueError, match="does not fit"):
        best_start(s, 2, earliest=T0 - H)
    with pytest.raises(ValueError, match="does not fit"):
        best_start(s, 2, earliest=T0 + 23 * H)
    assert best_start(s, 24, earliest=T0).start_unix_s == T0


def test_a_gap_in_the_best_window_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    rows = [(0, 300), (1, 300), (2, 300), (3, 10), (9, 300), (10, 300), (11, 300)]
    path.write_text("".join(f"{T0 + h * H},{v}\n" for h, v in rows))
    plan = best_start(SeriesIntensity(path), 2, earliest=T0)
    assert plan.mean_g_per_kwh == pytest.approx(10) and any("gap" in n for n in plan.notes)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.integers(0, 1000), min_size=3, max_size=12),
    st.integers(1, 40),  # job length in quarter hours
)
def test_best_start_beats_every_start_on_a_fine_grid(tmp_path: Path, values: list[int], quarters: int) -> None:
    s = SeriesIntensity(_series(tmp_path, [float(v) for v in values], name="prop.csv"))
    hours = quarters / 4
    if hours * H > s.end_unix_s - s.start_unix_s:
        with pytest.raises(ValueError):
            best_start(s, hours, earliest=T0)
        return
    plan = best_start(s, hours, earliest=T0)
    length = hours * H
    grid = [T0 + k * 300 for k in range(int((s.end_unix_s - length - T0) // 300) + 1)]
    brute = min(s.mean_between(t, t + length) for t in grid)
    assert plan.mean_g_per_kwh <= brute + 1e-6
    assert plan.mean_g_per_kwh == pytest.approx(s.mean_between(plan.start_unix_s, plan.end_unix_s))
    assert plan.saving_g_per_kwh >= -1e-9 and T0 <= plan.start_unix_s <= s.end_unix_s - length


# ----------------------------------------------------------------------------- parsers
@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("6", 6),
        ("1.5", 1.5),
        ("6h", 6),
        ("6 H", 6),
        ("2hours", 2),
        ("90m", 1.5),
        ("45 min", 0.75),
        (".5", 0.5),
        ("1e1", 10),
        ("1.5d", 36),
        ("2 days", 48),
        ("90min", 1.5),
    ],
)
def test_hours_parse(text: str, hours: float) -> None:
    assert parse_hours(text) == pytest.approx(hours)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "outside 0 < hours"),
        ("-2", "outside 0 < hours"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("6 parsecs", "unknown unit 'parsecs'"),
        ("", "not a number"),
        ("2e6", "outside 0 < hours <= 1,000,000"),
        ("1e400", "not a finite number"),
    ],
)
def test_bad_hours_say_why(text: str, message: str) -> None:
    with pytest.raises(PlanningInputError, match=message):
        parse_hours(text)


@given(st.floats(min_value=1e-6, max_value=8784, allow_nan=False), st.sampled_from(["", "h", " h", "hours"]))
def test_hours_round_trip(value: float, unit: str) -> None:
    assert parse_hours(f"{value!r}{unit}") == value


@given(st.floats(min_value=1e-3, max_value=60 * 8784, allow_nan=False))
def test_minutes_round_trip(value: float) -> None:
    assert parse_hours(f"{value!r}m") == pytest.approx(value / 60)


@given(st.text(max_size=30))
def test_any_text_is_hours_or_a_value_error(text: str) -> None:
    try:
        hours = parse_hours(text)
    except PlanningInputError as e:
        assert str(e).startswith("--hours: ")
    else:
        assert math.isfinite(hours) and 0 < hours <= MAX_HOURS


def test_start_parses_now_and_times() -> None:
    assert parse_start("now") is None and parse_start(" NOW ") is None
    assert parse_start("2024-05-01T00:00Z") == T0
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_start("2024-05-01T00:00")


# ----------------------------------------------------------------------------- command line
def test_cli_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _series(tmp_path, DAY)
    code, out, err = _run(
        ["when", "--series", str(path), "--hours", "3", "--from", "2024-05-01T00:00Z", "--kw", "2"], capsys
    )
    assert code == 0, err
    assert "Best start for a 3 h job: 2024-05-01T07:00:00Z (ends 2024-05-01T10:00:00Z)" in out
    assert "Starting at --from (2024-05-01T00:00:00Z): mean 376.7 gCO2e/kWh" in out
    assert "Saving: 72.6%" in out and "at 2 kW (6 kWh)" in out
    code, out, _ = _run(["when", "--series", str(path), "--hours", "180m", "--from", str(T0), "--json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["start"] == "2024-05-01T07:00:00Z" and data["reference"] == "--from"
    assert data["series"]["rows"] == 24 and data["saving_kg"] is None


def test_cli_hours_take_the_units_of_estimate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _series(tmp_path, DAY * 3)
    code, out, err = _run(["when", "--series", str(path), "--hours", "1.5d", "--from", str(T0), "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["hours"] == 36 and data["end_unix_s"] - data["start_unix_s"] == 36 * H
    code, out, err = _run(["when", "--series", str(path), "--hours", "2160min", "--from", str(T0), "--json"], capsys)
    assert code == 0 and json.loads(out)["hours"] == 36, err


def test_cli_compares_with_the_series_start_when_now_is_outside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(["when", "--series", str(_series(tmp_path, DAY)), "--hours", "3"], capsys)
    assert code == 0 and "Starting at the series start" in out and "outside the series" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "0"], "argument --hours: '0' is outside 0 < hours <= 1,000,000"),
        (["--hours", "three"], "argument --hours: 'three' is not a number"),
        (["--hours", "6 parsecs"], "argument --hours: unknown unit 'parsecs'"),
        (["--hours", "2e6"], "argument --hours: '2e6' is outside 0 < hours <= 1,000,000"),
        (["--hours", "3", "--from", "tomorrow"], "argument --from: 'tomorrow' is not a timestamp"),
        (["--hours", "3", "--kw", "-1"], "argument --kw"),
        (["--hours", "30"], "longer than the series"),
        (["--hours", "3", "--from", "2024-05-01T23:00Z"], "does not fit in the series"),
    ],
)
def test_cli_bad_input_says_what_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, _, err = _run(["when", "--series", str(_series(tmp_path, DAY)), *args], capsys)
    assert code == 2 and message in err


def test_cli_bad_series_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("2024-05-01T00:00Z,56\n2024-05-01T01:00Z,-4\n")
    code, _, err = _run(["when", "--series", str(path), "--hours", "1"], capsys)
    assert code == 2 and f"co2cb when: {path}:2: value '-4' is negative" in err
    code, _, err = _run(["when", "--series", str(tmp_path / "missing.csv"), "--hours", "1"], capsys)
    assert code == 2 and "cannot read" in err
