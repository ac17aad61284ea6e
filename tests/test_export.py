"""Live export: the /metrics endpoint parsed by prometheus_client, values against known power, the options,
OpenTelemetry through the SDK's InMemoryMetricReader, a failing Pushgateway, ``co2cb run``/``co2cb monitor``.

Real Prometheus and Pushgateway servers are in ``test_export_servers.py``, DDP in ``test_export_ddp.py``.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import co2cb
from co2cb.core.options import check_options
from co2cb.export import AUTH_ENV
from co2cb.export.metrics import SPECS, intensity_basis
from co2cb.intensity.database import lookup, to_intensity_info
from tests.cli import run_cli
from tests.export_support import OPENMETRICS, get, one, parse, pick, wait_for
from tests.fakes import Constant, MakeFake, make_gpus
from tests.fakes.meters import ConstantPower, RaisingMeter
from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

pytest.importorskip("prometheus_client", reason="the prometheus extra (pip install 'co2cb[prometheus]') is needed")

REPO = Path(__file__).resolve().parents[1]
KWH = 3.6e6
HOST = socket.gethostname()


def _tracker(tmp_path: Path, **options: Any) -> co2cb.Tracker:
    settings: dict[str, Any] = {
        "output_dir": tmp_path / "runs",
        "interval_s": 0.05,
        "intensity": 400,
        "meters": [ConstantPower(50.0, "test:a"), ConstantPower(30.0, "test:b")],
    }
    settings.update(options)
    return co2cb.Tracker(**settings)


def _summary(tracker: co2cb.Tracker) -> dict[str, Any]:
    assert tracker.run_folder is not None
    lines = [json.loads(x) for x in (tracker.run_folder / "run.jsonl").read_text().splitlines()]
    return next(x for x in lines if x["type"] == "summary")


# ------------------------------------------------------------------------------------ the endpoint
def test_the_endpoint_serves_every_metric_parsed_in_both_formats_with_the_known_values(tmp_path: Path) -> None:
    t = _tracker(tmp_path, marginal_intensity=300, pue=1.5, prometheus_port=0, run_name="served").start()
    try:
        url = t.prometheus_url
        assert url is not None and url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        wait_for(lambda: parse(get(url)), "the first interval's power", until=lambda s: pick(s, "co2cb_power_watts"))
        seen: list[float] = []

        def grown() -> list[float] | None:
            with t.window("epoch"):
                pass
            text, om = get(url), get(url, accept=OPENMETRICS)
            for series in (parse(text), parse(om, openmetrics=True)):
                _check_values(series)
            seen.append(one(parse(text), "co2cb_energy_joules_total", component="cpu"))
            return seen if len(set(seen)) >= 3 else None

        values = wait_for(grown, "three different energy values on /metrics")
        assert values == sorted(values) and values[-1] > 0  # a counter only grows
        assert "# TYPE co2cb_energy_joules counter" in get(url, accept=OPENMETRICS)
    finally:
        t.stop()
    with pytest.raises(OSError):  # the endpoint closed with the run, and its port is free again
        get(url, timeout_s=2.0)


def _check_values(s: dict[Any, float]) -> None:
    labels = {"run": "served", "host": HOST}
    joules = one(s, "co2cb_energy_joules_total", component="cpu", device=HOST, **labels)  # both meters, one host
    assert one(s, "co2cb_power_watts", component="cpu", device=HOST, **labels) == pytest.approx(80.0, rel=1e-9)
    grams = one(s, "co2cb_emissions_grams_total", **labels)
    assert grams == pytest.approx(joules / KWH * 400 * 1.5, rel=1e-9, abs=1e-15)
    marginal = one(s, "co2cb_emissions_marginal_grams_total", **labels)
    assert marginal == pytest.approx(joules / KWH * 300 * 1.5, rel=1e-9, abs=1e-15)
    assert one(s, "co2cb_carbon_intensity_grams_per_kwh", kind="average", basis="unknown", **labels) == 400
    assert one(s, "co2cb_carbon_intensity_grams_per_kwh", kind="marginal", **labels) == 300
    assert one(s, "co2cb_pue", **labels) == 1.5
    assert set(pick(s, "co2cb_meter_up").values()) == {1.0} and len(pick(s, "co2cb_meter_up")) == 2
    info = pick(s, "co2cb_provenance_info")
    assert len(info) == 2 and set(info.values()) == {1.0}
    for lab in map(dict, info):
        assert lab["meter"] in ("test:a", "test:b") and lab["provenance"] == "estimate"
        assert lab["measurement"] == "estimated" and lab["pue_source"] and lab["region_reason"]
    names = {name for name, _ in s}
    assert names == {spec.exposed_name for spec in SPECS}


def test_labels_stay_bounded_however_many_windows_and_steps(tmp_path: Path) -> None:
    t = _tracker(tmp_path, save=False, prometheus_port=0).start()
    try:
        url = t.prometheus_url
        assert url is not None
        first = wait_for(lambda: parse(get(url)), "the first interval", until=lambda s: pick(s, "co2cb_power_watts"))
        before = set(first)
        for epoch in range(200):
            with t.window("epoch", meta={"epoch": epoch}):
                for _ in range(20):
                    t.begin("step", record=False)
                    t.end("step")
        t._sampler.read_now()
        time.sleep(0.2)  # a few sampler ticks with the new steps
        after = set(parse(get(url)))
    finally:
        t.stop()
    assert after == before  # the same series: no step, epoch or window in any label


def test_a_port_in_use_warns_and_the_run_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        t = _tracker(tmp_path, prometheus_port=port)
        with caplog.at_level(logging.WARNING), t, t.window("epoch") as w:
            pass
    assert t.prometheus_url is None
    assert w.result is not None and t.result is not None
    warned = [r.getMessage() for r in caplog.records if "cannot serve Prometheus metrics" in r.getMessage()]
    assert len(warned) == 1
    assert f"port {port}" in warned[0] and "Measuring goes on" in warned[0] and "prometheus_port" in warned[0]
    assert _summary(t)["status"] == "completed"


def test_a_lost_meter_shows_as_down(tmp_path: Path) -> None:
    t = _tracker(tmp_path, save=False, prometheus_port=0, meters=[ConstantPower(50.0), RaisingMeter(good_reads=3)])
    with t:
        url = t.prometheus_url
        assert url is not None
        up = wait_for(
            lambda: pick(parse(get(url)), "co2cb_meter_up"),
            "the raising meter to show as down",
            until=lambda x: 0.0 in x.values(),
        )
    assert {dict(lab)["meter"]: v for lab, v in up.items()} == {"test:constant": 1.0, "test:raising": 0.0}


def test_gpus_are_labelled_by_index_with_their_provenance(tmp_path: Path, nvml: MakeFake) -> None:
    nvml(*make_gpus(2, power=Constant(100.0)))
    # 0.5 s intervals: the power gauge is a counter difference over the difference of two reads' time stamps (their
    # midpoints), which a read preempted on a busy machine moves by a few ms: 2 % of 0.5 s leaves 10 ms
    t = co2cb.Tracker(save=False, components=["gpu"], intensity=400, interval_s=0.5, prometheus_port=0)
    with t:
        url = t.prometheus_url
        assert url is not None
        s = wait_for(
            lambda: parse(get(url)),
            "the GPUs' power on /metrics",
            until=lambda x: len(pick(x, "co2cb_power_watts")) == 2,
        )
    energy = pick(s, "co2cb_energy_joules_total")
    assert sorted(dict(lab)["device"] for lab in energy) == ["0", "1"]
    assert {dict(lab)["component"] for lab in energy} == {"gpu"}
    assert list(pick(s, "co2cb_power_watts").values()) == pytest.approx([100.0, 100.0], rel=0.02)
    for lab in map(dict, pick(s, "co2cb_provenance_info")):
        assert lab["provenance"] == "measured-counter" and lab["measurement"] == "measured"
        assert lab["device"] in ("0", "1") and "NVML" in lab["meter_reason"]


@pytest.mark.parametrize(
    ("code", "basis"),
    [
        ("FR", "lifecycle"),  # Ember/OWID
        ("US-CAL-CISO", "lifecycle"),  # Electricity Maps yearly
        ("gcp:europe-west9", "operational"),  # Google, operational (gross)
        ("CAMX", "operational"),  # eGRID, CO2 from the stacks
    ],
)
def test_intensity_basis_of_each_table(code: str, basis: str) -> None:
    assert intensity_basis(to_intensity_info(lookup(code), "test")) == basis


def test_the_marginal_table_is_operational_and_a_given_number_unknown() -> None:
    assert intensity_basis(to_intensity_info(lookup("FR", marginal=True), "test")) == "operational"
    given = co2cb.Tracker(save=False, intensity=123, meters=[]).intensity.info
    assert intensity_basis(given) == "unknown"


# ------------------------------------------------------------------------------------ options
@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"prometheus_port": -1}, "prometheus_port=-1 is not valid: give a TCP port"),
        ({"prometheus_port": 70000}, "prometheus_port=70000"),
        ({"prometheus_port": True}, "prometheus_port=True"),
        ({"prometheus_port": "9100"}, "prometheus_port='9100'"),
        ({"prometheus_port": 9100, "prometheus_addr": "not an address!"}, "prometheus_addr='not an address!'"),
        ({"prometheus_addr": "0.0.0.0"}, "without prometheus_port: give the port"),
        ({"pushgateway": "pushgateway:9091"}, "give an http:// or https:// URL"),
        ({"pushgateway": "http://gw:9091/?x=1"}, "remove the query"),
        ({"pushgateway": "http://user:s3cret@gw:9091"}, f"remove them and set {AUTH_ENV}"),
        ({"opentelemetry": "yes"}, "opentelemetry='yes' is not valid: give True or False"),
    ],
)
def test_bad_export_options_fail_at_construction_saying_how_to_fix(options: dict[str, Any], says: str) -> None:
    for make in (lambda: check_options(**options), lambda: co2cb.Tracker(save=False, meters=[], **options)):
        with pytest.raises(co2cb.ConfigError) as e:
            make()
        assert says in str(e.value)
        assert "s3cret" not in str(e.value)


def test_malformed_credentials_fail_without_being_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AUTH_ENV, "no-colon-s3cret")
    with pytest.raises(co2cb.ConfigError) as e:
        co2cb.Tracker(save=False, meters=[], pushgateway="http://127.0.0.1:9091")
    assert AUTH_ENV in str(e.value) and "user:password" in str(e.value) and "s3cret" not in str(e.value)


@pytest.mark.parametrize(
    ("module", "options", "extra"),
    [
        ("prometheus_client", {"prometheus_port": 0}, "co2cb[prometheus]"),
        ("prometheus_client", {"pushgateway": "http://127.0.0.1:9091"}, "co2cb[prometheus]"),
        ("opentelemetry.metrics", {"opentelemetry": True}, "co2cb[otel]"),
    ],
)
def test_a_missing_package_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, module: str, options: dict[str, Any], extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importlib finds no such module
    with pytest.raises(co2cb.ConfigError, match=re.escape(f"pip install '{extra}'")):
        check_options(**options)


def test_the_core_and_the_command_line_import_no_exporter_package() -> None:
    code = (
        "import sys, co2cb; from co2cb.cli.main import build_parser; build_parser(); "
        "t = co2cb.Tracker(save=False, intensity=1).start(); t.stop(); "
        "print([m for m in sys.modules if m.split('.')[0] in ('prometheus_client', 'opentelemetry')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_export_package_sits_below_the_core() -> None:
    allowed = ("co2cb.export", "co2cb.meters.base", "co2cb.intensity.base", "co2cb.units", "co2cb._version")
    for path in (REPO / "co2cb" / "export").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        ours = {m for m in modules if m.split(".")[0] == "co2cb"}
        assert all(m.startswith(allowed) for m in ours), f"{path.name} imports {sorted(ours)}"


# ------------------------------------------------------------------------------------ a failing Pushgateway
def test_a_refused_pushgateway_warns_once_and_the_run_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(AUTH_ENV, "pusher:s3cret")
    t = _tracker(tmp_path, pushgateway=f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.INFO, logger="co2cb"), t:
        for epoch in range(5):
            with t.window("epoch", meta={"epoch": epoch}):
                time.sleep(0.02)
        assert t._live is not None and t._live.exporter.pusher is not None
        pusher = t._live.exporter.pusher
        wait_for(lambda: pusher.failures, "a push during the run to fail", until=lambda n: n >= 1)  # then at the end
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING and "Pushgateway" in r.getMessage()]
    assert len(warned) == 1 and "measuring goes on" in warned[0].getMessage()
    assert t._live is not None and t._live.exporter.pusher is not None
    assert t._live.exporter.pusher.failures >= 2 and t._live.exporter.pusher.pushes == 0  # tried again, at the end
    assert _summary(t)["status"] == "completed"
    assert t.run_folder is not None and "s3cret" not in (t.run_folder / "run.jsonl").read_text()
    assert "s3cret" not in caplog.text


def test_a_pushgateway_that_never_answers_times_out_off_the_training_thread(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("co2cb.export.pushgateway.TIMEOUT_S", 0.3)
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        t = _tracker(tmp_path, pushgateway=f"http://127.0.0.1:{silent.getsockname()[1]}")
        with caplog.at_level(logging.WARNING), t, t.window("epoch"):
            pass
    warned = [r.getMessage() for r in caplog.records if "Pushgateway" in r.getMessage()]
    assert len(warned) == 1 and "timed out" in warned[0]
    assert _summary(t)["status"] == "completed"


# ------------------------------------------------------------------------------------ OpenTelemetry
@pytest.fixture(scope="module")
def otel_reader() -> Any:
    """The process's MeterProvider, with an InMemoryMetricReader (the global provider can be set once)."""
    pytest.importorskip("opentelemetry.sdk.metrics", reason="opentelemetry-sdk (in the dev extra) is needed")
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    provider = metrics.get_meter_provider()
    reader = getattr(provider, "_co2cb_test_reader", None)
    if reader is None:
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader])
        provider._co2cb_test_reader = reader  # type: ignore[attr-defined]
        metrics.set_meter_provider(provider)
    return reader


