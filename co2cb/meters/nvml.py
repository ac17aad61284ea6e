"""NVIDIA GPU energy through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

Energy comes from NVML's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules since the driver loaded; Volta and newer) where the device supports
it, otherwise from power readings (``nvmlDeviceGetPowerUsage``, milliwatts) that
the sampler integrates. A GPU is counted whole: NVML cannot split a device's
energy between processes.

Which GPUs: an explicit list (CUDA ordinals, i.e. positions among the visible
devices, or ``GPU-...``/``MIG-...`` UUIDs), else ``CUDA_VISIBLE_DEVICES`` (indices or
UUIDs, read the way CUDA reads it: the list stops at the first entry that names no
device), else every GPU. Ordinals are mapped in PCI bus order, as with
``CUDA_DEVICE_ORDER=PCI_BUS_ID``. A MIG slice is measured through its physical GPU.

What a figure covers is recorded per GPU (see :mod:`co2cb.meters.nvml_scope`): the
GPU board, or on Grace Hopper and other modules the whole module (GPU, CPU and
memory), and the MIG layout. This module and :mod:`~co2cb.meters.nvml_scope` are the
only ones that call pynvml.
"""

from __future__ import annotations

import importlib
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from co2cb.meters import visible
from co2cb.meters.base import Component, Meter, MeterError, MeterInfo, Provenance, ReadingKind, TransientMeterError
from co2cb.meters.nvml_scope import GPU_ONLY, MODULE, mig_layout, power_scope


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
        power_scope: What the power and energy figures cover: ``"gpu"`` (the board), ``"module"``
            (a Grace Hopper-style module: GPU, CPU and memory) or ``"unknown"`` (NVML reports module
            power, but co2cb could not tell which of the two its figures are).
        module_power_w: Module power at discovery, watts, where NVML reports it (None elsewhere).
        mig_enabled: Whether MIG mode is on (None where the GPU has no MIG).
        mig_slices: The MIG devices on this GPU: UUID, GPU and compute instance IDs, slices, memory, SMs.
    """

    index: int
    name: str
    uuid: str
    memory_used_bytes: int | None
    temperature_c: float | None
    power_limit_w: float | None
    power_draw_w: float | None
    energy_counter: bool
    power_scope: str = GPU_ONLY
    module_power_w: float | None = None
    mig_enabled: bool | None = None
    mig_slices: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**self.__dict__, "mig_slices": [dict(s) for s in self.mig_slices]}


def _load_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - any NVML failure means "not reported"
        return None


def select_devices(
    requested: Sequence[int | str] | None, visible_env: str | None, uuids: Sequence[str | Sequence[str]]
) -> list[int]:
    """NVML indices of the GPUs this process may use.

    Args:
        requested: Explicit CUDA ordinals or UUIDs, or None for all visible.
        visible_env: Value of ``CUDA_VISIBLE_DEVICES`` (None when unset).
        uuids: By NVML index, the GPU's UUID, or its UUID and the UUIDs of its MIG slices.

    Raises:
        ValueError: ``requested`` names a device that is not visible.
    """
    ids = [[u] if isinstance(u, str) else list(u) for u in uuids]
    shown = visible.parse_visible(visible_env, ids)
    return visible.choose(requested, shown, ids, f"CUDA_VISIBLE_DEVICES={visible_env!r}")


READ_ATTEMPTS = 2
"""Tries of a reading before a transient NVML error is passed on (the sampler then skips that reading)."""


def fatal_codes(pynvml: ModuleType) -> set[int]:
    """NVML error codes after which a GPU cannot be read again: lost, needs a reset, or not supported."""
    names = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_RESET_REQUIRED", "NVML_ERROR_NOT_SUPPORTED")
    defaults = (15, 16, 3)  # the values pynvml defines
    return {int(getattr(pynvml, name, default)) for name, default in zip(names, defaults)}


class NvmlUnavailable(ValueError):
    """NVML could not start although GPUs were asked for explicitly (``gpus=[...]``)."""


def energy_scope(device: GpuDevice, mig_in_use: Sequence[str] = ()) -> str:
    """What a GPU meter's figures cover, in words for the record."""
    if device.power_scope == MODULE:
        text = "the whole module (GPU, CPU and memory), as NVML reports it on this device"
    elif device.power_scope == GPU_ONLY:
        text = "the GPU board"
    else:
        text = "the GPU board or the whole module: NVML reports module power here, and co2cb could not tell which"
    if device.mig_enabled:
        slices = ", ".join(mig_in_use) or "none named"
        text += (
            f"; all {len(device.mig_slices)} MIG slice(s) together (in use here: {slices}): NVML reports energy "
            "for the physical GPU only, so processes on other slices of it are counted too"
        )
    return text


