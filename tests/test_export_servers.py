"""Live export against the real servers: a Prometheus server scrapes ``co2cb run``; a Pushgateway receives pushes.

The binaries come from Debian (``apt-get install prometheus prometheus-pushgateway``); each test starts its
own on 127.0.0.1 with a temporary config and data folder on a free port, and skips, saying how to install
them, where they are missing. Energy comes from a fake RAPL counter the test moves (machine scope takes it
whole) or from constant-power fake meters, so every value is known.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest

import co2cb
from co2cb.export import AUTH_ENV
from tests.export_support import (
    binary,
    get,
    one,
    parse,
    pick,
    process,
    prometheus_query,
    pushgateway,
    wait_for,
)
from tests.fakes.meters import ConstantPower
from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

pytest.importorskip("prometheus_client", reason="the prometheus extra (pip install 'co2cb[prometheus]') is needed")

REPO = Path(__file__).resolve().parents[1]
KWH = 3.6e6
HOST = socket.gethostname()


def _lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (folder / "run.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------ Prometheus scrapes co2cb run
def test_a_real_prometheus_scrapes_co2cb_run_and_sees_the_energy_grow(tmp_path: Path) -> None:
    prometheus = binary("prometheus")
    powercap = FakePowercap(tmp_path / "powercap")
    target, api = free_port(), free_port()
    done = tmp_path / "done"
    wait_child = (  # the measured command: waits (at most 180 s) until the test says it is done
        "import pathlib, sys, time\n"
        "for _ in range(1800):\n"
        "    if pathlib.Path(sys.argv[1]).exists(): break\n"
        "    time.sleep(0.1)\n"
    )
    env = {**os.environ, "CO2CB_POWERCAP_ROOT": str(powercap.root), "CO2CB_QUIET": "1", "PYTHONPATH": str(REPO)}
    run_cmd = [sys.executable, "-m", "co2cb", "run", "--name", "scraped", "--scope", "machine", "--interval", "0.2"]
    run_cmd += ["--output-dir", str(tmp_path / "runs"), "--prometheus-port", str(target)]
    run_cmd += ["--", sys.executable, "-c", wait_child, str(done)]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        f"scrape_configs:\n  - job_name: co2cb\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    server = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    server += [f"--web.listen-address=127.0.0.1:{api}"]
    url = f"http://127.0.0.1:{api}"
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(run_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with process(server, tmp_path / "prometheus.log", f"{url}/-/ready"):
            seen: list[float] = []

            def grown() -> list[float] | None:
                powercap.add_j("package-0", 3.0)  # machine scope: the counter's delta is the CPU energy
                result = prometheus_query(url, 'co2cb_energy_joules_total{component="cpu"}')
                if result:
                    value = float(result[0]["value"][1])
                    if not seen or value > seen[-1]:
                        seen.append(value)
                return seen if len(seen) >= 3 else None

            values = wait_for(grown, "three growing values of co2cb_energy_joules_total in Prometheus", step_s=1.0)
            (series,) = prometheus_query(url, 'co2cb_energy_joules_total{component="cpu"}')
            info = prometheus_query(url, "co2cb_provenance_info")
            up = prometheus_query(url, 'up{job="co2cb"}')
        done.touch()
        assert run.wait(timeout=60) == 0, (tmp_path / "run.log").read_text()
    finally:
        done.touch()  # the measured command ends even when the test failed (killing co2cb run would orphan it)
        if run.poll() is None:
            run.kill()
            run.wait()
    assert values == sorted(values) and values[0] > 0
    assert all(v == int(v) for v in values)  # whole joules: only the counter's 3 J steps, exactly
    labels = series["metric"]
    assert labels["job"] == "co2cb" and labels["instance"] == f"127.0.0.1:{target}"
    assert (labels["run"], labels["host"], labels["device"]) == ("scraped", HOST, HOST)
    host_meters = [x for x in info if x["metric"]["component"] != "gpu"]  # a real GPU, if any, is measured too
    assert {x["metric"]["meter"] for x in host_meters} == {"rapl:package-0", "rapl:dram-0"}
    assert all(x["metric"]["measurement"] == "measured" for x in host_meters)
    assert [x["value"][1] for x in up] == ["1"]
    (folder,) = (tmp_path / "runs").iterdir()
    summary = _lines(folder)[-1]
    assert summary["type"] == "summary" and summary["exit_code"] == 0
    assert values[-1] <= summary["energy_kwh"]["cpu"] * KWH * (1 + 1e-9)  # what was scraped, then more


# ------------------------------------------------------------------------------------ a real Pushgateway
def _gateway_series(url: str, run: str) -> dict[Any, float] | None:
    """The co2cb samples a Pushgateway holds for ``run`` (parsed by prometheus_client), or None if none yet."""
    series = {k: v for k, v in parse(get(f"{url}/metrics")).items() if ("run", run) in k[1]}
    return series or None


def test_a_real_pushgateway_receives_a_push_at_each_window_close_and_the_final_values(tmp_path: Path) -> None:
    run = "pushed/1"  # a slash: prometheus_client encodes it in the grouping key
    with pushgateway(tmp_path) as url:
        t = co2cb.Tracker(
            output_dir=tmp_path / "runs",
            interval_s=0.05,
            intensity=400,
            pue=1.1,
            meters=[ConstantPower(50.0)],
            pushgateway=url,
            run_name=run,
        ).start()
        try:
            time.sleep(0.3)
            assert _gateway_series(url, run) is None  # no window closed yet: nothing pushed
            energies = []
            for epoch in range(2):
                with t.window("epoch", meta={"epoch": epoch}):
                    time.sleep(0.2)
                pushed = wait_for(
                    lambda: _gateway_series(url, run),
                    f"the push of epoch {epoch}",
                    until=lambda s: one(s, "co2cb_energy_joules_total") > max(energies, default=0.0),
                )
                energies.append(one(pushed, "co2cb_energy_joules_total"))
        finally:
            t.stop()
        final = wait_for(
            lambda: _gateway_series(url, run),
            "the final push",
            until=lambda s: one(s, "co2cb_energy_joules_total") > energies[-1],
        )
    summary = _lines(t.run_folder)[-1] if t.run_folder else {}
    labels = dict(next(iter(pick(final, "co2cb_energy_joules_total"))))
    assert labels == {
        **{"job": "co2cb", "instance": HOST, "run": run, "run_id": t.run_id},
        **{"host": HOST, "component": "cpu", "device": HOST},
    }
    assert one(final, "co2cb_energy_joules_total") == pytest.approx(summary["energy_kwh"]["cpu"] * KWH, rel=1e-9)
    assert one(final, "co2cb_emissions_grams_total") == pytest.approx(summary["co2_kg"] * 1000, rel=1e-9)
    assert one(final, "co2cb_pue") == 1.1 and one(final, "co2cb_power_watts") == pytest.approx(50.0, rel=1e-9)
    assert one(final, "co2cb_provenance_info", meter="test:constant") == 1.0


def test_two_runs_of_one_name_keep_their_own_final_values_on_the_pushgateway(tmp_path: Path) -> None:
    finals = {}
    with pushgateway(tmp_path) as url:
        for watts in (50.0, 80.0):
            options: dict[str, Any] = {"output_dir": tmp_path / "runs", "interval_s": 0.05, "intensity": 400}
            with co2cb.Tracker(meters=[ConstantPower(watts)], pushgateway=url, run_name="again", **options) as t:
                time.sleep(0.2)
            finals[t.run_id] = _lines(t.run_folder)[-1]["energy_kwh"]["cpu"] * KWH if t.run_folder else 0.0
        held = parse(get(f"{url}/metrics"))
    # before, the second run's push replaced the first's group (same job, instance and run name)
    for run_id, joules in finals.items():
        assert one(held, "co2cb_energy_joules_total", run_id=run_id) == pytest.approx(joules, rel=1e-9)


def _bcrypt(password: str) -> str | None:
    """A bcrypt hash for the Pushgateway's web config, from the C library (Python's crypt module, <= 3.12)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
    except ImportError:
        return None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    return hashed if hashed and hashed.startswith("$2") else None


