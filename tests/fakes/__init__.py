"""Fakes of hardware libraries, for testing co2cb's real code paths without the hardware.

Tests use the fixtures of ``tests/conftest.py``: ``nvml(FakeGpu(...), ...)`` installs a fake pynvml
(see :func:`install_fake_pynvml`), ``amd(FakeAmdGpu(...), ...)`` a fake amdsmi
(:func:`install_fake_amdsmi`), ``apple(FakeSoc(...))`` a fake zeus_apple_silicon on a Mac
(:func:`install_fake_apple`); each returns its fake. Each makes the other accelerator libraries
absent unless the test installs fakes of them too, so that the machine running the tests never
leaks its own GPUs into them.
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from co2cb.meters import amd as co2cb_amd

from .fake_amdsmi import AmdFault, FakeAmdGpu, FakeAmdSmi
from .fake_apple import AppleFault, FakeSoc, FakeZeusAppleSilicon
from .fake_pynvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    Call,
    FakeGpu,
    FakePynvml,
    Fault,
    make_gpus,
)
from .traces import Constant, Sine, integrate

__all__ = [
    "AmdFault",
    "AppleFault",
    "FakeAmdGpu",
    "FakeAmdSmi",
    "FakeSoc",
    "FakeZeusAppleSilicon",
    "install_fake_amdsmi",
    "install_fake_apple",
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_NOT_SUPPORTED",
    "Call",
    "Constant",
    "FakeGpu",
    "FakePynvml",
    "Fault",
    "Sine",
    "MakeFake",
    "install_fake_pynvml",
    "integrate",
    "edge_readings",
    "late_reads_allowance",
    "make_gpus",
    "perf_bounds",
    "power_stamp_skews",
    "skewed_power_allowance",
    "stamp_skews",
]


def install_fake_pynvml(
    monkeypatch: pytest.MonkeyPatch,
    gpus: Sequence[FakeGpu] = (),
    *,
    init_error: int | None = None,
    cuda_visible_devices: str | None = None,
) -> FakePynvml:
    """Put a :class:`FakePynvml` in ``sys.modules["pynvml"]`` for one test.

    ``CUDA_VISIBLE_DEVICES`` is set to ``cuda_visible_devices``, or removed when None,
    so the machine's own setting never leaks into a test.
    """
    fake = FakePynvml(gpus, init_error=init_error)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    _absent_unless_faked(monkeypatch, "amdsmi", "zeus_apple_silicon")
    if cuda_visible_devices is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cuda_visible_devices)
    return fake


FAKES = Path(__file__).resolve().parent
VISIBILITY = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def _absent_unless_faked(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import <module>`` fail for each module that no test fake stands in for."""
    for name in modules:
        current = sys.modules.get(name)
        if current is None or not str(getattr(current, "__file__", "")).startswith(str(FAKES)):
            monkeypatch.setitem(sys.modules, name, None)


def install_fake_amdsmi(
    monkeypatch: pytest.MonkeyPatch,
    gpus: Sequence[FakeAmdGpu] = (),
    *,
    version: str = "7.0.2",
    init_error: int | None = None,
    check_s: float = 0.05,
    **visible: str,
) -> FakeAmdSmi:
    """Put a :class:`FakeAmdSmi` in ``sys.modules["amdsmi"]`` for one test.

    ``check_s`` shortens the accumulator check of discovery (``co2cb.meters.amd.COUNTER_CHECK_S``).
    ``CUDA_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES`` and ``ROCR_VISIBLE_DEVICES`` are removed, then set
    from the keyword arguments of those names (lower case, e.g. ``hip_visible_devices="1"``).
    """
    fake = FakeAmdSmi(gpus, version=version, init_error=init_error)
    monkeypatch.setitem(sys.modules, "amdsmi", fake)
    _absent_unless_faked(monkeypatch, "pynvml", "zeus_apple_silicon")
    monkeypatch.setattr(co2cb_amd, "COUNTER_CHECK_S", check_s)
    for name in VISIBILITY:
        monkeypatch.delenv(name, raising=False)
    for key, value in visible.items():
        if key.upper() not in VISIBILITY:
            raise TypeError(f"install_fake_amdsmi() got an unexpected keyword argument {key!r}")
        monkeypatch.setenv(key.upper(), value)
    return fake


