"""Process scope: this process and its children (DataLoader workers, `co2cb run` commands) count."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

from co2cb import Tracker
from co2cb.meters.process import CpuShare, CpuSnapshot, ProcessTree
from tests.fakes.powercap import FakePowercap

BURN_SIMPLE = """
import sys, time
end = time.process_time() + float(sys.argv[1])
while time.process_time() < end:
    pass
"""


def _burn_children(seconds: float, grandchild: bool) -> None:
    if grandchild:
        code = f"""
import subprocess, sys
g = subprocess.Popen([sys.executable, "-c", {BURN_SIMPLE!r}, "{seconds}"])
exec({BURN_SIMPLE!r}.replace("float(sys.argv[1])", "{seconds}"))
g.wait()
"""
        subprocess.run([sys.executable, "-c", code], check=True)
    else:
        subprocess.run([sys.executable, "-c", BURN_SIMPLE, str(seconds)], check=True)


@pytest.mark.parametrize("grandchild", [False, True])
def test_children_and_grandchildren_count_in_the_cpu_estimate(grandchild: bool) -> None:
    tdp = 120.0
    ncpu = psutil.cpu_count()
    tracker = Tracker(save=False, components=("cpu",), cpu_tdp_w=tdp, intensity=100, interval_s=0.2)
    tree = ProcessTree()
    with tracker:
        before = tree.cpu().tree_s
        with tracker.window("work") as w:
            _burn_children(0.8, grandchild)
        used = tree.cpu().tree_s - before
    burned = 0.8 * (2 if grandchild else 1)
    assert used >= burned * 0.95, "the tree's CPU time must include the (grand)children"
    assert w.result is not None
    # TDP x utilisation = TDP x CPU-seconds / logical CPUs; the parent only waited.
    assert w.result.joules["cpu"] == pytest.approx(tdp * used / ncpu, rel=0.1)
    assert w.result.joules["cpu"] >= tdp * burned / ncpu * 0.9


def test_machine_scope_counts_whole_machine_utilisation() -> None:
    tracker = Tracker(save=False, scope="machine", components=("cpu",), cpu_tdp_w=120, intensity=100)
    assert tracker.meter_set.meters[0].info.host_level
    before = psutil.cpu_times()
    with tracker, tracker.window("w") as w:
        _burn_children(0.5, grandchild=False)
    after = psutil.cpu_times()
    busy = sum(getattr(after, f) - getattr(before, f) for f in ("user", "nice", "system", "irq", "softirq"))
    assert w.result is not None
    assert w.result.joules["cpu"] == pytest.approx(120 * busy / psutil.cpu_count(), rel=0.15)


def test_rapl_in_process_scope_is_shared_by_cpu_time(powercap: FakePowercap) -> None:
    tracker = Tracker(save=False, components=("cpu",), powercap_root=powercap.root, intensity=100, interval_s=60)
    meter = tracker.meter_set.meters[0]
    assert meter.info.name == "rapl:package-0" and not meter.info.host_level
    assert meter.info.details["attribution"] == "share of machine busy CPU time"
    tree = ProcessTree()
    with tracker:
        for work in (lambda: _burn_children(0.6, grandchild=False), lambda: time.sleep(0.6)):
            before = tree.cpu()
            with tracker.window("w") as w:
                work()
                powercap.add_j("package-0", 100.0)
            after = tree.cpu()
            assert w.result is not None
            busy = after.machine_busy_s - before.machine_busy_s
            assert 0.0 <= w.result.joules["cpu"] <= 100.0 + 1e-6
            if busy > 0.3:  # CPU times tick every 10 ms: only a busy window gives a steady share
                share = min(1.0, (after.tree_s - before.tree_s) / busy)
                # 100 J of package energy, attributed by our share of the machine's busy CPU time
                assert w.result.joules["cpu"] == pytest.approx(100.0 * share, abs=8.0)


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq"))


def test_cpu_share_is_a_fraction() -> None:
    before = _machine_busy_s()
    share = CpuShare(ProcessTree())
    _burn_children(0.3, grandchild=False)  # 0.3 s of CPU time, however long it takes on a busy machine
    value = share.next_share()
    busy = _machine_busy_s() - before  # spans the share's interval, and a little more
    assert 0.0 <= value <= 1.0
    # Our children's 0.3 CPU-seconds are part of the machine's busy time, whatever else ran meanwhile
    # (CPU times tick every 10 ms: 10 % of slack).
    assert value >= 0.9 * min(1.0, 0.3 / busy)


class ScriptedTree:
    """A process tree whose CPU times follow a script: (tree seconds, machine busy seconds) per call."""

    def __init__(self, *times: tuple[float, float]) -> None:
        self._times = list(times)

    def cpu(self, walk: bool = True) -> CpuSnapshot:
        tree_s, machine_s = self._times.pop(0)
        return CpuSnapshot(tree_s, machine_s)


def test_cpu_share_is_the_trees_part_of_the_machines_busy_time() -> None:
    tree = ScriptedTree((1.0, 10.0), (1.6, 11.0), (4.6, 12.0), (4.6, 12.0), (4.7, 12.0), (4.7, 13.0))
    share = CpuShare(tree)  # type: ignore[arg-type]
    assert share.next_share() == pytest.approx(0.6)  # 0.6 of the machine's 1.0 busy second
    assert share.next_share() == 1.0  # more than the machine's (ticks of different clocks): capped
    assert share.next_share() == 0.0  # nothing ran
    assert share.next_share() == 1.0  # the tree ran between two equal machine readings
    assert share.next_share() == 0.0  # the machine ran, the tree did not


def _psutil_busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq


@pytest.mark.parametrize("proc_readable", [True, False])
def test_fast_reads_of_this_process_and_the_machine_match_psutil(
    monkeypatch: pytest.MonkeyPatch, proc_readable: bool
) -> None:
    """os.times() and pread on kept /proc descriptors give psutil's figures; psutil takes over where /proc fails."""
    from co2cb.meters import process

    if not proc_readable:
        monkeypatch.setattr(process, "_pread", lambda path, size=512: None)
    me = psutil.Process()
    for _ in range(3):
        before = _psutil_busy_s()
        busy = process._machine_busy_seconds()
        assert before - 0.02 <= busy <= _psutil_busy_s() + 0.02  # clock ticks: 10 ms each
        t = me.cpu_times()
        own = process._own_and_reaped_seconds(me)
        assert own == pytest.approx(t.user + t.system + t.children_user + t.children_system, abs=0.02)
        rss = process._rss_bytes(me)
        assert abs(rss - me.memory_info().rss) <= 1 << 20  # pages may come and go between the two reads
    if proc_readable:  # the fast way was taken
        assert {"/proc/stat", f"/proc/{me.pid}/statm"} <= set(process._kept_fds)
    sleeper = "import time; print('ready', flush=True); time.sleep(5)"
    child = subprocess.Popen([sys.executable, "-c", sleeper], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"  # its memory is set up by now
        other = psutil.Process(child.pid)
        assert process._rss_bytes(other) == pytest.approx(other.memory_info().rss, rel=0.05)
    finally:
        child.kill()
        child.wait()


def test_the_tdp_estimate_in_process_scope_reads_no_machine_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """TDP x the tracked processes' CPU seconds needs only their times: no ``/proc/stat`` at a reading."""
    from co2cb.meters import process
    from co2cb.meters.estimates import TdpCpuMeter

    machine_reads: list[float] = []

    def counted() -> float:
        machine_reads.append(time.perf_counter())
        return 0.0

    monkeypatch.setattr(process, "_machine_busy_seconds", counted)
    meter = TdpCpuMeter(64.0, ProcessTree(cache_s=0.0), {})
    before = os.times()
    spin = time.process_time() + 0.05
    while time.process_time() < spin:
        pass
    at_boundary = meter.read_at_boundary()
    joules = meter.read()
    after = os.times()
    assert machine_reads == []
    used_s = (after.user + after.system) - (before.user + before.system)  # clock ticks: 10 ms each
    assert 0 < at_boundary <= joules <= 64.0 * (used_s + 0.02) / process.logical_cpu_count()
    TdpCpuMeter(64.0, None, {}).read()  # machine scope: the machine's busy time
    assert machine_reads


class ScriptedTimes:
    """The clock, the tracked processes' CPU seconds and the machine's busy seconds, as a test sets them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from co2cb.meters import estimates, process

        self.now = self.tree_s = self.machine_s = 0.0
        self.machine_reads = 0
        monkeypatch.setattr(estimates, "logical_cpu_count", lambda: 4)
        clock = SimpleNamespace(monotonic=lambda: self.now)
        monkeypatch.setattr(estimates, "time", clock)  # the meter's and its process tree's clock only
        monkeypatch.setattr(process, "time", clock)
        monkeypatch.setattr(process, "_own_and_reaped_seconds", lambda proc: self.tree_s)
        monkeypatch.setattr(process, "_machine_busy_seconds", self._machine)

    def _machine(self) -> float:
        self.machine_reads += 1
        return self.machine_s

    def step(self, seconds: float, tree_s: float, machine_s: float) -> None:
        self.now += seconds
        self.tree_s += tree_s
        self.machine_s += machine_s


def test_the_per_vcpu_estimate_counts_the_trees_cpu_seconds_and_its_share_of_the_idle_power(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """4 vCPUs at 1 W idle and 3 W at full load: ``4 x 1 W x s x idle share + 2 W x busy CPU-seconds``."""
    from co2cb.meters.estimates import VcpuCpuMeter

    times = ScriptedTimes(monkeypatch)
    meter = VcpuCpuMeter(1.0, 3.0, ProcessTree(), {})
    times.step(1.0, tree_s=0.5, machine_s=1.0)  # the tree: half of the machine's busy time
    assert meter.read() == pytest.approx(4 * 1.0 * 0.5 + 2 * 0.5)
    reads = times.machine_reads
    times.step(0.5, tree_s=0.3, machine_s=0.5)
    at_boundary = meter.read_at_boundary()  # a close: the tree's times only, the last interval's share
    assert times.machine_reads == reads
    assert at_boundary == pytest.approx(3.0 + 4 * 0.5 * 0.5 + 2 * 0.3)
    times.step(0.5, tree_s=0.2, machine_s=0.75)  # since the last sampler reading: 0.5 of 1.25 busy seconds
    assert meter.read() == pytest.approx(4.6 + 4 * 0.5 * 0.4 + 2 * 0.2)
    times.step(1.0, tree_s=9.0, machine_s=9.0)  # more than 4 vCPUs can run in a second (ticks): at most 4 s
    assert meter.read() == pytest.approx(5.8 + 4 * 1.0 * 1.0 + 2 * 4.0)


def test_the_per_vcpu_estimate_in_machine_scope_counts_the_whole_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from co2cb.meters.estimates import VcpuCpuMeter

    times = ScriptedTimes(monkeypatch)
    meter = VcpuCpuMeter(1.0, 3.0, None, {})
    times.step(1.0, tree_s=0.1, machine_s=2.0)
    assert meter.read() == pytest.approx(4 * 1.0 + 2 * 2.0)
    times.step(0.5, tree_s=0.1, machine_s=1.0)
    assert meter.read_at_boundary() == pytest.approx(8.0 + 4 * 0.5 + 2 * 1.0)
