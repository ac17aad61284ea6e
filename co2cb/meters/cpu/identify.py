"""What CPU this machine has, how many sockets, and whether it is a virtual machine.

Reads ``/proc/cpuinfo`` (model name, CPUID signature, sockets, hypervisor flag) and the DMI
identity files under ``/sys/class/dmi/id`` (cloud or hypervisor). Pure standard library;
never raises on a missing or unreadable file: "don't know" is ``None`` (or the documented
default).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PathLike = str | os.PathLike[str]

CPUINFO_PATH = "/proc/cpuinfo"
DMI_ROOT = "/sys/class/dmi/id"
UNKNOWN_HYPERVISOR = "unknown hypervisor"

# ---------------------------------------------------------------------------
# /proc/cpuinfo
# ---------------------------------------------------------------------------


def _read_text(path: PathLike) -> str | None:
    """Return a file's text, or None if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _cpuinfo_fields(cpuinfo_path: PathLike) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of every ``key : value`` line of a cpuinfo file; [] if unreadable."""
    text = _read_text(cpuinfo_path)
    if text is None:
        return []
    fields = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.append((key.strip(), value.strip()))
    return fields


def _first(fields: Iterable[tuple[str, str]], key: str) -> str | None:
    """The first non-empty value of ``key`` (exact, case-sensitive), else None."""
    return next((value for k, value in fields if k == key and value), None)


# ARM "CPU implementer" and "CPU part" codes (Linux arch/arm64/include/asm/cputype.h) of server-class
# cores, to name an aarch64 CPU whose cpuinfo has no "model name".
_ARM_IMPLEMENTERS = {
    0x41: "ARM",
    0x46: "Fujitsu",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x51: "Qualcomm",
    0x61: "Apple",
    0xC0: "Ampere",
}
_ARM_PARTS = {
    (0x41, 0xD03): "ARM Cortex-A53",
    (0x41, 0xD07): "ARM Cortex-A57",
    (0x41, 0xD08): "ARM Cortex-A72",
    (0x41, 0xD0B): "ARM Cortex-A76",
    (0x41, 0xD0C): "ARM Neoverse-N1",
    (0x41, 0xD40): "ARM Neoverse-V1",
    (0x41, 0xD49): "ARM Neoverse-N2",
    (0x41, 0xD4F): "ARM Neoverse-V2",
    (0x41, 0xD8E): "ARM Neoverse-N3",
    (0x41, 0xD84): "ARM Neoverse-V3",
    (0xC0, 0xAC3): "Ampere AmpereOne",
}


def _parse_int(text: str | None) -> int | None:
    """Parse a decimal or ``0x`` hexadecimal integer; None if absent or malformed."""
    if not text:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _arm_model_name(fields: list[tuple[str, str]]) -> str | None:
    """Name an ARM CPU from its implementer and part codes (aarch64 cpuinfo has no "model name")."""
    implementer = _parse_int(_first(fields, "CPU implementer"))
    part = _parse_int(_first(fields, "CPU part"))
    if implementer is None:
        return None
    if part is not None and (implementer, part) in _ARM_PARTS:
        return _ARM_PARTS[(implementer, part)]
    vendor = _ARM_IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    return f"{vendor} CPU part 0x{part:03x}" if part is not None else f"{vendor} CPU"


def read_cpu_model(cpuinfo_path: PathLike = CPUINFO_PATH) -> str | None:
    """The CPU model name, as the kernel reports it.

    Rules, first that applies: the ``model name`` line (x86); the ``cpu`` line (POWER);
    on aarch64, which has no model name, a known ``CPU implementer``/``CPU part`` pair
    (e.g. ``"ARM Neoverse-N1"`` for 0x41/0xd0c, the core of AWS Graviton2); a non-numeric
    ``Processor`` line (32-bit ARM, old arm64 kernels); a generic name from the codes
    (``"ARM CPU part 0xd4b"``).

    Args:
        cpuinfo_path: The cpuinfo file to read.

    Returns:
        The model name, e.g. ``"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"``, or None if
        the file is unreadable or names no model.
    """
    fields = _cpuinfo_fields(cpuinfo_path)
    name = _first(fields, "model name") or _first(fields, "cpu")
    if name:
        return name
    arm = _arm_model_name(fields)
    if arm is not None and arm in _ARM_PARTS.values():
        return arm
    processor = _first(fields, "Processor")
    return processor if processor and not processor.isdigit() else arm


def count_sockets(cpuinfo_path: PathLike = CPUINFO_PATH) -> int:
    """Number of CPU packages (sockets): distinct ``physical id`` values, at least 1.

    Args:
        cpuinfo_path: The cpuinfo file to read.
    """
    ids = {value for key, value in _cpuinfo_fields(cpuinfo_path) if key == "physical id"}
    return max(1, len(ids))


@dataclass(frozen=True)
class CpuSignature:
    """The CPUID identity of a CPU as cpuinfo reports it.

    Attributes:
        vendor: ``vendor_id``, e.g. ``"GenuineIntel"``, ``"AuthenticAMD"``.
        family: ``cpu family`` (decimal).
        model: ``model`` (decimal).
        stepping: ``stepping``, or None if absent.
    """

    vendor: str
    family: int
    model: int
    stepping: int | None = None


