"""A scripted stand-in for the ``amdsmi`` module (AMD SMI's Python bindings, ``pip install amdsmi``).

Install an instance as ``sys.modules["amdsmi"]`` and co2cb's real AMD code
(``co2cb.meters.amd``) runs unchanged against it. The fake implements the part of
amdsmi that co2cb uses, with the real names, signatures, units and exceptions, and
the dict keys of the release given as ``version`` (read from the released sources):

* ``amdsmi_get_energy_count``: ``"power"`` (the accumulator's old name) before 6.3,
  both ``"power"`` and ``"energy_accumulator"`` in 6.3, ``"energy_accumulator"`` from 6.4;
  the accumulator counts ``counter_resolution`` microjoules each and wraps at
  ``2**counter_bits``.
* ``amdsmi_get_power_info``: watts; ``"socket_power"`` from 7.0; ``"current_socket_power"``
  (MI300 and newer) or ``"average_socket_power"`` (MI200 and older) per device; a value the
  device does not report is ``"N/A"`` from 6.4 and the raw 0xFFFF before.
* ``amdsmi_get_gpu_enumeration_info`` (HIP index and UUID) from 6.4, ``amdsmi_get_gpu_kfd_info``
  from 6.3, ``amdsmi_get_gpu_driver_info`` and ``amdsmi_get_gpu_compute_partition`` from 6.0,
  ``__version__`` from 6.1: a function the release lacks is absent from the module.
* errors are ``AmdSmiLibraryException(code)`` (``AmdSmiRetryException``, ``AmdSmiTimeoutException``
  for those codes), with the real status codes; ``amdsmi_init`` is reference counted and every
  device call made while it is not initialised fails with ``AMDSMI_STATUS_NOT_INIT``.

Each :class:`FakeAmdGpu` draws power from a function of ``time.perf_counter()`` (the
traces of :mod:`tests.fakes.fake_pynvml`); its accumulator is the exact integral of
that function, so :meth:`FakeAmdGpu.energy_between` gives the truth. The fake reports
the instantaneous power under every power key (the real ``average_socket_power`` is a
one-second average). Every call is logged in :attr:`FakeAmdGpu.calls`.
"""

from __future__ import annotations

import enum
import math
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .traces import Constant, integrate

# amdsmi_status_t values (amdsmi_wrapper.py)
AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34

_ERROR_INFO = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_TIMEOUT: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    AMDSMI_STATUS_RETRY: "AMDSMI_STATUS_RETRY - Retry operation",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_BUSY: "AMDSMI_STATUS_BUSY - Device busy",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}


# --------------------------------------------------------------------- exceptions (as in amdsmi_exception.py)
class AmdSmiException(Exception):
    """Base smi exception class."""


