"""CPU package and DRAM energy through Linux powercap (Intel and AMD RAPL).

Zones live under ``/sys/class/powercap`` (or ``CO2CB_POWERCAP_ROOT``, or the
``root`` argument, for containers and tests). Each zone folder has ``name``
(``package-0``, ``dram``, ``core``, ...), ``energy_uj`` (a wrapping counter in
microjoules) and ``max_energy_range_uj`` (where it wraps). Package zones count
towards the CPU, DRAM zones towards RAM; ``core``/``uncore`` are parts of a
package and ``psys`` spans the platform, so neither is read (they would count
twice). This is the only module that reads powercap files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from co2cb.meters.base import Component, Meter, MeterError, MeterInfo, Provenance, ReadingKind
from co2cb.meters.process import CpuShare

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
POWERCAP_ROOT_ENV = "CO2CB_POWERCAP_ROOT"

PERMISSION_HINT = (
    "RAPL energy files are readable by root only since Linux 5.10. To measure the CPU instead of "
    "estimating it, grant read access, e.g. `sudo chmod a+r {root}/*rapl*/energy_uj {root}/*rapl*/*/energy_uj` "
    "(until reboot) or a udev rule / systemd-tmpfiles entry that does the same, or run as root."
)


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone that co2cb reads.

    Attributes:
        path: The zone's folder.
        name: Its ``name`` file, with the package index for DRAM zones (``package-0``, ``dram-0``).
        component: CPU for package zones, RAM for DRAM zones.
        max_range_uj: Value at which ``energy_uj`` wraps to zero, in microjoules.
    """

    path: Path
    name: str
    component: Component
    max_range_uj: int


def powercap_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The powercap folder to read: the argument, else ``CO2CB_POWERCAP_ROOT``, else the system's."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get(POWERCAP_ROOT_ENV) or DEFAULT_POWERCAP_ROOT)


def _read_int(path: Path) -> int:
    with open(path, "rb") as f:
        return int(f.read().strip())


def _read_text(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace").strip()


def find_zones(root: Path) -> list[RaplZone]:
    """Package and DRAM zones under ``root``, without duplicates.

    Raises:
        PermissionError: A zone's ``energy_uj`` exists but cannot be read.
        FileNotFoundError: ``root`` holds no RAPL zone.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist")
    zones: list[RaplZone] = []
    seen: set[str] = set()
    # Sort so that plain intel-rapl/amd-rapl zones come before their *-mmio twins.
    for path in sorted(root.glob("*-rapl*:*"), key=lambda p: ("mmio" in p.name, p.name)):
        energy = path / "energy_uj"
        if not energy.is_file():
            continue
        raw = _read_text(path / "name")
        if raw.startswith("package"):
            name, component = raw, Component.CPU
        elif raw == "dram":
            package = path.name.split(":")[1] if path.name.count(":") >= 2 else "0"
            name, component = f"dram-{package}", Component.RAM
        else:
            continue
        if name in seen:
            continue
        _read_int(energy)  # PermissionError here means root-only counters
        max_range = _read_int(path / "max_energy_range_uj")
        seen.add(name)
        zones.append(RaplZone(path, name, component, max_range))
    if not zones:
        raise FileNotFoundError(f"no RAPL package zone under {root}")
    return zones


class RaplMeter(Meter):
    """Energy of one RAPL zone, optionally attributed to a process tree.

    In process scope each interval's energy is multiplied by the tree's share of
    the machine's busy CPU time over that interval (see :mod:`co2cb.meters.process`).
    """

    reading = ReadingKind.COUNTER

    def __init__(self, zone: RaplZone, share: CpuShare | None) -> None:
        self._zone = zone
        self._share = share
        self._energy_path = zone.path / "energy_uj"
        self._prev_uj = self._read_uj()
        self._joules = 0.0
        self._info = MeterInfo(
            name=f"rapl:{zone.name}",
            component=zone.component,
            provenance=Provenance.MEASURED_COUNTER,
            host_level=share is None,
            details={
                "zone": str(zone.path),
                "max_energy_range_uj": zone.max_range_uj,
                "attribution": "share of machine busy CPU time" if share else "whole machine",
            },
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def _read_uj(self) -> int:
        try:
            return _read_int(self._energy_path)
        except (OSError, ValueError) as e:
            raise MeterError(f"cannot read {self._energy_path}: {e}") from e

    def read(self) -> float:
        """Cumulative joules since the meter was made (attributed in process scope)."""
        cur = self._read_uj()
        delta = cur - self._prev_uj
        if delta < 0:  # the counter wrapped at max_energy_range_uj
            delta += self._zone.max_range_uj
        self._prev_uj = cur
        factor = self._share.next_share() if self._share is not None else 1.0
        self._joules += delta * 1e-6 * factor
        return self._joules
