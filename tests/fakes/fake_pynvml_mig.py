"""The field-values (power by scope) and MIG calls of the fake pynvml (see :mod:`tests.fakes.fake_pynvml`).

A :class:`~tests.fakes.fake_pynvml.FakeGpu` with ``module_power`` is a Grace Hopper-style
module: ``nvmlDeviceGetFieldValues`` answers ``NVML_FI_DEV_POWER_INSTANT`` for the GPU
and the module scope. ``mig_mode`` and ``mig_devices`` (:class:`FakeMig`) script the MIG
layout; MIG device handles answer UUID, instance IDs and attributes.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fake_pynvml import FakeGpu

# constants (values as in pynvml)
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_VALUE_TYPE_UNSIGNED_INT = 1


@dataclass(frozen=True)
class FakeMig:
    """A MIG device (GPU instance + compute instance) on a :class:`FakeGpu`."""

    uuid: str
    gpu_instance_id: int = 1
    compute_instance_id: int = 0
    slices: int = 1
    memory_mb: int = 10_240
    sm_count: int = 16


@dataclass
class Attributes:
    """What ``nvmlDeviceGetAttributes`` returns for a MIG device, like pynvml's ``c_nvmlDeviceAttributes``."""

    multiprocessorCount: int
    gpuInstanceSliceCount: int
    computeInstanceSliceCount: int
    memorySizeMB: int


@dataclass
class FieldValue:
    """One entry of ``nvmlDeviceGetFieldValues``, like pynvml's ``c_nvmlFieldValue_t``."""

    fieldId: int
    scopeId: int
    timestamp: int
    latencyUsec: int
    valueType: int
    nvmlReturn: int
    value: types.SimpleNamespace


class ScopeAndMigCalls:
    """The calls, mixed into ``FakePynvml``: they answer through its ``_device`` and raise its ``NVMLError``."""

    NVMLError: Any
    NVML_SUCCESS: int
    NVML_ERROR_NOT_SUPPORTED: int
    NVML_ERROR_INVALID_ARGUMENT: int
    NVML_ERROR_NOT_FOUND: int
    _device: Callable[..., Any]
    _mig_handle: Callable[[int, int], Any]

    def nvmlDeviceGetFieldValues(self, handle: Any, fieldIds: Sequence[Any]) -> list[FieldValue]:
        """Power by scope (``(NVML_FI_DEV_POWER_INSTANT, scope)``), milliwatts; other fields answer NOT_SUPPORTED."""

        def answer(gpu: FakeGpu, now: float) -> list[FieldValue]:
            out = []
            for item in fieldIds:
                field_id, scope = item if isinstance(item, tuple) else (item, 0)
                curve = {NVML_POWER_SCOPE_GPU: gpu.power, NVML_POWER_SCOPE_MODULE: gpu.module_power}.get(scope)
                ok = field_id == NVML_FI_DEV_POWER_INSTANT and curve is not None
                mw = round(float(curve(now)) * 1000) if ok and curve is not None else 0
                out.append(
                    FieldValue(
                        fieldId=field_id,
                        scopeId=scope,
                        timestamp=int(now * 1e6),
                        latencyUsec=0,
                        valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                        nvmlReturn=self.NVML_SUCCESS if ok else self.NVML_ERROR_NOT_SUPPORTED,
                        value=types.SimpleNamespace(uiVal=mw),
                    )
                )
            return out

        return self._device("nvmlDeviceGetFieldValues", handle, answer)

    def nvmlDeviceGetMigMode(self, device: Any) -> list[int]:
        """``[current, pending]``; NOT_SUPPORTED on a GPU without MIG."""

        def answer(gpu: FakeGpu, now: float) -> list[int]:
            if gpu.mig_mode is None:
                raise self.NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
            return [gpu.mig_mode, gpu.mig_mode]

        return self._device("nvmlDeviceGetMigMode", device, answer)

    def nvmlDeviceGetMaxMigDeviceCount(self, device: Any) -> int:
        def answer(gpu: FakeGpu, now: float) -> int:
            if gpu.mig_mode is None:
                raise self.NVMLError(self.NVML_ERROR_NOT_SUPPORTED)
            return gpu.max_mig_devices

        return self._device("nvmlDeviceGetMaxMigDeviceCount", device, answer)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: Any, index: int) -> Any:
        def answer(gpu: FakeGpu, now: float) -> Any:
            if gpu.mig_mode != NVML_DEVICE_MIG_ENABLE:
                raise self.NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
            if not 0 <= index < len(gpu.mig_devices):
                raise self.NVMLError(self.NVML_ERROR_NOT_FOUND)
            return self._mig_handle(gpu.index, index)

        return self._device("nvmlDeviceGetMigDeviceHandleByIndex", device, answer)

    def _mig(self, fn: str, device: Any, value: Callable[[FakeMig], Any]) -> Any:
        def answer(gpu: FakeGpu, now: float) -> Any:
            if getattr(device, "slot", None) is None:
                raise self.NVMLError(self.NVML_ERROR_INVALID_ARGUMENT)
            return value(gpu.mig_devices[device.slot])

        return self._device(fn, device, answer, mig=True)

    def nvmlDeviceGetGpuInstanceId(self, device: Any) -> int:
        return self._mig("nvmlDeviceGetGpuInstanceId", device, lambda m: m.gpu_instance_id)

    def nvmlDeviceGetComputeInstanceId(self, device: Any) -> int:
        return self._mig("nvmlDeviceGetComputeInstanceId", device, lambda m: m.compute_instance_id)

    def nvmlDeviceGetAttributes(self, device: Any) -> Attributes:
        return self._mig(
            "nvmlDeviceGetAttributes",
            device,
            lambda m: Attributes(m.sm_count, m.slices, m.slices, m.memory_mb),
        )
