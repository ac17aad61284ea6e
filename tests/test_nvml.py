"""NVIDIA GPUs through a fake ``pynvml``: co2cb's real NVML code, only the hardware simulated."""

from __future__ import annotations

import inspect
import logging
import re
import sys
import time
from pathlib import Path

import pytest

import co2cb
from co2cb import ConfigError, Tracker
from co2cb.meters import nvml as co2cb_nvml
from co2cb.meters import nvml_scope
from co2cb.meters.base import MeterChoice

from .fakes import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    Constant,
    FakeGpu,
    FakePynvml,
    Fault,
    MakeFake,
    Sine,
    edge_readings,
    late_reads_allowance,
    make_gpus,
    perf_bounds,
    power_stamp_skews,
    skewed_power_allowance,
)

ENERGY = "nvmlDeviceGetTotalEnergyConsumption"
POWER = "nvmlDeviceGetPowerUsage"

UUIDS = (
    "GPU-3f1c0d2e-0000-4000-8000-00000000000a",
    "GPU-3f9a7b6c-0000-4000-8000-00000000000b",
    "GPU-a7e1f00d-0000-4000-8000-00000000000c",
)


def three_gpus() -> list[FakeGpu]:
    return [FakeGpu(name=f"NVIDIA Fake {i}", uuid=u) for i, u in enumerate(UUIDS)]


def gpu_tracker(**kwargs: object) -> Tracker:
    options: dict[str, object] = {"save": False, "interval_s": 0.05, "components": ("gpu",), "intensity": 400}
    options.update(kwargs)
    return Tracker(**options)  # type: ignore[arg-type]


def gpu_choice(tracker: Tracker) -> MeterChoice:
    (choice,) = [c for c in tracker.meter_set.choices if c.component.value == "gpu"]
    return choice


def channels(tracker: Tracker) -> list[str]:
    return [m.info.name for m in tracker.meter_set.meters]


# --------------------------------------------------------------------- the fake itself
def test_fake_surface_matches_the_real_pynvml() -> None:
    real = pytest.importorskip("pynvml")
    if isinstance(real, FakePynvml):  # pragma: no cover - another test leaked its fake
        pytest.fail("sys.modules['pynvml'] is a fake outside a test")
    fake = FakePynvml()
    for name in fake.public_names():
        assert hasattr(real, name), f"the fake provides {name}, which pynvml does not have"
        mine, theirs = getattr(fake, name), getattr(real, name)
        if isinstance(theirs, int):
            assert mine == theirs, name
        elif inspect.isfunction(theirs):
            assert list(inspect.signature(mine).parameters) == list(inspect.signature(theirs).parameters), name
    for code in (
        fake.NVML_ERROR_GPU_IS_LOST,
        fake.NVML_ERROR_NOT_SUPPORTED,
        fake.NVML_ERROR_LIBRARY_NOT_FOUND,
        fake.NVML_ERROR_DRIVER_NOT_LOADED,
        fake.NVML_ERROR_UNINITIALIZED,
    ):
        mine, theirs = fake.NVMLError(code), real.NVMLError(code)
        assert type(mine).__name__ == type(theirs).__name__
        assert (mine.value, str(mine)) == (theirs.value, str(theirs))
        assert isinstance(mine, fake.NVMLError)
    lost = fake.NVMLError_GpuIsLost()
    assert lost.value == fake.NVML_ERROR_GPU_IS_LOST and isinstance(lost, fake.NVMLError)


def test_fake_covers_every_pynvml_name_co2cb_uses() -> None:
    source = Path(inspect.getfile(co2cb_nvml)).read_text() + Path(inspect.getfile(nvml_scope)).read_text()
    used = set(re.findall(r"(?:pynvml|self\._nvml)\.(\w+)", source))
    assert used, "co2cb.meters.nvml no longer calls pynvml the way this test expects"
    assert used <= set(FakePynvml().public_names())


