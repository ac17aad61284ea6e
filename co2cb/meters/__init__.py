"""Hardware behind one small interface: GPU (NVML), CPU (RAPL or estimate), RAM (RAPL DRAM or estimate).

Only this package touches pynvml, powercap files or process tables.
:func:`~co2cb.meters.discovery.discover` picks the meters and records why.
"""

from co2cb.meters.base import Component, Meter, MeterChoice, MeterError, MeterInfo, Provenance, ReadingKind

__all__ = ["Component", "Meter", "MeterChoice", "MeterError", "MeterInfo", "Provenance", "ReadingKind"]