class AmdSmiLibraryException(AmdSmiException):
    """A status code from the C library."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _ERROR_INFO.get(err_code, "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred")

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self, detailed: bool = True) -> str:
        return self.err_info if detailed else self.err_info.split(" - ")[0]

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    def __init__(self, receivedValue: Any, expectedType: Any, msg: str | None = None) -> None:
        super().__init__(msg)
        self.err_msg = msg or f"Invalid parameter:\nActual type: {type(receivedValue)}\nExpected type: {expectedType}"

    def __str__(self) -> str:
        return self.err_msg


def library_error(code: int) -> AmdSmiLibraryException:
    """The exception the real bindings raise for ``code`` (``_check_res``)."""
    if code == AMDSMI_STATUS_RETRY:
        return AmdSmiRetryException()
    if code == AMDSMI_STATUS_TIMEOUT:
        return AmdSmiTimeoutException()
    return AmdSmiLibraryException(code)


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1
    INIT_NON_AMD_CPUS = 1 << 2
    INIT_NON_AMD_GPUS = 1 << 3


# --------------------------------------------------------------------- devices
@dataclass
class AmdFault:
    """An error (or a delay) a device answers with, on a schedule.

    Active once ``from_time`` (perf_counter seconds) has passed and more than
    ``after_calls`` calls of the affected functions were made before; ``times`` limits
    how many calls fail (None: every later call); ``functions`` limits it to those
    amdsmi functions. ``delay_s`` makes each affected call take that long before it
    answers (with ``code=None`` it then succeeds).
    """

    code: int | None = AMDSMI_STATUS_NOT_FOUND
    from_time: float | None = None
    after_calls: int | None = None
    times: int | None = None
    functions: frozenset[str] | None = None
    delay_s: float = 0.0
    seen: int = 0
    fired: int = 0


@dataclass(frozen=True)
class AmdCall:
    """One answered (or failed) amdsmi call."""

    t: float
    fn: str
    index: int | None
    value: Any
    thread: str

    @property
    def failed(self) -> bool:
        return isinstance(self.value, AmdSmiException)


@dataclass
class FakeAmdGpu:
    """A scripted AMD GPU.

    Attributes:
        market_name: What ``amdsmi_get_gpu_asic_info`` calls the product.
        bdf: PCI address, ``dddd:bb:dd.f``.
        uuid: AMD SMI's device UUID.
        unique_id: The ASIC serial; ROCr and HIP name the device ``GPU-<16 hex digits>`` of it.
        hip_id: HIP's index of the device (enumeration info); None: the order given to the fake.
        kfd_node: KFD topology node (ROCr enumerates GPUs in this order); None: as ``hip_id``.
        power: Watts as a function of ``time.perf_counter()``.
        power_key: ``"current"`` (MI300 and newer fill ``current_socket_power``) or ``"average"``
            (MI200 and older fill ``average_socket_power``); ``None``: no power reading at all.
        has_energy_counter: False: ``amdsmi_get_energy_count`` answers NOT_SUPPORTED.
        counter_frozen: The accumulator never moves (a stale value, as reported on some MI100/MI210).
        counter_bits: The accumulator wraps at ``2**counter_bits``.
        counter_offset: The accumulator's raw value when the fake is made.
        counter_resolution: Microjoules per count (the real API returns a float32, 15.3 on MI200/MI300).
        power_cap_w: Current power cap, watts (reported in microwatts).
        compute_partition: ``"SPX"``, ``"CPX"``, ... (MI300).
        driver_version: What ``amdsmi_get_gpu_driver_info`` answers.
        faults: Scripted errors and delays.
    """

    market_name: str = "AMD Instinct MI300X"
    bdf: str = "0000:0c:00.0"
    uuid: str = "2bff74a1-0000-1000-80ce-b3f1d7a9c5e4"
    unique_id: int = 0xBD8DD4B0A3B5A9C8
    hip_id: int | None = None
    kfd_node: int | None = None
    power: Callable[[float], float] = field(default_factory=lambda: Constant(300.0))
    power_key: str | None = "current"
    has_energy_counter: bool = True
    counter_frozen: bool = False
    counter_bits: int = 64
    counter_offset: int = 4_750_896_266
    counter_resolution: float = 15.300000190734863
    power_cap_w: float = 750.0
    compute_partition: str = "SPX"
    driver_version: str = "6.10.5"
    faults: list[AmdFault] = field(default_factory=list)
    index: int = -1  # set by FakeAmdSmi
    calls: list[AmdCall] = field(default_factory=list, repr=False)
    t_created: float = field(default_factory=time.perf_counter)

    def energy_between(self, a: float, b: float) -> float:
        """Exact joules drawn between perf_counter times ``a`` and ``b``."""
        exact = getattr(self.power, "integral", None)
        return float(exact(a, b)) if exact is not None else integrate(lambda t: float(self.power(t)), a, b)

    def accumulator(self, t: float) -> int:
        """The raw accumulator at time ``t``."""
        if self.counter_frozen:
            return self.counter_offset
        counts = math.floor(self.energy_between(self.t_created, t) * 1e6 / self.counter_resolution)
        return (self.counter_offset + counts) % (2**self.counter_bits)

    def lose(self, code: int = AMDSMI_STATUS_NOT_FOUND, at: float | None = None) -> None:
        """Fail every call from ``at`` (perf_counter seconds; default now) on."""
        self.faults.append(AmdFault(code=code, from_time=time.perf_counter() if at is None else at))

    def returned(self, fn: str) -> list[AmdCall]:
        """Successful calls of ``fn``, oldest first."""
        return [c for c in list(self.calls) if c.fn == fn and not c.failed]

    def failures(self) -> list[AmdCall]:
        """Calls that raised, oldest first."""
        return [c for c in list(self.calls) if c.failed]

    def _check_faults(self, fn: str, now: float) -> None:
        for fault in self.faults:
            if fault.functions is not None and fn not in fault.functions:
                continue
            fault.seen += 1
            if fault.from_time is not None and now < fault.from_time:
                continue
            if fault.after_calls is not None and fault.seen <= fault.after_calls:
                continue
            if fault.times is not None and fault.fired >= fault.times:
                continue
            fault.fired += 1
            if fault.delay_s:
                time.sleep(fault.delay_s)
            if fault.code is not None:
                raise library_error(fault.code)


class _Handle:
    """Opaque processor handle (amdsmi returns an ``amdsmi_processor_handle`` pointer)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<fake amdsmi_processor_handle {self.index}>"


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


