"""Known-truth power traces through the real sampler thread, tracker and timeline.

A fake GPU (``tests/fakes/fake_pynvml.py``) draws power from a known function of
``time.perf_counter()`` and counts energy as its exact integral, so every figure
co2cb reports can be compared with the truth for the exact time span it covers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import time

import pytest

from co2cb import Tracker, WindowResult
from co2cb.core import header as tracker_module
from co2cb.core.config import POWER_ONLY_INTERVAL_S

from .fakes import Call, Constant, FakeGpu, MakeFake, Sine, late_reads_allowance, perf_bounds, stamp_skews

INTERVAL_S = 0.05  # the shortest sampling interval co2cb allows
ENERGY = "nvmlDeviceGetTotalEnergyConsumption"
POWER = "nvmlDeviceGetPowerUsage"
SAMPLER_THREAD = "co2cb-sampler"
TRACE = {"mean": 150.0, "amplitude": 60.0, "period": 1.7}  # watts; slope up to 222 W/s


def smooth_gpu(counter: bool = False, **kwargs: object) -> FakeGpu:
    trace = Sine(**TRACE, t0=time.perf_counter())
    return FakeGpu(power=trace, has_energy_counter=counter, **kwargs)  # type: ignore[arg-type]


def tracker(**kwargs: object) -> Tracker:
    options: dict[str, object] = {"save": False, "interval_s": INTERVAL_S, "components": ("gpu",), "intensity": 400}
    options.update(kwargs)
    return Tracker(**options)  # type: ignore[arg-type]


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.perf_counter()))


def relative_error(measured: float, truth: float) -> float:
    return abs(measured - truth) / truth


# --------------------------------------------------------------------- (a) sampled power, recorded windows
# (seconds after the start, action, window name): overlapping windows, nested windows, and two
# windows of the same name (the inner one closes first). Every window lasts at least 0.6 s = 12 intervals.
SCHEDULE = [
    (0.05, "begin", "outer"),
    (0.10, "begin", "a"),
    (0.20, "begin", "same"),
    (0.40, "begin", "b"),  # overlaps a
    (0.50, "begin", "same"),  # nested in the first "same"
    (0.70, "end", "a"),
    (0.75, "begin", "c"),  # nested in b
    (1.10, "end", "same"),
    (1.30, "end", "same"),
    (1.35, "end", "c"),
    (1.40, "end", "b"),
    (1.45, "end", "outer"),
]


def run_schedule(t: Tracker) -> list[WindowResult]:
    """Open and close the windows of :data:`SCHEDULE`; checks that each window spans its calls."""
    results: list[WindowResult] = []
    calls: dict[str, list[tuple[float, float]]] = {}  # perf_counter seconds around each open call, by name
    base = time.perf_counter()
    for at, action, name in SCHEDULE:
        sleep_until(base + at)
        before = time.perf_counter()
        if action == "begin":
            t.begin(name)
            calls.setdefault(name, []).append((before, time.perf_counter()))
            continue
        result = t.end(name)
        after = time.perf_counter()
        assert result is not None
        opened_from, opened_to = calls[name].pop()
        # a boundary is within its call, wherever the sampler's thread got to the reading (it may wait for a CPU)
        assert before - opened_to <= result.seconds <= after - opened_from
        results.append(result)
    return results


def window_errors(t: Tracker, gpu: FakeGpu, results: list[WindowResult]) -> dict[str, tuple[float, float]]:
    """Per window: (measured - truth, truth), joules, keyed by name and start time."""
    errors = {}
    for r in results:
        assert r.meter_joules["gpu:0"] == r.joules["gpu"]
        t0, t1 = perf_bounds(t, r)
        truth = gpu.energy_between(t0, t1)
        errors[f"{r.name}@{t0 - gpu.t_created:.3f}s"] = (r.joules["gpu"] - truth, truth)
    return errors


def check_durations(results: list[WindowResult]) -> None:
    """Every window of the schedule closed once, and of the two named "same" the inner one first.

    How long each lasted is checked against its calls in :func:`run_schedule` (the schedule's sleeps may
    overrun on a busy machine); the windows of one name close last opened, first closed: the inner one is
    the shorter whatever the load.
    """
    assert sorted(r.name for r in results[:-1]) == sorted(name for _, action, name in SCHEDULE if action == "end")
    same = [r.seconds for r in results if r.name == "same"]
    assert same[0] < same[1], same


def test_sampled_power_windows_within_half_a_percent_sync(nvml: MakeFake) -> None:
    gpu = smooth_gpu(counter=False)
    nvml(gpu)
    t = tracker(sync_boundaries=True)
    assert t.meter_set.meters[0].info.provenance.value == "sampled-power"
    with t:
        time.sleep(0.05)
        results = run_schedule(t)
    assert t.result is not None
    results.append(t.result)
    check_durations(results)
    errors = window_errors(t, gpu, results)
    assert isinstance(gpu.power, Sine)
    reads = [c.t for c in gpu.returned(POWER)]
    for r, (name, (error, truth)) in zip(results, errors.items()):
        allowed = 0.005 * truth + late_reads_allowance(gpu.power, reads, *perf_bounds(t, r), INTERVAL_S)
        assert abs(error) <= allowed, (name, error / truth, allowed / truth)


def sampler_reads(gpu: FakeGpu, fn: str = POWER) -> list[float]:
    return [c.t for c in gpu.returned(fn, thread=SAMPLER_THREAD)]


def test_sampled_power_windows_no_sync_within_extrapolation_bound(nvml: MakeFake) -> None:
    """Without sync reads a window's start is interpolated once the sampler passes it; its end is
    extrapolated past the newest sample.

    The error of the extrapolated edge is at most ``max|P'| * dt * (dt + s) / 2`` (``s`` the time
    since the last sample, ``dt`` the last interval), so at most ``max|P'| * dt**2``; this checks a
    bound of twice that, which also covers windows shorter than one interval (both edges extrapolated).
    """
    gpu = smooth_gpu(counter=False)
    nvml(gpu)
    t = tracker(sync_boundaries=False)
    with t:
        time.sleep(0.05)
        results = run_schedule(t)
    assert t.result is not None
    results.append(t.result)
    check_durations(results)
    reads = sampler_reads(gpu)
    dt = max(b - a for a, b in itertools.pairwise(reads))
    max_slope = 2 * math.pi / TRACE["period"] * TRACE["amplitude"]
    bound = 2 * max_slope * dt**2
    for name, (error, truth) in window_errors(t, gpu, results).items():
        assert abs(error) <= bound + 1e-3 * truth, (name, error, truth, bound)


def test_run_window_no_sync_counts_energy_from_its_own_start(nvml: MakeFake, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(power=Constant(200.0), has_energy_counter=False)
    nvml(gpu)
    real_versions = tracker_module.library_versions

    def slow_versions() -> dict[str, str]:  # a slow header (e.g. an fsync on a busy disk), made deterministic
        time.sleep(0.2)
        return real_versions()

    monkeypatch.setattr(tracker_module, "library_versions", slow_versions)
    t = tracker(sync_boundaries=False, interval_s=1.0)  # no background reading before the run window opens
    with t:
        time.sleep(0.3)
    run = t.result
    assert run is not None
    t0, t1 = perf_bounds(t, run)
    assert run.joules["gpu"] == pytest.approx(gpu.energy_between(t0, t1), rel=0.005)


class VirtualClock:
    """``time.perf_counter`` and ``perf_counter_ns`` that move only when the test moves them."""

    def __init__(self, start: float) -> None:
        self.t = start

    def perf_counter(self) -> float:
        return self.t

    def perf_counter_ns(self) -> int:
        return round(self.t * 1e9)


def test_sampled_power_window_no_sync_within_half_a_percent(nvml: MakeFake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 0.5% requirement without sync reads, for a window placed where the trace bends most.

    A 0.6 s window centred on the trough of the issue's trace, each edge 35 ms (0.7 interval)
    after a sample: when both edges were extrapolated this missed 0.5% every time (about 0.87%).
    The clock is virtual and the test makes the sampler's reads itself, every interval, so the
    placement is exact whatever the machine's load.
    """
    clock = VirtualClock(time.perf_counter())
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "perf_counter_ns", clock.perf_counter_ns)
    trough = clock.t + 0.5
    trace = Sine(**TRACE, t0=trough - 0.75 * TRACE["period"])
    gpu = FakeGpu(power=trace, has_energy_counter=False, t_created=clock.t)
    nvml(gpu)
    t = tracker(sync_boundaries=False, interval_s=60)  # its own thread stays asleep: the reads are the test's

    def sample_until(at: float) -> None:  # the sampler's reads, one every interval, up to ``at``
        while clock.t + INTERVAL_S <= at + 1e-9:
            clock.t += INTERVAL_S
            t._sampler._read()

    with t:
        sample_until(trough - 0.3)
        clock.t += 0.7 * INTERVAL_S
        t.begin("w")
        sample_until(trough + 0.3)
        clock.t += 0.7 * INTERVAL_S
        result = t.end("w")
    assert result is not None and result.seconds == pytest.approx(0.6, abs=INTERVAL_S)
    ((error, truth),) = window_errors(t, gpu, [result]).values()
    assert abs(error) / truth < 0.005, (error, truth)


