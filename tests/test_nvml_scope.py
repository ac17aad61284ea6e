"""What an NVIDIA GPU's figures cover: Grace Hopper-style modules, power limits and MIG, through the fake pynvml."""

from __future__ import annotations

import time
from typing import Any

import pytest

from co2cb import Tracker
from co2cb.meters.base import MeterChoice

from .fakes import Constant, FakeGpu, MakeFake, Sine, edge_readings
from .fakes.fake_pynvml_mig import NVML_DEVICE_MIG_ENABLE, FakeMig

ENERGY = "nvmlDeviceGetTotalEnergyConsumption"
GH200 = "NVIDIA GH200 480GB"
UUIDS = ("GPU-5c1e0000-0000-4000-8000-00000000000a", "GPU-5c1e0000-0000-4000-8000-00000000000b")
MIGS = ("MIG-7a0e1c2d-0000-5000-8000-000000000001", "MIG-b31f9e40-0000-5000-8000-000000000002")


def tracker(**kwargs: Any) -> Tracker:
    options: dict[str, Any] = {"save": False, "interval_s": 0.05, "intensity": 400, "scope": "machine"}
    options.update(kwargs)
    return Tracker(**options)


def choice(t: Tracker, component: str) -> MeterChoice:
    (found,) = [c for c in t.meter_set.choices if c.component.value == component]
    return found


def grace_hopper(reports: str, gpu_w: float = 310.0, module_w: float = 540.0) -> FakeGpu:
    return FakeGpu(
        name=GH200,
        uuid=UUIDS[0],
        power=Constant(gpu_w),
        module_power=Constant(module_w),
        reports=reports,
        power_limit_w=900.0,
    )


# --------------------------------------------------------------------- power scope
def test_a_module_figure_covers_cpu_and_memory_and_they_are_not_counted_again(nvml: MakeFake) -> None:
    gpu = grace_hopper("module")
    nvml(gpu)
    t = tracker()
    (meter,) = t.meter_set.meters
    d = meter.info.details
    assert (d["power_scope"], d["module_power_w"], d["power_limit_w"]) == ("module", 540.0, 900.0)
    assert d["covers"] == ["gpu", "cpu", "ram"]
    assert d["energy_scope"] == "the whole module (GPU, CPU and memory), as NVML reports it on this device"
    assert "gpu:0 measured-counter (module power scope)" in choice(t, "gpu").reason
    for component in ("cpu", "ram"):
        assert choice(t, component).chosen == ()
        assert choice(t, component).reason == (
            "counted in gpu:0: that figure covers the whole module (GPU, CPU and memory)"
        )
    t.start()
    begin = gpu.returned(ENERGY, thread="MainThread")[-1]
    time.sleep(0.2)
    run = t.stop()
    assert run is not None
    end = gpu.returned(ENERGY, thread="MainThread")[-1]
    assert run.meter_joules == {"gpu:0": pytest.approx((end.value - begin.value) / 1000, rel=1e-9, abs=0)}
    assert run.total_joules == pytest.approx(540.0 * (end.t - begin.t), rel=1e-3)


def test_several_module_figures_are_flagged(nvml: MakeFake) -> None:
    second = grace_hopper("module")
    second.uuid = UUIDS[1]
    nvml(grace_hopper("module"), second)
    t = tracker(components=("gpu",))
    assert choice(t, "gpu").reason.endswith(
        "; gpu:0, gpu:1 each report a module's energy: where GPUs share one module (GB200), "
        "its CPU and memory are counted once per GPU"
    )


def test_a_gpu_figure_on_a_module_leaves_the_cpu_to_its_own_meter(nvml: MakeFake) -> None:
    nvml(grace_hopper("gpu"))
    t = tracker()
    (gpu_meter,) = [m for m in t.meter_set.meters if m.info.component.value == "gpu"]
    d = gpu_meter.info.details
    assert (d["power_scope"], d["module_power_w"], d["covers"]) == ("gpu", 540.0, ["gpu"])
    assert d["energy_scope"] == "the GPU board"
    assert choice(t, "cpu").chosen != () and choice(t, "ram").chosen != ()


