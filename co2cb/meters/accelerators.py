"""Which accelerator meters to use: NVIDIA GPUs (NVML), else AMD GPUs (AMD SMI), else Apple silicon's GPU and ANE.

The first vendor whose library finds a GPU this process may use is measured; what
every library said is kept (:attr:`GpuFind.vendors`) so that ``co2cb info`` and the
record show why the others are missing. The ``gpus`` list the adapters pass (the
framework's CUDA device indices; ROCm builds of PyTorch name AMD GPUs ``cuda:N``
too) is read by NVML and AMD SMI alike.

A list the user gives (``Tracker(gpus=[...])``) that no library can serve is an error at
construction. A list the framework gave (:class:`FrameworkGpus`, from the adapters) is not the
user's to fix in the middle of a fit: those GPUs are left unmeasured, with the reason recorded
and said once at run time, and the CPU and RAM are measured as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from co2cb.meters.amd import AmdGpu, discover_amd_gpus
from co2cb.meters.base import Meter
from co2cb.meters.nvml import GpuDevice, NvmlUnavailable, discover_gpus

NVIDIA, AMD, APPLE = "NVIDIA", "AMD", "Apple silicon"


class FrameworkGpus(tuple[int | str, ...]):
    """GPUs the framework says a process trains on: one that cannot be measured is left out, not an error."""

    __slots__ = ()


@dataclass
class GpuFind:
    """The accelerator meters chosen and why.

    Attributes:
        meters: The meters (possibly none).
        devices: The GPUs measured, as their libraries describe them (NVIDIA and AMD).
        reason: Why these, for the GPU choice of the record.
        vendors: What each vendor's library said, by vendor name.
        problems: What to tell the user at run time (a GPU that should be measured and is not).
    """

    meters: list[Meter] = field(default_factory=list)
    devices: list[GpuDevice | AmdGpu] = field(default_factory=list)
    reason: str = ""
    vendors: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _others(vendors: dict[str, str], chosen: str) -> str:
    return "".join(f"; {name}: {why}" for name, why in vendors.items() if name != chosen)


def find_gpus(requested: Sequence[int | str] | None, apple: Sequence[Meter], apple_reason: str) -> GpuFind:
    """The GPU meters for this process, trying NVIDIA, then AMD, then Apple silicon.

    Args:
        requested: Explicit GPUs (ordinals among the visible devices, or UUIDs); None for all visible.
        apple: The Apple silicon GPU and ANE meters already opened (empty off Apple silicon).
        apple_reason: What Apple silicon discovery said.

    Raises:
        ValueError: ``requested`` names a GPU that is not there, or no GPU library could start although
            GPUs were asked for (the message gives every library's reason); never for a
            :class:`FrameworkGpus` list, whose GPUs are then left unmeasured (see the module's notes).
    """
    try:
        return _find(requested, apple, apple_reason)
    except ValueError as e:
        if not isinstance(requested, FrameworkGpus):
            raise
        problem = (
            f"GPU: the framework trains on GPU(s) {', '.join(map(str, requested))}, which cannot be measured ({e}); "
            "they are left unmeasured and the CPU and RAM are measured; check the driver with nvidia-smi or rocm-smi"
        )
        return GpuFind([], [], f"unavailable: {problem}", {}, [problem])


def _find(requested: Sequence[int | str] | None, apple: Sequence[Meter], apple_reason: str) -> GpuFind:
    vendors: dict[str, str] = {}
    nvml_error: NvmlUnavailable | None = None
    problem = ""
    try:
        nvidia, vendors[NVIDIA], problem = discover_gpus(requested)
    except NvmlUnavailable as e:
        nvidia, vendors[NVIDIA], nvml_error = [], f"NVML could not start ({e.__cause__})", e
    if nvidia:
        vendors[AMD] = vendors[APPLE] = "not looked for: NVIDIA GPUs are measured"
        return GpuFind(list(nvidia), [m.device for m in nvidia], vendors[NVIDIA], vendors, [problem] if problem else [])
    amd, vendors[AMD] = discover_amd_gpus(requested)
    vendors[APPLE] = apple_reason
    if amd:
        vendors[APPLE] = "not looked for: AMD GPUs are measured"
        return GpuFind(list(amd), [m.device for m in amd], f"AMD SMI: {vendors[AMD]}" + _others(vendors, AMD), vendors)
    if apple:
        if requested is not None and any(str(x).strip() != "0" for x in requested):
            raise ValueError(f"gpus={list(requested)!r}: Apple silicon has one GPU (ordinal 0)")
        return GpuFind(list(apple), [], f"{APPLE}: {apple_reason}" + _others(vendors, APPLE), vendors)
    if nvml_error is not None:
        raise ValueError(f"{nvml_error}; {AMD}: {vendors[AMD]}") from nvml_error
    why = "; ".join(f"{name}: {why}" for name, why in vendors.items())
    return GpuFind([], [], why, vendors, [problem] if problem else [])