# --------------------------------------------------------------------- (b) energy counter, exact at sync boundaries
def reads_within(gpu: FakeGpu, a: float, b: float) -> list[Call]:
    """The sampler's counter reads of ``gpu`` made between perf_counter times ``a`` and ``b``."""
    return [c for c in gpu.returned(ENERGY, thread=SAMPLER_THREAD) if a <= c.t <= b]


def test_counter_window_is_exact_counter_difference(nvml: MakeFake) -> None:
    """With sync boundaries each edge is a counter read made inside the call that opened or closed the window,
    and the window's energy is exactly the difference of those two reads (the truth between their moments).

    The check is against the moments of the reads, not the window's time stamps: a stamp is the middle of a read
    of both GPUs, and a read preempted on a busy machine moves it by milliseconds (0.1 % of the short window).
    """
    gpus = [smooth_gpu(counter=True), FakeGpu(power=Constant(275.5), counter_offset_mj=12_345_678_901_234)]
    nvml(*gpus)
    t = tracker(sync_boundaries=True)
    assert [m.info.provenance.value for m in t.meter_set.meters] == ["measured-counter", "measured-counter"]
    results: dict[str, tuple[WindowResult, tuple[float, float], tuple[float, float]]] = {}
    with t:
        run_begin = [g.returned(ENERGY, thread="MainThread")[-1].value for g in gpus]  # start reads here
        for name, seconds in (("short", 0.12), ("long", 0.6)):
            a = time.perf_counter()
            t.begin(name)
            b = time.perf_counter()
            time.sleep(seconds)
            c = time.perf_counter()
            result = t.end(name)
            d = time.perf_counter()
            assert result is not None
            results[name] = (result, (a, b), (c, d))
    for result, opening, closing in results.values():
        t0, t1 = perf_bounds(t, result)
        assert opening[0] <= t0 <= opening[1] and closing[0] <= t1 <= closing[1]
        for i, g in enumerate(gpus):
            window_j = result.meter_joules[f"gpu:{i}"]
            edges = [
                (opened, closed)
                for opened in reads_within(g, *opening)
                for closed in reads_within(g, *closing)
                if window_j == pytest.approx((closed.value - opened.value) / 1000, rel=1e-9, abs=0)
            ]
            assert edges, f"gpu:{i}: {window_j} J is not the difference of a read at each boundary"
            opened, closed = edges[0]
            assert window_j == pytest.approx(g.energy_between(opened.t, closed.t), abs=0.002)  # whole mJ counts
        assert result.provenance == {"gpu": "measured-counter"}
    # the run window too: from the read that opened it to the last read at stop (both on this thread)
    run = t.result
    assert run is not None
    for i, g in enumerate(gpus):
        run_end = g.returned(ENERGY, thread="MainThread")[-1].value
        assert run.meter_joules[f"gpu:{i}"] == pytest.approx((run_end - run_begin[i]) / 1000, rel=1e-9, abs=0)


