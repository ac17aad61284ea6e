"""A scripted stand-in for the ``pynvml`` module (package ``nvidia-ml-py``).

Only the hardware is simulated: install an instance as ``sys.modules["pynvml"]``
and co2cb's real NVML code (``co2cb.meters.nvml``) runs unchanged against it.

The fake implements exactly the part of pynvml that co2cb uses, with the real
names, signatures, units and error classes:

* ``nvmlInit`` / ``nvmlShutdown``: reference counted like the real library; every
  device call made while the count is zero fails with ``NVMLError_Uninitialized``.
  ``nvmlInit`` can be scripted to fail (``init_error=NVML_ERROR_LIBRARY_NOT_FOUND``
  or ``NVML_ERROR_DRIVER_NOT_LOADED``).
* power in milliwatts, the total-energy counter in millijoules (integers, as the
  C library returns them), memory in bytes, temperature in degrees Celsius.
* ``NVMLError(code)`` maps to a per-code subclass (``NVMLError_GpuIsLost``, ...)
  and carries ``.value``, as in pynvml.
* the field-values API for power by scope and MIG (:mod:`tests.fakes.fake_pynvml_mig`):
  a :class:`FakeGpu` with ``module_power`` is a Grace Hopper-style module, and
  ``reports="module"`` makes its power reading and energy counter cover the module,
  as Zeus found on GH200; ``mig_mode`` and ``mig_devices`` script the MIG layout.

Each :class:`FakeGpu` draws power from a function of ``time.perf_counter()``
(watts, :mod:`tests.fakes.traces`); its energy counter is the exact integral of that
function, so tests can compute the truth for any time span with
:meth:`FakeGpu.energy_between`.
Every call the fake answers is logged with its time, thread and returned value
(or raised error) in :attr:`FakePynvml.calls` and :attr:`FakeGpu.calls`.
"""

from __future__ import annotations

import math
import string
import threading
import time
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import fake_pynvml_mig
from .fake_pynvml_mig import NVML_DEVICE_MIG_DISABLE, FakeMig, ScopeAndMigCalls
from .traces import Constant, integrate

# --------------------------------------------------------------------- constants (values as in pynvml)
NVML_SUCCESS = 0
NVML_TEMPERATURE_GPU = 0

NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_ERROR_CODES = {
    "NVML_ERROR_UNINITIALIZED": (NVML_ERROR_UNINITIALIZED, "Uninitialized"),
    "NVML_ERROR_INVALID_ARGUMENT": (NVML_ERROR_INVALID_ARGUMENT, "Invalid Argument"),
    "NVML_ERROR_NOT_SUPPORTED": (NVML_ERROR_NOT_SUPPORTED, "Not Supported"),
    "NVML_ERROR_NO_PERMISSION": (NVML_ERROR_NO_PERMISSION, "Insufficient Permissions"),
    "NVML_ERROR_NOT_FOUND": (NVML_ERROR_NOT_FOUND, "Not Found"),
    "NVML_ERROR_DRIVER_NOT_LOADED": (NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
    "NVML_ERROR_LIBRARY_NOT_FOUND": (NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
    "NVML_ERROR_GPU_IS_LOST": (NVML_ERROR_GPU_IS_LOST, "GPU is lost"),
    "NVML_ERROR_UNKNOWN": (NVML_ERROR_UNKNOWN, "Unknown Error"),
}


# --------------------------------------------------------------------- errors (same shape as pynvml's)
class NVMLError(Exception):
    """``NVMLError(code)`` returns the code's subclass, as pynvml does; ``.value`` is the code."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - mirrors pynvml
    _errcode_to_string: dict[int, str] = {code: text for code, text in _ERROR_CODES.values()}  # noqa: RUF012

    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return NVMLError._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _error_classes() -> dict[str, type[NVMLError]]:
    """One subclass per code, named like pynvml names them (NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost)."""
    classes: dict[str, type[NVMLError]] = {}
    for const, (code, _) in _ERROR_CODES.items():
        name = "NVMLError_" + string.capwords(const.replace("NVML_ERROR_", ""), "_").replace("_", "")

        def new(cls: type[NVMLError], *args: Any, _code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, _code)

        cls = type(name, (NVMLError,), {"__new__": new, "__module__": "pynvml"})
        NVMLError._valClassMapping[code] = cls
        classes[name] = cls
    return classes


_ERROR_CLASSES = _error_classes()
NVMLError_Uninitialized = _ERROR_CLASSES["NVMLError_Uninitialized"]
NVMLError_InvalidArgument = _ERROR_CLASSES["NVMLError_InvalidArgument"]
NVMLError_NotSupported = _ERROR_CLASSES["NVMLError_NotSupported"]
NVMLError_NoPermission = _ERROR_CLASSES["NVMLError_NoPermission"]
NVMLError_NotFound = _ERROR_CLASSES["NVMLError_NotFound"]
NVMLError_DriverNotLoaded = _ERROR_CLASSES["NVMLError_DriverNotLoaded"]
NVMLError_LibraryNotFound = _ERROR_CLASSES["NVMLError_LibraryNotFound"]
NVMLError_GpuIsLost = _ERROR_CLASSES["NVMLError_GpuIsLost"]
NVMLError_Unknown = _ERROR_CLASSES["NVMLError_Unknown"]


# --------------------------------------------------------------------- devices
@dataclass(frozen=True)
class Fault:
    """An error a device raises on a schedule.

    Active when every given condition holds: ``from_time`` (perf_counter seconds)
    has passed, and more than ``after_calls`` calls of the affected functions have
    been made before this one. ``functions`` limits it to those NVML function
    names (None: every device function). ``times`` makes it transient: it clears
    after failing that many calls (None: it never clears).
    """

    code: int = NVML_ERROR_GPU_IS_LOST
    from_time: float | None = None
    after_calls: int | None = None
    functions: frozenset[str] | None = None
    times: int | None = None

    def applies_to(self, fn: str) -> bool:
        return self.functions is None or fn in self.functions


@dataclass
class Memory:
    """What ``nvmlDeviceGetMemoryInfo`` returns (bytes), like pynvml's ``c_nvmlMemory_t``."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class Call:
    """One answered (or failed) NVML call."""

    t: float  #: perf_counter seconds when the value was produced
    fn: str  #: NVML function name
    index: int | None  #: device index (None for library-level calls)
    value: Any  #: what was returned, or the NVMLError raised
    thread: str  #: name of the calling thread ("MainThread", "co2cb-sampler", ...)

    @property
    def failed(self) -> bool:
        return isinstance(self.value, NVMLError)


@dataclass
class FakeGpu:
    """A scripted GPU.

    Attributes:
        name: Product name.
        uuid: ``GPU-...`` identifier.
        power: Watts as a function of ``time.perf_counter()``; an object with an
            ``integral(a, b)`` method (:class:`Sine`, :class:`Constant`) gives the
            exact energy in closed form, any other callable is integrated numerically.
        has_energy_counter: False for pre-Volta devices (total energy NOT_SUPPORTED).
        counter_offset_mj: Counter value when the fake is made (energy since driver load).
        memory_total_bytes / memory_used_bytes: Memory figures.
        temperature_c: Core temperature.
        power_limit_w: Enforced power limit, watts.
        unsupported: NVML function names that answer NOT_SUPPORTED on this device.
        faults: Scripted errors (see :class:`Fault` and :meth:`lose`).
        module_power: Watts of the whole module (GPU, CPU, memory) as a function of time, for a
            Grace Hopper-style module; None: module power is not reported (NOT_SUPPORTED).
        reports: ``"gpu"`` or ``"module"``: what ``nvmlDeviceGetPowerUsage`` and the energy counter cover.
        mig_mode: Current MIG mode (``NVML_DEVICE_MIG_ENABLE``/``DISABLE``); None: no MIG (NOT_SUPPORTED).
        mig_devices: The MIG devices, by slot.
        max_mig_devices: Slots ``nvmlDeviceGetMaxMigDeviceCount`` reports; empty slots answer NOT_FOUND.
    """

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    power: Callable[[float], float] = field(default_factory=lambda: Constant(100.0))
    has_energy_counter: bool = True
    counter_offset_mj: int = 987_654_321_000
    memory_total_bytes: int = 80 * 2**30
    memory_used_bytes: int = 3 * 2**30
    temperature_c: int = 41
    power_limit_w: float = 700.0
    unsupported: frozenset[str] = frozenset()
    faults: list[Fault] = field(default_factory=list)
    module_power: Callable[[float], float] | None = None
    reports: str = "gpu"
    mig_mode: int | None = NVML_DEVICE_MIG_DISABLE
    mig_devices: list[FakeMig] = field(default_factory=list)
    max_mig_devices: int = 7
    index: int = -1  # set by FakePynvml
    calls: list[Call] = field(default_factory=list, repr=False)
    t_created: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._cache_t = self.t_created
        self._cache_j = 0.0

    # ------------------------------------------------------------- truth
    @property
    def _reported(self) -> Callable[[float], float]:
        """The power curve that the device's own figures (power reading, energy counter) follow."""
        if self.reports == "module":
            if self.module_power is None:
                raise ValueError("reports='module' needs module_power")
            return self.module_power
        return self.power

    def power_at(self, t: float) -> float:
        """Watts the device reports at perf_counter time ``t`` (the module's where ``reports="module"``)."""
        return float(self._reported(t))

    def energy_between(self, a: float, b: float) -> float:
        """Exact joules the device's counter counts between perf_counter times ``a`` and ``b``."""
        exact = getattr(self._reported, "integral", None)
        if exact is not None:
            return float(exact(a, b))
        return integrate(self.power_at, a, b)

    def counter_j(self, t: float) -> float:
        """Joules since the fake was made, at time ``t`` (cached for the sampler's ascending reads)."""
        if getattr(self._reported, "integral", None) is not None or t < self._cache_t:
            return self.energy_between(self.t_created, t)
        self._cache_j += integrate(self.power_at, self._cache_t, t)
        self._cache_t = t
        return self._cache_j

    def reset_counter(self, at: float | None = None) -> None:
        """The driver reloads at ``at`` (perf_counter seconds; default now): the energy counter starts again at 0."""
        t = time.perf_counter() if at is None else at
        self.counter_offset_mj = -math.floor(self.counter_j(t) * 1000)

    def lose(self, code: int = NVML_ERROR_GPU_IS_LOST, at: float | None = None) -> None:
        """Fail every call from ``at`` (perf_counter seconds; default now) on."""
        self.faults.append(Fault(code=code, from_time=time.perf_counter() if at is None else at))

    # ------------------------------------------------------------- log queries
    def returned(self, fn: str, thread: str | None = None) -> list[Call]:
        """Successful calls of ``fn`` (optionally only from one thread), oldest first."""
        return [c for c in list(self.calls) if c.fn == fn and not c.failed and (thread is None or c.thread == thread)]

    def failures(self) -> list[Call]:
        """Calls that raised, oldest first."""
        return [c for c in list(self.calls) if c.failed]

    # ------------------------------------------------------------- used by FakePynvml
    def _check_faults(self, fn: str, now: float) -> None:
        for k, fault in enumerate(self.faults):
            if not fault.applies_to(fn):
                continue
            key = f"fault{k}"
            made = self._counts.get(key, 0)
            self._counts[key] = made + 1
            if fault.from_time is not None and now < fault.from_time:
                continue
            if fault.after_calls is not None and made < fault.after_calls:
                continue
            raised = self._counts.get(f"raised{k}", 0)
            if fault.times is not None and raised >= fault.times:
                continue
            self._counts[f"raised{k}"] = raised + 1
            raise NVMLError(fault.code)
        if fn in self.unsupported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)


class _Handle:
    """Opaque device handle (pynvml returns a ``c_nvmlDevice_t`` pointer)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake nvmlDevice_t {self.index}>"


class _MigHandle(_Handle):
    """A MIG device handle: the parent GPU's index and the slot."""

    __slots__ = ("slot",)

    def __init__(self, index: int, slot: int) -> None:
        super().__init__(index)
        self.slot = slot

    def __repr__(self) -> str:
        return f"<fake MIG nvmlDevice_t {self.index}/{self.slot}>"


# --------------------------------------------------------------------- the module
_PUBLIC_CONSTANTS = (
    "NVML_SUCCESS",
    "NVML_TEMPERATURE_GPU",
    "NVML_FI_DEV_POWER_INSTANT",
    "NVML_POWER_SCOPE_GPU",
    "NVML_POWER_SCOPE_MODULE",
    "NVML_DEVICE_MIG_DISABLE",
    "NVML_DEVICE_MIG_ENABLE",
    "NVML_VALUE_TYPE_UNSIGNED_INT",
    "NVML_ERROR_NOT_FOUND",
    "NVML_ERROR_UNINITIALIZED",
    "NVML_ERROR_INVALID_ARGUMENT",
    "NVML_ERROR_NOT_SUPPORTED",
    "NVML_ERROR_NO_PERMISSION",
    "NVML_ERROR_DRIVER_NOT_LOADED",
    "NVML_ERROR_LIBRARY_NOT_FOUND",
    "NVML_ERROR_GPU_IS_LOST",
    "NVML_ERROR_UNKNOWN",
)

#: NVML functions the fake implements (the ones co2cb calls).
FUNCTIONS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetFieldValues",
    "nvmlDeviceGetMigMode",
    "nvmlDeviceGetMaxMigDeviceCount",
    "nvmlDeviceGetMigDeviceHandleByIndex",
    "nvmlDeviceGetGpuInstanceId",
    "nvmlDeviceGetComputeInstanceId",
    "nvmlDeviceGetAttributes",
)