def install_fake_apple(monkeypatch: pytest.MonkeyPatch, soc: FakeSoc, bin_dir: Path, chip: str | None) -> FakeSoc:
    """Make this a Mac with Apple silicon for one test.

    Installs a :class:`FakeZeusAppleSilicon` for ``soc``, makes ``platform`` say Darwin arm64, and puts a
    ``sysctl`` in ``bin_dir`` at the front of ``PATH`` that names the chip (and fails, as off macOS,
    when ``chip`` is None).
    """
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", FakeZeusAppleSilicon(soc))
    _absent_unless_faked(monkeypatch, "pynvml", "amdsmi")
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    bin_dir.mkdir(parents=True, exist_ok=True)
    sysctl = bin_dir / "sysctl"
    answer = f'[ "$2" = machdep.cpu.brand_string ] && echo "{chip}" && exit 0' if chip else ""
    sysctl.write_text(f"#!/bin/sh\n{answer}\nexit 1\n")
    sysctl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return soc


MakeFake = Callable[..., FakePynvml]
"""The ``nvml`` fixture's type: ``nvml(gpu0, gpu1, init_error=..., cuda_visible_devices=...)``."""


def perf_bounds(tracker: Any, result: Any) -> tuple[float, float]:
    """A window result's start and end as ``time.perf_counter()`` seconds.

    Results carry wall-clock bounds, ``_wall0 + (t_ns - _perf0) * 1e-9``; this undoes
    that mapping with the tracker's own anchors (exact to well under a microsecond).
    """
    perf0_s = tracker._perf0 * 1e-9
    return (
        perf0_s + (result.start_unix_s - tracker._wall0),
        perf0_s + (result.end_unix_s - tracker._wall0),
    )