# --------------------------------------------------------------------- (c) step windows
@pytest.mark.parametrize("counter", [False, True], ids=["sampled-power", "measured-counter"])
def test_step_windows_total_energy(nvml: MakeFake, counter: bool) -> None:
    gpu = smooth_gpu(counter=counter)
    nvml(gpu)
    t = tracker(keep_steps=True)
    steps = 300
    spans: list[tuple[int, int, int, int]] = []  # perf_counter_ns around begin and around end
    with t:
        time.sleep(0.03)
        for _ in range(steps):
            a = time.perf_counter_ns()
            t.begin("step", record=False)
            b = time.perf_counter_ns()
            time.sleep(0.002)
            c = time.perf_counter_ns()
            t.end("step")
            d = time.perf_counter_ns()
            spans.append((a, b, c, d))
            time.sleep(0.001)
    stats = t.step_stats("step")
    assert stats.count == steps and len(stats.steps) == steps
    assert stats.pending == 0
    for (a, b, c, d), (start_ns, end_ns, _) in zip(spans, stats.steps):
        assert a <= start_ns <= b and c <= end_ns <= d
    total_s = sum(end - start for start, end, _ in stats.steps) * 1e-9
    assert total_s >= 10 * INTERVAL_S
    assert stats.seconds == pytest.approx(total_s, rel=1e-9)
    truth = sum(gpu.energy_between(start * 1e-9, end * 1e-9) for start, end, _ in stats.steps)
    assert stats.joules["gpu:0"] == pytest.approx(sum(j for _, _, j in stats.steps), rel=1e-9)
    # sampled power: a read a busy machine delayed is allowed the trapezoid error of its longer gap
    assert isinstance(gpu.power, Sine)
    span = (stats.steps[0][0] * 1e-9, stats.steps[-1][1] * 1e-9)
    late = 0.0 if counter else late_reads_allowance(gpu.power, [c.t for c in gpu.returned(POWER)], *span, INTERVAL_S)
    assert abs(stats.total_joules - truth) <= 0.01 * truth + late, (stats.total_joules, truth, late)


