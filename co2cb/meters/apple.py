"""Apple silicon (M-series) CPU, GPU, Neural Engine and DRAM energy through ``zeus-apple-silicon``.

Why this library: ``zeus-apple-silicon`` (the Zeus project, ML.ENERGY) reads the
cumulative energy counters of Apple's IOReport "Energy Model" group without root,
returns them per subsystem in millijoules (so a window is an exact difference of
two counter values, as with NVML and RAPL), is on PyPI with wheels for macOS, and
keeps up with new chips (1.1.0 knows the M5 channel names). The alternatives:
``powermetrics`` needs root and prints power averaged over its own sampling
interval; ``macmon-lib`` is not on PyPI.

Channels, and the component each is counted towards (each once):

* ``CPU Energy`` -> ``apple:cpu``, component ``cpu`` (all CPU clusters; the per-core and
  per-cluster channels are parts of it and are not read);
* ``GPU Energy`` -> ``apple:gpu``, component ``gpu``;
* ``ANE`` (Neural Engine) -> ``apple:ane``, component ``gpu``: co2cb's ``gpu`` component
  holds the accelerators;
* ``DRAM`` -> ``apple:dram``, component ``ram``.

``GPU SRAM`` is not added: Apple does not document whether ``GPU Energy`` includes it,
and adding it could count it twice. The IOReport figures are Apple's on-chip model
of energy (from activity, frequency and voltage), not a power sensor. The CPU and
DRAM counters cover the machine; in process scope they are attributed by CPU-time
share like RAPL. The GPU and ANE are counted whole. This is the only module that
calls zeus-apple-silicon.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from co2cb.meters.base import Component, Meter, MeterError, MeterInfo, Provenance, ReadingKind
from co2cb.meters.process import CpuShare, ProcessTree

BASIS = (
    "Apple IOReport 'Energy Model' counters via zeus-apple-silicon: the chip's own model of energy "
    "from activity, frequency and voltage, not a power sensor"
)


@dataclass(frozen=True)
class Channel:
    """One IOReport energy channel co2cb reads.

    Attributes:
        field: Attribute of ``AppleEnergyMetrics`` (millijoules).
        name: Meter channel name.
        component: The component its energy counts towards.
        what: What it covers, in words.
    """

    field: str
    name: str
    component: Component
    what: str


CHANNELS = (
    Channel("cpu_total_mj", "apple:cpu", Component.CPU, "all CPU clusters (IOReport 'CPU Energy')"),
    Channel("gpu_mj", "apple:gpu", Component.GPU, "the GPU (IOReport 'GPU Energy', without 'GPU SRAM')"),
    Channel("ane_mj", "apple:ane", Component.GPU, "the Neural Engine (IOReport 'ANE'), counted with the accelerators"),
    Channel("dram_mj", "apple:dram", Component.RAM, "the DRAM (IOReport 'DRAM')"),
)


class _Reader:
    """One ``AppleEnergyMonitor`` shared by the channel meters.

    A sample serves each channel once: the first channel to read takes a new sample
    and the others read the same one, so one reading of all meters costs one IOReport
    sample and its channels come from the same instant.
    """

    def __init__(self, monitor: Any) -> None:
        self._monitor = monitor
        self._lock = threading.Lock()
        self._sample: Any = None
        self._served: set[str] = set()

    def sample(self, channel: str) -> Any:
        """The current sample for ``channel``, or a new one if it has read the current one already."""
        with self._lock:
            if self._sample is None or channel in self._served:
                self._sample = None
                self._sample = self._monitor.get_cumulative_energy()
                self._served = set()
            self._served.add(channel)
            return self._sample


class AppleSiliconMeter(Meter):
    """Energy of one IOReport channel, optionally attributed to a process tree (CPU and DRAM)."""

    reading = ReadingKind.COUNTER

    def __init__(self, reader: _Reader, channel: Channel, share: CpuShare | None, details: dict[str, Any]) -> None:
        """Open ``channel``; ``share`` attributes it by CPU-time share (None: counted whole)."""
        self._reader = reader
        self._channel = channel
        self._share = share
        self._prev = self._value()
        self._joules = 0.0
        attribution = "share of machine busy CPU time" if share else "whole machine"
        self._info = MeterInfo(
            name=channel.name,
            component=channel.component,
            provenance=Provenance.MEASURED_COUNTER,
            host_level=share is None,
            details={
                **details,
                "channel": channel.what,
                "attribution": attribution,
                "method": f"Apple silicon energy counter of {channel.what}, via zeus-apple-silicon"
                + (", attributed by CPU-time share" if share else ""),
            },
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def _value(self) -> int:
        try:
            value = getattr(self._reader.sample(self._channel.name), self._channel.field)
        except Exception as e:  # whatever the extension raises, the channel is unreadable
            raise MeterError(f"Apple IOReport energy counters could not be read: {type(e).__name__}: {e}") from e
        if not isinstance(value, int):
            raise MeterError(f"IOReport no longer reports {self._channel.what} (got {value!r})")
        return value

    def read(self) -> float:
        """Cumulative joules since the meter was made (attributed in process scope)."""
        cur = self._value()
        delta = cur - self._prev if cur >= self._prev else cur  # a decrease: the counter restarted from zero
        if cur < self._prev:
            self.note(
                f"the {self._channel.what} energy counter went back from {self._prev} to {cur} mJ: counted on from "
                "zero; the energy between the last reading and the restart is not counted"
            )
        self._prev = cur
        factor = self._share.next_share() if self._share is not None else 1.0
        self._joules += delta * 1e-3 * factor
        return self._joules


def chip_name() -> str | None:
    """The chip's name from ``sysctl -n machdep.cpu.brand_string`` (e.g. ``"Apple M2 Max"``), or None."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=2, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _version() -> str:
    try:
        return importlib.metadata.version("zeus-apple-silicon")
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def discover_apple(tree: ProcessTree | None) -> tuple[list[AppleSiliconMeter], str]:
    """Meters for the Apple silicon channels this Mac reports, and why these (or none).

    Never raises: no Apple silicon, no library or unreadable counters give an empty
    list and the reason.

    Args:
        tree: The tracked process tree in process scope (CPU and DRAM are attributed to it); None: machine scope.
    """
    system, machine = platform.system(), platform.machine()
    if (system, machine) != ("Darwin", "arm64"):
        return [], f"not a Mac with Apple silicon ({system} {machine})"
    try:
        module = importlib.import_module("zeus_apple_silicon")
    except ImportError:
        return [], (
            "zeus-apple-silicon is not installed (pip install zeus-apple-silicon: it reads the CPU, GPU, "
            "Neural Engine and DRAM energy counters without root)"
        )
    except Exception as e:  # noqa: BLE001 - a broken extension must not stop the run
        return [], f"zeus-apple-silicon could not load ({type(e).__name__}: {e})"
    try:
        reader = _Reader(module.AppleEnergyMonitor())
        first = reader.sample("discovery")
    except Exception as e:  # noqa: BLE001 - IOReport subscription refused, ...
        return [], f"Apple IOReport energy counters could not be read ({type(e).__name__}: {e})"
    library = f"zeus-apple-silicon {_version()}"
    details = {"chip": chip_name(), "library": library, "basis": BASIS}
    meters: list[AppleSiliconMeter] = []
    missing: list[str] = []
    for channel in CHANNELS:
        if not isinstance(getattr(first, channel.field, None), int):
            missing.append(channel.name)
            continue
        share = CpuShare(tree) if tree is not None and channel.component is not Component.GPU else None
        meters.append(AppleSiliconMeter(reader, channel, share, details))
    if not meters:
        return [], f"{library}: IOReport reports none of CPU, GPU, ANE or DRAM energy on this Mac"
    chip = details["chip"] or "Apple silicon"
    text = f"{chip}, {library}: " + ", ".join(m.info.name for m in meters)
    return meters, text + (f" (not reported: {', '.join(missing)})" if missing else "")