class NvmlGpuMeter(Meter):
    """Energy of one NVIDIA GPU (the physical GPU, also when the process uses one MIG slice of it)."""

    def __init__(self, pynvml: ModuleType, index: int, mig_in_use: Sequence[str] = ()) -> None:
        """Open GPU ``index`` (NVML index); ``mig_in_use`` names the MIG slices the process was given."""
        self._nvml = pynvml
        pynvml.nvmlInit()  # reference-counted by NVML; balanced in close()
        self._open = True
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            self.device = describe_device(pynvml, index, self._handle)
            self.reading = ReadingKind.COUNTER if self.device.energy_counter else ReadingKind.POWER
            counter = pynvml.nvmlDeviceGetTotalEnergyConsumption
            self._origin_mj = counter(self._handle) if self.device.energy_counter else 0
            self._last_mj = self._origin_mj
        except BaseException:
            self.close()
            raise
        details = {k: v for k, v in self.device.as_dict().items() if k not in ("memory_used_bytes", "power_draw_w")}
        covers = ["gpu", "cpu", "ram"] if self.device.power_scope == MODULE else ["gpu"]
        details.update(energy_scope=energy_scope(self.device, mig_in_use), covers=covers)
        if mig_in_use:
            details["mig_slices_in_use"] = list(mig_in_use)
        self._info = MeterInfo(
            name=f"gpu:{index}",
            component=Component.GPU,
            provenance=Provenance.MEASURED_COUNTER if self.device.energy_counter else Provenance.SAMPLED_POWER,
            details=details,
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def read(self) -> float:
        """Joules since the meter was made (counter) or watts now (power).

        A transient NVML error is retried once at once, then raised as :class:`TransientMeterError`
        (the sampler skips that reading; the counter loses nothing). A counter that goes back (the
        driver reloaded: NVML counts from zero again) is counted on from its new value, and noted.

        Raises:
            MeterError: The GPU is lost or the call is not supported: the meter cannot work any more.
        """
        counter = self.reading is ReadingKind.COUNTER
        fn = self._nvml.nvmlDeviceGetTotalEnergyConsumption if counter else self._nvml.nvmlDeviceGetPowerUsage
        for attempt in range(READ_ATTEMPTS):
            try:
                raw = fn(self._handle)
                break
            except self._nvml.NVMLError as e:
                what = f"NVML error on GPU {self.device.index} ({self.device.name}): {e}"
                if getattr(e, "value", None) in fatal_codes(self._nvml):
                    raise MeterError(what) from e
                if attempt == READ_ATTEMPTS - 1:
                    raise TransientMeterError(what) from e
        if not counter:
            return raw / 1000.0
        if raw < self._last_mj:
            self.note(
                f"the NVML energy counter went back from {self._last_mj} to {raw} mJ (the driver reloaded?): "
                "counted on from its new value; the energy between the previous reading and the reload is not counted"
            )
            self._origin_mj -= self._last_mj  # the energy counted so far stays; the new count starts from 0
        self._last_mj = raw
        return (raw - self._origin_mj) / 1000.0

    def close(self) -> None:
        """Release the library's handle (safe to call twice)."""
        if self._open:
            self._open = False
            _optional(self._nvml.nvmlShutdown)


def describe_device(pynvml: ModuleType, index: int, handle: Any) -> GpuDevice:
    """Read a GPU's identity, state, power scope and MIG layout; fields NVML does not report are None."""
    memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
    limit_mw = _optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
    draw_mw = _optional(pynvml.nvmlDeviceGetPowerUsage, handle)
    temp = _optional(pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU)
    scope, module_w = power_scope(pynvml, handle, draw_mw)
    mig_enabled, mig_slices = mig_layout(pynvml, handle)
    return GpuDevice(
        index=index,
        name=_text(pynvml.nvmlDeviceGetName(handle)),
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        memory_used_bytes=int(memory.used) if memory is not None else None,
        temperature_c=float(temp) if temp is not None else None,
        power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
        power_draw_w=draw_mw / 1000.0 if draw_mw is not None else None,
        energy_counter=_optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, handle) is not None,
        power_scope=scope,
        module_power_w=module_w,
        mig_enabled=mig_enabled,
        mig_slices=mig_slices,
    )


