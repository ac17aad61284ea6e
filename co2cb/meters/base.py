"""The one small interface every hardware meter implements.

A meter answers one question: how much energy has this device (or this
estimate) used so far? It does so in one of two ways, given by
:attr:`Meter.reading`:

* ``ReadingKind.COUNTER``: :meth:`Meter.read` returns cumulative joules since an
  arbitrary origin (NVML's energy counter, RAPL, and every estimate, which
  integrates its own model between reads).
* ``ReadingKind.POWER``: :meth:`Meter.read` returns the instantaneous power in
  watts; the sampler integrates it over time (trapezoid rule).

Meters know nothing of windows, timelines or carbon. A meter that fails for good (device lost,
counter not supported) raises :class:`MeterError`; the sampler then drops it to "unavailable" with
one warning. A reading that failed once but may work next time raises :class:`TransientMeterError`:
the sampler skips that reading only. Whatever else the record should hold (a counter that restarted
and was counted on from its new zero) a meter reports with :meth:`Meter.note`.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


class ReadingKind(str, enum.Enum):
    """What :meth:`Meter.read` returns."""

    COUNTER = "counter"  #: cumulative joules
    POWER = "power"  #: instantaneous watts


class Provenance(str, enum.Enum):
    """How a meter's figures are made; written next to every number."""

    MEASURED_COUNTER = "measured-counter"  #: a hardware energy counter (NVML total energy, RAPL)
    SAMPLED_POWER = "sampled-power"  #: hardware power readings integrated over time
    ESTIMATE = "estimate"  #: a model (TDP x utilisation, per-vCPU watts, watts per GB)


class Component(str, enum.Enum):
    """The parts of a machine that energy is reported for."""

    GPU = "gpu"
    CPU = "cpu"
    RAM = "ram"


COMPONENTS: tuple[str, ...] = tuple(c.value for c in Component)
"""Component names in reporting order: ``("gpu", "cpu", "ram")``."""


class MeterError(RuntimeError):
    """A meter could not be read (device lost, counter not supported, permission denied)."""


class TransientMeterError(MeterError):
    """This reading failed, but the device is still there: the sampler skips it and reads again next time."""


@dataclass(frozen=True)
class MeterInfo:
    """What a meter is, for records and ``co2cb info``.

    Attributes:
        name: Unique channel name, e.g. ``"gpu:0"``, ``"cpu:package-0"``, ``"ram"``.
        component: The component its energy counts towards.
        provenance: Measured counter, sampled power or estimate.
        host_level: True when the reading covers the whole host rather than the
            tracked processes (RAPL, the CPU and RAM estimates in machine scope), so
            that processes on one host would each see the same energy; distributed
            adapters read such meters once per host.
        details: Free-form facts about the device and model (model name, TDP in
            watts, constants and their sources, ...).
    """

    name: str
    component: Component
    provenance: Provenance
    host_level: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "component": self.component.value,
            "provenance": self.provenance.value,
            "host_level": self.host_level,
            "details": self.details,
        }


class Meter(ABC):
    """A source of energy readings for one device or one estimate."""

    #: Whether :meth:`read` returns cumulative joules or watts.
    reading: ReadingKind
    #: Whether a window that opens (``sync_boundaries``) needs this meter read. False for an estimate whose
    #: inputs (CPU time in clock ticks, resident memory) are no sharper at a boundary than the curve the
    #: sampler draws every interval: where every meter says False, an opening reads nothing (closings do).
    boundary_reads: bool = True
    #: Whether a closing window boundary reads this meter on the calling (training) thread, through
    #: :meth:`read_at_boundary`, instead of waiting for the sampler's thread. Only co2cb's estimates say
    #: True: their boundary read is this process's CPU times and one ``/proc/stat`` read (no process-tree
    #: walk, no memory read), which cannot hang; where every live meter says True, a close waits for no thread.
    caller_reads: bool = False

    @property
    @abstractmethod
    def info(self) -> MeterInfo:
        """Static description of this meter."""

    @abstractmethod
    def read(self) -> float:
        """Cumulative joules (``COUNTER``) or watts (``POWER``).

        Raises:
            MeterError: The device can no longer be read.
        """

    def read_at_boundary(self) -> float:
        """A reading for a window's close on the calling thread (see ``caller_reads``); :meth:`read` by default."""
        return self.read()

    def close(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release any handle the meter holds. Safe to call twice."""

    def note(self, what: str) -> None:
        """Report an event for the record (e.g. a counter reset), in words; the sampler picks it up after the read."""
        self.__dict__.setdefault("_co2cb_events", []).append(what)

    def take_events(self) -> list[str]:
        """The events noted since the last call, oldest first (the sampler calls it after each read)."""
        return self.__dict__.pop("_co2cb_events", None) or []


@dataclass(frozen=True)
class MeterChoice:
    """One decision of meter discovery, kept for the record.

    Attributes:
        component: Which component the decision is about.
        chosen: Names of the meters chosen (empty when none could work).
        reason: Why, in words a user can act on (e.g. how to grant RAPL access).
    """

    component: Component
    chosen: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"component": self.component.value, "chosen": list(self.chosen), "reason": self.reason}
