"""PUE defaults per cloud provider, user override, the header's PUE source, and the printed-once choice."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from co2cb import ConfigError, Tracker, read_records
from co2cb.intensity.choice import announce, announcement, choose, is_quiet
from co2cb.intensity.database import lookup
from co2cb.intensity.pue import CLOUD_PUE, cloud_provider, resolve_pue
from tests.fakes.meters import ConstantPower

CLOUD_VARS = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "GOOGLE_CLOUD_REGION",
    "CLOUDSDK_COMPUTE_REGION",
    "FUNCTION_REGION",
    "REGION_NAME",
    "AZURE_DEFAULTS_LOCATION",
    "CO2CB_REGION",
)


@pytest.fixture(autouse=True)
def _no_cloud_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in CLOUD_VARS:
        monkeypatch.delenv(var, raising=False)


def test_every_published_figure_has_a_source_and_year() -> None:
    assert set(CLOUD_PUE) == {"aws", "gcp", "azure"}
    for provider, c in CLOUD_PUE.items():
        assert c.provider == provider and 1.0 <= c.value <= 1.5
        assert 2020 <= c.year <= 2030 and c.source and c.note and c.url.startswith("https://")
    assert (CLOUD_PUE["gcp"].value, CLOUD_PUE["gcp"].year) == (1.09, 2024)
    assert (CLOUD_PUE["aws"].value, CLOUD_PUE["aws"].year) == (1.15, 2024)


@pytest.mark.parametrize(
    ("region", "provider"),
    [
        ("aws:eu-west-3", "aws"),
        ("AWS:us-east-1", "aws"),
        ("gcp:europe-west9", "gcp"),
        ("azure:francecentral", "azure"),
        ("eu-west-3", "aws"),  # unprefixed, only AWS has it
        ("europe-west9", "gcp"),
        ("francecentral", "azure"),
        ("FR", None),
        ("US-CA", None),
        ("egrid:CAMX", None),
        ("WORLD", None),
        (None, None),
        ("", None),
        ("aws:", None),
    ],
)
def test_cloud_provider_of_a_region(region: str | None, provider: str | None) -> None:
    assert cloud_provider(region) == provider


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_cloud_regions_get_their_providers_pue(provider: str) -> None:
    region = {"aws": "aws:eu-west-3", "gcp": "gcp:europe-west9", "azure": "azure:francecentral"}[provider]
    info = resolve_pue(None, region)
    c = CLOUD_PUE[provider]
    assert (info.value, info.source, info.year, info.url) == (c.value, c.source, c.year, c.url)
    assert region in info.reason and "pass pue= to override" in info.reason


def test_on_premises_is_one_and_the_user_wins() -> None:
    on_prem = resolve_pue(None, "FR")
    assert on_prem.value == 1.0 and on_prem.source == "co2cb default" and on_prem.year is None
    assert "FR is not a cloud region" in on_prem.reason
    user = resolve_pue(1.4, "gcp:europe-west9")
    assert (user.value, user.source, user.reason) == (1.4, "given by the user", "pue= argument")
    with pytest.raises(ValueError, match=r"between 1\.0 and 3\.0"):
        resolve_pue(0.9, None)


def test_tracker_applies_and_records_the_cloud_pue(tmp_path: Path) -> None:
    t = Tracker(output_dir=tmp_path, meters=[ConstantPower()], region="gcp:europe-west9", interval_s=0.05)
    with t, t.window("epoch") as w:
        time.sleep(0.1)
    r = w.result
    g = lookup("gcp:europe-west9").row.g_per_kwh
    assert r is not None and r.pue == 1.09 and t.pue == 1.09
    assert r.co2_kg == pytest.approx(r.kwh * g * 1.09 / 1000)
    header = read_records(t.run_folder)[0]
    assert header["pue"] == 1.09
    assert header["pue_info"]["source"] == "Google 2025 Environmental Report" and header["pue_info"]["year"] == 2024
    assert header["config"]["pue"] is None  # the user gave none


def test_tracker_user_pue_overrides_and_bad_pue_fails(tmp_path: Path) -> None:
    t = Tracker(save=False, meters=[ConstantPower()], region="aws:eu-west-3", pue=1.3)
    assert t.pue == 1.3 and t.header()["pue_info"]["source"] == "given by the user"
    for bad in (0.8, 3.5, True, "1.2"):
        with pytest.raises(ConfigError, match=r"between 1\.0 and 3\.0"):
            Tracker(save=False, meters=[ConstantPower()], pue=bad)  # type: ignore[arg-type]


def test_cloud_region_from_the_environment_sets_the_pue_even_with_a_given_intensity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    t = Tracker(save=False, meters=[ConstantPower()], intensity=250)
    assert t.pue == CLOUD_PUE["aws"].value and "aws:eu-west-3" in t.choice.pue.reason
    assert t.intensity.info.g_per_kwh == 250


# ----------------------------------------------------------------------------- printed once
def test_the_choice_is_printed_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CO2CB_QUIET", raising=False)
    choice = choose(None, "FR", pue=1.1)
    text = announcement(choice)
    fr = lookup("FR").row
    assert f"for FR ({fr.name})" in text and fr.source in text and str(fr.year) in text
    assert "region 'FR' given as an argument" in text and "PUE 1.1" in text and "CO2CB_QUIET=1" in text
    first, second = io.StringIO(), io.StringIO()
    from co2cb.intensity import choice as intensity_choice

    monkeypatch.setattr(intensity_choice, "_announced", set())
    assert announce(choice, stream=first) is True
    assert announce(choose(None, "FR", pue=1.1), stream=second) is False
    assert first.getvalue().strip() == text and second.getvalue() == ""
    other = io.StringIO()
    assert announce(choose(None, "DE", pue=1.1), stream=other) is True and "for DE" in other.getvalue()


def test_a_guess_says_so_and_how_to_set_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    text = announcement(choose(None, None, environ={"TZ": "Europe/Paris"}))
    assert "guess" in text and "CO2CB_REGION=FR" in text and 'region="FR"' in text


def test_quiet_silences_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from co2cb.intensity import choice as intensity_choice

    monkeypatch.setattr(intensity_choice, "_announced", set())
    out = io.StringIO()
    assert announce(choose(250, "FR"), stream=out, environ={"CO2CB_QUIET": "1"}) is False and out.getvalue() == ""
    assert is_quiet({"CO2CB_QUIET": "yes"}) and not is_quiet({"CO2CB_QUIET": "0"}) and not is_quiet({})


def test_a_tracker_prints_at_start_to_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from co2cb.intensity import choice as intensity_choice

    monkeypatch.delenv("CO2CB_QUIET", raising=False)
    monkeypatch.setattr(intensity_choice, "_announced", set())
    t = Tracker(save=False, meters=[ConstantPower()], region="FR", interval_s=0.05)
    assert capsys.readouterr().err == ""  # construction prints nothing
    t.start()
    t.stop()
    Tracker(save=False, meters=[ConstantPower()], region="FR", interval_s=0.05).start().stop()
    err = capsys.readouterr().err
    assert err.count("co2cb: carbon intensity") == 1 and "PUE 1" in err
    monkeypatch.setenv("CO2CB_QUIET", "1")
    Tracker(save=False, meters=[ConstantPower()], region="DE", interval_s=0.05).start().stop()
    assert capsys.readouterr().err == ""
