"""Step windows: stamps on the hot path, folded in bulk against the energy curve."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from co2cb import Tracker
from co2cb.core.steps import LogHistogram, StepSeries
from co2cb.core.timeline import Timeline
from co2cb.meters.base import ReadingKind
from tests.fakes.meters import ConstantPower

S = 1_000_000_000


def _linear_timeline(watts: float, until_s: int) -> Timeline:
    tl = Timeline([ReadingKind.COUNTER])
    for t in range(until_s + 1):
        tl.append(t * S, [watts * t])
    return tl


def test_pairs_fold_to_interpolated_energy() -> None:
    tl = _linear_timeline(10.0, 10)
    series = StepSeries("step", channels=1, keep=True)
    for a, b in [(1.0, 1.5), (2.0, 4.0), (9.5, 10.0)]:
        series.stamps.extend([int(a * S), -int(b * S)])
    series.fold(tl)
    stats = series.stats(["c"])
    assert stats.count == 3 and stats.pending == 0
    assert stats.seconds == pytest.approx(3.0)
    assert stats.joules["c"] == pytest.approx(30.0)
    assert [round(j, 9) for _, _, j in stats.steps] == [5.0, 20.0, 5.0]


def test_steps_past_the_curve_wait_and_open_steps_stay() -> None:
    tl = _linear_timeline(1.0, 5)
    series = StepSeries("step", channels=1)
    series.stamps.extend([1 * S, -2 * S, 4 * S, -6 * S, 7 * S])
    series.fold(tl)
    assert series.stats(["c"]).count == 1 and series.stats(["c"]).pending == 3
    tl.append(8 * S, [8.0])
    series.fold(tl)
    stats = series.stats(["c"])
    assert stats.count == 2 and stats.pending == 1  # the open step at 7 s stays
    assert stats.joules["c"] == pytest.approx(3.0)


def test_a_step_that_raised_is_dropped_not_paired_wrong() -> None:
    tl = _linear_timeline(1.0, 10)
    series = StepSeries("step", channels=1)
    # open at 1 (raised, never closed), open at 2 close at 3, stray close at 4, open 5 close 6
    series.stamps.extend([1 * S, 2 * S, -3 * S, -4 * S, 5 * S, -6 * S])
    series.fold(tl)
    stats = series.stats(["c"])
    assert stats.count == 2 and stats.seconds == pytest.approx(2.0)


def test_a_chain_makes_a_step_from_each_boundary_to_the_next() -> None:
    tl = _linear_timeline(1.0, 10)
    series = StepSeries("step", channels=1, keep=True)
    chain: list[int] = []
    series.chains.append(chain)
    # steps 1-2, 2-3 and 3-4 (closed), none from 4 to 5 (a close opens none), two closes in a row, 6-7, 7 open
    chain.extend([1 * S, 2 * S, 3 * S, -4 * S, -5 * S, 6 * S, 7 * S])
    series.fold(tl)
    stats = series.stats(["c"])
    assert [(a // S, b // S) for a, b, _ in stats.steps] == [(1, 2), (2, 3), (3, 4), (6, 7)]
    assert stats.joules["c"] == pytest.approx(4.0) and stats.pending == 1  # the step open at 7 s stays
    chain.extend([9 * S, -12 * S])
    series.fold(tl)  # 7-9 ends by the curve's last point (10 s); 9-12 does not yet
    assert series.stats(["c"]).count == 5 and chain == [9 * S, -12 * S]
    tl.append(12 * S, [12.0])
    series.fold(tl)
    stats = series.stats(["c"])
    assert stats.count == 6 and stats.pending == 0  # the close that ended the last step is dropped with it
    assert stats.seconds == pytest.approx(9.0)


def test_a_chain_folds_in_chunks() -> None:
    tl = _linear_timeline(1.0, 10)
    series = StepSeries("step", channels=1)
    chain = [S + i * 1000 for i in range(101)]  # 100 steps of 1 us, the last one still open
    series.chains.append(chain)
    assert series.fold(tl, max_steps=40) == 40 and series.fold(tl, max_steps=40) == 40
    series.fold(tl, max_steps=40)
    stats = series.stats(["c"])
    assert stats.count == 100 and stats.pending == 1
    assert stats.seconds == pytest.approx(100e-6)


def test_histogram_percentiles_within_a_few_percent() -> None:
    h = LogHistogram()
    values = [0.001 * (i + 1) for i in range(1000)]
    for v in values:
        h.add(v)
    for q in (50, 90, 99):
        exact = values[round(q / 100 * 999)]
        assert h.percentile(q) == pytest.approx(exact, rel=0.03)


def test_tracker_step_stats_and_bounded_memory() -> None:
    tracker = Tracker(save=False, meters=[ConstantPower()], intensity=100, interval_s=0.05)
    begin, end = tracker.begin, tracker.end
    with tracker:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50_000):
            begin("step", record=False)
            end("step")
        deadline = time.monotonic() + 10
        while tracker.step_stats("step").pending and time.monotonic() < deadline:
            time.sleep(0.05)  # step_stats folds the steps the curve covers: the last wait for the next reading
        stats = tracker.step_stats("step")
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    assert stats.count + stats.pending // 2 == 50_000
    assert grown < 500_000, f"steps must be aggregated, not kept ({grown} B for 50k steps; budget 10 MB/million)"
    assert stats.total_joules == pytest.approx(50.0 * stats.seconds, rel=1e-6)
    assert 0 < stats.duration_percentiles_s["p50"] <= stats.duration_percentiles_s["p99"]
