"""Which meters a window boundary reads (``sync_boundaries``): an opening one reads no estimate, a closing one all."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from co2cb import Tracker
from co2cb.core import sampler as sampler_module
from co2cb.core.sampler import Sampler
from co2cb.meters.base import Meter
from co2cb.meters.estimates import RamEstimateMeter, TdpCpuMeter
from co2cb.meters.process import ProcessTree
from tests.fakes.meters import ConstantPower

S = 1_000_000_000


class CountedTdp(TdpCpuMeter):
    """The CPU estimate, counting its reads."""

    reads = 0

    def read(self) -> float:
        self.reads += 1
        return super().read()


class CountedRam(RamEstimateMeter):
    """The RAM estimate, counting its reads."""

    reads = 0

    def read(self) -> float:
        self.reads += 1
        return super().read()


class CountedPower(ConstantPower):
    """A meter that measures (read at boundaries), counting its reads."""

    reads = 0

    def read(self) -> float:
        self.reads += 1
        return super().read()


def _estimates() -> list[Meter]:
    tree = ProcessTree()
    return [CountedTdp(50.0, tree, {}), CountedRam(0.375, tree, "test")]


def _sampler(meters: list[Meter], span_s: float) -> Sampler:
    """A sampler (its thread not started: a boundary read runs here) whose curve spans ``span_s``."""
    sampler = Sampler(meters, interval_s=0.05)
    now = time.perf_counter_ns()
    sampler.timeline.append(now - int(span_s * S) - S // 100, [0.0] * len(meters))
    sampler.timeline.append(now - S // 100, [1.0] * len(meters))
    return sampler


def _reads(meters: list[Meter]) -> list[int]:
    return [m.reads for m in meters]  # type: ignore[attr-defined]


@pytest.mark.parametrize("span_s", [0.2, 1.5], ids=["early", "steady"])
def test_an_opening_boundary_reads_no_estimate_and_a_closing_one_reads_them(span_s: float) -> None:
    meters = _estimates()
    assert not any(m.boundary_reads for m in meters)
    sampler = _sampler(meters, span_s=span_s)
    before = time.perf_counter_ns()
    t = sampler.read_now(closing=False)  # the window's start is settled from the next point
    assert _reads(meters) == [0, 0]
    assert t >= before and t > (sampler.timeline.last_time or 0)  # the call's own time
    t = sampler.read_now()
    assert _reads(meters) == [1, 1] and t == sampler.timeline.last_time  # a point of its own


def test_a_close_of_estimates_just_after_a_reading_taken_since_the_window_opened_is_that_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler_module, "ESTIMATES_FRESH_S", 1.0)  # "just after" on a machine that may stall
    meters = _estimates()
    sampler = _sampler(meters, span_s=1.5)
    opened = time.perf_counter_ns()
    sampler.timeline.append(time.perf_counter_ns(), [2.0, 2.0])  # a reading (say, a validation's close) just now
    last = sampler.timeline.last_time
    assert sampler.read_now(after=opened) == last and _reads(meters) == [0, 0]  # the epoch's close shares it
    assert sampler.read_now(after=last) > last and _reads(meters) == [1, 1]  # opened after it: a reading of its own


def test_windows_of_estimates_that_meet_never_overlap() -> None:
    """The power drops after the last reading: the closing reading sees it, the next window starts on it."""
    ram = CountedRam(100.0, None, "test")
    tracker = Tracker(meters=[ram], save=False, intensity=100, interval_s=1.0)
    with tracker:
        time.sleep(1.2)  # past the first background reading: the curve spans a second
        before_a = tracker.mark()
        tracker.begin("a")
        time.sleep(0.05)
        ram._w_per_gb = 1.0  # a hundredth of the power from now on, unseen until the next reading
        time.sleep(0.05)
        first = tracker.end("a")
        tracker.begin("b")
        time.sleep(0.05)
        second = tracker.end("b")
        after_b = tracker.mark()
    assert first is not None and second is not None
    on_the_curve = tracker.between(before_a, after_b).joules["ram"]  # the curve as the readings drew it
    assert first.joules["ram"] + second.joules["ram"] <= on_the_curve * (1 + 1e-9)


def test_an_early_window_of_estimates_opened_without_a_reading_starts_at_its_own_time() -> None:
    tracker = Tracker(meters=[CountedRam(100.0, None, "test")], save=False, intensity=100, interval_s=60)
    with tracker:
        time.sleep(0.3)
        tracker.begin("w")
        time.sleep(0.05)
        result = tracker.end("w")
    assert result is not None and 0.05 <= result.seconds < 0.3
    # 100 W per GB of the machine's memory in use, between the run's first reading and the end's: the window
    # gets its share of that stretch by time, not the energy since the run began
    watts = result.joules["ram"] / result.seconds
    run = tracker.result
    assert run is not None and watts == pytest.approx(run.joules["ram"] / run.seconds, rel=0.2)


@pytest.mark.parametrize("lose_it", [False, True])
def test_a_measuring_meter_makes_an_opening_read_every_meter_until_it_is_lost(lose_it: bool) -> None:
    meters = [*_estimates(), CountedPower()]
    sampler = _sampler(meters, span_s=1.5)
    if lose_it:
        sampler._lose(2, time.perf_counter_ns(), RuntimeError("gone"))
    sampler.read_now(closing=False)
    assert _reads(meters) == ([0, 0, 0] if lose_it else [1, 1, 1])


def test_a_close_of_co2cbs_estimates_reads_cpu_times_on_its_own_thread_and_no_memory_or_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No thread to wait for at a close: this process's CPU times are read where the window closes; the tree's
    list and its memory are read by the sampler's thread only."""
    from co2cb.meters import process

    seen: dict[str, set[str]] = {"rss": set(), "walk": set(), "cpu": set()}

    def on(kind: str, fn: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            seen[kind].add(threading.current_thread().name)
            return fn(*args, **kwargs)

        return recorded

    monkeypatch.setattr(process.ProcessTree, "rss_bytes", on("rss", process.ProcessTree.rss_bytes))
    monkeypatch.setattr(process, "_descendants", on("walk", process._descendants))
    monkeypatch.setattr(TdpCpuMeter, "read_at_boundary", on("cpu", TdpCpuMeter.read_at_boundary))
    meters = _estimates()
    assert all(m.caller_reads for m in meters)
    tracker = Tracker(meters=meters, save=False, intensity=100, interval_s=0.05)
    with tracker:
        for kind in seen.values():
            kind.clear()  # from here on, training: the first reading was taken at start
        time.sleep(1.2)  # the tree's list is a second old: the sampler lists it again
        results = []
        for _ in range(20):
            tracker.begin("epoch")
            time.sleep(0.01)
            results.append(tracker.end("epoch"))
        during = {kind: set(threads) for kind, threads in seen.items()}  # (stop reads on this thread)
    assert during["cpu"] == {threading.current_thread().name}  # each close read the CPU times here
    assert threading.current_thread().name not in during["rss"] | during["walk"]
    assert during["rss"] == during["walk"] == {"co2cb-sampler"}
    assert all(r is not None and r.joules["cpu"] >= 0 and r.joules["ram"] > 0 for r in results)


def test_a_close_with_a_meter_that_measures_is_read_on_the_samplers_thread() -> None:
    class Where(CountedPower):
        def __init__(self) -> None:
            super().__init__()
            self.threads: set[str] = set()

        def read(self) -> float:
            self.threads.add(threading.current_thread().name)
            return super().read()

    gpu = Where()
    tracker = Tracker(meters=[*_estimates(), gpu], save=False, intensity=100, interval_s=0.05)
    with tracker:
        gpu.threads.clear()
        for _ in range(5):
            with tracker.window("epoch"):
                time.sleep(0.01)
        read_by = set(gpu.threads)
    assert read_by == {"co2cb-sampler"}


def test_a_boundary_a_reading_begun_since_its_call_serves_wakes_no_extra_read(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = CountedPower()
    sampler = Sampler([gpu], interval_s=60)  # its thread reads only when a boundary wakes it
    sampler.start()
    try:
        frozen = time.perf_counter_ns()
        monkeypatch.setattr(time, "perf_counter_ns", lambda: frozen)
        sampler._read()  # a reading that began at the boundary's own moment (another thread's, in a real run)
        reads = gpu.reads
        assert sampler.read_now(closing=False) == frozen
        assert sampler.read_now(closing=True) == frozen
        time.sleep(0.2)  # a woken thread would have read by now
        assert gpu.reads == reads
        monkeypatch.undo()
        t = sampler.read_now()  # a boundary past the last reading: the thread reads for it
        assert t > frozen and gpu.reads == reads + 1
    finally:
        sampler.stop()