def test_pushgateway_credentials_come_from_the_environment_and_reach_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hashed = _bcrypt("s3cret")
    if hashed is None:
        pytest.skip("no bcrypt hash for the Pushgateway's basic auth: Python's crypt module is gone (3.13+)")
    config = tmp_path / "web.yml"
    config.write_text(f"basic_auth_users:\n  pusher: '{hashed}'\n")

    def one_run(name: str) -> co2cb.Tracker:
        t = co2cb.Tracker(
            output_dir=tmp_path / "runs", intensity=400, meters=[ConstantPower(5.0)], pushgateway=url, run_name=name
        )
        with t, t.window("epoch"):
            pass
        return t

    with pushgateway(tmp_path, web_config=config) as url:
        monkeypatch.delenv(AUTH_ENV, raising=False)
        with caplog.at_level(logging.WARNING, logger="co2cb"):
            refused = one_run("no-credentials")
        monkeypatch.setenv(AUTH_ENV, "pusher:s3cret")
        allowed = one_run("with-credentials")
        basic = base64.b64encode(b"pusher:s3cret").decode()
        request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Basic {basic}"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            held = parse(response.read().decode())
    warned = [r.getMessage() for r in caplog.records if "Pushgateway" in r.getMessage()]
    assert len(warned) == 1 and "401" in warned[0] and "measuring goes on" in warned[0]
    assert refused.result is not None and _lines(refused.run_folder)[-1]["status"] == "completed"
    assert pick(held, "co2cb_energy_joules_total", run="with-credentials")
    assert not pick(held, "co2cb_energy_joules_total", run="no-credentials")
    assert allowed.run_folder is not None
    assert _lines(allowed.run_folder)[0]["config"]["pushgateway"] == url
    for folder in (tmp_path / "runs").iterdir():
        assert "s3cret" not in (folder / "run.jsonl").read_text()
    assert "s3cret" not in caplog.text