def test_fake_units_counter_and_reference_count() -> None:
    gpu = FakeGpu(power=Sine(150, 60, 1.7), counter_offset_mj=5_000)
    fake = FakePynvml([gpu])
    with pytest.raises(fake.NVMLError_Uninitialized):
        fake.nvmlDeviceGetCount()
    fake.nvmlInit()
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    t0 = time.perf_counter()
    e0 = fake.nvmlDeviceGetTotalEnergyConsumption(h)
    time.sleep(0.02)
    e1 = fake.nvmlDeviceGetTotalEnergyConsumption(h)
    t1 = time.perf_counter()
    assert isinstance(e0, int) and e0 >= 5_000
    assert 0 < (e1 - e0) / 1000 <= gpu.energy_between(t0, t1) + 0.002  # the reads lie between t0 and t1
    (c0, c1) = gpu.returned(ENERGY)
    assert (e1 - e0) / 1000 == pytest.approx(gpu.energy_between(c0.t, c1.t), abs=0.002)
    mw = fake.nvmlDeviceGetPowerUsage(h)
    assert isinstance(mw, int) and mw == round(gpu.power_at(gpu.returned(POWER)[-1].t) * 1000)
    fake.nvmlShutdown()
    assert fake.nvmlDeviceGetName(h) == gpu.name  # still one reference
    fake.nvmlShutdown()
    with pytest.raises(fake.NVMLError_Uninitialized):
        fake.nvmlDeviceGetName(h)
    with pytest.raises(fake.NVMLError_Uninitialized):
        fake.nvmlShutdown()


def test_fake_numeric_integration_matches_closed_form() -> None:
    sine = Sine(150, 60, 1.7, t0=0.3)
    numeric = FakeGpu(power=lambda t: sine(t))
    assert numeric.energy_between(10.0, 13.3) == pytest.approx(sine.integral(10.0, 13.3), rel=1e-12)


def test_fake_faults_by_time_and_by_count() -> None:
    by_count = FakeGpu(faults=[Fault(after_calls=2, functions=frozenset({POWER}))])
    fake = FakePynvml([by_count])
    fake.nvmlInit()
    h = fake.nvmlDeviceGetHandleByIndex(0)
    fake.nvmlDeviceGetPowerUsage(h)
    fake.nvmlDeviceGetPowerUsage(h)
    fake.nvmlDeviceGetName(h)  # other functions are not affected
    with pytest.raises(fake.NVMLError_GpuIsLost):
        fake.nvmlDeviceGetPowerUsage(h)
    assert [c.fn for c in by_count.failures()] == [POWER]
    by_count.lose(at=time.perf_counter() + 3600)
    fake.nvmlDeviceGetName(h)
    by_count.lose()
    with pytest.raises(fake.NVMLError) as info:
        fake.nvmlDeviceGetName(h)
    assert info.value.value == fake.NVML_ERROR_GPU_IS_LOST


# --------------------------------------------------------------------- discovery without GPUs
def test_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    tracker = gpu_tracker()
    assert tracker.meter_set.meters == []
    choice = gpu_choice(tracker)
    assert choice.chosen == ()
    assert "nvidia-ml-py is not installed" in choice.reason
    assert tracker.header()["hardware"]["gpus"] == []
    assert tracker.header()["meter_choices"][0]["reason"] == choice.reason


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
    ],
)
def test_no_driver(nvml: MakeFake, code: int, text: str) -> None:
    fake = nvml(*make_gpus(2), init_error=code)
    tracker = gpu_tracker()
    assert tracker.meter_set.meters == []
    choice = gpu_choice(tracker)
    assert choice.chosen == ()
    assert "NVML could not start" in choice.reason and text in choice.reason
    assert fake.init_calls == 1 and fake.refcount == 0
    with tracker:  # a run without any meter still works
        pass
    assert tracker.result is not None and tracker.result.total_joules == 0.0

    again = gpu_tracker()  # a later tracker of the process
    assert gpu_choice(again).reason == choice.reason
    # no library is not looked for again (it does not appear later); a driver that was not loaded may be
    assert fake.init_calls == (1 if code == NVML_ERROR_LIBRARY_NOT_FOUND else 2)