def read_cpu_signature(cpuinfo_path: PathLike = CPUINFO_PATH) -> CpuSignature | None:
    """The x86 vendor, family, model and stepping from cpuinfo; None if absent (ARM) or unreadable.

    Useful when a hypervisor hides the model number (e.g. the model name is just ``"AMD EPYC"``):
    :func:`co2cb.meters.cpu.architecture.architecture_from_signature` still tells the microarchitecture.
    """
    fields = _cpuinfo_fields(cpuinfo_path)
    vendor = _first(fields, "vendor_id")
    family = _parse_int(_first(fields, "cpu family"))
    model = _parse_int(_first(fields, "model"))
    if vendor is None or family is None or model is None:
        return None
    return CpuSignature(vendor, family, model, _parse_int(_first(fields, "stepping")))


# ---------------------------------------------------------------------------
# Virtualisation
# ---------------------------------------------------------------------------

_DMI_FILES = (
    "sys_vendor",
    "product_name",
    "product_version",
    "bios_vendor",
    "bios_version",
    "board_vendor",
    "chassis_vendor",
    "chassis_asset_tag",
)
_AZURE_ASSET_TAG = "7783-7084-3265-9085"  # the chassis asset tag of every Azure VM

# (substring of the lower-cased DMI text, name returned). Clouds before hypervisors: a cloud VM
# also shows its hypervisor (KVM, Xen, Hyper-V).
_DMI_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("amazon ec2", "Amazon EC2"),
    (".amazon", "Amazon EC2"),  # old Xen-based EC2: bios_version "4.11.amazon"
    ("google compute engine", "Google Compute Engine"),
    ("oraclecloud", "Oracle Cloud"),
    ("alibaba cloud", "Alibaba Cloud"),
    ("digitalocean", "DigitalOcean"),
    ("hetzner", "Hetzner Cloud"),
    ("openstack", "OpenStack"),
    ("vmware", "VMware"),
    ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"),
    ("parallels", "Parallels"),
    ("bhyve", "bhyve"),
    ("qemu", "QEMU"),
    ("kvm", "KVM"),
    ("xen", "Xen"),
    ("bochs", "Bochs"),
)


def _dmi_text(dmi_root: PathLike) -> dict[str, str]:
    """The readable DMI identity files under ``dmi_root``, stripped; unreadable ones are left out."""
    values = {}
    for name in _DMI_FILES:
        text = _read_text(Path(dmi_root) / name)
        if text and text.strip():
            values[name] = text.strip()
    return values


def _dmi_virtualization(dmi: dict[str, str]) -> str | None:
    """Name the cloud or hypervisor that the DMI identity shows, else None."""
    if dmi.get("chassis_asset_tag") == _AZURE_ASSET_TAG:
        return "Microsoft Azure"
    if (
        dmi.get("sys_vendor", "").lower().startswith("microsoft")
        and "virtual machine" in dmi.get("product_name", "").lower()
    ):
        return "Microsoft Hyper-V"
    blob = " | ".join(dmi.values()).lower()
    return next((name for needle, name in _DMI_SIGNATURES if needle in blob), None)


def _has_hypervisor_flag(cpuinfo_path: PathLike) -> bool:
    """True when the x86 ``flags`` line has ``hypervisor`` (set by every common hypervisor)."""
    flags = _first(_cpuinfo_fields(cpuinfo_path), "flags") or ""
    return "hypervisor" in flags.split()


def detect_virtualization(cpuinfo_path: PathLike = CPUINFO_PATH, dmi_root: PathLike = DMI_ROOT) -> str | None:
    """Name the cloud or hypervisor this machine runs on, or None.

    Rules, first that applies:

    1. DMI (``sys_vendor``, ``product_name``, ``bios_vendor``, ``bios_version``, ``chassis_asset_tag``...)
       names a cloud: ``"Amazon EC2"``, ``"Google Compute Engine"``, ``"Microsoft Azure"`` (Azure's
       chassis asset tag), ``"Oracle Cloud"``, ... Cloud bare-metal instances are reported too: their
       power is still best described by the cloud's per-vCPU model.
    2. DMI names a hypervisor: ``"Microsoft Hyper-V"`` ("Microsoft Corporation" / "Virtual Machine"),
       ``"VMware"``, ``"VirtualBox"``, ``"QEMU"``, ``"KVM"``, ``"Xen"``, ...
    3. The cpuinfo ``hypervisor`` flag is set: ``"unknown hypervisor"``.

    Args:
        cpuinfo_path: The cpuinfo file to read.
        dmi_root: The DMI identity folder (``/sys/class/dmi/id``).

    Returns:
        The name, or None when nothing shows a virtual machine (or nothing could be read: unreadable
        files mean "don't know", never an exception).
    """
    name = _dmi_virtualization(_dmi_text(dmi_root))
    if name is not None:
        return name
    return UNKNOWN_HYPERVISOR if _has_hypervisor_flag(cpuinfo_path) else None
