"""What an NVIDIA GPU's figures cover: the board or a whole module, and the MIG slices on it.

**Power scope.** On Grace Hopper (GH200) and other modules, NVML reports power for
two scopes through the field-values API: the GPU (``NVML_POWER_SCOPE_GPU``) and the
module (``NVML_POWER_SCOPE_MODULE``: GPU, Grace CPU and their memory). Which of the
two ``nvmlDeviceGetPowerUsage`` and the total-energy counter report is not stated
by NVML for every product (Zeus found the GH200 counter to cover the module), so
co2cb decides from the readings at discovery: the scope whose instantaneous power
is nearer to ``nvmlDeviceGetPowerUsage``, provided the module reading exceeds the
GPU reading by at least :data:`MODULE_GAP`. Both readings are kept for the record.
A module-scope figure already holds the CPU and memory energy, so discovery does
not measure them again.

**MIG.** NVML reports power and energy for the physical GPU only, never per MIG
slice; the layout is recorded so that a figure from a sliced GPU says so.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

GPU_ONLY = "gpu"  #: the figures cover the GPU board
MODULE = "module"  #: the figures cover the whole module: GPU, CPU and memory
UNKNOWN = "unknown"  #: NVML reports module power, but co2cb could not tell which scope the figures have

MODULE_GAP = 0.05
"""Module power must exceed GPU power by this fraction for the two scopes to be told apart."""

# nvmlValueType_t -> the member of the c_nvmlValue_t union that holds the value
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def _optional(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - any NVML failure means "not reported"
        return None


def _watts(field: Any) -> float | None:
    """A power field value (milliwatts) in watts, or None when NVML answered with an error for it."""
    if getattr(field, "nvmlReturn", 1) != 0:
        return None
    member = _VALUE_MEMBERS.get(int(field.valueType))
    return float(getattr(field.value, member)) / 1000.0 if member else None


def power_scope(pynvml: ModuleType, handle: Any, draw_mw: float | None) -> tuple[str, float | None]:
    """The scope of the device's own figures and the module power in watts (None where not reported).

    Args:
        pynvml: The NVML bindings.
        handle: The device.
        draw_mw: What ``nvmlDeviceGetPowerUsage`` answered a moment ago, milliwatts (None if it did not).
    """
    instant = getattr(pynvml, "NVML_FI_DEV_POWER_INSTANT", None)
    if instant is None:  # bindings older than the field's introduction
        return GPU_ONLY, None
    fields = [(instant, pynvml.NVML_POWER_SCOPE_GPU), (instant, pynvml.NVML_POWER_SCOPE_MODULE)]
    values = _optional(pynvml.nvmlDeviceGetFieldValues, handle, fields)
    if values is None:
        return GPU_ONLY, None
    gpu_w, module_w = _watts(values[0]), _watts(values[1])
    if module_w is None:
        return GPU_ONLY, None
    if draw_mw is None or gpu_w is None:
        return UNKNOWN, module_w
    draw_w = draw_mw / 1000.0
    if module_w - gpu_w < MODULE_GAP * module_w:
        return UNKNOWN, module_w
    return (MODULE if abs(draw_w - module_w) < abs(draw_w - gpu_w) else GPU_ONLY), module_w


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def mig_layout(pynvml: ModuleType, handle: Any) -> tuple[bool | None, tuple[dict[str, Any], ...]]:
    """Whether MIG mode is on (None where not supported) and the MIG devices of a GPU."""
    mode = _optional(pynvml.nvmlDeviceGetMigMode, handle)
    if mode is None:
        return None, ()
    if mode[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
        return False, ()
    slices: list[dict[str, Any]] = []
    for i in range(_optional(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
        mig = _optional(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, i)
        if mig is None:  # an empty slot answers NOT_FOUND
            continue
        uuid = _optional(pynvml.nvmlDeviceGetUUID, mig)
        if uuid is None:
            continue
        attrs = _optional(pynvml.nvmlDeviceGetAttributes, mig)
        slices.append(
            {
                "uuid": _text(uuid),
                "gpu_instance_id": _optional(pynvml.nvmlDeviceGetGpuInstanceId, mig),
                "compute_instance_id": _optional(pynvml.nvmlDeviceGetComputeInstanceId, mig),
                "slices": attrs.gpuInstanceSliceCount if attrs is not None else None,
                "memory_mb": attrs.memorySizeMB if attrs is not None else None,
                "sm_count": attrs.multiprocessorCount if attrs is not None else None,
            }
        )
    return True, tuple(slices)