def test_no_driver_with_explicit_gpus_is_a_config_error(nvml: MakeFake) -> None:
    nvml(*make_gpus(1), init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    with pytest.raises(ConfigError, match=r"gpus=\[0\] was given but NVML could not start: Driver Not Loaded"):
        gpu_tracker(gpus=[0])


def test_zero_gpus(nvml: MakeFake) -> None:
    fake = nvml()
    tracker = gpu_tracker()
    assert tracker.meter_set.meters == []
    assert gpu_choice(tracker).chosen == ()
    assert gpu_choice(tracker).reason.startswith("NVIDIA: NVML found no GPU; AMD: amdsmi is not installed")
    assert tracker.header()["hardware"]["gpus"] == []
    assert fake.refcount == 0


# --------------------------------------------------------------------- device facts
def test_device_facts_in_the_header(nvml: MakeFake) -> None:
    a = FakeGpu(
        name="NVIDIA A100-SXM4-40GB",
        uuid=UUIDS[0],
        power=Constant(187.25),
        memory_total_bytes=40 * 2**30,
        memory_used_bytes=1_234_567_890,
        temperature_c=57,
        power_limit_w=400.0,
    )
    b = FakeGpu(
        name="Tesla P100-PCIE-16GB",
        uuid=UUIDS[1],
        power=Constant(31.5),
        has_energy_counter=False,
        unsupported=frozenset({"nvmlDeviceGetTemperature", "nvmlDeviceGetEnforcedPowerLimit"}),
        mig_mode=None,  # no MIG before Ampere
    )
    fake = nvml(a, b)
    tracker = gpu_tracker()
    header = tracker.header()
    assert header["hardware"]["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-40GB",
            "uuid": UUIDS[0],
            "memory_used_bytes": 1_234_567_890,
            "temperature_c": 57.0,
            "power_limit_w": 400.0,
            "power_draw_w": 187.25,
            "energy_counter": True,
            "power_scope": "gpu",
            "module_power_w": None,
            "mig_enabled": False,
            "mig_slices": [],
        },
        {
            "index": 1,
            "name": "Tesla P100-PCIE-16GB",
            "uuid": UUIDS[1],
            "memory_used_bytes": b.memory_used_bytes,
            "temperature_c": None,
            "power_limit_w": None,
            "power_draw_w": 31.5,
            "energy_counter": False,
            "power_scope": "gpu",
            "module_power_w": None,
            "mig_enabled": None,
            "mig_slices": [],
        },
    ]
    # the power draw is what NVML answered at discovery, converted from milliwatts
    assert a.returned(POWER)[-1].value == 187_250
    meters = {m["name"]: m for m in header["meters"]}
    assert meters["gpu:0"]["details"]["uuid"] == UUIDS[0]
    assert meters["gpu:0"]["component"] == "gpu"
    assert "power_draw_w" not in meters["gpu:0"]["details"]
    assert "memory_used_bytes" not in meters["gpu:0"]["details"]
    assert gpu_choice(tracker).chosen == ("gpu:0", "gpu:1")
    assert "2 of 2 GPU(s) by all GPUs NVML reports" in gpu_choice(tracker).reason
    tracker.meter_set.close()
    assert fake.refcount == 0


def test_provenance_counter_and_pre_volta(nvml: MakeFake) -> None:
    gpus = make_gpus(2, counter=[True, False], power=Constant(120.0))
    fake = nvml(*gpus)
    tracker = gpu_tracker()
    meters = tracker.meter_set.meters
    assert [m.info.provenance.value for m in meters] == ["measured-counter", "sampled-power"]
    assert [m.reading.value for m in meters] == ["counter", "power"]
    assert "gpu:0 measured-counter, gpu:1 sampled-power" in gpu_choice(tracker).reason
    with tracker, tracker.window("w") as w:
        time.sleep(0.2)
    assert w.result is not None
    assert w.result.provenance == {"gpu": "measured-counter+sampled-power"}
    # the counter's window is the difference of the two reads its edges are (120 W between their moments)
    counted_j = w.result.meter_joules["gpu:0"]
    a, b = edge_readings(counted_j, [(c.t, c.value / 1000) for c in gpus[0].returned(ENERGY)])
    assert counted_j == pytest.approx(120.0 * (b - a), abs=0.002)
    assert w.result.meter_joules["gpu:1"] == pytest.approx(120.0 * w.result.seconds, rel=1e-3)
    # NVML stays initialised while meters are open, and every nvmlInit is balanced at the end
    assert fake.refcount == 0 and fake.init_calls == fake.shutdown_calls == 3
    # the only NVML error was the pre-Volta device answering NOT_SUPPORTED to the energy probe
    assert [(c.fn, c.index, c.value.value) for c in fake.calls if c.failed] == [(ENERGY, 1, NVML_ERROR_NOT_SUPPORTED)]


