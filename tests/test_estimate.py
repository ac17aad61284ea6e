"""`co2cb estimate`: the accelerator table, name matching, the arithmetic, the CLI and its parsers."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from co2cb.cli.main import build_parser
from co2cb.intensity.database import UnknownRegionError, lookup
from co2cb.meters.estimates import RAM_WATTS_PER_GB
from co2cb.planning.accelerators import (
    ACCELERATOR_COLUMNS,
    UnknownAcceleratorError,
    accelerators,
    find_accelerator,
    load_accelerators,
    name_key,
    validate_accelerator,
)
from co2cb.planning.estimate import estimate
from co2cb.planning.inputs import (
    MAX_HOURS,
    PlanningInputError,
    parse_count,
    parse_cpu_watts,
    parse_hours,
    parse_pue,
    parse_ram_gb,
    parse_utilization,
    parse_watts,
)
from tests.cli import run_cli

REQUIRED = {
    "NVIDIA V100 SXM2": 300,
    "NVIDIA V100 PCIe": 250,
    "NVIDIA T4": 70,
    "NVIDIA A10": 150,
    "NVIDIA A100 SXM4 40GB": 400,
    "NVIDIA A100 SXM4 80GB": 400,
    "NVIDIA A100 PCIe 40GB": 250,
    "NVIDIA A100 PCIe 80GB": 300,
    "NVIDIA L4": 72,
    "NVIDIA L40S": 350,
    "NVIDIA H100 SXM5": 700,
    "NVIDIA H100 PCIe": 350,
    "NVIDIA H100 NVL": 400,
    "NVIDIA H200 SXM": 700,
    "NVIDIA GH200 Grace Hopper Superchip": 1000,
    "NVIDIA B200 (HGX)": 1000,
    "AMD Instinct MI250X": 560,
    "AMD Instinct MI300X": 750,
    "Google TPU v4": 192,
}


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    return run_cli(["estimate", *argv], capsys)


# -- the table ----------------------------------------------------------------------------------


def test_every_row_is_valid_and_sourced() -> None:
    rows = accelerators()
    assert len(rows) >= len(REQUIRED)
    for row in rows:
        assert validate_accelerator(row) == [], row.name
        assert row.source and row.url.startswith("https://") and 2010 <= row.year <= 2100
        assert row.vendor in ("NVIDIA", "AMD", "Google") and row.name.startswith(("NVIDIA", "AMD", "Google"))
    assert {r.name: r.board_power_w for r in rows if r.name in REQUIRED} == REQUIRED


def test_every_name_and_alias_finds_its_own_row() -> None:
    for row in accelerators():
        for name in (row.name, *row.aliases):
            assert find_accelerator(name).accelerator == row, name
            assert find_accelerator(name.upper()).accelerator == row
            assert find_accelerator(name.lower().replace(" ", "-")).accelerator == row


def test_bad_tables_are_refused(tmp_path: Path) -> None:
    header = ",".join(ACCELERATOR_COLUMNS)
    good = "NVIDIA X1,X1,X1,SXM,400,NVIDIA,X1 datasheet,https://example.com/x1.pdf,2024,max TDP"
    path = tmp_path / "acc.csv"
    path.write_text(f"{header}\n{good}\n")
    assert load_accelerators(path)[0].board_power_w == 400
    for bad, message in [
        (good.replace(",400,", ",0,"), "board power"),
        (good.replace(",2024,", ",1999,"), "year"),
        (good.replace("https://example.com/x1.pdf", "example.com"), "https://"),
        (good.replace(",X1 datasheet,", ",,"), "no source"),
        (good.replace(",400,", ",lots,"), "bad row"),
        (f"{good}\n{good.replace('NVIDIA X1,', 'NVIDIA X2,')}", "names both"),
    ]:
        path.write_text(f"{header}\n{bad}\n")
        with pytest.raises(ValueError, match=message):
            load_accelerators(path)
    path.write_text("name,watts\nX,1\n")
    with pytest.raises(ValueError, match="columns"):
        load_accelerators(path)


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("A100", "NVIDIA A100 SXM4 40GB"),
        ("a100", "NVIDIA A100 SXM4 40GB"),
        ("a100-80gb", "NVIDIA A100 SXM4 80GB"),
        ("A100 PCIe", "NVIDIA A100 PCIe 40GB"),
        ("H100 SXM", "NVIDIA H100 SXM5"),
        ("h100", "NVIDIA H100 SXM5"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA A100 SXM4 40GB"),
        ("Tesla V100-SXM2-16GB", "NVIDIA V100 SXM2"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5"),
        ("Tesla T4", "NVIDIA T4"),
        ("NVIDIA L4", "NVIDIA L4"),
        ("amd instinct mi300x", "AMD Instinct MI300X"),
        ("MI250X", "AMD Instinct MI250X"),
        ("TPU v4", "Google TPU v4"),
        ("  h200  ", "NVIDIA H200 SXM"),
        ("GH200", "NVIDIA GH200 Grace Hopper Superchip"),
        ("B200", "NVIDIA B200 (HGX)"),
        ("H100 NVL", "NVIDIA H100 NVL"),
    ],
)
def test_names_and_aliases(query: str, expected: str) -> None:
    assert find_accelerator(query).accelerator.name == expected


def test_a_family_name_says_which_form_it_took() -> None:
    match = find_accelerator("A100")
    assert "'A100' is taken as NVIDIA A100 SXM4 40GB (400 W)" in match.via
    assert "NVIDIA A100 PCIe 40GB (250 W)" in match.via and "NVIDIA A100 PCIe 80GB (300 W)" in match.via
    assert find_accelerator("A100 SXM4 40GB").via == "" and find_accelerator("L4").via == ""


def test_unknown_gpu_names_near_ones() -> None:
    with pytest.raises(UnknownAcceleratorError) as caught:
        find_accelerator("A10G")
    assert caught.value.suggestions[0] == "NVIDIA A10 (150 W)"
    assert "no board power for the A10G" in str(caught.value) and "--gpu-watts" in str(caught.value)
    with pytest.raises(UnknownAcceleratorError) as caught:
        find_accelerator("H100 SXM6")
    assert caught.value.suggestions[:3] == [
        "NVIDIA H100 SXM5 (700 W)",
        "NVIDIA H100 PCIe (350 W)",
        "NVIDIA H100 NVL (400 W)",
    ]
    for bad in ("", "   ", "---", None, 42):
        with pytest.raises(UnknownAcceleratorError):
            find_accelerator(bad)


@settings(max_examples=400, deadline=None)
@given(
    name=st.one_of(
        st.text(max_size=40), st.from_regex(r"(nvidia |amd )?[A-Za-z]{1,3}[0-9]{1,3}[A-Za-z -]{0,8}", fullmatch=True)
    )
)
def test_gpu_names_raise_only_unknown_accelerator(name: str) -> None:
    try:
        match = find_accelerator(name)
    except UnknownAcceleratorError as exc:
        assert "unknown accelerator" in str(exc) and isinstance(exc.suggestions, list)
        return
    assert name_key(name) in {name_key(n) for n in (match.accelerator.name, *match.accelerator.aliases)}


# -- the arithmetic ---------------------------------------------------------------------------------


def test_estimate_arithmetic_is_exact() -> None:
    est = estimate("A100", 8, 36, "aws:us-east-1")
    g = lookup("aws:us-east-1").row.g_per_kwh
    assert est.board_power_w == 400 and est.utilization == 1.0
    assert est.pue == 1.15, "an AWS region takes AWS's published PUE"
    assert est.gpu_kwh == 8 * 36 * 400 * 1.0 / 1000.0 == pytest.approx(115.2, rel=1e-15)
    assert est.it_kwh == est.gpu_kwh and est.total_kwh == est.it_kwh * 1.15
    assert est.co2_kg == est.total_kwh * g / 1000.0
    assert est.intensity.region == "US-MIDA-PJM" and est.intensity.g_per_kwh == g
    assert est.label.startswith("ESTIMATE") and "not a measurement" in est.label


def test_estimate_with_every_factor() -> None:
    est = estimate("H100 PCIe", 4, 10, "FR", pue=1.25, utilization=0.5, cpu_watts=300, ram_gb=512)
    g = lookup("FR").row.g_per_kwh
    assert est.gpu_kwh == 4 * 10 * 350 * 0.5 / 1000.0 == 7.0
    assert est.cpu_kwh == 10 * 300 / 1000.0 == 3.0
    assert est.ram_kwh == 10 * 512 * RAM_WATTS_PER_GB / 1000.0 == 1.92
    assert est.it_kwh == 7.0 + 3.0 + 1.92
    assert est.total_kwh == est.it_kwh * 1.25
    assert est.co2_kg == est.total_kwh * g / 1000.0
    names = [f.name for f in est.factors]
    assert names == ["board power", "utilisation", "CPU power", "RAM power", "PUE", "carbon intensity"]
    board = est.factors[0]
    assert board.year == 2022 and "H100 Tensor Core GPU datasheet" in board.source and "https://" in board.source
    assert est.factors[-1].year == lookup("FR").row.year


def test_gpu_watts_overrides_or_stands_alone() -> None:
    est = estimate(None, 2, 5, "FR", gpu_watts=300)
    assert est.accelerator is None and est.gpu_kwh == 2 * 5 * 300 / 1000.0
    assert est.board_power_source.startswith("given by the user") and est.factors[0].year is None
    assert estimate("A100", 1, 1, "FR", gpu_watts=123).board_power_w == 123
    with pytest.raises(PlanningInputError, match="--gpu-watts"):
        estimate(None, 1, 1, "FR")


def test_region_defaults_resolve_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CO2CB_REGION", "SE")
    est = estimate("L4", 1, 1)
    assert est.intensity.region == "SE" and "CO2CB_REGION" in est.intensity.reason
    with pytest.raises(UnknownRegionError, match="nearest"):
        estimate("L4", 1, 1, "Frnace")


def test_marginal_intensity() -> None:
    est = estimate("L4", 1, 1, "IN", marginal=True)
    assert est.intensity.kind == lookup("IN", marginal=True).row.kind


# -- the command line -------------------------------------------------------------------------------


def test_cli_table_is_labelled_and_sourced(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["--gpu", "A100", "--count", "8", "--hours", "36", "--region", "aws:us-east-1"], capsys)
    assert code == 0 and not err
    assert out.startswith("ESTIMATE from published board power, not a measurement")
    assert "8 x NVIDIA A100 SXM4 40GB, 400 W each" in out and "'A100' is taken as" in out
    assert "NVIDIA A100 Tensor Core GPU datasheet" in out and "nvidia-a100-datasheet" in out and ", 2020)" in out
    assert "default: 1.0, board power all the time" in out and "Amazon 2024 Sustainability Report" in out
    assert "8 x 36 h x 400 W x 1 = 115.2 kWh" in out and "(ESTIMATE)" in out
    g = lookup("aws:us-east-1").row
    assert f"{g.g_per_kwh:g} gCO2e/kWh" in out and f", {g.year})" in out and "Northern Virginia" in out


def test_cli_json_and_csv(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "--gpu",
        "h100 sxm",
        "--count",
        "2",
        "--hours",
        "1.5d",
        "--region",
        "FR",
        "--pue",
        "1.1",
        "--utilization",
        "80%",
        "--cpu-watts",
        "200W",
        "--ram-gb",
        "256",
    ]
    code, out, _ = _cli([*argv, "--format", "json"], capsys)
    found = json.loads(out)
    assert code == 0 and found["label"].startswith("ESTIMATE") and found["hours"] == 36.0
    assert found["utilization"] == 0.8 and found["accelerator"]["name"] == "NVIDIA H100 SXM5"
    assert (
        found["co2_kg"] == estimate("H100 SXM", 2, 36, "FR", pue=1.1, utilization=0.8, cpu_watts=200, ram_gb=256).co2_kg
    )
    code, out, _ = _cli([*argv, "--format", "csv"], capsys)
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["label"].startswith("ESTIMATE") and float(row["co2_kg"]) == found["co2_kg"]


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["--gpu", "A10G", "--count", "1", "--hours", "1", "--region", "FR"], capsys)
    assert code == 2 and not out and "unknown accelerator 'A10G'" in err and "NVIDIA A10 (150 W)" in err
    code, _, err = _cli(["--gpu", "A100", "--count", "1", "--hours", "1", "--region", "Frnace"], capsys)
    assert code == 2 and "unknown region 'Frnace'" in err and "FR (France)" in err
    code, _, err = _cli(["--gpu", "A100", "--hours", "1"], capsys)
    assert code == 2 and "give --count" in err
    code, _, err = _cli(["--count", "1", "--hours", "1"], capsys)
    assert code == 2 and "--gpu (or --gpu-watts)" in err
    for option, value, message in [
        ("--hours", "0", "outside 0 < hours"),
        ("--count", "2.5", "whole number"),
        ("--utilization", "150%", "outside 0 < u <= 1"),
        ("--pue", "5", "1.0..3.0"),
        ("--hours", "36 parsecs", "unknown unit"),
    ]:
        with pytest.raises(SystemExit) as stop:
            _cli(["--gpu", "A100", "--count", "1", "--hours", "1", option, value], capsys)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert f"argument {option}" in err and message in err and f"{option}: {option}" not in err


def test_list_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(["--list-gpus"], capsys)
    assert code == 0 and f"{len(accelerators())} accelerators" in out and "NVIDIA H100 SXM5" in out
    code, out, _ = _cli(["--list-gpus", "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(accelerators()) and all(r["url"].startswith("https://") for r in rows)
    code, out, _ = _cli(["--list-gpus", "--format", "json"], capsys)
    assert [r["name"] for r in json.loads(out)] == [r.name for r in accelerators()]


# -- parsers of user input (property-based) ------------------------------------------------------------

ANY_INPUT = st.one_of(
    st.text(max_size=20),
    st.from_regex(r"\s?-?[0-9]{0,7}(\.[0-9]{0,4})?(e[+-]?[0-9]{1,3})?\s?(h|d|min|w|gb|%|x)?\s?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.none(),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(value=ANY_INPUT)
def test_parsers_raise_only_planning_input_error(value: object) -> None:
    checks = [
        (parse_hours, lambda v: 0 < v <= MAX_HOURS),
        (parse_count, lambda v: isinstance(v, int) and 1 <= v <= 1_000_000),
        (parse_utilization, lambda v: 0 < v <= 1),
        (parse_pue, lambda v: 1.0 <= v <= 3.0),
        (parse_watts, lambda v: 0 < v <= 5000),
        (parse_cpu_watts, lambda v: 0 <= v <= 1_000_000),
        (parse_ram_gb, lambda v: 0 <= v <= 1_000_000),
    ]
    for parse, ok in checks:
        try:
            parsed = parse(value)
        except PlanningInputError as exc:
            assert str(exc).startswith("--") and ("give" in str(exc) or "use" in str(exc))
            continue
        assert math.isfinite(parsed) and ok(parsed), (parse.__name__, value, parsed)


@settings(max_examples=200, deadline=None)
@given(
    hours=st.floats(min_value=1e-6, max_value=MAX_HOURS),
    count=st.integers(1, 1_000_000),
    percent=st.floats(min_value=0.01, max_value=100.0),
)
def test_parsers_read_back_what_they_are_given(hours: float, count: int, percent: float) -> None:
    assert parse_hours(repr(hours)) == hours and parse_hours(f"{hours!r}h") == hours
    assert parse_hours(f"{hours / 24!r}d") == pytest.approx(hours, rel=1e-12)
    assert parse_count(str(count)) == count
    assert parse_utilization(f"{percent!r}%") == pytest.approx(percent / 100.0, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    value=st.text(max_size=12),
    option=st.sampled_from(["--hours", "--count", "--utilization", "--pue", "--cpu-watts", "--ram-gb", "--gpu-watts"]),
)
def test_cli_parsers_exit_cleanly(value: str, option: str) -> None:
    try:
        build_parser().parse_args(["estimate", f"{option}={value}"])
    except SystemExit as stop:
        assert stop.code == 2


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(1, 10_000),
    hours=st.floats(min_value=0.01, max_value=10_000),
    utilization=st.floats(min_value=0.01, max_value=1.0),
    pue=st.floats(min_value=1.0, max_value=3.0),
    gpu=st.sampled_from([r.name for r in accelerators()]),
)
def test_estimate_is_the_product_of_its_factors(
    count: int, hours: float, utilization: float, pue: float, gpu: str
) -> None:
    est = estimate(gpu, count, hours, "FR", pue=pue, utilization=utilization)
    g = lookup("FR").row.g_per_kwh
    w = find_accelerator(gpu).accelerator.board_power_w
    assert est.co2_kg == pytest.approx(count * hours * w * utilization / 1000 * pue * g / 1000, rel=1e-12)
