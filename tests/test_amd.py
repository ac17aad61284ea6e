"""AMD GPUs through a fake ``amdsmi``: co2cb's real AMD SMI code, only the hardware simulated.

One test runs the real ``amdsmi`` package (``pip install amdsmi``) on this machine, which has no ROCm.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import itertools
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import co2cb
from co2cb import Tracker
from co2cb.meters import amd as co2cb_amd
from co2cb.meters.base import MeterChoice

from .fakes import AmdFault, Constant, FakeAmdGpu, FakeAmdSmi, Sine, edge_readings, late_reads_allowance, perf_bounds
from .fakes.fake_amdsmi import (
    AMDSMI_STATUS_BUSY,
    AMDSMI_STATUS_DRIVER_NOT_LOADED,
    AMDSMI_STATUS_RETRY,
)

ENERGY = "amdsmi_get_energy_count"
POWER = "amdsmi_get_power_info"
RES = 15.300000190734863  # microjoules per count, as the real API returns 15.3 (a float32)


def serial(i: int) -> int:
    return 0x1F2E3D4C5B6A7000 + i


def amd_tracker(**kwargs: Any) -> Tracker:
    options: dict[str, Any] = {"save": False, "interval_s": 0.05, "components": ("gpu",), "intensity": 400}
    options.update(kwargs)
    return Tracker(**options)


def gpu_choice(tracker: Tracker) -> MeterChoice:
    (choice,) = [c for c in tracker.meter_set.choices if c.component.value == "gpu"]
    return choice


def channels(tracker: Tracker) -> list[str]:
    return [m.info.name for m in tracker.meter_set.meters]


def run_begin_and_end(gpu: FakeAmdGpu, fn: str, begin_index: int) -> tuple[Any, Any]:
    """The read that opened the run (the main thread's last read before ``begin_index`` calls) and the last read."""
    calls = [c for c in gpu.returned(fn) if c.thread == "MainThread"]
    return calls[begin_index - 1], calls[-1]


def raw(call: Any) -> int:
    return call.value.get("energy_accumulator", call.value.get("power"))


# --------------------------------------------------------------------- the real package, without ROCm
def real_amdsmi() -> Path:
    spec = importlib.util.find_spec("amdsmi") if not isinstance(sys.modules.get("amdsmi"), FakeAmdSmi) else None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the amdsmi package is not installed (pip install amdsmi)")
    return Path(next(iter(spec.submodule_search_locations)))


def test_real_amdsmi_without_rocm_means_no_amd_gpu_said_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    folder = real_amdsmi()
    if any(Path(p, "lib", "libamd_smi.so").exists() for p in ("/opt/rocm", *filter(None, [sys.prefix]))):
        pytest.skip("ROCm is installed here: this test is for machines without it")
    for name in [m for m in sys.modules if m == "amdsmi" or m.startswith("amdsmi.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    caplog.set_level(logging.DEBUG)
    for _ in range(2):  # a second tracker says the same, and neither prints or warns
        tracker = amd_tracker()
        assert tracker.meter_set.meters == []
        reason = tracker.meter_set.accelerators["AMD"]
        assert reason.startswith("amdsmi could not load (KeyError: 'libamd_smi.so'")
        assert reason.endswith("): no ROCm library, so no AMD GPU")
        assert f"AMD: {reason}" in gpu_choice(tracker).reason
        with tracker:
            pass
        assert tracker.result is not None
    assert "amdsmi" not in sys.modules  # the failed import left no half-made module behind
    assert capsys.readouterr().out == ""  # amdsmi's own "Unable to find libamd_smi.so" lines did not leak
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (folder / "_version.py").read_text().split("=")[1].strip().strip('"') == "7.0.2"


def test_fake_surface_matches_the_real_amdsmi_source() -> None:
    """The fake's names, signatures, status codes and dict keys are those of the installed release (7.0.2)."""
    folder = real_amdsmi()
    init = ast.parse((folder / "__init__.py").read_text())
    exported = {a.asname or a.name for n in ast.walk(init) if isinstance(n, ast.ImportFrom) for a in n.names}
    interface = ast.parse((folder / "amdsmi_interface.py").read_text())
    defs = {n.name: n for n in interface.body if isinstance(n, ast.FunctionDef)}
    fake = FakeAmdSmi([FakeAmdGpu()], version="7.0.2")
    for name in fake.public_names():
        assert name in exported, f"the fake provides {name}, which amdsmi does not export"
        if name in defs:
            theirs = [a.arg for a in defs[name].args.args]
            mine = list(inspect.signature(getattr(fake, name)).parameters)
            assert mine == theirs, name
    wrapper = (folder / "amdsmi_wrapper.py").read_text()
    from .fakes import fake_amdsmi

    for const in [c for c in dir(fake_amdsmi) if c.startswith("AMDSMI_STATUS_")]:
        assert re.search(rf"^{const} = {getattr(fake_amdsmi, const)}$", wrapper, re.M), const

    def returned_keys(fn: str) -> set[str]:
        body = defs[fn]
        found = [n for n in ast.walk(body) if isinstance(n, ast.Dict) and len(n.keys) > 2]
        return {k.value for k in found[-1].keys if isinstance(k, ast.Constant)}

    fake.amdsmi_init()
    (handle,) = fake.amdsmi_get_processor_handles()
    assert set(fake.amdsmi_get_energy_count(handle)) == returned_keys("amdsmi_get_energy_count")
    assert set(fake.amdsmi_get_power_info(handle)) == returned_keys("amdsmi_get_power_info")
    assert set(fake.amdsmi_get_power_cap_info(handle)) == returned_keys("amdsmi_get_power_cap_info")
    assert set(fake.amdsmi_get_gpu_enumeration_info(handle)) == returned_keys("amdsmi_get_gpu_enumeration_info")


def test_fake_covers_every_amdsmi_name_co2cb_uses() -> None:
    source = Path(co2cb_amd.__file__).read_text()
    used = set(re.findall(r"(?:amdsmi|self\._smi)\.(\w+)", source)) | set(
        re.findall(r'getattr\(amdsmi, "(\w+)"', source)
    )
    assert used <= set(FakeAmdSmi(version="7.0.2").public_names()) | {"__version__"}, used


# --------------------------------------------------------------------- no AMD GPU
def test_amdsmi_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    tracker = amd_tracker()
    assert tracker.meter_set.accelerators["AMD"].startswith("amdsmi is not installed (pip install amdsmi")


def test_amd_smi_cannot_start(amd: Any) -> None:
    fake = amd(FakeAmdGpu(), init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED)
    tracker = amd_tracker()
    assert tracker.meter_set.meters == []
    assert tracker.meter_set.accelerators["AMD"] == (
        "AMD SMI could not start (AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded): no AMD GPU driver or GPU"
    )
    with tracker:
        pass
    assert tracker.result is not None and tracker.result.total_joules == 0.0
    assert fake.refcount == 0


def test_bindings_that_fail_unexpectedly_mean_no_amd_meter(amd: Any) -> None:
    fake = amd(FakeAmdGpu())

    def broken() -> list[Any]:
        raise TypeError("amdsmi_get_processor_handles() got an unexpected keyword argument")  # a bindings mismatch

    fake.amdsmi_get_processor_handles = broken
    tracker = amd_tracker()
    assert tracker.meter_set.meters == []
    assert tracker.meter_set.accelerators["AMD"] == (
        "AMD SMI failed while listing GPUs: "
        "TypeError: amdsmi_get_processor_handles() got an unexpected keyword argument"
    )
    assert fake.refcount == 0


def test_amd_smi_finds_no_gpu(amd: Any) -> None:
    fake = amd()
    tracker = amd_tracker()
    assert tracker.meter_set.accelerators["AMD"] == "AMD SMI found no GPU"
    assert fake.refcount == 0


# --------------------------------------------------------------------- device facts and provenance
def test_device_facts_and_provenance(amd: Any) -> None:
    gpu = FakeAmdGpu(power=Constant(312.0), power_cap_w=750.0, driver_version="6.12.12", compute_partition="SPX")
    fake = amd(gpu)
    tracker = amd_tracker()
    (meter,) = tracker.meter_set.meters
    assert meter.info.name == "amdgpu:0"
    assert meter.info.provenance.value == "measured-counter"
    d = meter.info.details
    assert d["name"] == "AMD Instinct MI300X"
    assert d["uuid"] == f"GPU-{gpu.unique_id:016x}"
    assert d["bdf"] == gpu.bdf
    assert d["power_limit_w"] == 750.0
    assert d["power_draw_w"] == 312.0
    assert d["power_key"] == "socket_power"
    assert d["energy_counter"] is True
    assert d["counter_check"].startswith("accumulator ") and "not used" not in d["counter_check"]
    assert d["driver_version"] == "6.12.12"
    assert d["compute_partition"] == "SPX"
    assert d["amdsmi_version"] == "7.0.2"
    assert d["library_version"] == "25.5.1"
    assert d["method"] == "AMD SMI energy accumulator (amdsmi_get_energy_count) of the AMD Instinct MI300X"
    assert d["covers"] == ["gpu"]
    header = tracker.header()
    (described,) = header["hardware"]["gpus"]
    assert described["name"] == "AMD Instinct MI300X" and described["energy_counter"] is True
    reason = gpu_choice(tracker).reason
    assert reason.startswith(
        "AMD SMI: 1 of 1 AMD GPU(s) by all (HIP index (AMD SMI enumeration info); 7.0.2): amdgpu:0 measured-counter; "
        "NVIDIA: nvidia-ml-py is not installed"
    )
    assert tracker.meter_set.accelerators["Apple silicon"] == "not looked for: AMD GPUs are measured"
    tracker.meter_set.close()
    assert fake.refcount == 0


@pytest.mark.parametrize("version", ["7.0.2", "6.4.4", "6.3.3", "6.2.4", "6.1.2", "6.0.2"])
def test_counter_windows_are_exact_in_every_release(amd: Any, version: str) -> None:
    gpu = FakeAmdGpu(power=Sine(400, 150, 0.9), counter_offset=98_765_432_109)
    amd(gpu, version=version)
    tracker = amd_tracker()
    (meter,) = tracker.meter_set.meters
    assert meter.info.provenance.value == "measured-counter"
    assert meter.info.details["amdsmi_version"] == (version if version >= "6.1" else "before 6.1 (no __version__)")
    tracker.start()
    begin = len([c for c in gpu.returned(ENERGY) if c.thread == "MainThread"])
    with tracker.window("w") as w:
        time.sleep(0.3)
    run = tracker.stop()
    assert run is not None and w.result is not None
    first, last = run_begin_and_end(gpu, ENERGY, begin)
    assert run.meter_joules["amdgpu:0"] == pytest.approx((raw(last) - raw(first)) * RES * 1e-6, rel=1e-9, abs=0)
    assert run.meter_joules["amdgpu:0"] == pytest.approx(gpu.energy_between(first.t, last.t), abs=2 * RES * 1e-6)
    window_j = w.result.meter_joules["amdgpu:0"]
    a, b = edge_readings(window_j, [(c.t, raw(c) * RES * 1e-6) for c in gpu.returned(ENERGY)])
    assert window_j == pytest.approx(gpu.energy_between(a, b), abs=2 * RES * 1e-6)


def test_a_32_bit_accumulator_wraps(amd: Any) -> None:
    counts_per_s = 300.0 / (RES * 1e-6)
    gpu = FakeAmdGpu(power=Constant(300.0), counter_bits=32, counter_offset=2**32 - int(0.25 * counts_per_s))
    amd(gpu, check_s=0.02)
    tracker = amd_tracker()
    tracker.start()
    begin = len([c for c in gpu.returned(ENERGY) if c.thread == "MainThread"])
    time.sleep(0.5)
    run = tracker.stop()
    assert run is not None
    values = [raw(c) for c in gpu.returned(ENERGY)]
    assert any(b < a for a, b in itertools.pairwise(values)), "the accumulator did not wrap during the test"
    first, last = run_begin_and_end(gpu, ENERGY, begin)
    assert run.meter_joules["amdgpu:0"] == pytest.approx(300.0 * (last.t - first.t), rel=1e-6)


@pytest.mark.parametrize("offset", [2**40, 1_000], ids=["above 2**32", "below 2**32: not taken for a wrap"])
def test_an_accumulator_restart_is_counted_on_with_one_warning(
    amd: Any, caplog: pytest.LogCaptureFixture, offset: int
) -> None:
    gpu = FakeAmdGpu(power=Constant(250.0), counter_offset=offset)
    amd(gpu)
    caplog.set_level(logging.WARNING)
    tracker = amd_tracker()
    tracker.start()
    begin = len([c for c in gpu.returned(ENERGY) if c.thread == "MainThread"])
    time.sleep(0.2)
    restart = time.perf_counter()
    gpu.counter_offset = -gpu.accumulator(restart) + gpu.counter_offset  # the driver reloads: the count starts at 0
    time.sleep(0.3)
    run = tracker.stop()
    assert run is not None
    warnings = [r.getMessage() for r in caplog.records if "went back" in r.getMessage()]
    assert len(warnings) == 1
    first, last = run_begin_and_end(gpu, ENERGY, begin)
    reads = gpu.returned(ENERGY)
    # the last read before the count went back (a read can land between ``restart`` and the reload)
    before = next(a for a, b in itertools.pairwise(reads) if raw(b) < raw(a))
    lost = restart - before.t  # seconds between the last read before the reload and the reload
    assert run.meter_joules["amdgpu:0"] == pytest.approx(250.0 * (last.t - first.t - lost), rel=1e-5)
    assert run.unavailable == ()


# --------------------------------------------------------------------- sampled power
def test_a_stale_accumulator_falls_back_to_sampled_power(amd: Any) -> None:
    gpu = FakeAmdGpu(power=Constant(290.0), counter_frozen=True)
    amd(gpu)
    tracker = amd_tracker()
    (meter,) = tracker.meter_set.meters
    assert meter.info.provenance.value == "sampled-power"
    assert meter.info.details["energy_counter"] is False
    assert meter.info.details["counter_check"].endswith("(outside 0.1-10x: not used)")
    assert meter.info.details["method"] == "AMD SMI socket power (socket_power) of the AMD Instinct MI300X, sampled"
    with tracker, tracker.window("w") as w:
        time.sleep(0.3)
    assert w.result is not None
    assert w.result.meter_joules["amdgpu:0"] == pytest.approx(290.0 * w.result.seconds, rel=1e-6)


@pytest.mark.parametrize(("version", "key"), [("6.1.2", "average_socket_power"), ("6.4.4", "current_socket_power")])
def test_sampled_windows_within_the_stated_bound(amd: Any, version: str, key: str) -> None:
    """No accumulator: power (integer watts) integrated by the sampler, within 0.5 % plus the rounding of 0.5 W."""
    gpu = FakeAmdGpu(power=Sine(300, 60, 1.7), has_energy_counter=False, power_key=key.split("_")[0])
    amd(gpu, version=version)
    tracker = amd_tracker()
    (meter,) = tracker.meter_set.meters
    assert meter.info.provenance.value == "sampled-power"
    assert meter.info.details["power_key"] == key
    results = []
    with tracker:
        for _ in range(3):
            with tracker.window("w") as w:
                time.sleep(0.6)
            results.append(w.result)
    for result in results:
        assert result is not None and result.seconds >= 10 * 0.05
        t0, t1 = perf_bounds(tracker, result)
        truth = gpu.energy_between(t0, t1)
        late = late_reads_allowance(gpu.power, [c.t for c in gpu.returned(POWER)], t0, t1, 0.05)
        assert abs(result.meter_joules["amdgpu:0"] - truth) <= 0.005 * truth + 0.5 * result.seconds + late


def test_a_gpu_with_neither_energy_nor_power_is_skipped(amd: Any) -> None:
    silent = FakeAmdGpu(market_name="AMD Instinct MI250X/MI250", has_energy_counter=False, power_key=None)
    other = FakeAmdGpu(market_name="AMD Instinct MI250X/MI250", bdf="0000:33:00.0", unique_id=serial(9))
    fake = amd(other, silent)
    tracker = amd_tracker()
    assert channels(tracker) == ["amdgpu:0"]
    assert "amdgpu:1 reports neither energy nor power" in gpu_choice(tracker).reason
    tracker.meter_set.close()
    assert fake.refcount == 0


# --------------------------------------------------------------------- faults during a run
def test_gpu_lost_mid_run(amd: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lost = FakeAmdGpu(power=Constant(200.0), unique_id=serial(0), bdf="0000:0c:00.0")
    other = FakeAmdGpu(power=Sine(150, 60, 1.7), unique_id=serial(1), bdf="0000:1c:00.0", has_energy_counter=False)
    fake = amd(lost, other)
    caplog.set_level(logging.WARNING)
    tracker = amd_tracker(save=True, output_dir=tmp_path, run_name="lost")
    tracker.start()
    begin = [c for c in lost.returned(ENERGY) if c.thread == "MainThread"][-1]
    loss_at = time.perf_counter() + 0.25
    lost.lose(at=loss_at)
    with tracker.window("epoch"):
        time.sleep(max(0.0, loss_at + 0.2 - time.perf_counter()))
    run = tracker.stop()
    assert run is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "amdgpu:0" in r.getMessage()]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
    assert len(lost.failures()) == 1  # never asked again
    good = lost.returned(ENERGY)
    assert run.meter_joules["amdgpu:0"] == pytest.approx((raw(good[-1]) - raw(begin)) * RES * 1e-6, rel=1e-9)
    t0, t1 = perf_bounds(tracker, run)
    late = late_reads_allowance(other.power, [c.t for c in other.returned(POWER)], t0, t1, 0.05)
    truth = other.energy_between(t0, t1)
    assert abs(run.meter_joules["amdgpu:1"] - truth) <= 0.01 * truth + late
    assert run.unavailable == ("amdgpu:0",)
    (summary,) = [r for r in co2cb.read_records(tracker.run_folder) if r["type"] == "summary"]
    assert summary["status"] == "completed"
    (loss,) = summary["meter_losses"]
    assert loss["meter"] == "amdgpu:0" and "AMDSMI_STATUS_NOT_FOUND - Device Not found" in loss["error"]
    assert fake.refcount == 0


@pytest.mark.parametrize("code", [AMDSMI_STATUS_BUSY, AMDSMI_STATUS_RETRY])
def test_a_transient_error_is_retried_and_nothing_is_lost(amd: Any, code: int) -> None:
    gpu = FakeAmdGpu(power=Constant(310.0))
    amd(gpu)
    tracker = amd_tracker()
    tracker.start()
    begin = len([c for c in gpu.returned(ENERGY) if c.thread == "MainThread"])
    gpu.faults.append(AmdFault(code=code, times=co2cb_amd.RETRIES, functions=frozenset({ENERGY})))
    time.sleep(0.3)
    run = tracker.stop()
    assert run is not None
    assert [c.value.get_error_code() for c in gpu.failures()] == [code] * co2cb_amd.RETRIES
    assert run.unavailable == ()
    first, last = run_begin_and_end(gpu, ENERGY, begin)
    assert run.meter_joules["amdgpu:0"] == pytest.approx((raw(last) - raw(first)) * RES * 1e-6, rel=1e-9)


def test_a_transient_error_that_persists_skips_readings_and_drops_nothing(
    amd: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = FakeAmdGpu(power=Constant(310.0))
    amd(gpu)
    caplog.set_level(logging.WARNING)
    tracker = amd_tracker(components=("gpu", "cpu"), scope="machine")
    tracker.start()
    first = gpu.returned(ENERGY)[-1]
    busy = AmdFault(code=AMDSMI_STATUS_BUSY, functions=frozenset({ENERGY}))
    gpu.faults.append(busy)
    with tracker.window("busy") as during:
        time.sleep(0.2)
    assert len(gpu.failures()) > co2cb_amd.RETRIES + 1  # every reading retried, then skipped; none dropped it
    gpu.faults.remove(busy)
    with tracker.window("after") as after:
        time.sleep(0.2)
    run = tracker.stop()
    assert run is not None and during.result is not None and after.result is not None
    assert during.result.unavailable == ("amdgpu:0",)  # it closed while the GPU could not be read
    assert after.result.unavailable == run.unavailable == ()
    last = gpu.returned(ENERGY)[-1]
    assert run.meter_joules["amdgpu:0"] == pytest.approx((raw(last) - raw(first)) * RES * 1e-6, rel=1e-9)
    assert run.joules["cpu"] > 0  # the other meters went on
    assert sum("amdgpu:0" in r.getMessage() for r in caplog.records) == 1


def test_a_slow_read_delays_the_sampler_but_loses_nothing(amd: Any) -> None:
    """A slow read delays the sampler's reading (a boundary waits on it at most 50 ms, then reads the curve),
    and the counter loses nothing."""
    gpu = FakeAmdGpu(power=Constant(280.0))
    amd(gpu)
    tracker = amd_tracker()
    tracker.start()
    begin = len([c for c in gpu.returned(ENERGY) if c.thread == "MainThread"])
    gpu.faults.append(AmdFault(code=None, delay_s=0.3, times=1, functions=frozenset({ENERGY})))
    with tracker.window("w"):
        time.sleep(0.2)
    run = tracker.stop()
    assert run is not None and run.unavailable == ()
    first, last = run_begin_and_end(gpu, ENERGY, begin)
    assert run.meter_joules["amdgpu:0"] == pytest.approx((raw(last) - raw(first)) * RES * 1e-6, rel=1e-9)
    assert run.meter_joules["amdgpu:0"] == pytest.approx(280.0 * (last.t - first.t), rel=1e-4)