def _note(meter: NvmlGpuMeter) -> str:
    device = meter.device
    text = f"gpu:{device.index} {meter.info.provenance.value}"
    if device.power_scope != GPU_ONLY:
        text += f" ({device.power_scope} power scope)"
    if device.mig_enabled:
        text += " (MIG: the whole GPU is measured)"
    return text


def init_problem(pynvml: ModuleType, error: BaseException) -> str:
    """What to tell the user at run time when NVML could not start ("" when there is simply no NVIDIA driver)."""
    missing = getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12)
    if getattr(error, "value", None) == missing:
        return ""
    return (
        f"GPU: NVML could not start ({error}), so NVIDIA GPUs are not measured; check the driver with "
        "nvidia-smi (a driver that is not loaded, or no permission on /dev/nvidia*)"
    )


# The pynvml modules whose nvmlInit found no NVML library, with the reason: the library does not appear
# later in a process, and looking for it again costs about 0.1 ms at every tracker's start.
_no_library: weakref.WeakKeyDictionary[ModuleType, str] = weakref.WeakKeyDictionary()


def discover_gpus(requested: Sequence[int | str] | None = None) -> tuple[list[NvmlGpuMeter], str, str]:
    """Meters for the GPUs this process may use, why these (or none), and a problem to say at run time ("" if none).

    Never raises for missing hardware: no library, no driver or no GPU gives an
    empty list and the reason. Raises ValueError only when ``requested`` names a
    GPU that is not there, since the user asked for it explicitly
    (:class:`NvmlUnavailable` when NVML could not start at all).
    """
    try:
        pynvml = _load_pynvml()
    except ImportError:
        return [], "nvidia-ml-py is not installed (pip install nvidia-ml-py)", ""
    if pynvml in _no_library and not requested:
        return [], _no_library[pynvml], ""
    try:
        pynvml.nvmlInit()
    except Exception as e:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        if requested:
            raise NvmlUnavailable(f"gpus={list(requested)!r} was given but NVML could not start: {e}") from e
        reason, problem = f"NVML could not start ({e}): no NVIDIA driver or GPU", init_problem(pynvml, e)
        if not problem:  # no library at all (a driver that is not loaded may be loaded later: asked again)
            _no_library[pynvml] = reason
        return [], reason, problem
    visible_env = os.environ.get("CUDA_VISIBLE_DEVICES")
    meters: list[NvmlGpuMeter] = []
    skipped: list[str] = []
    try:
        count = pynvml.nvmlDeviceGetCount()
        ids: list[list[str]] = []
        for i in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mig = mig_layout(pynvml, handle)[1]
            ids.append([_text(pynvml.nvmlDeviceGetUUID(handle)), *(s["uuid"] for s in mig)])
        tokens = [*(requested or []), *(visible_env.split(",") if visible_env else [])]
        for i in select_devices(requested, visible_env, ids):
            try:
                meters.append(NvmlGpuMeter(pynvml, i, visible.named(tokens, ids[i][1:])))
            except pynvml.NVMLError as e:  # one broken GPU must not hide the others
                skipped.append(f"gpu:{i} skipped ({e})")
    except pynvml.NVMLError as e:
        for meter in meters:
            meter.close()
        return (
            [],
            f"NVML failed while listing GPUs: {e}",
            f"GPU: NVML failed while listing GPUs ({e}); check nvidia-smi",
        )
    finally:
        _optional(pynvml.nvmlShutdown)
    if count == 0:
        return [], "NVML found no GPU", ""
    said = f"GPU: {'; '.join(skipped)}: check that GPU with nvidia-smi" if skipped else ""
    if not meters:
        why = "; ".join(skipped) or f"no GPU visible to this process (CUDA_VISIBLE_DEVICES={visible_env!r})"
        return [], why, said
    how = (
        "explicit gpus="
        if requested is not None
        else ("CUDA_VISIBLE_DEVICES" if visible_env is not None else "all GPUs NVML reports")
    )
    kinds = ", ".join(_note(m) for m in meters)
    modules = [f"gpu:{m.device.index}" for m in meters if m.device.power_scope == MODULE]
    if len(modules) > 1:
        skipped.append(
            f"{', '.join(modules)} each report a module's energy: where GPUs share one module (GB200), "
            "its CPU and memory are counted once per GPU"
        )
    return meters, f"{len(meters)} of {count} GPU(s) by {how}: {kinds}" + "".join(f"; {x}" for x in skipped), said
