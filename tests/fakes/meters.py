"""Simple meters for tests that need a known energy curve rather than simulated hardware."""

from __future__ import annotations

from co2cb import Meter, MeterError, MeterInfo
from co2cb.meters.base import Component, Provenance, ReadingKind


class ConstantPower(Meter):
    """A CPU-component meter that always draws ``watts``."""

    reading = ReadingKind.POWER

    def __init__(self, watts: float = 50.0, name: str = "test:constant") -> None:
        self.watts = watts
        self._info = MeterInfo(name, Component.CPU, Provenance.ESTIMATE)

    @property
    def info(self) -> MeterInfo:
        return self._info

    def read(self) -> float:
        return self.watts


class RaisingMeter(ConstantPower):
    """Works for ``good_reads`` reads, then raises on every read."""

    def __init__(self, good_reads: int = 1, name: str = "test:raising") -> None:
        super().__init__(10.0, name)
        self.reads = 0
        self.good_reads = good_reads

    def read(self) -> float:
        self.reads += 1
        if self.reads > self.good_reads:
            raise MeterError("simulated failure")
        return self.watts
