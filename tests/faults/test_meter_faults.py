"""Faults of the meters: NVML that cannot start, a slow call, a counter reset, a transient error, RAPL unreadable."""

from __future__ import annotations

import itertools
import logging
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from co2cb import ConfigError, Tracker, read_records
from co2cb.training import RankInfo, SingleProcess, TrainingMonitor
from tests.fakes import NVML_ERROR_DRIVER_NOT_LOADED, Constant, FakeGpu, Fault, MakeFake
from tests.fakes.fake_pynvml import NVML_ERROR_UNKNOWN
from tests.fakes.powercap import FakePowercap

ROOT = Path(__file__).resolve().parents[2]
ENERGY = "nvmlDeviceGetTotalEnergyConsumption"


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# --------------------------------------------------------------------------- row 3: a GPU NVML cannot serve
def test_row3_a_framework_gpu_nvml_cannot_serve_leaves_cpu_and_ram_measured(
    nvml: MakeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    monitor = TrainingMonitor(tracker_options={"intensity": 100, "interval_s": 0.05, "output_dir": str(tmp_path)})
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        monitor.start(SingleProcess(), RankInfo(), {"max_epochs": 1}, gpus=[0], uses_gpu=True)  # as the adapters do
        assert monitor.tracker is not None
        monitor.finish()
    tracker = monitor.tracker
    assert {m.info.component.value for m in tracker.meter_set.meters} == {"cpu", "ram"}
    gpu_choice = next(c for c in tracker.meter_set.choices if c.component.value == "gpu")
    assert gpu_choice.chosen == () and "cannot be measured" in gpu_choice.reason
    said = _said(caplog, "cannot be measured")
    assert len(said) == 1 and "GPU" in said[0] and "nvidia-smi" in said[0]
    assert tracker.run_folder is not None
    header = read_records(tracker.run_folder)[0]
    assert any("cannot be measured" in c["reason"] for c in header["meter_choices"]), "recorded"


def test_row3_a_gpu_list_the_user_gave_fails_at_construction(nvml: MakeFake) -> None:
    from co2cb.meters.accelerators import FrameworkGpus  # (here: each test of this file runs on older code too)

    nvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(ConfigError, match=r"gpus=\[0\] was given but NVML could not start"):
        Tracker(save=False, intensity=100, gpus=[0])
    assert Tracker(save=False, intensity=100, gpus=FrameworkGpus([0])).meter_set.gpus == []


def test_row3_a_bad_electricitymaps_url_fails_at_construction_not_at_fit_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CO2CB_ELECTRICITYMAPS_URL", "api.electricitymaps.com")  # no scheme
    with pytest.raises(ConfigError, match=r"CO2CB_ELECTRICITYMAPS_URL.*give http"):
        TrainingMonitor(tracker_options={"intensity": "electricitymaps", "region": "FR"})


# --------------------------------------------------------------------------- row 4: a slow NVML call
class Gate:
    """Constant watts; once armed, the next call blocks until released (a hung NVML call)."""

    def __init__(self, watts: float) -> None:
        self.watts = watts
        self.armed = False
        self.blocked = threading.Event()
        self.released = threading.Event()

    def __call__(self, t: float) -> float:
        if self.armed:
            self.armed = False
            self.blocked.set()
            self.released.wait()
        return self.watts


def test_row4_a_hung_nvml_call_never_holds_a_window_boundary(nvml: MakeFake) -> None:
    gate = Gate(120.0)
    gpu = FakeGpu(power=gate, has_energy_counter=False)
    nvml(gpu)
    tracker = Tracker(save=False, intensity=100, interval_s=0.05, components=("gpu",)).start()
    on_main = len(gpu.returned("nvmlDeviceGetPowerUsage", thread="MainThread"))
    safety = threading.Timer(20.0, gate.released.set)  # never hang the suite
    safety.start()
    try:
        gate.armed = True
        assert gate.blocked.wait(20.0), "the sampler did not read the GPU"
        results = []
        for _ in range(5):
            with tracker.window("epoch") as window:
                pass
            results.append(window.result)
        held = gate.released.is_set()
        read_on_main = len(gpu.returned("nvmlDeviceGetPowerUsage", thread="MainThread")) - on_main
    finally:
        gate.released.set()
        safety.cancel()
    tracker.stop()
    assert not held, "every boundary returned while the NVML call was still hanging"
    assert all(r is not None and r.seconds >= 0 for r in results)
    assert read_on_main == 0, "between start and stop, only the sampler's thread reads the GPU"


# --------------------------------------------------------------------------- rows 6 and 7: counters
def _reads(gpu: FakeGpu) -> list:  # type: ignore[type-arg]
    return gpu.returned(ENERGY)


def test_row6_a_counter_reset_is_a_new_segment_said_and_recorded(
    nvml: MakeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = FakeGpu(power=Constant(150.0))
    nvml(gpu)
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        tracker = Tracker(output_dir=tmp_path, intensity=100, interval_s=0.05, components=("gpu",)).start()
        first = _reads(gpu)[-1]  # the run's opening read
        time.sleep(0.3)
        reset = time.perf_counter()
        gpu.reset_counter(reset)  # the driver reloads: NVML counts from zero again
        time.sleep(0.4)
        run = tracker.stop()
    assert run is not None and tracker.run_folder is not None
    last = _reads(gpu)[-1]
    reads = _reads(gpu)
    # the last read before the count went back (a read can land between ``reset`` and the reload's call)
    before = next(a for a, b in itertools.pairwise(reads) if b.value < a.value)
    lost = reset - before.t  # between the last read before the reload and the reload: not counted
    assert run.meter_joules["gpu:0"] == pytest.approx(150.0 * (last.t - first.t - lost), rel=1e-3)
    assert run.provenance["gpu"] == "measured-counter" and run.unavailable == ()
    assert len(_said(caplog, "went back")) == 1
    events = [x for x in read_records(tracker.run_folder) if x["type"] == "event"]
    assert [e["meter"] for e in events] == ["gpu:0"] and "went back" in events[0]["what"]


def test_row7_a_transient_nvml_error_skips_a_reading_and_loses_nothing(
    nvml: MakeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = FakeGpu(power=Constant(150.0))
    nvml(gpu)
    tracker = Tracker(output_dir=tmp_path, intensity=100, interval_s=0.05, components=("gpu",))
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        tracker.start()
        first = _reads(gpu)[-1]
        gpu.faults.append(Fault(NVML_ERROR_UNKNOWN, from_time=time.perf_counter() + 0.1, times=3, functions={ENERGY}))
        time.sleep(0.6)
        run = tracker.stop()
    assert run is not None and tracker.run_folder is not None
    assert len(gpu.failures()) == 3, "the fault fired"
    last = _reads(gpu)[-1]
    assert run.unavailable == ()
    assert run.meter_joules["gpu:0"] == pytest.approx(gpu.energy_between(first.t, last.t), rel=1e-3)
    assert len(_said(caplog, "a reading failed")) == 1
    events = [x["what"] for x in read_records(tracker.run_folder) if x["type"] == "event"]
    assert any("a reading failed" in e for e in events) and any("readable again" in e for e in events)
    assert not tracker._sampler.events  # written, then let go: a meter that keeps failing grows no list


def test_guard_a_lost_gpu_is_still_dropped(nvml: MakeFake) -> None:
    gpu = FakeGpu(power=Constant(150.0))
    nvml(gpu)
    tracker = Tracker(save=False, intensity=100, interval_s=0.05, components=("gpu",)).start()
    gpu.lose()
    time.sleep(0.3)
    run = tracker.stop()
    assert run is not None and run.unavailable == ("gpu:0",)


# --------------------------------------------------------------------------- row 10: said at run time
def test_row10_nvml_that_cannot_start_is_said_at_run_time(nvml: MakeFake, caplog: pytest.LogCaptureFixture) -> None:
    nvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        tracker = Tracker(save=False, intensity=100).start()
        tracker.stop()
    said = _said(caplog, "NVML could not start")
    assert len(said) == 1 and "Driver Not Loaded" in said[0] and "nvidia-smi" in said[0]


def test_row10_a_powercap_root_that_does_not_exist_is_said_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CO2CB_POWERCAP_ROOT", str(tmp_path / "no-such-folder"))
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        tracker = Tracker(save=False, intensity=100, components=("cpu",)).start()
        tracker.stop()
    said = _said(caplog, "no-such-folder")
    assert len(said) == 1 and "CO2CB_POWERCAP_ROOT" in said[0] and "estimated" in said[0]


UNREADABLE = """
import logging, os, sys
from co2cb import Tracker
Tracker(save=False, intensity=100, components=("cpu",), powercap_root=sys.argv[2]).start().stop()  # imports all
if os.geteuid() == 0:  # as an unprivileged user: root reads any file
    os.setgid(65534)
    os.setuid(65534)
logging.basicConfig(format="%(message)s")
t = Tracker(save=False, intensity=100, components=("cpu",), powercap_root=sys.argv[1]).start()
t.stop()
"""


def test_row10_rapl_that_is_not_readable_is_said_at_run_time() -> None:
    folder = Path(tempfile.mkdtemp())  # under /tmp: the unprivileged user can reach it
    try:
        folder.chmod(0o755)
        tree = FakePowercap(folder / "powercap")
        for path in (folder / "powercap").rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o444)
        for zone in tree.zones.values():
            (zone / "energy_uj").chmod(stat.S_IRUSR)  # root-only, as since Linux 5.10
        done = subprocess.run(
            [sys.executable, "-c", UNREADABLE, str(tree.root), str(folder / "none")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "CO2CB_QUIET": "1", "PYTHONPATH": str(ROOT)},
            timeout=120,
        )
    finally:
        for path in folder.rglob("*"):
            path.chmod(0o700 if path.is_dir() else 0o600)
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "RAPL is present but not readable" in line]
    assert len(said) == 1 and "chmod" in said[0], done.stderr
