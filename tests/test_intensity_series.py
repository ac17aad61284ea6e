"""Time-varying intensity from a CSV series: parsing, errors, steps, gaps, outside range, CO2 integration."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from co2cb import ConfigError, FixedIntensity, IntensityInfo, Meter, MeterInfo, Tracker, read_records
from co2cb.core.emissions import co2_kg
from co2cb.intensity.database import lookup
from co2cb.intensity.series import SeriesIntensity, refine_segments
from co2cb.intensity.series_file import SeriesError, parse_row, parse_timestamp, parse_value, read_series
from co2cb.meters.base import Component, Provenance, ReadingKind
from co2cb.units import JOULES_PER_KWH

T0 = 1_714_521_600  # 2024-05-01T00:00:00Z
H = 3600


class _ConstantPower(Meter):
    reading = ReadingKind.POWER

    def __init__(self, watts: float = 50.0) -> None:
        self.watts = watts

    @property
    def info(self) -> MeterInfo:
        return MeterInfo("test:constant", Component.CPU, Provenance.ESTIMATE)

    def read(self) -> float:
        return self.watts


def _write(tmp_path: Path, text: str, name: str = "grid.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _hourly(tmp_path: Path, values: list[float], start: float = T0, step: float = H, name: str = "grid.csv") -> Path:
    rows = "\n".join(f"{start + i * step!r},{v!r}" for i, v in enumerate(values))
    return _write(tmp_path, f"timestamp,g_per_kwh\n{rows}\n", name)


def _fixed(g: float, region: str = "FR", kind: str = "average") -> FixedIntensity:
    return FixedIntensity(IntensityInfo(g, region, region, "test table", 2023, kind, "test"))


# ----------------------------------------------------------------------------- timestamps
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T00:00Z", T0),
        ("2024-05-01T00:00:00Z", T0),
        ("2024-05-01t00:00:00z", T0),
        ("2024-05-01 02:00+02:00", T0),
        ("2024-05-01T02:00:00+0200", T0),
        ("2024-05-01T02:00+02", T0),
        ("2024-04-30T19:00:00-05:00", T0),
        ("2024-05-01T00:00:00.25Z", T0 + 0.25),
        ("2024-05-01T00:00:00,5Z", T0 + 0.5),
        (str(T0), T0),
        (f"{T0}.75", T0 + 0.75),
        ("  1714521600  ", T0),
    ],
)
def test_timestamps_parse(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2024-05-01T00:00", "no UTC offset"),
        ("2024-05-01", "not a timestamp"),
        ("2024-13-01T00:00Z", "not a valid date"),
        ("2024-02-30T00:00Z", "not a valid date"),
        ("2024-05-01T24:00Z", "not a valid date"),
        ("2024-05-01T00:00+25:00", "not a valid date"),
        (str(T0 * 1000), "milliseconds"),
        ("2024", "outside 2000..2099"),
        ("45412", "outside 2000..2099"),
        ("1999-12-31T23:00Z", "outside 2000..2099"),
        ("yesterday", "not a timestamp"),
        ("", "empty"),
        ("nan", "not a timestamp"),
    ],
)
def test_bad_timestamps_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_timestamp(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-1", "negative"),
        ("1500.1", "above 1500"),
        ("abc", "not a number"),
        ("inf", "not a number"),
        ("", "not a number"),
    ],
)
def test_bad_values_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_value(text)


def test_values_in_range_parse() -> None:
    assert parse_value("0") == 0 and parse_value(" 1500 ") == 1500 and parse_value("5.6e1") == 56


# ----------------------------------------------------------------------------- file errors
@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("# c\n\ntimestamp,g\n2024-05-01T00:00Z,56\n2024-05-01T01:00,60\n", 5, "no UTC offset"),
        ("2024-05-01T00:00Z,56\n2024-05-01T01:00Z,-3\n", 2, "negative"),
        ("2024-05-01T00:00Z,56\n2024-05-01T01:00Z,2000\n", 2, "above 1500"),
        ("2024-05-01T00:00Z,56\n2024-05-01T01:00Z,nan\n", 2, "not a number"),
        ("2024-05-01T00:00Z,56\n2024-05-01T01:00Z,abc\n", 2, "not a number"),
        ("2024-05-01T00:00Z,56\n2024-05-01T00:00Z,57\n", 2, "repeats line 1"),
        ("2024-05-01T00:00Z,56\n\n2024-05-01T02:00Z,57\n2024-05-01T01:00Z,58\n", 4, "is earlier than line 3"),
        ("2024-05-01T00:00Z,56,7\n2024-05-01T01:00Z,57\n", 1, "gCO2e/kWh), found 3"),
        ("2024-05-01T00:00Z;56\n2024-05-01T01:00Z;57\n", 1, "separator must be a comma"),
        ("2024-05-01T00:00Z,56\ntimestamp,value\n", 2, "not a timestamp"),
        ("time,56\n2024-05-01T00:00Z,56\n", 1, "not a timestamp"),
        ("2024-13-01T00:00Z,abc\n2024-05-01T00:00Z,56\n", 1, "not a valid date"),
        ("2024-05-01T00:00Z\n2024-05-01T01:00Z,57\n", 1, "found 1"),
    ],
)
def test_bad_rows_fail_with_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SeriesError) as err:
        read_series(path)
    text = str(err.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no data rows"),
        ("# only a comment\n\n", "no data rows"),
        ("timestamp,g_per_kwh\n", "no data rows"),
        ("2024-05-01T00:00Z,56\n", "only one data row"),
    ],
)
def test_empty_series_fail_with_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(SeriesError, match=message) as err:
        read_series(path)
    assert str(err.value).startswith(f"{path}: ")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="cannot read"):
        read_series(tmp_path / "missing.csv")
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"2024-05-01T00:00Z,56\n2024-05-01T01:00Z,57 \xe9\n")
    with pytest.raises(SeriesError, match=rf"{path}:2: the line is not UTF-8"):
        read_series(path)


def test_header_bom_quotes_comments_and_trailing_comma(tmp_path: Path) -> None:
    path = tmp_path / "grid.csv"
    path.write_bytes(
        '\ufeff# from my utility\n"datetime","carbonIntensity"\n'
        '"2024-05-01T00:00Z","56"\n\n   # later\n2024-05-01T01:00Z, 60 ,\n'.encode()
    )
    times, values, lines = read_series(path)
    assert times == [T0, T0 + H] and values == [56, 60] and lines == [3, 6]


def test_tracker_construction_fails_on_a_bad_series(tmp_path: Path) -> None:
    path = _write(tmp_path, "2024-05-01T00:00Z,56\n2024-05-01T01:00Z,-1\n")
    with pytest.raises(ConfigError, match=rf"{path}:2: value '-1' is negative"):
        Tracker(save=False, meters=[_ConstantPower()], intensity=path, region="FR")
    with pytest.raises(ConfigError, match="is not a file"):
        Tracker(save=False, meters=[_ConstantPower()], intensity="FR")


# ----------------------------------------------------------------------------- steps, gaps, outside
def test_each_value_holds_until_the_next_row_and_the_last_for_a_median_step(tmp_path: Path) -> None:
    s = SeriesIntensity(_hourly(tmp_path, [100, 200, 300]))
    assert s.step_s == H and (s.start_unix_s, s.end_unix_s) == (T0, T0 + 3 * H)
    assert [s.g_per_kwh_at(T0 + x) for x in (0, H - 1e-3, H, 2.5 * H, 3 * H - 1)] == [100, 100, 200, 300, 300]
    assert s.mean_g_per_kwh == pytest.approx(200)
    assert s.info.g_per_kwh == pytest.approx(200) and s.info.kind == "average" and s.info.year is None
    assert "each value holds until the next row" in s.info.reason
    assert s.mean_between(T0 + 0.5 * H, T0 + 1.5 * H) == pytest.approx(150)


def test_uneven_steps_take_the_median(tmp_path: Path) -> None:
    path = _write(tmp_path, "\n".join(f"{T0 + t},{v}" for t, v in [(0, 10), (900, 20), (1800, 30), (4500, 40)]))
    s = SeriesIntensity(path)
    assert s.step_s == 900 and s.end_unix_s == T0 + 4500 + 900 and not s.gaps


def test_gaps_are_reported_and_the_value_before_is_held(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    times = [0, 1, 2, 7, 8, 9]  # hours: a 5 h interval where the median step is 1 h
    path = _write(tmp_path, "\n".join(f"{T0 + t * H},{100 + t}" for t in times))
    s = SeriesIntensity(path)
    assert len(s.gaps) == 1
    gap = s.gaps[0]
    assert (gap.start_unix_s, gap.end_unix_s, gap.line, gap.seconds) == (T0 + 2 * H, T0 + 7 * H, 4, 5 * H)
    assert s.g_per_kwh_at(T0 + 5 * H) == 102  # held across the gap
    assert "1 gap(s) longer than 3 x the median step" in s.info.reason
    assert any("gap" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    assert any("gap" in n for n in s.notes(T0 + 4 * H, T0 + 5 * H))
    assert not any("gap" in n for n in s.notes(T0, T0 + 2.5 * H))  # the normal step after the row is no gap
    assert SeriesIntensity(path, gap_factor=6).gaps == []


def test_outside_the_series_uses_the_fallback_and_says_so(tmp_path: Path) -> None:
    s = SeriesIntensity(_hourly(tmp_path, [100, 200]), fallback=_fixed(56))
    assert s.g_per_kwh_at(T0 - 1) == 56 and s.g_per_kwh_at(T0 + 2 * H) == 56 and s.g_per_kwh_at(T0) == 100
    assert "FR table value (56 gCO2e/kWh" in s.info.reason and s.info.region == "FR"
    notes = s.notes(T0 - H, T0 + 3 * H)
    assert len(notes) == 2
    assert "1 h of the window lie before the series starts" in notes[0] and "FR table value" in notes[0]
    assert "1 h of the window lie after the series ends" in notes[1]
    assert s.notes(T0, T0 + 2 * H) == []


def test_outside_the_series_without_fallback_holds_the_ends(tmp_path: Path) -> None:
    s = SeriesIntensity(_hourly(tmp_path, [100, 200]))
    assert s.g_per_kwh_at(T0 - 10 * H) == 100 and s.g_per_kwh_at(T0 + 10 * H) == 200
    assert "first or last value is held" in s.info.reason
    assert "first value (100 gCO2e/kWh) was held" in s.notes(T0 - H, T0)[0]
    assert "last value (200 gCO2e/kWh) was held" in s.notes(T0 + 3 * H, T0 + 4 * H)[0]


def test_bad_kind_and_gap_factor() -> None:
    with pytest.raises(ValueError, match="kind"):
        SeriesIntensity("x.csv", kind="hourly")
    with pytest.raises(ValueError, match="gap_factor"):
        SeriesIntensity("x.csv", gap_factor=1)


# ----------------------------------------------------------------------------- CO2 integration
def test_co2_integrates_a_stepwise_series_exactly(tmp_path: Path) -> None:
    s = SeriesIntensity(_hourly(tmp_path, [100, 400, 200]), fallback=_fixed(50))
    watts = 1000.0
    # one coarse segment across every step and past the end: 1 kW from 00:30 to 03:30 (3 kWh)
    segments = [(T0 + 0.5 * H, T0 + 3.5 * H, watts * 3 * H)]
    refined = refine_segments(segments, s)
    assert [round((a - T0) / H, 6) for a, _, _ in refined] == [0.5, 1, 2, 3]
    assert sum(j for *_, j in refined) == pytest.approx(watts * 3 * H)
    kg, mean = co2_kg(refined, s, 1.2)
    grams = (0.5 * 100 + 400 + 200 + 0.5 * 50) * 1.2  # kWh per piece x g/kWh x PUE
    assert kg == pytest.approx(grams / 1000) and mean == pytest.approx(grams / 1.2 / 3)
    # unrefined, the midpoint rule would take 400 g/kWh for the whole 3 kWh
    assert co2_kg(segments, s, 1.2)[0] != pytest.approx(kg)


def test_fixed_sources_are_not_split() -> None:
    segments = [(0.0, 10.0, 5.0)]
    assert refine_segments(segments, _fixed(10)) == segments


def _series_around_now(tmp_path: Path, values: list[float], step: float, name: str = "now.csv") -> Path:
    start = math.floor(time.time()) - 2.0
    rows = "\n".join(f"{start + i * step:.3f},{v}" for i, v in enumerate(values))
    return _write(tmp_path, f"# around now\ntime,g\n{rows}\n", name)


def test_tracker_window_co2_integrates_energy_times_intensity(tmp_path: Path) -> None:
    path = _series_around_now(tmp_path, [100, 300, 50, 700] * 15, step=0.25)
    series = SeriesIntensity(path)
    with (
        Tracker(
            output_dir=tmp_path / "runs", meters=[_ConstantPower(50.0)], intensity=path, region="FR", interval_s=0.05
        ) as tracker,
        tracker.window("epoch") as w,
    ):
        time.sleep(1.2)
    r = w.result
    assert r is not None and r.intensity_kind == "average" and r.intensity_notes == ()
    assert r.total_joules == pytest.approx(50.0 * r.seconds, rel=1e-6)
    expected_kg = 50.0 * series.integral(r.start_unix_s, r.end_unix_s) / JOULES_PER_KWH / 1000 * r.pue
    assert r.pue == 1.0
    assert r.co2_kg == pytest.approx(expected_kg, rel=1e-6)
    assert r.g_per_kwh == pytest.approx(series.mean_between(r.start_unix_s, r.end_unix_s), rel=1e-6)
    records = read_records(tracker.run_folder)
    header = records[0]
    assert header["intensity"]["kind"] == "average" and str(path) in header["intensity"]["source"]
    assert header["marginal_intensity"] is None
    window = next(x for x in records if x["type"] == "window" and x["name"] == "epoch")
    assert window["intensity_kind"] == "average" and window["co2_kg_marginal"] is None
    assert window["intensity_notes"] == [] and window["co2_kg"] == pytest.approx(expected_kg, rel=1e-6)


def test_tracker_outside_the_series_uses_the_region_table(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = _hourly(tmp_path, [900, 900, 900])  # May 2024: long before this run
    fr = lookup("FR").row.g_per_kwh
    with (
        Tracker(
            output_dir=tmp_path / "runs", meters=[_ConstantPower()], intensity=path, region="FR", interval_s=0.05
        ) as tracker,
        tracker.window("epoch") as w,
    ):
        time.sleep(0.2)
    r = w.result
    assert r is not None and r.g_per_kwh == pytest.approx(fr)
    assert r.co2_kg == pytest.approx(r.kwh * fr / 1000)
    assert "after the series ends" in r.intensity_notes[0] and "FR table value" in r.intensity_notes[0]
    window = next(x for x in read_records(tracker.run_folder) if x["type"] == "window" and x["name"] == "epoch")
    assert "after the series ends" in window["intensity_notes"][0]
    assert sum("after the series ends" in rec.getMessage() for rec in caplog.records) == 1


# ----------------------------------------------------------------------------- average and marginal apart
def test_average_and_marginal_are_recorded_apart(tmp_path: Path) -> None:
    marginal = _series_around_now(tmp_path, [400, 800] * 20, step=0.5, name="marginal.csv")
    tracker = Tracker(
        output_dir=tmp_path / "runs",
        meters=[_ConstantPower(50.0)],
        intensity=100.0,
        marginal_intensity=marginal,
        region="FR",
        pue=1.5,
        interval_s=0.05,
    )
    with tracker, tracker.window("epoch") as w:
        time.sleep(0.6)
    r = w.result
    assert r is not None and r.intensity_kind == "average"
    assert r.co2_kg == pytest.approx(r.kwh * 100 * 1.5 / 1000)
    series = SeriesIntensity(marginal)
    expected = 50.0 * series.integral(r.start_unix_s, r.end_unix_s) / JOULES_PER_KWH / 1000 * 1.5
    assert r.co2_kg_marginal == pytest.approx(expected, rel=1e-6)
    assert 400 <= (r.g_per_kwh_marginal or 0) <= 800
    records = read_records(tracker.run_folder)
    assert records[0]["intensity"]["kind"] == "average" and records[0]["marginal_intensity"]["kind"] == "marginal"
    summary = records[-1]
    assert summary["type"] == "summary" and summary["co2_kg_marginal"] > summary["co2_kg"] > 0


def test_marginal_table_factor_and_misuse(tmp_path: Path) -> None:
    t = Tracker(save=False, meters=[_ConstantPower()], region="FR", marginal_intensity="table")
    assert t.marginal_intensity is not None and t.marginal_intensity.info.kind == "marginal"
    assert t.marginal_intensity.info.g_per_kwh == lookup("FR", marginal=True).row.g_per_kwh
    assert t.intensity.info.kind == "average"
    path = _hourly(tmp_path, [100, 200])
    with pytest.raises(ConfigError, match="already marginal"):
        Tracker(
            save=False,
            meters=[_ConstantPower()],
            intensity=SeriesIntensity(path, kind="marginal"),
            marginal_intensity=300,
        )
    with pytest.raises(ConfigError, match="give a marginal one"):
        Tracker(save=False, meters=[_ConstantPower()], intensity=100, marginal_intensity=SeriesIntensity(path))
    with pytest.raises(ConfigError, match="is not valid"):
        Tracker(save=False, meters=[_ConstantPower()], intensity=100, marginal_intensity=[1])
    alone = Tracker(save=False, meters=[_ConstantPower()], intensity=SeriesIntensity(path, kind="marginal"))
    assert alone.header()["intensity"]["kind"] == "marginal"


def test_a_marginal_series_falls_back_to_the_marginal_table(tmp_path: Path) -> None:
    t = Tracker(
        save=False,
        meters=[_ConstantPower()],
        region="FR",
        intensity=100,
        marginal_intensity=_hourly(tmp_path, [500, 600]),
    )
    m = t.marginal_intensity
    assert isinstance(m, SeriesIntensity) and m.fallback is not None and m.fallback.info.kind == "marginal"
    assert m.g_per_kwh_at(T0 + 10 * H) == lookup("FR", marginal=True).row.g_per_kwh


# ----------------------------------------------------------------------------- property-based
OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30))


def _offset_text(dt: datetime, style: int) -> str:
    delta = dt.utcoffset()
    assert delta is not None
    minutes = int(delta.total_seconds() // 60)
    if minutes == 0 and style == 0:
        return "Z"
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    hh, mm = divmod(minutes, 60)
    return [f"{sign}{hh:02d}:{mm:02d}", f"{sign}{hh:02d}{mm:02d}", f"{sign}{hh:02d}:{mm:02d}"][style % 3]


@given(MOMENTS, OFFSETS, st.integers(0, 2), st.sampled_from(["T", " ", "t"]), st.booleans())
def test_iso_timestamps_round_trip(naive: datetime, tz: timezone, style: int, sep: str, micro: bool) -> None:
    dt = naive.replace(tzinfo=tz)
    if not micro:
        dt = dt.replace(microsecond=0)
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{dt.microsecond:06d}" if micro else "") + _offset_text(dt, style)
    assert parse_timestamp(text) == pytest.approx(dt.timestamp(), abs=1e-6)


@given(st.floats(min_value=946_684_800, max_value=4_102_444_799, allow_nan=False))
def test_unix_timestamps_round_trip(value: float) -> None:
    assert parse_timestamp(repr(value)) == value


@given(st.text(max_size=60))
def test_any_text_is_a_timestamp_or_a_value_error(text: str) -> None:
    try:
        value = parse_timestamp(text)
    except ValueError as e:
        assert str(e)
    else:
        assert 946_684_800 <= value < 4_102_444_800


@given(st.text(max_size=80))
def test_any_text_is_a_row_or_a_value_error(text: str) -> None:
    try:
        t, v = parse_row(text)
    except ValueError as e:
        assert str(e)
    else:
        assert 946_684_800 <= t < 4_102_444_800 and 0 <= v <= 1500


@given(st.floats(min_value=0, max_value=1500))
def test_values_round_trip(value: float) -> None:
    assert parse_value(repr(value)) == value


@given(st.text(max_size=30))
def test_any_text_is_a_value_or_a_value_error(text: str) -> None:
    try:
        value = parse_value(text)
    except ValueError as e:
        assert str(e)
    else:
        assert 0 <= value <= 1500


ROWS = st.lists(st.tuples(st.integers(1, 4 * H), st.floats(min_value=0, max_value=1500)), min_size=2, max_size=30)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(ROWS, st.booleans(), st.lists(st.integers(0, 3), max_size=30), st.data())
def test_series_files_parse_or_fail_at_the_right_line(
    tmp_path: Path, rows: list[tuple[int, float]], header: bool, noise: list[int], data: st.DataObject
) -> None:
    times, t = [], T0
    for step, _ in rows:
        t += step
        times.append(t)
    values = [v for _, v in rows]
    lines = ["timestamp,g_per_kwh"] if header else []
    numbers = []
    for i, (ts, v) in enumerate(zip(times, values)):
        extra = noise[i] if i < len(noise) else 0
        lines += ["", "# note"][: extra % 3] if extra else []
        stamp = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat() if i % 2 else str(ts)
        lines.append(f"{stamp},{v!r}")
        numbers.append(len(lines))
    path = tmp_path / "prop.csv"
    path.write_text("\n".join(lines) + "\n")
    got_t, got_v, got_lines = read_series(path)
    assert got_t == times and got_v == values and got_lines == numbers
    # corrupt one row: the error names that row's line
    k = data.draw(st.integers(0, len(times) - 1))
    fault = data.draw(st.sampled_from(["-5", "1e9", "x", "2024-05-01T00:00"]))
    broken = list(lines)
    stamp, _, value = broken[numbers[k] - 1].partition(",")
    broken[numbers[k] - 1] = f"{fault},{value}" if fault.startswith("2024") else f"{stamp},{fault}"
    path.write_text("\n".join(broken) + "\n")
    with pytest.raises(SeriesError) as err:
        read_series(path)
    assert str(err.value).startswith(f"{path}:{numbers[k]}: ")
