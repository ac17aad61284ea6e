"""Electricity Maps live provider against a local HTTP server on 127.0.0.1: answers, faults, cache, no token leak."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from co2cb import ConfigError, Tracker, read_records
from co2cb.intensity.database import lookup
from co2cb.intensity.electricitymaps import (
    TOKEN_ENV,
    URL_ENV,
    ElectricityMapsIntensity,
    clear_cache,
    zone_for,
)
from tests.fakes.meters import ConstantPower

TOKEN = "tok-5ecret-Zq81xW"  # a test token, looked for in every output
FR = lookup("FR").row.g_per_kwh


class FakeApi:
    """What the local server answers; tests change ``mode`` and ``value``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.value: Any = 123
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.delay_s = 3.0  # the slow answer: well past the 0.5 s the slow test waits, however busy the machine


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        return

    def do_GET(self) -> None:
        api = self.api
        api.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        zone = self.path.partition("zone=")[2] or "?"
        mode = api.mode
        if mode == "slow":
            time.sleep(api.delay_s)
        if mode in ("500", "401"):
            self._send(int(mode), b'{"error": "no"}')
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "/v3/carbon-intensity/latest?zone=DE")
            self.end_headers()
        elif mode == "garbage":
            self._send(200, b"<html>not json</html>")
        elif mode == "wrong-zone":
            self._send(200, json.dumps({"zone": "DE", "carbonIntensity": 300}).encode())
        elif mode == "no-value":
            self._send(200, json.dumps({"zone": zone, "carbonIntensity": None}).encode())
        elif mode == "out-of-range":
            self._send(200, json.dumps({"zone": zone, "carbonIntensity": 99999}).encode())
        elif mode == "list":
            self._send(200, b"[1, 2, 3]")
        elif mode == "echo-token":  # a hostile server that echoes the token back in its answer
            self._send(200, json.dumps({"zone": self.headers.get("auth-token"), "carbonIntensity": 1}).encode())
        else:
            body = {
                "zone": zone,
                "carbonIntensity": api.value,
                "datetime": "2026-02-01T10:00:00.000Z",
                "updatedAt": "2026-02-01T10:20:00.000Z",
                "emissionFactorType": "lifecycle",
                "isEstimated": False,
            }
            self._send(200, json.dumps(body).encode())

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(body)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApi, str]]:
    """A fake Electricity Maps API on 127.0.0.1, and its base URL."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "CO2CB_REGION", TOKEN_ENV, URL_ENV):
        monkeypatch.delenv(var, raising=False)
    clear_cache()
    fake = FakeApi()
    handler = type("Handler", (_Handler,), {"api": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        clear_cache()


def _source(base: str, **kw: Any) -> ElectricityMapsIntensity:
    kw.setdefault("region", "FR")
    kw.setdefault("timeout_s", 5.0)  # a local answer, however busy the machine (the slow test says 0.5 s)
    return ElectricityMapsIntensity(token=kw.pop("token", TOKEN), base_url=base, **kw)


def test_a_live_answer_is_used_with_its_provenance(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    s = _source(base)
    try:
        assert s.live and s.g_per_kwh_at(time.time()) == 123
        info = s.info
        assert info.g_per_kwh == 123 and info.region == "FR" and info.kind == "average" and info.year is None
        assert info.source.startswith("Electricity Maps live API (127.0.0.1:")
        assert "for 2026-02-01T10:00:00.000Z" in info.reason and "region 'FR' given as an argument" in info.reason
        assert f"FR table value {FR:g}" in info.reason
        path, headers = fake.requests[0]
        assert path == "/v3/carbon-intensity/latest?zone=FR" and headers["auth-token"] == TOKEN
        assert TOKEN not in repr(s)
    finally:
        s.close()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("500", "HTTP 500"),
        ("401", "HTTP 401 (the token was refused)"),
        ("garbage", "the answer is not JSON"),
        ("list", "not a JSON object"),
        ("wrong-zone", "the answer is for 'DE', not 'FR'"),
        ("no-value", "no numeric carbonIntensity"),
        ("out-of-range", "outside 0..1500"),
        ("slow", "no answer within 0.5 s"),
        ("redirect", "HTTP 302 (redirects are not followed)"),
        ("echo-token", "the answer is for another zone, not 'FR'"),
    ],
)
def test_faults_fall_back_to_the_table_and_never_leak_the_token(
    api: tuple[FakeApi, str], caplog: pytest.LogCaptureFixture, mode: str, why: str
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, base = api
    fake.mode = mode
    began = time.monotonic()
    s = _source(base, timeout_s=0.5) if mode == "slow" else _source(base)
    took = time.monotonic() - began
    try:
        assert took < fake.delay_s, f"construction waited {took:.2f} s"  # not for the slow answer
        assert not s.live and s.g_per_kwh_at(time.time()) == FR
        info = s.info
        assert info.g_per_kwh == FR and info.source == lookup("FR").row.source and info.year is not None
        assert why in info.reason and "Electricity Maps live intensity not used" in info.reason
        assert TOKEN not in info.reason and TOKEN not in repr(s)
        assert any(why in r.getMessage() for r in caplog.records)
        assert all(TOKEN not in r.getMessage() for r in caplog.records)
        assert len(fake.requests) == 1  # a redirect is not followed, so the token goes nowhere else
    finally:
        s.close()


def test_missing_token_or_zone_opens_no_connection(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    no_token = _source(base, token="", environ={})
    assert not no_token.live and f"{TOKEN_ENV} is not set" in no_token.info.reason
    no_zone = _source(base, region="WORLD")
    assert not no_zone.live and "world average has no Electricity Maps zone" in no_zone.info.reason
    egrid = _source(base, region="CAMX")
    assert "eGRID subregion CAMX is not an Electricity Maps zone" in egrid.info.reason
    assert fake.requests == []


def test_the_token_comes_from_the_environment(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    s = ElectricityMapsIntensity("FR", base_url=base, timeout_s=5.0, environ={TOKEN_ENV: TOKEN})
    s.close()
    assert s.live and fake.requests[0][1]["auth-token"] == TOKEN


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        ("FR", "FR"),
        ("fra", "FR"),
        ("aws:eu-west-3", "FR"),
        ("gcp:europe-west9", "FR"),
        ("US-CA", "US-CAL-CISO"),
        ("DK-DK1", "DK-DK1"),
        ("CAMX", None),
        ("WORLD", None),
    ],
)
def test_zones_come_from_the_database(region: str, zone: str | None) -> None:
    assert zone_for(region)[0] == zone


def test_bad_options_fail_at_construction_without_the_token() -> None:
    for kwargs, message in [
        ({"base_url": "ftp://example.invalid"}, "base URL"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"ttl_s": -1}, "ttl_s"),
        ({"region": "Atlantis"}, "unknown region"),
    ]:
        with pytest.raises(ValueError, match=message) as err:
            ElectricityMapsIntensity(token=TOKEN, **kwargs)  # type: ignore[arg-type]
        assert TOKEN not in str(err.value)


def test_answers_are_cached_across_sources(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    first, second = _source(base), _source(base)
    first.close()
    second.close()
    assert len(fake.requests) == 1 and second.live and "cached" in second.info.reason


def test_refresh_runs_in_the_background_and_never_on_reads(api: tuple[FakeApi, str]) -> None:
    fake, base = api
    s = _source(base, ttl_s=0.3)
    try:
        t_first = time.time()
        for _ in range(1000):  # reads (what a window close does) never touch the network
            s.g_per_kwh_at(time.time())
        assert len(fake.requests) == 1
        fake.value = 200
        deadline = time.monotonic() + 5
        while s.g_per_kwh_at(time.time()) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert s.g_per_kwh_at(time.time()) == 200 and s.g_per_kwh_at(t_first) == 123
        change = s.readings[-1].unix_s
        assert s.breakpoints(t_first, time.time() + 1) == [change]
        fake.mode = "500"
        while s.live and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not s.live and s.g_per_kwh_at(time.time()) == FR
        notes = s.notes(t_first, time.time())
        assert len(notes) == 1 and "HTTP 500" in notes[0] and "FR table value" in notes[0]
    finally:
        s.close()
    n = len(fake.requests)
    time.sleep(0.7)
    assert len(fake.requests) <= n + 1  # closed: refreshing stops


def test_tracker_live_run_keeps_the_token_out_of_records_logs_and_stderr(
    api: tuple[FakeApi, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, base = api
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(URL_ENV, base)
    monkeypatch.delenv("CO2CB_QUIET", raising=False)
    for mode in ("ok", "500"):
        clear_cache()
        fake.mode = mode
        out = tmp_path / mode
        with (
            Tracker(
                output_dir=out, meters=[ConstantPower()], intensity="electricitymaps", region="FR", interval_s=0.05
            ) as tracker,
            tracker.window("epoch") as w,
        ):
            time.sleep(0.1)
        expected = 123 if mode == "ok" else FR
        assert w.result is not None and w.result.g_per_kwh == pytest.approx(expected)
        header = read_records(tracker.run_folder)[0]
        assert header["intensity"]["g_per_kwh"] == expected
        if mode == "500":
            assert "HTTP 500" in header["intensity"]["reason"]
        for f in tracker.run_folder.rglob("*"):
            if f.is_file():
                assert TOKEN not in f.read_text(errors="replace"), f
    captured = capsys.readouterr()
    assert "Electricity Maps" in captured.err and TOKEN not in captured.err + captured.out
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_tracker_with_a_bad_live_option_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, "not a url")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with pytest.raises(ConfigError, match="base URL") as err:
        Tracker(save=False, meters=[ConstantPower()], intensity="electricitymaps", region="FR")
    assert TOKEN not in str(err.value)


def test_live_provider_is_not_used_unless_asked(api: tuple[FakeApi, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, base = api
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(URL_ENV, base)
    Tracker(save=False, meters=[ConstantPower()], region="FR", interval_s=0.05).start().stop()
    assert fake.requests == []
