"""Which AMD GPUs a process measures: HIP order, ROCR/HIP/CUDA_VISIBLE_DEVICES and ``gpus=``, via a fake amdsmi."""

from __future__ import annotations

from typing import Any

import pytest

from co2cb import ConfigError

from .fakes import FakeAmdGpu, FakeGpu
from .fakes.fake_amdsmi import AMDSMI_STATUS_DRIVER_NOT_LOADED
from .fakes.fake_pynvml import NVML_ERROR_DRIVER_NOT_LOADED
from .fakes.traces import Constant
from .test_amd import amd_tracker, channels, serial


def four_gpus() -> list[FakeAmdGpu]:
    """Four MI300X listed by AMD SMI in an order that is not HIP's: handle j has HIP index HIP_OF[j]."""
    return [
        FakeAmdGpu(
            bdf=f"0000:{0x0C + 0x10 * BDF_RANK[j]:02x}:00.0",
            uuid=f"00ff74a1-0000-1000-80ce-00000000000{j}",
            unique_id=serial(HIP_OF[j]),
            hip_id=HIP_OF[j],
            kfd_node=KFD_OF[j],
            power=Constant(200.0 + 10 * HIP_OF[j]),
        )
        for j in range(4)
    ]


HIP_OF = (2, 0, 3, 1)
KFD_OF = (3, 1, 4, 2)  # the same order as HIP's
BDF_RANK = (1, 3, 0, 2)  # PCI bus order differs from both


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["amdgpu:0", "amdgpu:1", "amdgpu:2", "amdgpu:3"]),
        ({"hip_visible_devices": "1,0"}, ["amdgpu:1", "amdgpu:0"]),
        ({"cuda_visible_devices": "2"}, ["amdgpu:2"]),  # HIP honours CUDA_VISIBLE_DEVICES when its own is unset
        ({"hip_visible_devices": "3", "cuda_visible_devices": "0"}, ["amdgpu:3"]),  # ... and prefers its own
        ({"rocr_visible_devices": "1,3"}, ["amdgpu:1", "amdgpu:3"]),
        ({"rocr_visible_devices": "1,3", "hip_visible_devices": "1"}, ["amdgpu:3"]),  # HIP indexes ROCr's list
        ({"rocr_visible_devices": f"GPU-{serial(2):016X}"}, ["amdgpu:2"]),  # a UUID, hex in either case
        ({"hip_visible_devices": f"GPU-{serial(1):016x}"[:14] + ",0"}, []),  # a prefix shared by all four: stops
        ({"hip_visible_devices": "0,9,1"}, ["amdgpu:0"]),  # the list stops at the first invalid entry
        ({"hip_visible_devices": ""}, []),
    ],
)
def test_visible_devices(amd: Any, env: dict[str, str], expected: list[str]) -> None:
    fake = amd(*four_gpus(), **env)
    tracker = amd_tracker()
    assert channels(tracker) == expected
    if not expected:
        assert tracker.meter_set.accelerators["AMD"].startswith("no AMD GPU visible to this process (")
    tracker.meter_set.close()
    assert fake.refcount == 0


@pytest.mark.parametrize(
    ("version", "order"), [("7.0.2", "HIP index"), ("6.3.3", "KFD node"), ("6.1.2", "PCI bus order")]
)
def test_hip_order_in_every_release(amd: Any, version: str, order: str) -> None:
    gpus = four_gpus()
    amd(*gpus, version=version)
    tracker = amd_tracker()
    assert f"({order}" in tracker.meter_set.accelerators["AMD"]
    by_name = {m.info.name: m.info.details["bdf"] for m in tracker.meter_set.meters}
    if order == "PCI bus order":
        expected = sorted(g.bdf for g in gpus)
    else:
        expected = [gpus[HIP_OF.index(i)].bdf for i in range(4)]
    assert [by_name[f"amdgpu:{i}"] for i in range(4)] == expected
    tracker.meter_set.close()


@pytest.mark.parametrize(
    ("env", "gpus", "expected"),
    [
        ({}, [2], ["amdgpu:2"]),
        ({"hip_visible_devices": "2,3"}, [1], ["amdgpu:3"]),  # the framework's cuda:1 is the second visible GPU
        ({"hip_visible_devices": "2,3"}, [f"GPU-{serial(2):016x}"], ["amdgpu:2"]),
    ],
)
def test_explicit_gpus_are_relative_to_visible_devices(
    amd: Any, env: dict[str, str], gpus: list[Any], expected: list[str]
) -> None:
    amd(*four_gpus(), **env)
    tracker = amd_tracker(gpus=gpus)
    assert channels(tracker) == expected
    assert "by explicit gpus=" in tracker.meter_set.accelerators["AMD"]
    tracker.meter_set.close()


def test_requested_amd_gpu_not_visible_is_a_config_error(amd: Any) -> None:
    fake = amd(*four_gpus(), hip_visible_devices="2,3")
    message = r"gpus=\[2\]: CUDA ordinal 2 is not visible \(2 GPU\(s\) visible; HIP_VISIBLE_DEVICES='2,3'\)"
    with pytest.raises(ConfigError, match=message):
        amd_tracker(gpus=[2])
    assert fake.refcount == 0


def test_explicit_gpus_go_to_amd_when_nvml_cannot_start(amd: Any, nvml: Any) -> None:
    nvml(FakeGpu(), init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    amd(*four_gpus())
    tracker = amd_tracker(gpus=[0])
    assert channels(tracker) == ["amdgpu:0"]
    assert tracker.meter_set.accelerators["NVIDIA"] == "NVML could not start (Driver Not Loaded)"
    tracker.meter_set.close()


def test_explicit_gpus_with_no_library_able_to_start_is_a_config_error(amd: Any, nvml: Any) -> None:
    nvml(FakeGpu(), init_error=NVML_ERROR_DRIVER_NOT_LOADED)
    amd(FakeAmdGpu(), init_error=AMDSMI_STATUS_DRIVER_NOT_LOADED)
    with pytest.raises(ConfigError, match=r"NVML could not start: Driver Not Loaded; AMD: AMD SMI could not start"):
        amd_tracker(gpus=[0])
