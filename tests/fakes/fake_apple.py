"""A scripted stand-in for ``zeus_apple_silicon`` (``pip install zeus-apple-silicon``, macOS only).

Install an instance as ``sys.modules["zeus_apple_silicon"]`` (and make ``platform`` say
Darwin arm64) and co2cb's real Apple code (``co2cb.meters.apple``) runs unchanged
against it. Like release 1.1.0 (``bindings/energy_bindings.hpp``), the module has
``AppleEnergyMonitor`` with ``get_cumulative_energy()`` returning an
``AppleEnergyMetrics`` whose fields are cumulative millijoules (integers) or None
where the chip does not report the channel. Each channel draws power from a
function of ``time.perf_counter()`` (the traces of :mod:`tests.fakes.traces`);
its counter is the exact integral, so :meth:`FakeSoc.energy_between` gives the truth.
"""

from __future__ import annotations

import math
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .traces import Constant

#: Every field of ``AppleEnergyMetrics`` in zeus-apple-silicon 1.1.0.
FIELDS = (
    "cpu_total_mj",
    "efficiency_cores_mj",
    "performance_cores_mj",
    "efficiency_cluster_mj",
    "performance_cluster_mj",
    "efficiency_core_manager_mj",
    "performance_core_manager_mj",
    "dram_mj",
    "gpu_mj",
    "gpu_sram_mj",
    "ane_mj",
)


class AppleEnergyMetrics:
    """Energy per subsystem, millijoules; None where not observed (as the real class)."""

    def __init__(self) -> None:
        for name in FIELDS:
            setattr(self, name, None)


@dataclass
class AppleFault:
    """``get_cumulative_energy`` raises ``error`` after ``after_calls`` good calls, ``times`` times (None: always)."""

    error: Exception = field(default_factory=lambda: RuntimeError("IOReportCreateSamples failed"))
    after_calls: int = 0
    times: int | None = None
    fired: int = 0


def m2_max() -> dict[str, Callable[[float], float]]:
    """Channel power (watts) of a busy M2 Max-like chip."""
    return {
        "cpu_total_mj": Constant(14.0),
        "gpu_mj": Constant(22.0),
        "gpu_sram_mj": Constant(0.4),
        "ane_mj": Constant(1.5),
        "dram_mj": Constant(2.0),
    }


@dataclass
class FakeSoc:
    """A scripted Apple silicon chip.

    Attributes:
        power: Watts per ``AppleEnergyMetrics`` field, as functions of time; a field not here reports None.
        offset_mj: Each counter's value when the fake is made (energy since boot).
        init_error: Raised by ``AppleEnergyMonitor()`` (an IOReport subscription refused).
        faults: Scripted errors of ``get_cumulative_energy``.
    """

    power: dict[str, Callable[[float], float]] = field(default_factory=m2_max)
    offset_mj: int = 7_654_321
    init_error: Exception | None = None
    faults: list[AppleFault] = field(default_factory=list)
    samples: list[tuple[float, Any]] = field(default_factory=list, repr=False)
    t_created: float = field(default_factory=time.perf_counter)
    calls: int = 0

    def energy_between(self, name: str, a: float, b: float) -> float:
        """Exact joules of channel ``name`` between perf_counter times ``a`` and ``b``."""
        return float(self.power[name].integral(a, b))  # type: ignore[attr-defined]

    def counter_mj(self, name: str, t: float) -> int:
        return self.offset_mj + math.floor(self.energy_between(name, self.t_created, t) * 1000)

    def sample(self) -> AppleEnergyMetrics:
        self.calls += 1
        for fault in self.faults:
            if self.calls > fault.after_calls and (fault.times is None or fault.fired < fault.times):
                fault.fired += 1
                self.samples.append((time.perf_counter(), fault.error))
                raise fault.error
        now = time.perf_counter()
        metrics = AppleEnergyMetrics()
        for name in self.power:
            setattr(metrics, name, self.counter_mj(name, now))
        self.samples.append((now, metrics))
        return metrics

    def good_samples(self) -> list[tuple[float, AppleEnergyMetrics]]:
        """(time, metrics) of every answered sample, oldest first."""
        return [(t, m) for t, m in self.samples if isinstance(m, AppleEnergyMetrics)]


class FakeZeusAppleSilicon(types.ModuleType):
    """A module object to put in ``sys.modules["zeus_apple_silicon"]``."""

    def __init__(self, soc: FakeSoc) -> None:
        super().__init__("zeus_apple_silicon", "Fake zeus_apple_silicon for co2cb tests (tests/fakes/fake_apple.py).")
        self.__file__ = __file__
        self.soc = soc
        lock = threading.Lock()

        class AppleEnergyMonitor:
            def __init__(self) -> None:
                if soc.init_error is not None:
                    raise soc.init_error

            def get_cumulative_energy(self) -> AppleEnergyMetrics:
                with lock:
                    return soc.sample()

        self.AppleEnergyMonitor = AppleEnergyMonitor
        self.AppleEnergyMetrics = AppleEnergyMetrics
