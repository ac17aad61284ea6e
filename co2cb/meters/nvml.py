"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

Energy comes from NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded; Volta and newer) where the device supports
it, otherwise from power readings (``nvmlDeviceGetPowerUsage``, milliwatts) that
the sampler integrates. A GPU is counted whole: NVML cannot split a device's
energy between processes.

Which GPUs: an explicit list (CUDA ordinals, i.e. positions among the visible
devices, or ``GPU-...`` UUIDs), else ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs,
read the way CUDA reads it: the list stops at the first entry that names no
device), else every GPU. Ordinals are mapped in PCI bus order, as with
``CUDA_DEVICE_ORDER=PCI_BUS_ID``. This is the only module that calls pynvml.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from co2cb.meters.base import Component, Meter, MeterError, MeterInfo, Provenance, ReadingKind


@dataclass(frozen=True)
class GpuDevice:
    """A GPU as NVML reports it when co2cb starts.

    Attributes:
        index: NVML index (PCI bus order).
        name: Product name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        uuid: ``GPU-...`` identifier.
        memory_used_bytes: Memory in use, bytes.
        temperature_c: Core temperature, degrees Celsius (None if not reported).
        power_limit_w: Enforced power limit, watts (None if not reported).
        power_draw_w: Current power draw, watts (None if not reported).
        energy_counter: Whether the total-energy counter is supported.
    """

    index: int
    name: str
    uuid: str
    memory_used_bytes: int | None
    temperature_c: float | None
    power_limit_w: float | None
    power_draw_w: float | None
    energy_counter: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _load_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - any NVML failure means "not reported"
        return None


def select_devices(requested: Sequence[int | str] | None, visible_env: str | None, uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs this process may use.

    Args:
        requested: Explicit CUDA ordinals or UUIDs, or None for all visible.
        visible_env: Value of ``CUDA_VISIBLE_DEVICES`` (None when unset).
        uuids: UUID of each NVML device, by NVML index.

    Raises:
        ValueError: ``requested`` names a device that is not visible.
    """

    def by_token(token: str) -> int | None:
        token = token.strip()
        if token.isdigit():
            i = int(token)
            return i if i < len(uuids) else None
        if token.startswith("GPU-"):
            hits = [i for i, u in enumerate(uuids) if u.startswith(token)]
            return hits[0] if len(hits) == 1 else None
        return None

    if visible_env is None:
        visible = list(range(len(uuids)))
    else:
        visible = []
        for token in visible_env.split(","):
            index = by_token(token)
            if index is None or index in visible:
                break  # CUDA ignores the rest of the list after an invalid entry
            visible.append(index)
    if requested is None:
        return visible
    chosen: list[int] = []
    for item in requested:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            ordinal = int(item)
            if not 0 <= ordinal < len(visible):
                raise ValueError(
                    f"gpus={list(requested)!r}: CUDA ordinal {ordinal} is not visible "
                    f"({len(visible)} GPU(s) visible; CUDA_VISIBLE_DEVICES={visible_env!r})"
                )
            index = visible[ordinal]
        else:
            found = by_token(str(item))
            if found is None or found not in visible:
                raise ValueError(f"gpus={list(requested)!r}: no visible GPU has UUID {item!r}")
            index = found
        if index not in chosen:
            chosen.append(index)
    return chosen


class NvmlGpuMeter(Meter):
    """Energy of one NVIDIA GPU."""

    def __init__(self, pynvml: ModuleType, index: int) -> None:
        self._nvml = pynvml
        pynvml.nvmlInit()  # reference-counted by NVML; balanced in close()
        self._open = True
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.device = describe_device(pynvml, index, self._handle)
            self.reading = ReadingKind.COUNTER if self.device.energy_counter else ReadingKind.POWER
            counter = pynvml.nvmlDeviceGetTotalEnergyConsumption
            self._origin_mj = counter(self._handle) if self.device.energy_counter else 0
        except BaseException:
            self.close()
            raise
        self._info = MeterInfo(
            name=f"gpu:{index}",
            component=Component.GPU,
            provenance=Provenance.MEASURED_COUNTER if self.device.energy_counter else Provenance.SAMPLED_POWER,
            details={k: v for k, v in self.device.as_dict().items() if k not in ("memory_used_bytes", "power_draw_w")},
        )

    @property
    def info(self) -> MeterInfo:
        return self._info

    def read(self) -> float:
        """Joules since the meter was made (counter) or watts now (power)."""
        try:
            if self.reading is ReadingKind.COUNTER:
                return (self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._origin_mj) / 1000.0
            return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0
        except self._nvml.NVMLError as e:
            raise MeterError(f"NVML error on GPU {self.device.index} ({self.device.name}): {e}") from e

    def close(self) -> None:
        if self._open:
            self._open = False
            _optional(self._nvml.nvmlShutdown)


def describe_device(pynvml: ModuleType, index: int, handle: Any) -> GpuDevice:
    """Read a GPU's identity and current state; fields NVML does not report are None."""
    memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
    limit_mw = _optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
    draw_mw = _optional(pynvml.nvmlDeviceGetPowerUsage, handle)
    temp = _optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
    return GpuDevice(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        memory_used_bytes=int(memory.used) if memory is not None else None,
        temperature_c=float(temp) if temp is not None else None,
        power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
        power_draw_w=draw_mw / 1000.0 if draw_mw is not None else None,
        energy_counter=_optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, handle) is not None,
    )


def discover_gpus(requested: Sequence[int | str] | None = None) -> tuple[list[NvmlGpuMeter], str]:
    """Meters for the GPUs this process may use, and why these (or none).

    Never raises for missing hardware: no library, no driver or no GPU gives an
    empty list and the reason. Raises ValueError only when ``requested`` names a
    GPU that is not there, since the user asked for it explicitly.
    """
    try:
        pynvml = _load_pynvml()
    except ImportError:
        return [], "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        if requested:
            raise ValueError(f"gpus={list(requested)!r} was given but NVML could not start: {e}") from e
        return [], f"NVML could not start ({e}): no NVIDIA driver or GPU"
    visible_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    meters: list[NvmlGpuMeter] = []
    skipped: list[str] = []
    try:
        count = pynvml.nvmlDeviceGetCount()
        uuids = [_text(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
        for i in select_devices(requested, visible_env, uuids):
            try:
                meters.append(NvmlGpuMeter(pynvml, i))
            except pynvml.NVMLError as e:  # one broken GPU must not hide the others
                skipped.append(f"gpu:{i} skipped ({e})")
    except pynvml.NVMLError as e:
        for meter in meters:
            meter.close()
        return [], f"NVML failed while listing GPUs: {e}"
    finally:
        _optional(pynvml.nvmlShutdown)
    if count == 0:
        return [], "NVML found no GPU"
    if not meters:
        why = "; ".join(skipped) or f"no GPU visible to this process (CUDA_VISIBLE_DEVICES={visible_env!r})"
        return [], why
    how = (
        "explicit gpus="
        if requested is not None
        else ("CUDA_VISIBLE_DEVICES" if visible_env is not None else "all GPUs NVML reports")
    )
    kinds = ", ".join(f"gpu:{m.device.index} {m.info.provenance.value}" for m in meters)
    return meters, f"{len(meters)} of {count} GPU(s) by {how}: {kinds}" + "".join(f"; {x}" for x in skipped)