# --------------------------------------------------------------------- which GPUs
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("1,0", ["gpu:1", "gpu:0"]),
        ("2", ["gpu:2"]),
        ("0,7,1", ["gpu:0"]),  # CUDA stops at the first entry that names no device
        ("0,1,0", ["gpu:0", "gpu:1"]),  # ... or repeats one
        (" 2 , 1", ["gpu:2", "gpu:1"]),
        ("", []),
        ("-1", []),
        ("7,0", []),
        ("abc", []),
    ],
)
def test_cuda_visible_devices_indices(nvml: MakeFake, env: str, expected: list[str]) -> None:
    fake = nvml(*three_gpus(), cuda_visible_devices=env)
    tracker = gpu_tracker()
    assert channels(tracker) == expected
    assert [g.index for g in tracker.meter_set.gpus] == [int(n[4:]) for n in expected]
    choice = gpu_choice(tracker)
    if expected:
        assert "by CUDA_VISIBLE_DEVICES" in choice.reason
    else:
        assert choice.reason.startswith(f"NVIDIA: no GPU visible to this process (CUDA_VISIBLE_DEVICES={env!r}); ")
    tracker.meter_set.close()
    assert fake.refcount == 0


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (UUIDS[2], ["gpu:2"]),
        (f"{UUIDS[1]},{UUIDS[0]}", ["gpu:1", "gpu:0"]),
        ("GPU-a7e", ["gpu:2"]),  # a unique prefix
        ("GPU-3f9,GPU-a7", ["gpu:1", "gpu:2"]),
        ("GPU-3f,0", []),  # an ambiguous prefix names no device: the list stops there
        (f"0,{UUIDS[2]}", ["gpu:0", "gpu:2"]),
        ("GPU-ffff", []),
    ],
)
def test_cuda_visible_devices_uuids(nvml: MakeFake, env: str, expected: list[str]) -> None:
    nvml(*three_gpus(), cuda_visible_devices=env)
    tracker = gpu_tracker()
    assert channels(tracker) == expected
    assert [g.uuid for g in tracker.meter_set.gpus] == [UUIDS[int(n[4:])] for n in expected]
    tracker.meter_set.close()


@pytest.mark.parametrize(
    ("env", "gpus", "expected"),
    [
        (None, [0], ["gpu:0"]),
        (None, [2, 0], ["gpu:2", "gpu:0"]),
        ("2,0", [1], ["gpu:0"]),  # CUDA ordinal 1 = the second visible device
        ("2,0", [0], ["gpu:2"]),
        ("2,0", ["1", "0"], ["gpu:0", "gpu:2"]),
        ("2,0", [UUIDS[2]], ["gpu:2"]),
        ("2,0", ["GPU-3f1"], ["gpu:0"]),
        ("2,0", [0, UUIDS[2]], ["gpu:2"]),  # the same device twice counts once
    ],
)
def test_explicit_gpus_are_relative_to_visible_devices(
    nvml: MakeFake, env: str | None, gpus: list[int | str], expected: list[str]
) -> None:
    nvml(*three_gpus(), cuda_visible_devices=env)
    tracker = gpu_tracker(gpus=gpus)
    assert channels(tracker) == expected
    assert "by explicit gpus=" in gpu_choice(tracker).reason
    tracker.meter_set.close()


@pytest.mark.parametrize(
    ("env", "gpus", "message"),
    [
        ("2,0", [2], r"CUDA ordinal 2 is not visible \(2 GPU\(s\) visible; CUDA_VISIBLE_DEVICES='2,0'\)"),
        (None, [3], r"CUDA ordinal 3 is not visible \(3 GPU\(s\) visible; CUDA_VISIBLE_DEVICES=None\)"),
        ("", [0], r"CUDA ordinal 0 is not visible \(0 GPU\(s\) visible"),
        ("2,0", [UUIDS[1]], rf"no visible GPU has UUID '{UUIDS[1]}'"),
        (None, ["GPU-3f"], r"no visible GPU has UUID 'GPU-3f'"),  # ambiguous prefix
    ],
)
def test_requested_gpu_not_visible_is_a_config_error(
    nvml: MakeFake, env: str | None, gpus: list[int | str], message: str
) -> None:
    fake = nvml(*three_gpus(), cuda_visible_devices=env)
    with pytest.raises(ConfigError, match=message) as info:
        gpu_tracker(gpus=gpus)
    assert str(info.value).startswith(f"gpus={gpus!r}")
    assert fake.refcount == 0


def test_zero_gpus_with_explicit_gpus_is_a_config_error(nvml: MakeFake) -> None:
    nvml()
    with pytest.raises(ConfigError, match="CUDA ordinal 0 is not visible"):
        gpu_tracker(gpus=[0])


