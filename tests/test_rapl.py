"""RAPL through a fake powercap tree: the real file code, only the hardware simulated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from co2cb import Tracker
from co2cb.meters import rapl
from co2cb.meters.base import Component
from tests.fakes.powercap import FakePowercap


def test_zones_found_without_duplicates(powercap: FakePowercap) -> None:
    zones = rapl.find_zones(powercap.root)
    assert [(z.name, z.component) for z in zones] == [("package-0", Component.CPU), ("dram-0", Component.RAM)]
    assert all("mmio" not in z.path.name for z in zones)
    assert zones[0].max_range_uj == powercap.max_range_uj


def test_two_packages(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "pc", packages=2, dram=False)
    assert sorted(z.name for z in rapl.find_zones(tree.root)) == ["package-0", "package-1"]


def test_machine_scope_counts_counter_delta_exactly(powercap: FakePowercap) -> None:
    tracker = Tracker(
        save=False,
        scope="machine",
        components=("cpu", "ram"),
        powercap_root=powercap.root,
        intensity=100,
        interval_s=60,
    )
    names = [m.info.name for m in tracker.meter_set.meters]
    assert names == ["rapl:package-0", "rapl:dram-0"]
    with tracker:
        powercap.add_j("package-0", 120.5)
        powercap.add_j("dram-0", 7.25)
        with tracker.window("epoch") as w:
            powercap.add_j("package-0", 300.0)
            powercap.add_j("dram-0", 11.0)
    assert w.result is not None
    assert w.result.joules["cpu"] == pytest.approx(300.0, abs=1e-6)
    assert w.result.joules["ram"] == pytest.approx(11.0, abs=1e-6)
    assert w.result.provenance == {"cpu": "measured-counter", "ram": "measured-counter"}
    assert tracker.result is not None and tracker.result.joules["cpu"] == pytest.approx(420.5, abs=1e-6)


def test_wrap_around(powercap: FakePowercap) -> None:
    powercap.set_uj("package-0", powercap.max_range_uj - 5_000_000)  # 5 J before the wrap
    tracker = Tracker(
        save=False, scope="machine", components=("cpu",), powercap_root=powercap.root, intensity=100, interval_s=60
    )
    with tracker, tracker.window("epoch") as w:
        powercap.add_j("package-0", 12.0)  # wraps: counter now reads 7 J
        assert powercap.get_uj("package-0") == 7_000_000
    assert w.result is not None and w.result.joules["cpu"] == pytest.approx(12.0, abs=1e-6)


def test_powercap_root_from_environment(powercap: FakePowercap, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rapl.POWERCAP_ROOT_ENV, str(powercap.root))
    tracker = Tracker(save=False, scope="machine", components=("cpu",), intensity=100)
    assert [m.info.name for m in tracker.meter_set.meters] == ["rapl:package-0"]


def test_no_powercap_falls_back_to_estimate(tmp_path: Path) -> None:
    tracker = Tracker(save=False, components=("cpu", "ram"), powercap_root=tmp_path / "absent", intensity=100)
    provenance = {m.info.component.value: m.info.provenance.value for m in tracker.meter_set.meters}
    assert provenance == {"cpu": "estimate", "ram": "estimate"}
    cpu_choice = next(c for c in tracker.meter_set.choices if c.component is Component.CPU)
    assert "no RAPL" in cpu_choice.reason


def test_dram_measured_while_package_estimated_is_not_mixed(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path / "pc", dram=False)
    tracker = Tracker(save=False, components=("cpu", "ram"), powercap_root=tree.root, intensity=100)
    kinds = {m.info.name: m.info.provenance.value for m in tracker.meter_set.meters}
    assert kinds == {"rapl:package-0": "measured-counter", "ram:estimate": "estimate"}


_UNREADABLE_PROBE = """
import json, os, sys
from co2cb import Tracker
import co2cb.intensity.choice, co2cb.meters.discovery  # load everything before giving up root
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)  # as root every file is readable: become 'nobody'
t = Tracker(save=False, components=("cpu",), powercap_root=sys.argv[1], intensity=100, cpu_tdp_w=65)
print(json.dumps([c.as_dict() for c in t.meter_set.choices] + [m.info.as_dict() for m in t.meter_set.meters]))
"""


def test_unreadable_counters_fall_back_with_a_fix() -> None:
    with tempfile.TemporaryDirectory() as tmp:  # under /tmp, so that 'nobody' can reach it
        os.chmod(tmp, 0o755)
        powercap = FakePowercap(Path(tmp) / "powercap")
        for zone in powercap.zones.values():
            (zone / "energy_uj").chmod(0o400)  # root-only, as since Linux 5.10
        result = subprocess.run(
            [sys.executable, "-c", _UNREADABLE_PROBE, str(powercap.root)], capture_output=True, text=True, cwd="/"
        )
    assert result.returncode == 0, result.stderr
    choice, meter = json.loads(result.stdout)
    assert meter["provenance"] == "estimate"
    assert "not readable" in choice["reason"]
    assert "chmod" in choice["reason"] and "energy_uj" in choice["reason"]


def test_counter_read_error_mid_run_drops_the_meter(powercap: FakePowercap, caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(
        save=False,
        scope="machine",
        components=("cpu", "ram"),
        powercap_root=powercap.root,
        intensity=100,
        interval_s=60,
    )
    with tracker:
        powercap.add_j("package-0", 50.0)
        with tracker.window("a"):
            powercap.add_j("package-0", 10.0)
        (powercap.zones["package-0"] / "energy_uj").unlink()
        with tracker.window("b") as b:
            powercap.add_j("dram-0", 3.0)
        with tracker.window("c"):
            pass
    losses = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(losses) == 1 and "rapl:package-0" in losses[0].getMessage()
    assert b.result is not None and b.result.unavailable == ("rapl:package-0",)
    assert b.result.joules["ram"] == pytest.approx(3.0, abs=1e-6)
    assert tracker.result is not None and tracker.result.joules["cpu"] == pytest.approx(60.0, abs=1e-6)
