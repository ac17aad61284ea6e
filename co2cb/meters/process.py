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

A reading of this process and of the machine, the usual case, takes about 12 us instead of about 55 us
through psutil: this process's CPU times come from ``os.times()`` (the fields psutil reads from
``/proc/<pid>/stat``), the machine's busy time and this process's resident memory from ``/proc/stat``
and ``/proc/<pid>/statm`` read with ``pread`` on descriptors kept open (one file read, no open or close).
Other processes of the tree, and any file that cannot be read, go through psutil. What needs only the tree's CPU
time (the CPU estimates in process scope, but for the per-vCPU model's sampler readings) reads no ``/proc/stat``
(:meth:`ProcessTree.tree_seconds`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_BUSY_FIELDS = (1, 2, 3, 6, 7)  # /proc/stat's "cpu" line: user nice system idle iowait irq softirq ...
_kept_fds: dict[str, int] = {}  # path -> descriptor kept for pread (fork-safe: a pid's path, or machine-wide)
_kept_lock = threading.Lock()


def _pread(path: str, size: int = 512) -> bytes | None:
    """The start of a ``/proc`` file through a descriptor kept open; None where it cannot be read."""
    fd = _kept_fds.get(path)
    if fd is None:
        with _kept_lock:
            fd = _kept_fds.get(path)
            if fd is None:
                try:
                    fd = _kept_fds[path] = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                except OSError:
                    return None
    try:
        return os.pread(fd, size, 0)
    except OSError:
        return None


_own: dict[int, psutil.Process] = {}  # this process's psutil handle, by pid (a forked child makes its own)
_pid = os.getpid()  # this process's id, kept: os.getpid() is a system call (about 6 us right after a training step)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)


def _own_process() -> psutil.Process:
    """This process's psutil handle, made once (making one reads ``/proc``: about 0.1 ms at each tracker)."""
    pid = _pid
    proc = _own.get(pid)
    if proc is None:
        proc = _own[pid] = psutil.Process(pid)
    return proc


def _machine_busy_seconds() -> float:
    line = _pread("/proc/stat")
    if line is not None and line.startswith(b"cpu "):
        fields = line.split(b"\n", 1)[0].split()
        return sum(int(fields[i]) for i in _BUSY_FIELDS) / _CLOCK_TICKS
    t = psutil.cpu_times()
    return sum(getattr(t, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _own_and_reaped_seconds(proc: psutil.Process) -> float:
    if proc.pid == _pid:
        t = os.times()  # the same four fields psutil reads from /proc/<pid>/stat
        return t.user + t.system + t.children_user + t.children_system
    c = proc.cpu_times()
    return c.user + c.system + c.children_user + c.children_system


def _rss_bytes(proc: psutil.Process) -> int:
    if proc.pid == _pid:
        statm = _pread(f"/proc/{proc.pid}/statm", 128)
        if statm:
            return int(statm.split()[1]) * _PAGE_BYTES  # the field psutil's memory_info().rss reads
    return int(proc.memory_info().rss)


class ProcessTree:
    """A process and its descendants, read through psutil.

    Reads are cached for ``cache_s`` seconds so that several meters read in one
    sample share one walk of the process table. Thread-safe.
    """

    def __init__(self, pids: Sequence[int] | None = None, cache_s: float = 0.005, members_s: float = 1.0) -> None:
        """A tree of processes rooted at ``pids``.

        Args:
        pids: Roots of the tree (default: this process); several for the ranks of a job on one host.
        cache_s: How long a CPU reading is reused, seconds.
        members_s: How long the list of descendants is reused, seconds (a new child counts in full
            once seen: CPU times are cumulative).
        """
        roots = list(dict.fromkeys(pids)) if pids else [_pid]
        self._roots = [_own_process() if p == _pid else psutil.Process(p) for p in roots]
        self._cache_s = cache_s
        self._members_s = members_s
        self._lock = threading.Lock()
        self._last_at = -1.0
        self._last: CpuSnapshot | None = None
        self._members_at = -math.inf
        self._members_cache: list[psutil.Process] = []
        self._tree_high = 0.0

    @property
    def pids(self) -> list[int]:
        """Process ids of the roots of the tree."""
        return [p.pid for p in self._roots]

    def _members(self, walk: bool = True) -> list[psutil.Process]:
        """The tree's processes: listed again once the list is ``members_s`` old, unless ``walk`` is False."""
        now = time.monotonic()
        if now - self._members_at < self._members_s or (not walk and self._members_cache):
            return self._members_cache
        known: dict[int, psutil.Process] = {p.pid: p for p in self._members_cache}
        members: dict[int, psutil.Process | None] = {}
        for root in self._roots:
            members[root.pid] = root
            for pid in _descendants(root.pid):
                if pid not in members:
                    members[pid] = known.get(pid) or _process(pid)
        self._members_cache = [p for p in members.values() if p is not None]
        self._members_at = now
        return self._members_cache

    def cpu(self, walk: bool = True) -> CpuSnapshot:
        """Cumulative CPU seconds of the tree and of the machine (monotonic).

        Args:
            walk: Whether the tree may be listed again (a walk of ``/proc``); False keeps the last list.
        """
        with self._lock:
            now = time.monotonic()
            fresh = self._fresh(now)
            if fresh is not None:
                return fresh
            self._last = CpuSnapshot(self._tree_seconds(walk), _machine_busy_seconds())
            self._last_at = now
            return self._last

    def tree_seconds(self, walk: bool = True) -> float:
        """Cumulative CPU seconds of the tree (monotonic), without the machine's busy time (no ``/proc/stat`` read).

        Args:
            walk: As for :meth:`cpu`.
        """
        with self._lock:
            fresh = self._fresh(time.monotonic())
            return fresh.tree_s if fresh is not None else self._tree_seconds(walk)

    def _fresh(self, now: float) -> CpuSnapshot | None:
        """The last reading while it is younger than ``cache_s`` at monotonic time ``now`` (call under the lock)."""
        return self._last if self._last is not None and now - self._last_at < self._cache_s else None

    def _tree_seconds(self, walk: bool) -> float:
        """The tree's CPU seconds read now (call under the lock)."""
        total = 0.0
        for proc in self._members(walk):
            try:
                total += _own_and_reaped_seconds(proc)
            except psutil.Error:
                continue  # exited between listing and reading; its parent will count it once reaped
        # An exited child that is not yet reaped vanishes for a moment: never go backwards.
        self._tree_high = max(self._tree_high, total)
        return self._tree_high

    def rss_bytes(self) -> int:
        """Resident memory of the tree in bytes (shared pages count once per process)."""
        total = 0
        with self._lock:
            members = self._members()
        for proc in members:
            try:
                total += _rss_bytes(proc)
            except psutil.Error:
                continue
        return total


_HAS_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, read from ``/proc/PID/task/TID/children`` (Linux 3.5+).

    That reads only the tree's own entries, where psutil's ``children(recursive=True)`` reads every
    process of the machine (milliseconds on a busy node). Falls back to psutil where the file is absent.
    """
    if not _HAS_CHILDREN_FILES:
        return _descendants_psutil(pid)
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        kids: list[int] = []
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as f:
                    kids.extend(int(x) for x in f.read().split())
            except OSError:  # the thread or process ended meanwhile
                continue
        found.extend(kids)
        todo.extend(kids)
    return found


def _descendants_psutil(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def running(pid: int) -> bool:
    """Whether process ``pid`` exists now."""
    return bool(psutil.pid_exists(pid))


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

    def next_share(self, walk: bool = True) -> float:
        """Share in [0, 1] of the machine's busy CPU time used by the tree since the last call (``walk``: ``cpu``'s)."""
        cur = self._tree.cpu(walk)
        d_tree = cur.tree_s - self._prev.tree_s
        d_machine = cur.machine_busy_s - self._prev.machine_busy_s
        self._prev = cur
        if d_machine <= 0:
            return 0.0 if d_tree <= 0 else 1.0
        return min(1.0, max(0.0, d_tree / d_machine))