def test_a_gpu_failing_at_discovery_is_skipped_and_leaks_no_nvml_reference(nvml: MakeFake) -> None:
    broken = FakeGpu(uuid=UUIDS[1], unsupported=frozenset({"nvmlDeviceGetName"}))
    fake = nvml(FakeGpu(uuid=UUIDS[0]), broken)
    tracker = gpu_tracker()
    assert [m.info.name for m in tracker.meter_set.meters] == ["gpu:0"], "one broken GPU must not hide the others"
    assert "gpu:1 skipped" in gpu_choice(tracker).reason
    tracker.meter_set.close()
    assert fake.refcount == 0


# --------------------------------------------------------------------- a GPU lost mid-run
def test_gpu_lost_mid_run(nvml: MakeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lost = FakeGpu(name="NVIDIA Lost", uuid=UUIDS[0], power=Constant(200.0))
    other = FakeGpu(name="NVIDIA Other", uuid=UUIDS[1], power=Sine(150, 60, 1.7), has_energy_counter=False)
    fake = nvml(lost, other)
    caplog.set_level(logging.WARNING)
    tracker = gpu_tracker(save=True, output_dir=tmp_path, run_name="lost")
    tracker.start()
    begin = lost.returned(ENERGY, thread="MainThread")[-1]  # the run window's opening read
    base = time.perf_counter()
    with tracker.window("before"):
        time.sleep(0.15)
    loss_at = max(base + 0.3, time.perf_counter() + 0.05)  # ahead of the fault's setting, however late that is
    lost.faults.append(Fault(from_time=loss_at))
    with tracker.window("epoch"):
        time.sleep(max(0.0, loss_at + 0.2 - time.perf_counter()))
    time.sleep(0.1)
    run = tracker.stop()
    assert run is not None

    # exactly one warning, and the lost device is never asked again
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "gpu:0" in r.getMessage()]
    assert len(warnings) == 1
    assert "unavailable" in warnings[0].getMessage()
    assert len(lost.failures()) == 1
    assert lost.failures()[0].t >= loss_at
    good = lost.returned(ENERGY)
    assert all(c.t < loss_at for c in good)

    # gpu:0 keeps its energy up to the loss: the counter difference up to its last good reading
    assert run.meter_joules["gpu:0"] == pytest.approx((good[-1].value - begin.value) / 1000, rel=1e-9)
    assert run.meter_joules["gpu:0"] == pytest.approx(200.0 * (good[-1].t - begin.t), rel=1e-3)
    assert run.meter_joules["gpu:0"] < 200.0 * run.seconds * 0.8
    # gpu:1 counted through to the end
    assert other.returned(POWER)[-1].t > loss_at + 0.2
    t0, t1 = perf_bounds(tracker, run)
    assert isinstance(other.power, Sine)
    powers = [(c.t, c.value / 1000) for c in other.returned(POWER)]
    late = late_reads_allowance(other.power, [t for t, _ in powers], t0, t1, tracker.config.interval_s)
    # a read of gpu:0 that a busy machine delays moves the stamp of gpu:1's reading in the same point
    tl, channel = tracker._sampler.timeline, tracker._sampler.names.index("gpu:1")
    skews = power_stamp_skews(tl.times, [row[channel] for row in tl.cum], powers)
    late += skewed_power_allowance(other.power, tl.times, skews, t0, t1)
    truth = other.energy_between(t0, t1)
    assert abs(run.meter_joules["gpu:1"] - truth) <= 0.005 * truth + late, (run.meter_joules["gpu:1"], truth, late)
    assert run.unavailable == ("gpu:0",)

    records = co2cb.read_records(tracker.run_folder)
    windows = {r["name"]: r for r in records if r["type"] == "window"}
    assert windows["before"]["unavailable"] == []
    assert windows["epoch"]["unavailable"] == ["gpu:0"]
    assert windows["run"]["unavailable"] == ["gpu:0"]
    (summary,) = [r for r in records if r["type"] == "summary"]
    assert summary["status"] == "completed"
    assert summary["unavailable"] == ["gpu:0"]
    (loss,) = summary["meter_losses"]
    assert loss["meter"] == "gpu:0"
    assert "GPU is lost" in loss["error"]
    assert loss["at"] >= windows["before"]["end"]  # set to come 0.15 s after it (the epoch may open late under load)
    assert summary["meter_energy_kwh"]["gpu:0"] * 3.6e6 == pytest.approx(run.meter_joules["gpu:0"], rel=1e-9)
    assert fake.refcount == 0