# --------------------------------------------------------------------- (d) between two marks
def skew_at(t: Tracker, gpu: FakeGpu, mark_ns: int) -> float:
    """The larger stamp skew (:func:`tests.fakes.stamp_skews`) of the two counter points around a mark, seconds."""
    tl = t._sampler.timeline
    readings = [(c.t, c.value / 1000) for c in gpu.returned(ENERGY)]
    skews = stamp_skews(tl.times, [row[0] for row in tl.cum], readings)
    i = bisect.bisect_right(tl.times, mark_ns)
    return max(abs(x) for x in skews[max(0, i - 1) : i + 1])


@pytest.mark.parametrize("counter", [False, True], ids=["sampled-power", "measured-counter"])
def test_between_marks(nvml: MakeFake, counter: bool) -> None:
    gpu = smooth_gpu(counter=counter)
    nvml(gpu)
    t = tracker(sync_boundaries=False)
    with t:
        time.sleep(0.07)
        a = t.mark()
        time.sleep(0.63)
        b = t.mark()
        deadline = time.perf_counter() + 10
        while (t._sampler.timeline.last_time or 0) <= b and time.perf_counter() < deadline:
            time.sleep(INTERVAL_S)  # let the curve pass mark b: read off samples, not extrapolated
        live = t.between(a, b)
    after = t.between(a, b, name="after")
    truth = gpu.energy_between(a * 1e-9, b * 1e-9)
    assert live.seconds == pytest.approx((b - a) * 1e-9, rel=1e-12)
    assert isinstance(gpu.power, Sine)
    reads = [c.t for c in gpu.returned(ENERGY if counter else POWER)]
    late = late_reads_allowance(gpu.power, reads, a * 1e-9, b * 1e-9, INTERVAL_S, counter)  # as above
    if counter:  # a mark between two counts is as far off as their stamps are from their reads, at full power
        late += (TRACE["mean"] + TRACE["amplitude"]) * (skew_at(t, gpu, a) + skew_at(t, gpu, b))
    assert abs(live.joules["gpu"] - truth) <= 0.01 * truth + late, (live.joules["gpu"], truth, late)
    assert after.joules["gpu"] == pytest.approx(live.joules["gpu"], rel=1e-12)
    assert after.name == "after"


