"""Estimates for what no counter measures: the CPU without RAPL, and RAM.

Every estimate is a :class:`~co2cb.meters.base.Meter` with provenance
``estimate``, and names its model and constants in ``info.details``.

* CPU, known model (TDP table): ``P = TDP x utilisation``. Over an interval this is
  ``TDP x busy CPU-seconds / logical CPUs``, with busy time taken for the tracked
  processes (process scope) or the whole machine (machine scope).
* CPU, virtual machine or unknown model (per-vCPU model of Cloud Carbon
  Footprint, from SPECpower_ssj2008): per vCPU ``P = min_w + u x (max_w - min_w)``;
  for the machine ``N x min_w x seconds + (max_w - min_w) x busy CPU-seconds``. In process scope the busy
  CPU-seconds are the processes' own, and the idle part is theirs by their share of the machine's busy time.
* RAM: ``P = watts_per_gb x GB in use`` (resident memory of the tracked processes,
  or memory in use on the machine), 0.375 W/GB by default.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from co2cb.meters.base import Component, Meter, MeterInfo, Provenance, ReadingKind
from co2cb.meters.process import CpuShare, ProcessTree, logical_cpu_count, machine_used_memory_bytes

#: Default RAM power in watts per GB: 3 W per 8 GB of DDR3/DDR4, from Micron/Crucial's "How much power does
#: memory use?", the figure Eco2AI uses (Budennyy et al. 2022) and CodeCarbon used before its version 3 (which
#: counts 5 W per DIMM of an estimated DIMM count on x86, 1.5 W on ARM).
RAM_WATTS_PER_GB = 0.375
RAM_WATTS_PER_GB_SOURCE = (
    "3 W per 8 GB (Crucial/Micron), as used by Eco2AI (Budennyy et al. 2022) and by CodeCarbon before its version 3"
)

GB = 1e9


def _busy_seconds(tree: ProcessTree, per_process: bool, walk: bool) -> float:
    """Busy CPU seconds so far: the tracked processes' own (no ``/proc/stat`` read), or the machine's.

    Args:
        tree: The tracked processes.
        per_process: Process scope (the tree's own times); False: machine scope.
        walk: Whether the tree may be listed again (:meth:`ProcessTree.cpu`).
    """
    return tree.tree_seconds(walk) if per_process else tree.cpu(walk).machine_busy_s


class TdpCpuMeter(Meter):
    """CPU energy estimated as TDP x utilisation (cumulative joules)."""

    reading = ReadingKind.COUNTER
    boundary_reads = False  # a window's start is settled from the sampler's readings
    caller_reads = True  # a close reads CPU times on its own thread, with the tree the sampler last listed

    def __init__(self, tdp_w: float, tree: ProcessTree | None, details: Mapping[str, object]) -> None:
        """An estimate from the TDP.

        Args:
        tdp_w: Thermal design power of all sockets together, watts.
        tree: The tracked processes (process scope), or None for the whole machine.
        details: Where the TDP came from (model, table row, source, year).
        """
        self._tdp_w = tdp_w
        self._tree = tree or ProcessTree()
        self._per_process = tree is not None
        self._ncpu = logical_cpu_count()
        self._prev = _busy_seconds(self._tree, self._per_process, walk=True)
        self._joules = 0.0
        self._info = MeterInfo(
            name="cpu:tdp-estimate",
            component=Component.CPU,
            provenance=Provenance.ESTIMATE,
            host_level=not self._per_process,
            details={"model": "TDP x utilisation", "tdp_w": tdp_w, "logical_cpus": self._ncpu, **details},
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def read(self) -> float:
        """Energy so far, joules."""
        return self._read(walk=True)

    def read_at_boundary(self) -> float:
        """Energy so far, joules, without listing the process tree again (the sampler's thread does that)."""
        return self._read(walk=False)

    def _read(self, walk: bool) -> float:
        busy = _busy_seconds(self._tree, self._per_process, walk)
        self._joules += self._tdp_w * max(0.0, busy - self._prev) / self._ncpu
        self._prev = busy
        return self._joules


class VcpuCpuMeter(Meter):
    """CPU energy from a per-vCPU idle/full-load power model (cumulative joules)."""

    reading = ReadingKind.COUNTER
    boundary_reads = False  # a window's start is settled from the sampler's readings
    caller_reads = True  # a close reads CPU times on its own thread, with the tree the sampler last listed

    def __init__(self, min_w: float, max_w: float, tree: ProcessTree | None, details: Mapping[str, object]) -> None:
        """An estimate from per-vCPU idle and full-load watts.

        Args:
        min_w: Idle watts per vCPU.
        max_w: Full-load watts per vCPU.
        tree: The tracked processes (process scope), or None for the whole machine.
        details: The model's architecture, source and year.
        """
        self._min_w, self._max_w = min_w, max_w
        self._tree = tree or ProcessTree()
        self._share = CpuShare(tree) if tree is not None else None
        self._idle_share = 1.0  # the share of the idle power counted: the tree's at the last sampler reading, or all
        self._ncpu = logical_cpu_count()
        self._prev_t = time.monotonic()
        self._prev_busy = _busy_seconds(self._tree, self._share is not None, walk=True)
        self._joules = 0.0
        self._info = MeterInfo(
            name="cpu:vcpu-estimate",
            component=Component.CPU,
            provenance=Provenance.ESTIMATE,
            host_level=tree is None,
            details={
                "model": "per vCPU: min_w + utilisation x (max_w - min_w)",
                "min_w_per_vcpu": min_w,
                "max_w_per_vcpu": max_w,
                "vcpus": self._ncpu,
                **details,
            },
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def read(self) -> float:
        """Energy so far, joules (in process scope the idle power's share is measured again)."""
        if self._share is not None:
            self._idle_share = self._share.next_share()
        return self._read(walk=True)

    def read_at_boundary(self) -> float:
        """Energy so far, joules, without listing the process tree again (the sampler's thread does that).

        In process scope only the tracked processes' CPU times are read (no ``/proc/stat``): the idle power's
        share since the last reading is the last sampler interval's.
        """
        return self._read(walk=False)

    def _read(self, walk: bool) -> float:
        """Add the energy since the last reading: ``N x min_w x seconds x idle share + (max_w - min_w) x busy s``."""
        now = time.monotonic()
        busy = _busy_seconds(self._tree, self._share is not None, walk)
        seconds = max(0.0, now - self._prev_t)
        busy_s = min(max(0.0, busy - self._prev_busy), seconds * self._ncpu)
        self._joules += self._ncpu * self._min_w * seconds * self._idle_share + (self._max_w - self._min_w) * busy_s
        self._prev_t, self._prev_busy = now, busy
        return self._joules


class RamEstimateMeter(Meter):
    """RAM power estimated from memory in use (watts)."""

    reading = ReadingKind.POWER
    boundary_reads = False  # a window's start is settled from the sampler's readings
    caller_reads = True  # a close holds the last reading's watts: no memory read off the sampler's thread

    def __init__(self, watts_per_gb: float, tree: ProcessTree | None, source: str) -> None:
        """An estimate from the memory in use.

        Args:
        watts_per_gb: Power per GB of memory in use, watts.
        tree: The tracked processes (their resident memory), or None for the machine's used memory.
        source: Where ``watts_per_gb`` comes from.
        """
        self._w_per_gb = watts_per_gb
        self._tree = tree
        self._last_w: float | None = None  # the last reading, watts
        self._info = MeterInfo(
            name="ram:estimate",
            component=Component.RAM,
            provenance=Provenance.ESTIMATE,
            host_level=tree is None,
            details={
                "model": "watts_per_gb x GB in use",
                "watts_per_gb": watts_per_gb,
                "source": source,
                "memory": "resident memory of the tracked processes" if tree else "memory in use on the machine",
            },
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def read(self) -> float:
        """Power now, watts."""
        used = self._tree.rss_bytes() if self._tree is not None else machine_used_memory_bytes()
        self._last_w = self._w_per_gb * used / GB
        return self._last_w

    def read_at_boundary(self) -> float:
        """The last reading's watts (memory in use moves slowly; the sampler reads it every interval)."""
        return self.read() if self._last_w is None else self._last_w