#: amdsmi functions the fake implements, with the release that introduced each.
FUNCTIONS = {
    "amdsmi_init": (5, 7),
    "amdsmi_shut_down": (5, 7),
    "amdsmi_get_processor_handles": (5, 7),
    "amdsmi_get_gpu_device_bdf": (5, 7),
    "amdsmi_get_gpu_device_uuid": (5, 7),
    "amdsmi_get_gpu_asic_info": (5, 7),
    "amdsmi_get_power_cap_info": (5, 7),
    "amdsmi_get_power_info": (5, 7),
    "amdsmi_get_energy_count": (5, 7),
    "amdsmi_get_lib_version": (5, 7),
    "amdsmi_get_gpu_driver_info": (6, 0),
    "amdsmi_get_gpu_compute_partition": (6, 0),
    "amdsmi_get_gpu_kfd_info": (6, 3),
    "amdsmi_get_gpu_enumeration_info": (6, 4),
}

_NOT_REPORTED = 0xFFFF


class FakeAmdSmi(types.ModuleType):
    """A module object to put in ``sys.modules["amdsmi"]``.

    Args:
        gpus: The devices, in the order ``amdsmi_get_processor_handles`` lists them.
        version: The amdsmi release to imitate (``"7.0.2"``, ``"6.4.4"``, ``"6.1.2"``, ...).
        init_error: If set, ``amdsmi_init`` raises ``AmdSmiLibraryException(init_error)``.
    """

    def __init__(self, gpus: Sequence[FakeAmdGpu] = (), version: str = "7.0.2", init_error: int | None = None) -> None:
        super().__init__("amdsmi", "Fake amdsmi for co2cb tests (tests/fakes/fake_amdsmi.py).")
        self.__file__ = __file__
        self.release = _release(version)
        if self.release >= (6, 1):
            self.__version__ = version
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            gpu.index = i
        self.init_error = init_error
        self.refcount = 0
        self.init_calls = 0
        self._lock = threading.RLock()
        for name in ("AmdSmiException", "AmdSmiLibraryException", "AmdSmiRetryException", "AmdSmiTimeoutException"):
            setattr(self, name, globals()[name])
        self.AmdSmiParameterException = AmdSmiParameterException
        self.AmdSmiInitFlags = AmdSmiInitFlags
        self._missing = {name for name, since in FUNCTIONS.items() if self.release < since}

    def __getattribute__(self, name: str) -> Any:
        """Functions the imitated release lacks are absent, as in the real module."""
        if name in FUNCTIONS and name in object.__getattribute__(self, "_missing"):
            raise AttributeError(f"module 'amdsmi' has no attribute {name!r}")
        return object.__getattribute__(self, name)

    # ------------------------------------------------------------- plumbing
    def _log(self, fn: str, index: int | None, value: Any, t: float) -> None:
        call = AmdCall(t, fn, index, value, threading.current_thread().name)
        if index is not None:
            self.gpus[index].calls.append(call)

    def _device(self, fn: str, handle: Any, answer: Callable[[FakeAmdGpu, float], Any]) -> Any:
        if not isinstance(handle, _Handle):
            raise AmdSmiParameterException(handle, _Handle)
        gpu = self.gpus[handle.index]
        with self._lock:
            initialised = self.refcount > 0
        now = time.perf_counter()
        try:
            if not initialised:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
            gpu._check_faults(fn, now)
            now = time.perf_counter()
            value = answer(gpu, now)
        except AmdSmiException as e:
            self._log(fn, handle.index, e, now)
            raise
        self._log(fn, handle.index, value, now)
        return value

    # ------------------------------------------------------------- library
    def amdsmi_init(self, flag: AmdSmiInitFlags = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        with self._lock:
            self.init_calls += 1
            if self.init_error is not None:
                raise AmdSmiLibraryException(self.init_error)
            self.refcount += 1

    def amdsmi_shut_down(self) -> None:
        with self._lock:
            if self.refcount <= 0:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
            self.refcount -= 1

    def amdsmi_get_processor_handles(self) -> list[_Handle]:
        with self._lock:
            if self.refcount <= 0:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
            return [_Handle(i) for i in range(len(self.gpus))]

    def amdsmi_get_lib_version(self) -> dict[str, Any]:
        with self._lock:
            if self.refcount <= 0:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        version = {"major": 25, "minor": 5, "release": 1, "build": "0"}
        return {"year": 24, **version} if self.release < (6, 4) else version

    # ------------------------------------------------------------- devices
    def amdsmi_get_gpu_device_bdf(self, processor_handle: Any) -> str:
        return self._device("amdsmi_get_gpu_device_bdf", processor_handle, lambda g, now: g.bdf)

    def amdsmi_get_gpu_device_uuid(self, processor_handle: Any) -> str:
        return self._device("amdsmi_get_gpu_device_uuid", processor_handle, lambda g, now: g.uuid)

    def amdsmi_get_gpu_asic_info(self, processor_handle: Any) -> dict[str, Any]:
        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            return {
                "market_name": g.market_name,
                "vendor_id": "0x1002",
                "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
                "device_id": "0x74a1",
                "rev_id": "0x00",
                "asic_serial": f"0x{g.unique_id:016X}",
                "oam_id": g.index,
            }

        return self._device("amdsmi_get_gpu_asic_info", processor_handle, answer)

    def amdsmi_get_gpu_enumeration_info(self, processor_handle: Any) -> dict[str, Any]:
        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            hip = g.index if g.hip_id is None else g.hip_id
            return {
                "drm_render": 128 + g.index,
                "drm_card": g.index,
                "hsa_id": hip + 1,
                "hip_id": hip,
                "hip_uuid": f"GPU-{g.unique_id:016x}",
            }

        return self._device("amdsmi_get_gpu_enumeration_info", processor_handle, answer)

    def amdsmi_get_gpu_kfd_info(self, processor_handle: Any) -> dict[str, Any]:
        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            node = g.kfd_node if g.kfd_node is not None else (g.index if g.hip_id is None else g.hip_id) + 1
            return {"kfd_id": 1000 + node, "node_id": node, "current_partition_id": 0}

        return self._device("amdsmi_get_gpu_kfd_info", processor_handle, answer)

    def amdsmi_get_gpu_driver_info(self, processor_handle: Any) -> dict[str, Any]:
        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            return {"driver_name": "amdgpu", "driver_version": g.driver_version, "driver_date": "2015/01/01 00:00"}

        return self._device("amdsmi_get_gpu_driver_info", processor_handle, answer)

    def amdsmi_get_gpu_compute_partition(self, processor_handle: Any) -> str:
        return self._device("amdsmi_get_gpu_compute_partition", processor_handle, lambda g, now: g.compute_partition)

    def amdsmi_get_power_cap_info(self, processor_handle: Any) -> dict[str, Any]:
        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            cap_uw = round(g.power_cap_w * 1e6)
            return {
                "power_cap": cap_uw,
                "default_power_cap": cap_uw,
                "dpm_cap": 2100,
                "min_power_cap": 0,
                "max_power_cap": cap_uw,
            }

        return self._device("amdsmi_get_power_cap_info", processor_handle, answer)

    def amdsmi_get_power_info(self, processor_handle: Any) -> dict[str, Any]:
        """Watts (integers), with the keys of the imitated release."""

        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            watts = round(float(g.power(now)))
            current = watts if g.power_key == "current" else _NOT_REPORTED
            average = watts if g.power_key == "average" else _NOT_REPORTED
            info: dict[str, Any] = {}
            if self.release >= (7, 0):
                info["socket_power"] = watts if g.power_key is not None else _NOT_REPORTED
            if self.release >= (6, 0):
                info["current_socket_power"] = current
            info.update(average_socket_power=average, gfx_voltage=800, soc_voltage=900, mem_voltage=1100)
            info["power_limit"] = round(g.power_cap_w)
            if self.release >= (6, 4):
                info = {k: "N/A" if v == _NOT_REPORTED else v for k, v in info.items()}
            return info

        return self._device("amdsmi_get_power_info", processor_handle, answer)

    def amdsmi_get_energy_count(self, processor_handle: Any) -> dict[str, Any]:
        """The accumulator, its resolution (microjoules per count) and a timestamp (ns)."""

        def answer(g: FakeAmdGpu, now: float) -> dict[str, Any]:
            if not g.has_energy_counter:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
            raw = g.accumulator(now)
            if self.release >= (6, 4):
                counts = {"energy_accumulator": raw}
            elif self.release >= (6, 3):
                counts = {"power": raw, "energy_accumulator": raw}
            else:
                counts = {"power": raw}
            return {**counts, "counter_resolution": g.counter_resolution, "timestamp": int(now * 1e9)}

        return self._device("amdsmi_get_energy_count", processor_handle, answer)

    # ------------------------------------------------------------- helpers for tests
    def public_names(self) -> list[str]:
        """Every amdsmi name this fake provides (functions of its release, exceptions, flags)."""
        functions = [n for n, since in FUNCTIONS.items() if self.release >= since]
        return [
            *functions,
            "AmdSmiException",
            "AmdSmiLibraryException",
            "AmdSmiRetryException",
            "AmdSmiTimeoutException",
            "AmdSmiParameterException",
            "AmdSmiInitFlags",
        ]