def edge_readings(window_j: float, readings: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The moments of the two readings a window's edges are: of ``(perf_counter seconds, cumulative joules)``
    readings, the pair whose difference is exactly the window's energy.

    A window's edges carry the middle of the read that made them, so the truth between its timestamps is off by
    what a read took (milliseconds, for a read preempted on a busy machine). Check the truth between these
    moments instead; a window whose figures are not two readings' difference fails here.
    """
    pairs = [
        (a, b)
        for (a, ja), (b, jb) in itertools.combinations(readings, 2)
        if jb - ja == pytest.approx(window_j, rel=1e-6, abs=0)  # closer than one count; floats of 1e9 J differ by 1e-7
    ]
    assert pairs, f"the window's {window_j} J is not the difference of two readings"
    return pairs[0]


def stamp_skews(
    times_ns: Sequence[int], cum_j: Sequence[float], readings: Sequence[tuple[float, float]]
) -> list[float]:
    """How far each curve point's time stamp is from the moment its counter value was read, seconds.

    A reading is stamped at the middle of its read; a read preempted on a busy machine puts its stamp tens of
    milliseconds from the moment the counter was read. The points are matched to ``readings``
    (``(perf_counter seconds, cumulative joules)`` of the fake's answers, oldest first) by their values: the
    curve's points are consecutive readings, counted from the first.

    Args:
        times_ns: The curve's time stamps (``perf_counter_ns``).
        cum_j: The channel's cumulative joules at them.
        readings: The counter's answers.
    """

    def from_k(k: int) -> bool:
        base = readings[k][1] - cum_j[0]
        return all(abs(j - base - c) < 1e-6 for (_, j), c in zip(readings[k:], cum_j))

    return _skews_of_match(times_ns, readings, from_k, "counter")


def power_stamp_skews(
    times_ns: Sequence[int], cum_j: Sequence[float], readings: Sequence[tuple[float, float]]
) -> list[float]:
    """As :func:`stamp_skews`, for a sampled-power channel: ``readings`` are ``(perf_counter seconds, watts)``.

    The curve holds the trapezoid's integral, so the points are matched to consecutive readings by what each
    step of the curve adds: the mean of two readings' watts times the time between the points.
    """

    def step_matches(k: int, i: int) -> bool:
        added = cum_j[i] - cum_j[i - 1]
        return bool(
            added == pytest.approx((readings[k + i - 1][1] + readings[k + i][1]) / 2 * dt[i], rel=1e-9, abs=1e-9)
        )

    dt = [0.0] + [(b - a) * 1e-9 for a, b in itertools.pairwise(times_ns)]
    return _skews_of_match(times_ns, readings, lambda k: all(step_matches(k, i) for i in range(1, len(cum_j))), "power")


def _skews_of_match(
    times_ns: Sequence[int], readings: Sequence[tuple[float, float]], from_k: Callable[[int], bool], what: str
) -> list[float]:
    """Each point's stamp minus the moment of its reading, for the first ``k`` whose readings ``from_k`` matches."""
    for k in range(len(readings) - len(times_ns) + 1):
        if from_k(k):
            return [s * 1e-9 - t for s, (t, _) in zip(times_ns, readings[k:])]
    raise AssertionError(f"the curve's points are not consecutive readings of the {what}")


def skewed_power_allowance(trace: Sine, times_ns: Sequence[int], skews: Sequence[float], t0: float, t1: float) -> float:
    """Joules of error that sampled power stamped away from its read allows a window from ``t0`` to ``t1``.

    A point's watts were read ``skew`` seconds from its stamp (:func:`power_stamp_skews`), so they are off by up
    to ``max|P'| x |skew|``, over the half gaps on either side of the point; every point whose gaps reach into
    the window counts (perf_counter seconds).
    """
    t = [x * 1e-9 for x in times_ns]
    total = 0.0
    for i, skew in enumerate(skews):
        before = t[i - 1] if i > 0 else t[i]
        after = t[i + 1] if i + 1 < len(t) else t[i]
        if after >= t0 and before <= t1:
            total += trace.max_slope * abs(skew) * (after - before) / 2
    return total


def late_reads_allowance(
    trace: Sine, read_times: Sequence[float], t0: float, t1: float, interval_s: float, counter: bool = False
) -> float:
    """Joules of error that readings later than the interval allow a window from ``t0`` to ``t1``.

    Sampled power: the curve between two readings ``h`` seconds apart is a straight line, off by up to
    ``max|P''| h**3 / 12`` (the trapezoid's error): at 0.05 s that is a few mJ, but a sampler's thread that waits
    100 ms for a CPU on a busy machine leaves a gap of 150 ms (0.23 J on a 1.7 s trace swinging 60 W, 0.3 % of a
    0.6 s window); every gap from the reading before ``t0`` to the one after ``t1`` counts. An energy counter
    (``counter``): the count between two readings is a straight line, off by up to ``max|P'| h**2 / 8`` at an edge
    inside the gap; the two gaps the edges fall in count. Only gaps longer than 1.5 intervals count
    (perf_counter seconds).
    """
    reads = sorted(read_times)
    first = max((i for i, r in enumerate(reads) if r <= t0), default=0)
    last = min((i for i, r in enumerate(reads) if r >= t1), default=len(reads) - 1)
    gaps = [b - a for a, b in itertools.pairwise(reads[first : last + 1])]
    if counter:
        edge_gaps = [gaps[0], gaps[-1]] if gaps else []
        return sum(trace.max_slope * h**2 / 8 for h in edge_gaps if h > 1.5 * interval_s)
    return sum(trace.max_curvature * h**3 / 12 for h in gaps if h > 1.5 * interval_s)