@pytest.mark.parametrize(
    ("gpu", "why"),
    [
        (grace_hopper("gpu", gpu_w=300.0, module_w=310.0), "module power within 5 % of GPU power"),
        (
            FakeGpu(
                name=GH200,
                power=Constant(300),
                module_power=Constant(500),
                unsupported=frozenset({"nvmlDeviceGetPowerUsage"}),
            ),
            "no power reading to compare",
        ),
    ],
)  # fmt: skip
def test_a_scope_that_cannot_be_told_is_said(nvml: MakeFake, gpu: FakeGpu, why: str) -> None:
    nvml(gpu)
    t = tracker()
    (meter,) = [m for m in t.meter_set.meters if m.info.component.value == "gpu"]
    assert meter.info.details["power_scope"] == "unknown", why
    assert meter.info.details["covers"] == ["gpu"]
    assert "could not tell which" in meter.info.details["energy_scope"]
    assert "(unknown power scope)" in choice(t, "gpu").reason
    assert choice(t, "cpu").chosen != ()


def test_a_board_without_module_power(nvml: MakeFake) -> None:
    nvml(FakeGpu(name="NVIDIA H100 80GB HBM3", power_limit_w=700.0))
    (meter,) = tracker(components=("gpu",)).meter_set.meters
    d = meter.info.details
    assert (d["power_scope"], d["module_power_w"], d["power_limit_w"], d["mig_enabled"]) == ("gpu", None, 700.0, False)


# --------------------------------------------------------------------- MIG
def mig_gpu() -> FakeGpu:
    return FakeGpu(
        name="NVIDIA A100-SXM4-80GB",
        uuid=UUIDS[1],
        power=Sine(250, 50, 0.8),
        mig_mode=NVML_DEVICE_MIG_ENABLE,
        mig_devices=[
            FakeMig(MIGS[0], gpu_instance_id=1, slices=3, memory_mb=40_192, sm_count=42),
            FakeMig(MIGS[1], gpu_instance_id=2, slices=4, memory_mb=40_192, sm_count=56),
        ],
    )


@pytest.mark.parametrize(
    ("env", "gpus"),
    [(MIGS[1], None), (MIGS[1][:8], None), (f"{UUIDS[0]},{MIGS[1]}", [1])],
)
def test_a_mig_slice_is_measured_through_its_whole_gpu(nvml: MakeFake, env: str | None, gpus: list[Any] | None) -> None:
    mig = mig_gpu()
    nvml(FakeGpu(uuid=UUIDS[0]), mig, cuda_visible_devices=env)
    t = tracker(components=("gpu",), gpus=gpus)
    assert [m.info.name for m in t.meter_set.meters] == ["gpu:1"]
    d = t.meter_set.meters[0].info.details
    assert d["mig_enabled"] is True
    common = {"compute_instance_id": 0, "memory_mb": 40_192}
    assert d["mig_slices"] == [
        {"uuid": MIGS[0], "gpu_instance_id": 1, "slices": 3, "sm_count": 42, **common},
        {"uuid": MIGS[1], "gpu_instance_id": 2, "slices": 4, "sm_count": 56, **common},
    ]
    assert d["mig_slices_in_use"] == [MIGS[1]]
    assert d["energy_scope"] == (
        f"the GPU board; all 2 MIG slice(s) together (in use here: {MIGS[1]}): NVML reports energy for the "
        "physical GPU only, so processes on other slices of it are counted too"
    )
    assert "gpu:1 measured-counter (MIG: the whole GPU is measured)" in choice(t, "gpu").reason
    with t, t.window("w") as w:
        time.sleep(0.2)
    assert w.result is not None
    window_j = w.result.meter_joules["gpu:1"]
    a, b = edge_readings(window_j, [(c.t, c.value / 1000) for c in mig.returned(ENERGY)])
    assert window_j == pytest.approx(mig.energy_between(a, b), abs=0.002)


def test_a_mig_gpu_with_no_slice_named(nvml: MakeFake) -> None:
    nvml(mig_gpu())
    (meter,) = tracker(components=("gpu",)).meter_set.meters
    assert "mig_slices_in_use" not in meter.info.details
    assert "(in use here: none named)" in meter.info.details["energy_scope"]
