"""Apple silicon through a fake ``zeus_apple_silicon``: co2cb's real Apple code, only the chip simulated."""

from __future__ import annotations

import logging
import platform
import sys
import time
from typing import Any

import pytest

from co2cb import ConfigError, Tracker
from co2cb.meters.base import MeterChoice

from .fakes import AppleFault, Constant, FakeSoc, Sine, edge_readings


def apple_tracker(**kwargs: Any) -> Tracker:
    options: dict[str, Any] = {"save": False, "interval_s": 0.05, "intensity": 400, "scope": "machine"}
    options.update(kwargs)
    return Tracker(**options)


def choice(tracker: Tracker, component: str) -> MeterChoice:
    (found,) = [c for c in tracker.meter_set.choices if c.component.value == component]
    return found


@pytest.mark.parametrize(("system", "machine"), [("Linux", "x86_64"), ("Darwin", "x86_64")])
def test_not_a_mac_with_apple_silicon(monkeypatch: pytest.MonkeyPatch, system: str, machine: str) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setattr(platform, "system", lambda: system)
    monkeypatch.setattr(platform, "machine", lambda: machine)
    tracker = apple_tracker(components=("gpu",))
    assert tracker.meter_set.accelerators["Apple silicon"] == f"not a Mac with Apple silicon ({system} {machine})"