class FakePynvml(ScopeAndMigCalls, types.ModuleType):
    """A module object to put in ``sys.modules["pynvml"]``.

    Args:
        gpus: The devices, in NVML index (PCI bus) order.
        init_error: If set, ``nvmlInit`` raises ``NVMLError(init_error)``, e.g.
            ``NVML_ERROR_LIBRARY_NOT_FOUND`` (no driver library) or
            ``NVML_ERROR_DRIVER_NOT_LOADED``.
    """

    def __init__(self, gpus: Sequence[FakeGpu] = (), init_error: int | None = None) -> None:
        super().__init__("pynvml", "Fake pynvml for co2cb tests (tests/fakes/fake_pynvml.py).")
        self.__file__ = __file__
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            gpu.index = i
        self.init_error = init_error
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        for const in _PUBLIC_CONSTANTS:
            setattr(self, const, globals()[const] if const in globals() else getattr(fake_pynvml_mig, const))
        self.NVMLError = NVMLError
        for name, cls in _ERROR_CLASSES.items():
            setattr(self, name, cls)

    # ------------------------------------------------------------- plumbing
    def _log(self, fn: str, index: int | None, value: Any, t: float | None = None) -> None:
        call = Call(time.perf_counter() if t is None else t, fn, index, value, threading.current_thread().name)
        self.calls.append(call)
        if index is not None:
            self.gpus[index].calls.append(call)

    def _device(self, fn: str, handle: Any, answer: Callable[[FakeGpu, float], Any], mig: bool = False) -> Any:
        """Answer a device call; ``mig``: whether the function also takes a MIG device handle."""
        with self._lock:
            if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
                raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
            if isinstance(handle, _MigHandle) and not mig:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            gpu = self.gpus[handle.index]
            now = time.perf_counter()
            try:
                if self.refcount <= 0:
                    raise NVMLError(NVML_ERROR_UNINITIALIZED)
                gpu._check_faults(fn, now)
                value = answer(gpu, now)
            except NVMLError as e:
                self._log(fn, handle.index, e, now)
                raise
            self._log(fn, handle.index, value, now)
            return value

    def _mig_handle(self, index: int, slot: int) -> _MigHandle:
        return _MigHandle(index, slot)

    # ------------------------------------------------------------- library
    def nvmlInit(self) -> None:
        with self._lock:
            self.init_calls += 1
            if self.init_error is not None:
                error = NVMLError(self.init_error)
                self._log("nvmlInit", None, error)
                raise error
            self.refcount += 1
            self._log("nvmlInit", None, None)

    def nvmlShutdown(self) -> None:
        with self._lock:
            self.shutdown_calls += 1
            if self.refcount <= 0:
                error = NVMLError(NVML_ERROR_UNINITIALIZED)
                self._log("nvmlShutdown", None, error)
                raise error
            self.refcount -= 1
            self._log("nvmlShutdown", None, None)

    def nvmlDeviceGetCount(self) -> int:
        with self._lock:
            if self.refcount <= 0:
                raise NVMLError(NVML_ERROR_UNINITIALIZED)
            self._log("nvmlDeviceGetCount", None, len(self.gpus))
            return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        with self._lock:
            if self.refcount <= 0:
                raise NVMLError(NVML_ERROR_UNINITIALIZED)
            if not isinstance(index, int) or not 0 <= index < len(self.gpus):
                raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self._device("nvmlDeviceGetHandleByIndex", _Handle(index), lambda gpu, now: _Handle(gpu.index))

    # ------------------------------------------------------------- devices
    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._device("nvmlDeviceGetName", handle, lambda gpu, now: gpu.name)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        def answer(gpu: FakeGpu, now: float) -> str:
            return gpu.mig_devices[handle.slot].uuid if isinstance(handle, _MigHandle) else gpu.uuid

        return self._device("nvmlDeviceGetUUID", handle, answer, mig=True)

    def nvmlDeviceGetMemoryInfo(self, handle: Any, version: Any = None) -> Memory:
        def answer(gpu: FakeGpu, now: float) -> Memory:
            free = gpu.memory_total_bytes - gpu.memory_used_bytes
            return Memory(total=gpu.memory_total_bytes, free=free, used=gpu.memory_used_bytes)

        return self._device("nvmlDeviceGetMemoryInfo", handle, answer)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        def answer(gpu: FakeGpu, now: float) -> int:
            if sensor != NVML_TEMPERATURE_GPU:
                raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
            return int(gpu.temperature_c)

        return self._device("nvmlDeviceGetTemperature", handle, answer)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:
        return self._device("nvmlDeviceGetEnforcedPowerLimit", handle, lambda gpu, now: round(gpu.power_limit_w * 1000))

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        """Milliwatts now (an integer, as NVML reports it)."""
        return self._device("nvmlDeviceGetPowerUsage", handle, lambda gpu, now: round(gpu.power_at(now) * 1000))

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        """Millijoules since the driver loaded (an integer); NOT_SUPPORTED before Volta."""

        def answer(gpu: FakeGpu, now: float) -> int:
            if not gpu.has_energy_counter:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            return gpu.counter_offset_mj + math.floor(gpu.counter_j(now) * 1000)

        return self._device("nvmlDeviceGetTotalEnergyConsumption", handle, answer)

    # ------------------------------------------------------------- helpers for tests
    def public_names(self) -> list[str]:
        """Every pynvml name this fake provides (functions, constants, error classes)."""
        return [*FUNCTIONS, *_PUBLIC_CONSTANTS, "NVMLError", *_ERROR_CLASSES]


def make_gpus(count: int, *, counter: bool | Iterable[bool] = True, **kwargs: Any) -> list[FakeGpu]:
    """``count`` distinct GPUs (names and UUIDs differ); ``counter`` per device or for all."""
    flags = [counter] * count if isinstance(counter, bool) else list(counter)
    return [
        FakeGpu(
            name=f"NVIDIA Fake GPU {i}",
            uuid=f"GPU-{i:x}{i:x}{i:x}{i:x}c0b2-1d5e-4a7f-9b31-{i:012x}",
            has_energy_counter=flags[i],
            **kwargs,
        )
        for i in range(count)
    ]
