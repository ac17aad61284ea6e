"""Known-truth checks of what an adapter logs: every step log's energy and power against simulated hardware.

Two sources of truth, both read through co2cb's real meter code at the default sampling interval:

* a RAPL package counter at a constant 60 W that moves every 10 ms (:class:`tests.fakes.powercap.TickingCounter`,
  machine scope): every logged power must read 60 W within 10 %, plus what the fake counter's own lateness
  on a loaded machine explains;
* the fake pynvml's GPU drawing a slow sine (:data:`SINE`): every step energy must be within the error of
  reading a varying power past the last reading (at most its slope times the span of the extension).

:func:`spy_step_logs` records each step log's interval (the monitor's marks) beside the values it returned,
so the truth is the exact integral over that interval.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pytest

from co2cb.training import names
from co2cb.training.monitor import TrainingMonitor
from co2cb.units import JOULES_PER_KWH
from tests.fakes import FakeGpu, Sine

WATTS = 60.0
TICK_S = 0.01
DEFAULT_INTERVAL_S = 1.0  # co2cb's default sampling interval
SINE = {"mean": 150.0, "amplitude": 40.0, "period": 20.0}  # watts, seconds: slope up to 12.6 W/s


@dataclass
class StepLog:
    """One step log: its interval (perf_counter seconds) and the values the monitor returned."""

    start: float
    end: float
    values: dict[str, float]

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def joules(self) -> float:
        return self.values[names.STEP_ENERGY] * JOULES_PER_KWH


def spy_step_logs(monkeypatch: pytest.MonkeyPatch) -> list[StepLog]:
    """Record every :meth:`TrainingMonitor.log_step` of this test (in this process) with its interval."""
    found: list[StepLog] = []
    real = TrainingMonitor.log_step

    def spy(self: TrainingMonitor) -> dict[str, float]:
        start = self._last_log_mark
        values = real(self)
        found.append(StepLog(start * 1e-9, self._last_log_mark * 1e-9, dict(values)))
        return values

    monkeypatch.setattr(TrainingMonitor, "log_step", spy)
    return found


def sine_gpu(t0: float | None = None) -> FakeGpu:
    """A GPU with an energy counter, drawing :data:`SINE` from ``t0`` (perf_counter seconds; default now) on.

    ``FakeGpu.energy_between`` is the trace's exact integral: a test can rebuild the truth of a GPU that ran
    in another process from its ``t0``.
    """
    return FakeGpu(power=Sine(**SINE, t0=time.perf_counter() if t0 is None else t0))


def check_ticking_counter(logs: list[StepLog], counter: Any, min_logs: int = 3) -> None:
    """Every step log of a constant 60 W ticking counter reads 60 W within 10 % (and the counter's own lag).

    ``counter``: a :class:`tests.fakes.powercap.TickingCounter`, or anything with its ``max_lag_s`` and
    ``energy_between`` (a record of one from another process).
    """
    assert len(logs) >= min_logs
    for log in logs:
        tolerance = 0.1 + 3 * counter.max_lag_s / log.seconds
        assert log.values[names.STEP_POWER] == pytest.approx(WATTS, rel=tolerance), (log.seconds, log.values)
        truth = counter.energy_between(log.start, log.end)
        assert log.joules == pytest.approx(truth, rel=tolerance + 0.01), (log.seconds, log.values)


@dataclass
class TickingRecord:
    """What a :class:`~tests.fakes.powercap.TickingCounter` in another process did: its start and lateness."""

    t0: float
    max_lag_s: float
    watts: float = WATTS

    def energy_between(self, a: float, b: float) -> float:
        return self.watts * (max(b, self.t0) - max(a, self.t0))


def check_sine_gpu(logs: list[StepLog], gpu: Any, interval_s: float = DEFAULT_INTERVAL_S) -> None:
    """Every step log's energy of the sine GPU is within the error of extending the curve past its last reading.

    Past the last reading the curve goes on at the mean power of at least the last interval (at most two,
    with the sampler's jitter), whose centre is at most ``2 * interval + L`` before the step's end: the
    error is at most the power's slope times that, over the ``L`` seconds extended.
    """
    assert logs
    slope = SINE["amplitude"] * 2 * math.pi / SINE["period"]
    for log in logs:
        truth = gpu.energy_between(log.start, log.end)
        bound = slope * (2 * interval_s + log.seconds) * min(log.seconds, interval_s) + 0.01 * truth
        assert abs(log.joules - truth) <= bound, (log.seconds, log.joules, truth, bound)
        power = log.values[names.STEP_POWER]
        assert abs(power - truth / log.seconds) <= bound / log.seconds, (log.seconds, power, truth / log.seconds)