def test_library_not_installed(apple: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    apple()
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    tracker = apple_tracker()
    reason = tracker.meter_set.accelerators["Apple silicon"]
    assert reason.startswith("zeus-apple-silicon is not installed (pip install zeus-apple-silicon")
    assert not [m for m in tracker.meter_set.meters if m.info.name.startswith("apple:")]
    assert choice(tracker, "cpu").reason.startswith("estimate: ")


def test_counters_that_cannot_be_read_leave_the_estimates(apple: Any) -> None:
    apple(FakeSoc(init_error=RuntimeError("Failed to create IOReport subscription.")))
    tracker = apple_tracker()
    assert tracker.meter_set.accelerators["Apple silicon"] == (
        "Apple IOReport energy counters could not be read (RuntimeError: Failed to create IOReport subscription.)"
    )
    assert not [m for m in tracker.meter_set.meters if m.info.name.startswith("apple:")]
    assert choice(tracker, "cpu").reason.startswith("estimate: ")


def test_channels_components_and_provenance(apple: Any) -> None:
    apple(FakeSoc())
    tracker = apple_tracker()
    meters = {m.info.name: m.info for m in tracker.meter_set.meters}
    assert list(meters) == ["apple:gpu", "apple:ane", "apple:cpu", "apple:dram"]
    assert {n: i.component.value for n, i in meters.items()} == {
        "apple:gpu": "gpu",
        "apple:ane": "gpu",
        "apple:cpu": "cpu",
        "apple:dram": "ram",
    }
    assert {i.provenance.value for i in meters.values()} == {"measured-counter"}
    details = meters["apple:gpu"].details
    assert details["chip"] == "Apple M2 Max"
    assert details["library"] == "zeus-apple-silicon unknown version"  # the fake has no distribution metadata
    assert "not a power sensor" in details["basis"]
    assert "without 'GPU SRAM'" in details["channel"]
    assert choice(tracker, "gpu").chosen == ("apple:gpu", "apple:ane")
    assert choice(tracker, "gpu").reason.startswith(
        "Apple silicon: Apple M2 Max, zeus-apple-silicon unknown version: apple:cpu, apple:gpu, apple:ane, apple:dram; "
        "NVIDIA: nvidia-ml-py is not installed"
    )
    assert choice(tracker, "cpu").chosen == ("apple:cpu",)
    assert choice(tracker, "cpu").reason.startswith("apple:cpu (whole machine); Apple M2 Max")
    assert choice(tracker, "ram").chosen == ("apple:dram",)
    assert tracker.header()["hardware"]["gpus"] == []


def test_no_chip_name_and_a_channel_the_chip_does_not_report(apple: Any) -> None:
    soc = FakeSoc()
    del soc.power["dram_mj"]  # e.g. an older chip without a DRAM channel
    apple(soc, chip=None)
    tracker = apple_tracker()
    assert [m.info.name for m in tracker.meter_set.meters][:3] == ["apple:gpu", "apple:ane", "apple:cpu"]
    assert choice(tracker, "ram").reason.startswith("estimate: ")
    gpu_reason = choice(tracker, "gpu").reason
    assert gpu_reason.startswith("Apple silicon: Apple silicon, zeus-apple-silicon")
    assert "(not reported: apple:dram)" in gpu_reason


def test_counter_windows_are_exact_and_nothing_counts_twice(apple: Any) -> None:
    soc = FakeSoc(power={"cpu_total_mj": Sine(12, 4, 0.7), "gpu_mj": Constant(21.0), "gpu_sram_mj": Constant(3.0),
                         "ane_mj": Constant(1.0), "dram_mj": Constant(2.5)})  # fmt: skip
    apple(soc)
    tracker = apple_tracker()
    tracker.start()
    begin = soc.good_samples()[-1]
    with tracker.window("w") as w:
        time.sleep(0.3)
    run = tracker.stop()
    assert run is not None and w.result is not None
    end = soc.good_samples()[-1]
    for name, field in (("apple:cpu", "cpu_total_mj"), ("apple:gpu", "gpu_mj"), ("apple:ane", "ane_mj")):
        expected = (getattr(end[1], field) - getattr(begin[1], field)) / 1000
        assert run.meter_joules[name] == pytest.approx(expected, rel=1e-9, abs=0)
    # GPU SRAM is not added to the GPU: the gpu component is GPU + ANE only
    seconds = end[0] - begin[0]
    assert run.joules["gpu"] == pytest.approx((21.0 + 1.0) * seconds, abs=0.003)
    window_j = w.result.meter_joules["apple:cpu"]
    a, b = edge_readings(window_j, [(t, m.cpu_total_mj / 1000) for t, m in soc.good_samples()])
    assert window_j == pytest.approx(soc.energy_between("cpu_total_mj", a, b), abs=0.002)


def test_process_scope_attributes_cpu_and_dram_and_takes_gpu_whole(apple: Any) -> None:
    apple(FakeSoc())
    tracker = apple_tracker(scope="process")
    infos = {m.info.name: m.info for m in tracker.meter_set.meters}
    assert infos["apple:cpu"].details["attribution"] == "share of machine busy CPU time"
    assert infos["apple:dram"].details["attribution"] == "share of machine busy CPU time"
    assert infos["apple:gpu"].details["attribution"] == "whole machine"
    assert infos["apple:gpu"].host_level and not infos["apple:cpu"].host_level
    assert choice(tracker, "cpu").reason.startswith("apple:cpu (attributed by CPU-time share)")


def test_explicit_gpus_on_a_mac(apple: Any) -> None:
    apple(FakeSoc())
    assert [m.info.name for m in apple_tracker(components=("gpu",), gpus=[0]).meter_set.meters] == [
        "apple:gpu",
        "apple:ane",
    ]
    with pytest.raises(ConfigError, match=r"gpus=\[1\]: Apple silicon has one GPU \(ordinal 0\)"):
        apple_tracker(components=("gpu",), gpus=[1])


def test_counters_that_fail_mid_run_are_dropped_with_one_warning(apple: Any, caplog: pytest.LogCaptureFixture) -> None:
    soc = FakeSoc()
    apple(soc)
    caplog.set_level(logging.WARNING)
    tracker = apple_tracker()
    tracker.start()
    soc.faults.append(AppleFault(after_calls=soc.calls))
    time.sleep(0.2)
    run = tracker.stop()
    assert run is not None
    assert set(run.unavailable) == {"apple:cpu", "apple:gpu", "apple:ane", "apple:dram"}
    assert len([r for r in caplog.records if "apple:" in r.getMessage()]) == 4  # one per channel
    assert "IOReportCreateSamples failed" in caplog.records[0].getMessage()


def test_a_transient_failure_drops_one_channel_and_the_run_goes_on(apple: Any) -> None:
    """The core drops a meter on its first error (it does not retry yet): the channel whose read failed keeps its
    energy up to its last good reading; the others, read from the next sample, go on."""
    soc = FakeSoc(power={"cpu_total_mj": Constant(10.0), "gpu_mj": Constant(20.0)})
    apple(soc)
    tracker = apple_tracker(components=("gpu", "cpu"))
    tracker.start()
    begin = soc.good_samples()[-1][1]
    soc.faults.append(AppleFault(after_calls=soc.calls + 2, times=1))
    time.sleep(0.3)
    run = tracker.stop()
    assert run is not None
    assert run.unavailable == ("apple:gpu",)  # read first in each tick, it met the failed sample
    failed_at = next(t for t, m in soc.samples if isinstance(m, Exception))
    last_good = [m for t, m in soc.good_samples() if t < failed_at][-1]
    assert run.meter_joules["apple:gpu"] == pytest.approx((last_good.gpu_mj - begin.gpu_mj) / 1000, rel=1e-9)
    end = soc.good_samples()[-1][1]
    assert run.meter_joules["apple:cpu"] == pytest.approx((end.cpu_total_mj - begin.cpu_total_mj) / 1000, rel=1e-9)