def _otel_points(reader: Any, run: str) -> dict[str, tuple[Any, list[Any]]]:
    found: dict[str, tuple[Any, list[Any]]] = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "co2cb" and sm.scope.version == co2cb.__version__
            for m in sm.metrics:
                points = [p for p in m.data.data_points if p.attributes.get("run") == run]
                if points:
                    found[m.name] = (m, points)
    return found


def test_opentelemetry_gets_the_record_values_with_units_and_attributes(tmp_path: Path, otel_reader: Any) -> None:
    t = _tracker(tmp_path, opentelemetry=True, marginal_intensity=300, pue=1.2, run_name="otel-run")
    with t:
        for epoch in range(2):
            with t.window("epoch", meta={"epoch": epoch}):
                time.sleep(0.1)
    summary = _summary(t)
    got = _otel_points(otel_reader, "otel-run")
    units = {name: m.unit for name, (m, _) in got.items()}
    assert units == {
        "co2cb.energy": "J",
        "co2cb.power": "W",
        "co2cb.emissions": "g",
        "co2cb.emissions.marginal": "g",
        "co2cb.carbon_intensity": "g/kWh",
        "co2cb.pue": "1",
        "co2cb.meter.up": "1",
        "co2cb.provenance": "1",
    }
    energy_metric, (energy,) = got["co2cb.energy"]
    assert energy_metric.data.is_monotonic  # a counter: an OTel Sum, monotonic
    attributes = {"run": "otel-run", "run_id": t.run_id, "host": HOST, "component": "cpu", "device": HOST}
    assert dict(energy.attributes) == attributes
    assert energy.value == pytest.approx(summary["energy_kwh"]["cpu"] * KWH, rel=1e-9)  # the final values
    (co2,) = got["co2cb.emissions"][1]
    assert co2.value == pytest.approx(summary["co2_kg"] * 1000, rel=1e-9)
    (co2_m,) = got["co2cb.emissions.marginal"][1]
    assert co2_m.value == pytest.approx(summary["co2_kg_marginal"] * 1000, rel=1e-9)
    (power,) = got["co2cb.power"][1]
    assert power.value == pytest.approx(80.0, rel=1e-9)
    kinds = {p.attributes["kind"]: (p.value, p.attributes["basis"]) for p in got["co2cb.carbon_intensity"][1]}
    assert kinds == {"average": (400.0, "unknown"), "marginal": (300.0, "unknown")}
    assert [p.value for p in got["co2cb.pue"][1]] == [1.2]
    provenance = got["co2cb.provenance"][1]
    assert {p.attributes["meter"] for p in provenance} == {"test:a", "test:b"}
    assert all(p.attributes["measurement"] == "estimated" for p in provenance)


