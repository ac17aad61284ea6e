"""Hardware behind one small interface: GPU (NVML, AMD SMI, Apple silicon), CPU and RAM (RAPL, Apple, estimates).

Only this package touches pynvml, amdsmi, zeus_apple_silicon, powercap files or process tables.
:func:`~co2cb.meters.discovery.discover` picks the meters and records why.
"""

from co2cb.meters.base import Component, Meter, MeterChoice, MeterError, MeterInfo, Provenance, ReadingKind

__all__ = ["Component", "Meter", "MeterChoice", "MeterError", "MeterInfo", "Provenance", "ReadingKind"]
