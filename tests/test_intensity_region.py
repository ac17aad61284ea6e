"""Offline region resolution: each step, the time-zone mapping, and no network by default."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from co2cb.intensity.database import lookup
from co2cb.intensity.region import CLOUD_ENV_VARS, resolve_region
from co2cb.intensity.timezones import load_zone_countries, machine_timezone, timezone_country

ZONE_TAB = """\
# comment line
FR\t+4852+00220\tEurope/Paris
US\t+340308-1181434\tAmerica/Los_Angeles\tPacific
IN\t+2232+08822\tAsia/Kolkata
DE\t+5230+01322\tEurope/Berlin\tmost of Germany
"""
ZONE1970_TAB = """\
# comment line
BE,LU,NL\t+5050+00420\tEurope/Brussels
"""
TZDATA_ZI = """\
# version 2099a
L Asia/Kolkata Asia/Calcutta
L America/Los_Angeles US/Pacific
"""


@pytest.fixture
def zoneinfo(tmp_path: Path) -> Path:
    """A small zoneinfo folder with zone.tab, zone1970.tab and tzdata.zi links."""
    folder = tmp_path / "zoneinfo"
    folder.mkdir()
    (folder / "zone.tab").write_text(ZONE_TAB, encoding="utf-8")
    (folder / "zone1970.tab").write_text(ZONE1970_TAB, encoding="utf-8")
    (folder / "tzdata.zi").write_text(TZDATA_ZI, encoding="utf-8")
    return folder


@pytest.fixture
def no_files(tmp_path: Path) -> dict[str, Path]:
    """Time-zone file paths that do not exist."""
    return {"timezone_file": tmp_path / "no-timezone", "localtime": tmp_path / "no-localtime"}


def test_step_argument_wins() -> None:
    env = {"CO2CB_REGION": "DE", "AWS_REGION": "eu-west-3", "TZ": "Asia/Kolkata"}
    res = resolve_region("US-CA", environ=env)
    assert (res.code, res.step, res.guessed) == ("US-CA", "argument", False)
    assert "argument" in res.reason


def test_blank_argument_is_ignored() -> None:
    assert resolve_region("  ", environ={"CO2CB_REGION": "DE"}).step == "env"


def test_step_env_var() -> None:
    res = resolve_region(environ={"CO2CB_REGION": "FR", "AWS_REGION": "us-east-1"})
    assert (res.code, res.step, res.guessed, res.reason) == ("FR", "env", False, "CO2CB_REGION=FR")


def test_unknown_explicit_region_is_returned_and_fails_at_lookup() -> None:
    res = resolve_region(environ={"CO2CB_REGION": "Atlantis"})
    assert res.code == "Atlantis"
    with pytest.raises(ValueError, match="unknown region"):
        lookup(res.code)


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("AWS_REGION", "eu-west-3", "aws:eu-west-3"),
        ("AWS_DEFAULT_REGION", "us-east-1", "aws:us-east-1"),
        ("GOOGLE_CLOUD_REGION", "europe-west9", "gcp:europe-west9"),
        ("CLOUDSDK_COMPUTE_REGION", "us-central1", "gcp:us-central1"),
        ("FUNCTION_REGION", "asia-northeast1", "gcp:asia-northeast1"),
        ("REGION_NAME", "West Europe", "azure:westeurope"),
        ("AZURE_DEFAULTS_LOCATION", "francecentral", "azure:francecentral"),
    ],
)
def test_step_cloud_env(var: str, value: str, expected: str) -> None:
    res = resolve_region(environ={var: value, "TZ": "Asia/Kolkata"})
    assert (res.code, res.step, res.guessed) == (expected, "cloud-env", False)
    assert f"{var}={value}" in res.reason
    lookup(res.code)  # the code resolves


def test_a_cloud_variable_is_a_strong_hint_and_disagreeing_hints_are_named(zoneinfo: Path) -> None:
    agree = resolve_region(
        environ={"AWS_REGION": "eu-west-3", "AWS_DEFAULT_REGION": "eu-west-3", "TZ": "Europe/Paris"},
        zoneinfo_dir=zoneinfo,
    )
    assert (agree.confidence, agree.source, agree.overruled) == ("strong hint", "AWS_REGION", ())
    assert "a strong hint, not a fact: set CO2CB_REGION" in agree.reason
    disagree = resolve_region(
        environ={"AWS_REGION": "eu-west-3", "REGION_NAME": "West Europe", "TZ": "America/Los_Angeles"},
        zoneinfo_dir=zoneinfo,
    )
    assert disagree.code == "aws:eu-west-3"
    assert disagree.overruled == ("REGION_NAME=West Europe -> azure:westeurope", "time zone America/Los_Angeles -> US")
    assert disagree.as_record()["overruled"] == list(disagree.overruled)
    given = resolve_region(environ={"CO2CB_REGION": "FR", "AWS_REGION": "us-east-1"})
    assert (given.confidence, given.source, given.overruled) == ("given", "CO2CB_REGION", ())  # a fact, no hint


def test_every_cloud_variable_is_tested() -> None:
    assert {var for var, _ in CLOUD_ENV_VARS} == {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "GOOGLE_CLOUD_REGION",
        "CLOUDSDK_COMPUTE_REGION",
        "FUNCTION_REGION",
        "REGION_NAME",
        "AZURE_DEFAULTS_LOCATION",
    }


def test_unknown_cloud_region_is_passed_over(zoneinfo: Path) -> None:
    res = resolve_region(environ={"AWS_REGION": "xx-nowhere-1", "TZ": "Europe/Paris"}, zoneinfo_dir=zoneinfo)
    assert (res.code, res.step, res.guessed) == ("FR", "timezone", True)
    assert "AWS_REGION=xx-nowhere-1 is not a region in the database" in res.reason


@pytest.mark.parametrize(
    ("zone", "country"),
    [
        ("Europe/Paris", "FR"),
        ("America/Los_Angeles", "US"),
        ("Asia/Kolkata", "IN"),
        ("Asia/Calcutta", "IN"),
        ("US/Pacific", "US"),
        (":Europe/Berlin", "DE"),
        ("Europe/Brussels", "BE"),
    ],
)
def test_step_timezone_from_tz(zoneinfo: Path, zone: str, country: str) -> None:
    res = resolve_region(environ={"TZ": zone}, zoneinfo_dir=zoneinfo)
    assert (res.code, res.step, res.guessed) == (country, "timezone", True)
    assert "guess" in res.reason
    assert f"CO2CB_REGION={country}" in res.reason and f'region="{country}"' in res.reason


def test_timezone_mapping_with_installed_tables() -> None:
    table = load_zone_countries()
    if not table:
        pytest.skip("neither the tzdata package nor /usr/share/zoneinfo is available")
    assert timezone_country("Europe/Paris", table) == "FR"
    assert timezone_country("America/Los_Angeles", table) == "US"
    assert timezone_country("Asia/Kolkata", table) == "IN"
    assert timezone_country("Etc/UTC", table) is None


def test_tzdata_package_tables_when_installed() -> None:
    pytest.importorskip("tzdata")
    from importlib import resources

    table = load_zone_countries(resources.files("tzdata") / "zoneinfo")
    assert table["Europe/Paris"] == "FR" and table["Asia/Kolkata"] == "IN"
    assert table.get("Asia/Calcutta") == "IN"  # a link, from tzdata.zi


def test_timezone_from_etc_timezone_file(tmp_path: Path, zoneinfo: Path) -> None:
    tzfile = tmp_path / "timezone"
    tzfile.write_text("Asia/Kolkata\n", encoding="utf-8")
    assert machine_timezone({}, timezone_file=tzfile, localtime=tmp_path / "none") == ("Asia/Kolkata", str(tzfile))
    res = resolve_region(environ={}, timezone_file=tzfile, localtime=tmp_path / "none", zoneinfo_dir=zoneinfo)
    assert (res.code, res.step) == ("IN", "timezone")


def test_timezone_from_localtime_symlink(tmp_path: Path, zoneinfo: Path) -> None:
    link = tmp_path / "localtime"
    os.symlink("/usr/share/zoneinfo/America/Los_Angeles", link)  # a dangling link is fine: only its target is read
    found = machine_timezone({}, timezone_file=tmp_path / "none", localtime=link)
    assert found is not None and found[0] == "America/Los_Angeles"
    res = resolve_region(environ={}, timezone_file=tmp_path / "none", localtime=link, zoneinfo_dir=zoneinfo)
    assert (res.code, res.step) == ("US", "timezone")


def test_tz_variable_wins_over_files(tmp_path: Path) -> None:
    tzfile = tmp_path / "timezone"
    tzfile.write_text("Asia/Kolkata\n", encoding="utf-8")
    assert machine_timezone({"TZ": "Europe/Paris"}, timezone_file=tzfile)[0] == "Europe/Paris"  # type: ignore[index]


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Etc/GMT+3", "GMT", "CET-1CEST", "Factory", "Nowhere/Atlantis"])
def test_zones_without_a_country_give_the_world_average(zoneinfo: Path, zone: str) -> None:
    res = resolve_region(environ={"TZ": zone}, zoneinfo_dir=zoneinfo)
    assert (res.code, res.step, res.guessed) == ("WORLD", "world", True)
    assert f"time zone {zone.lstrip(':')}" in res.reason


def test_step_world(no_files: dict[str, Path], zoneinfo: Path) -> None:
    res = resolve_region(environ={}, zoneinfo_dir=zoneinfo, **no_files)
    assert (res.code, res.step, res.guessed) == ("WORLD", "world", True)
    assert "guess" in res.reason and "CO2CB_REGION=FR" in res.reason and 'region="FR"' in res.reason
    assert lookup(res.code).row.code == "WORLD"


def test_missing_zone_tables_give_the_world_average(tmp_path: Path) -> None:
    res = resolve_region(environ={"TZ": "Europe/Paris"}, zoneinfo_dir=tmp_path / "empty")
    assert res.step == "world"


def test_metadata_is_off_by_default_and_opens_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolution with default arguments (and the lookup after it) opens no socket."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)

    res = resolve_region()
    lookup(res.code)
    res_env = resolve_region(environ={"AWS_REGION": "nowhere-1"})
    lookup(res_env.code)
    assert calls == []

    # Control: the patch does catch a connection, and an opted-in query fails softly.
    opted_in = resolve_region(environ={}, metadata=True, metadata_endpoint="http://127.0.0.1:9")
    assert calls, "the metadata query should have tried to connect"
    assert opted_in.step in ("timezone", "world")
    assert "no cloud metadata service answered" in opted_in.reason