# ------------------------------------------------------------------------------------ command line
def test_co2cb_run_serves_its_metrics_to_the_command_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CO2CB_QUIET", "1")
    port = free_port()
    child = (  # the measured command scrapes its parent's endpoint (bounded retries) and writes what it parsed
        "import sys, time; sys.path.insert(0, sys.argv[1]); from tests.export_support import get, parse\n"
        "for _ in range(100):\n"
        "    try:\n"
        "        s = parse(get(sys.argv[2])); break\n"
        "    except OSError: time.sleep(0.1)\n"
        "open(sys.argv[3], 'w').write(repr(sorted({name for name, _ in s})))\n"
    )
    url = f"http://127.0.0.1:{port}/metrics"
    argv = ["run", "--name", "cli", "--output-dir", str(tmp_path), "--prometheus-port", str(port)]
    found = tmp_path / "found.txt"
    code, _, err = run_cli([*argv, "--", sys.executable, "-c", child, str(REPO), url, str(found)], capsys)
    assert code == 0, err
    assert "'co2cb_energy_joules_total'" in found.read_text() and "'co2cb_provenance_info'" in found.read_text()


def test_co2cb_run_refuses_an_address_without_a_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--output-dir", str(tmp_path), "--prometheus-addr", "0.0.0.0", "--", "true"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and re.search(r"without --?prometheus[-_]port", err), err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_co2cb_monitor_measures_the_machine_until_a_signal(tmp_path: Path, stop_with: signal.Signals) -> None:
    powercap = FakePowercap(tmp_path / "powercap")
    port = free_port()
    env = {**os.environ, "CO2CB_POWERCAP_ROOT": str(powercap.root), "PYTHONPATH": str(REPO)}
    env.pop("CO2CB_QUIET", None)
    cmd = [sys.executable, "-m", "co2cb", "monitor", "--name", "node", "--interval", "0.05", "--window", "0.3"]
    cmd += ["--output-dir", str(tmp_path / "runs"), "--prometheus-port", str(port), "--region", "FR"]
    with open(tmp_path / "err.log", "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: parse(get(url)), "co2cb monitor's endpoint")
        powercap.add_j("package-0", 5.0)
        cpu = wait_for(
            lambda: one(parse(get(url)), "co2cb_energy_joules_total", component="cpu"),
            "the 5 J on the endpoint",
            until=lambda e: e >= 5.0,
        )
        assert cpu == pytest.approx(5.0, rel=1e-9)  # machine scope: the counter's delta, whole
        time.sleep(0.4)  # at least one recorded window
        proc.send_signal(stop_with)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = (tmp_path / "err.log").read_text()
    assert f"co2cb: Prometheus metrics at {url}" in log
    assert f"stopped by {stop_with.name}" in log and "co2cb: record in" in log
    (folder,) = (tmp_path / "runs").iterdir()
    lines = [json.loads(x) for x in (folder / "run.jsonl").read_text().splitlines()]
    header, summary = lines[0], lines[-1]
    assert header["config"]["scope"] == "machine" and header["config"]["prometheus_port"] == port
    assert header["daemon"] == {"command": "co2cb monitor", "window_s": 0.3}
    assert summary["type"] == "summary" and summary["status"] == "completed"
    assert summary["stopped_by"] == stop_with.name
    assert summary["energy_kwh"]["cpu"] * KWH == pytest.approx(5.0, rel=1e-9)
    indices = [x["meta"]["index"] for x in lines if x.get("name") == "interval"]
    assert indices and indices == list(range(len(indices)))


def test_co2cb_monitor_refuses_a_bad_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["monitor", "--output-dir", str(tmp_path), "--window", "0"], capsys)
    assert code == 2 and "--window 0 is not valid" in err