# --------------------------------------------------------------------- (e) sampled power at the default interval
PERIODS_S = (0.5, 1.0, 1.7, 2.0, 8.0, 30.0)  # power that swings with training steps, data loading, epochs


def test_sampled_power_at_the_default_interval_within_half_a_percent(
    nvml: MakeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GPUs that only give power (pre-Volta NVML), each swinging +-40 % with one of :data:`PERIODS_S`, at the
    default interval: co2cb samples them every 0.1 s (at 1 s, periods of 0.5 to 2 s alias: +0.7 % to +40 %),
    and every window of 10 or more intervals is within 0.5 % of the true integral.

    The clock is virtual and the test makes the sampler's reads itself, every 0.1 s, so the samples are where
    the interval puts them whatever the machine's load (a sample 50 ms late on a busy machine would add the
    error of a longer interval: up to 0.6 % here). The boundaries read the meters on the sampler's thread.
    """
    start = time.perf_counter()
    gpus = [FakeGpu(power=Sine(150.0, 60.0, period, t0=start), has_energy_counter=False) for period in PERIODS_S]
    nvml(*gpus)
    chosen = Tracker(save=False, components=("gpu",), intensity=400)  # interval_s left to co2cb
    assert {m.info.provenance.value for m in chosen.meter_set.meters} == {"sampled-power"}
    assert chosen.config.interval_s == POWER_ONLY_INTERVAL_S == 0.1
    chosen.meter_set.close()
    clock = VirtualClock(start)
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "perf_counter_ns", clock.perf_counter_ns)
    t = Tracker(save=False, components=("gpu",), intensity=400, interval_s=60)  # its own thread reads at boundaries
    sampled = [0]  # samples made so far, one every POWER_ONLY_INTERVAL_S from the start

    def run_until(at: float) -> None:  # the sampler's reads up to ``at``, then the clock at ``at``
        while start + (sampled[0] + 1) * POWER_ONLY_INTERVAL_S <= at:
            sampled[0] += 1
            clock.t = start + sampled[0] * POWER_ONLY_INTERVAL_S
            t._sampler._read()
        clock.t = at

    results: list[WindowResult] = []
    with t:
        for offset, length in ((0.13, 1.21), (1.4, 1.57), (3.05, 1.03)):  # windows of 10 to 16 intervals
            run_until(start + offset)
            t.begin("w")
            run_until(start + offset + length)
            result = t.end("w")
            assert result is not None
            results.append(result)
    assert t.result is not None
    for r in [*results, t.result]:
        assert r.seconds >= 10 * POWER_ONLY_INTERVAL_S
        t0, t1 = perf_bounds(t, r)
        for i, gpu in enumerate(gpus):
            truth = gpu.energy_between(t0, t1)
            error = relative_error(r.meter_joules[f"gpu:{i}"], truth)
            assert error < 0.005, (r.name, r.seconds, PERIODS_S[i], error)


def test_the_default_interval_is_one_second_without_a_power_only_meter(nvml: MakeFake) -> None:
    nvml(FakeGpu(power=Constant(100.0)))  # an energy counter: nothing to alias
    assert Tracker(save=False, components=("gpu",), intensity=400).config.interval_s == 1.0
    nvml(FakeGpu(power=Constant(100.0), has_energy_counter=False))
    assert Tracker(save=False, components=("gpu",), intensity=400, interval_s=0.5).config.interval_s == 0.5  # given
