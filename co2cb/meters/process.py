"""CPU time and memory of the tracked processes, and the machine's busy CPU time.

This is how process scope works: a machine-level reading (RAPL, the CPU estimate)
is attributed to the tracked processes by their share of the machine's busy CPU
time over the same interval::

    share = (CPU seconds of this process and its descendants)
            / (busy CPU seconds of the whole machine)

Busy time is user + nice + system + irq + softirq over all CPUs (not idle, iowait
or steal). Descendants include DataLoader workers and any child started by
``co2cb run``; a child that has exited and been waited for still counts through
its parent's ``children_user``/``children_system`` times.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU times at one moment.

    Attributes:
        tree_s: CPU seconds used so far by the tracked process tree.
        machine_busy_s: Busy CPU seconds of the whole machine, all CPUs summed.
    """

    tree_s: float
    machine_busy_s: float


def _machine_busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _own_and_reaped_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class ProcessTree:
    """A process and its descendants, read through psutil.

    Reads are cached for ``cache_s`` seconds so that several meters read in one
    sample share one walk of the process table. Thread-safe.
    """

    def __init__(self, pid: int | None = None, cache_s: float = 0.005) -> None:
        self._root = psutil.Process(pid if pid is not None else os.getpid())
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._last_at = -1.0
        self._last: CpuSnapshot | None = None
        self._tree_high = 0.0

    @property
    def pid(self) -> int:
        """Process id of the root of the tree."""
        return self._root.pid

    def _members(self) -> list[psutil.Process]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return [self._root]

    def cpu(self) -> CpuSnapshot:
        """Cumulative CPU seconds of the tree and of the machine (monotonic)."""
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at < self._cache_s:
                return self._last
            total = 0.0
            for proc in self._members():
                try:
                    total += _own_and_reaped_seconds(proc)
                except psutil.Error:
                    continue  # exited between listing and reading; its parent will count it once reaped
            # An exited child that is not yet reaped vanishes for a moment: never go backwards.
            self._tree_high = max(self._tree_high, total)
            self._last = CpuSnapshot(self._tree_high, _machine_busy_seconds())
            self._last_at = now
            return self._last

    def rss_bytes(self) -> int:
        """Resident memory of the tree in bytes (shared pages count once per process)."""
        total = 0
        for proc in self._members():
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total


def machine_used_memory_bytes() -> int:
    """Memory in use on the whole machine in bytes (total minus available)."""
    vm = psutil.virtual_memory()
    return int(vm.total - vm.available)


def logical_cpu_count() -> int:
    """Logical CPUs of the machine (at least 1)."""
    return psutil.cpu_count(logical=True) or 1


class CpuShare:
    """The tracked processes' share of machine CPU time between successive calls.

    Each consumer (one per machine-level meter) owns one ``CpuShare`` so that
    intervals are its own.
    """

    def __init__(self, tree: ProcessTree) -> None:
        self._tree = tree
        self._prev = tree.cpu()

    def next_share(self) -> float:
        """Share in [0, 1] of the machine's busy CPU time used by the tree since the last call."""
        cur = self._tree.cpu()
        d_tree = cur.tree_s - self._prev.tree_s
        d_machine = cur.machine_busy_s - self._prev.machine_busy_s
        self._prev = cur
        if d_machine <= 0:
            return 0.0 if d_tree <= 0 else 1.0
        return min(1.0, max(0.0, d_tree / d_machine))
