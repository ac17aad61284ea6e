"""AMD GPU energy through AMD SMI (the ``amdsmi`` package, which needs ROCm's ``libamd_smi.so`` at run time).

Energy comes from the GPU's energy accumulator (``amdsmi_get_energy_count``: a count
of ``counter_resolution`` microjoules, kept in hardware) where it works, otherwise
from the socket power (``amdsmi_get_power_info``, watts) that the sampler
integrates. At discovery the accumulator is checked against the power reading over
:data:`COUNTER_CHECK_S` seconds: on some MI100/MI210 setups it returns a value that
never moves (ROCm/amdsmi#38, ROCm/rocm_smi_lib#180). A decrease of the accumulator
is a wrap at 2**32 counts when the last value fitted in 32 bits (firmware with a
32-bit accumulator), else a restart from zero (driver reload), counted from its new
value. A GPU is counted whole; AMD SMI reports power per socket, so on a partitioned
MI300 (CPX, ...) or the second die of an MI250 the figure is the package's, shown
on its first device.

The dict keys differ between amdsmi releases; read from the released sources
(6.0 to 7.0.2): the accumulator is ``"power"`` before 6.3 and
``"energy_accumulator"`` from 6.3; ``amdsmi_get_power_info`` has
``"current_socket_power"`` (MI300 and newer) and ``"average_socket_power"`` (MI200
and older) from 6.0 and ``"socket_power"`` from 7.0, a value the device does not
report being ``"N/A"`` from 6.4 and a 0xFFFF-style sentinel before;
``amdsmi_get_gpu_enumeration_info`` (HIP index, 6.4) and ``amdsmi_get_gpu_kfd_info``
(KFD node, 6.3) may be missing.

Which GPUs: in HIP's order (the HIP index from AMD SMI, else the KFD node order that
ROCr enumerates in, else PCI bus order), ``ROCR_VISIBLE_DEVICES`` first, then
``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES`` when HIP's is unset) among those,
then ``gpus=[...]`` as ordinals among the visible devices (ROCm builds of PyTorch
name them ``cuda:N``) or ``GPU-...`` UUIDs, as :mod:`co2cb.meters.visible` reads them.

Any exception from ``import amdsmi`` (7.0.2 raises ``KeyError('libamd_smi.so')``
where ROCm is missing) or from ``amdsmi_init`` means "no AMD GPU", said in the
reason, never raised. This is the only module that calls amdsmi.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from co2cb.meters import visible
from co2cb.meters.base import Component, Meter, MeterError, MeterInfo, Provenance, ReadingKind, TransientMeterError

log = logging.getLogger(__name__)

COUNTER_CHECK_S = 0.5
"""Seconds over which discovery compares the accumulator with the power reading."""
COUNTER_RATIO = (0.1, 10.0)
"""The accumulator is used when its energy over the check is within this factor of power x time."""
TRANSIENT_STATUS = frozenset({8, 9, 11, 30})
"""amdsmi_status_t codes retried within one read: TIMEOUT, RETRY, INTERRUPT, BUSY."""
RETRIES = 2
"""Further attempts of a call that failed with a transient status."""
MAX_PACKAGE_W = 5000.0
"""No GPU package draws more: a 32-bit wrap that would mean more power than this is a restart instead."""

_POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")
_SENTINELS = frozenset({0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF})
_WRAP_32 = 2**32
ROCR, HIP, CUDA = "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class AmdGpu:
    """An AMD GPU as AMD SMI reports it when co2cb starts.

    Attributes:
        index: Position in HIP's order among all AMD GPUs of the machine.
        name: Product name, e.g. ``"AMD Instinct MI300X"``.
        uuid: ``GPU-`` and the ASIC serial in hex, as ROCr and HIP name the device (None if not reported).
        bdf: PCI address.
        power_limit_w: Current power cap, watts (None if not reported).
        power_draw_w: Socket power at discovery, watts (None if not reported).
        energy_counter: Whether the energy accumulator is read (it passed the check).
        counter_check: What the check found, in words.
        power_key: The ``amdsmi_get_power_info`` key that gives this device's power (None: none does).
        compute_partition: ``"SPX"``, ``"CPX"``, ... (None if not reported).
        driver_version: The amdgpu driver's version (None if not reported).
    """

    index: int
    name: str
    uuid: str | None
    bdf: str
    power_limit_w: float | None
    power_draw_w: float | None
    energy_counter: bool
    counter_check: str
    power_key: str | None
    compute_partition: str | None
    driver_version: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


_LOAD_FAILED: dict[str, str] = {}
"""Why amdsmi could not load in this process: its package is there but ROCm's library is not (a failed import
leaves no module behind, so each try would run the package's code again, about 1.5 ms)."""


def load_amdsmi() -> tuple[ModuleType | None, str]:
    """The amdsmi module, or None and why not.

    amdsmi prints to stdout when it cannot find its library; that text is kept for
    the reason instead of reaching the user's output. A load that failed is not tried again in the
    same process, unless a module has been put in ``sys.modules`` since.
    """
    if "amdsmi" not in sys.modules and "amdsmi" in _LOAD_FAILED:
        return None, _LOAD_FAILED["amdsmi"]
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said):
            return importlib.import_module("amdsmi"), ""
    except ModuleNotFoundError as e:
        if e.name == "amdsmi":
            return None, "amdsmi is not installed (pip install amdsmi; it needs ROCm's libamd_smi.so)"
        return None, f"amdsmi could not load ({e})"
    except Exception as e:  # noqa: BLE001 - KeyError('libamd_smi.so'), OSError, AttributeError on a version mismatch
        printed = [line for line in said.getvalue().splitlines() if line.strip()]
        extra = f"; {printed[0].strip()}" if printed else ""
        why = f"amdsmi could not load ({type(e).__name__}: {e}{extra}): no ROCm library, so no AMD GPU"
        _LOAD_FAILED["amdsmi"] = why
        return None, why


def _error(e: BaseException) -> str:
    """An amdsmi error on one line (its ``str`` spans two); other errors with their type."""
    info = getattr(e, "get_error_info", None)
    return str(info()) if callable(info) else f"{type(e).__name__}: {' '.join(str(e).split())}"


def _optional(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args) if fn is not None else None
    except Exception:  # noqa: BLE001 - any failure means "not reported"
        return None


def _number(value: Any) -> float | None:
    """A reading as a float, or None where the device reports none ("N/A", a 0xFFFF-style sentinel)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value in _SENTINELS:
        return None
    return float(value)


def power_reading(info: Mapping[str, Any], key: str | None = None) -> tuple[str | None, float | None]:
    """The key that holds the device's socket power and its value in watts (zero counts as not reported)."""
    for k in (key,) if key else _POWER_KEYS:
        watts = _number(info.get(k))
        if watts:
            return k, watts
    return None, None


def accumulator(reading: Mapping[str, Any]) -> int:
    """The raw accumulator of an ``amdsmi_get_energy_count`` answer, under its old or new key."""
    raw = reading.get("energy_accumulator", reading.get("power"))
    if not isinstance(raw, int):
        raise MeterError(f"amdsmi_get_energy_count answered without an accumulator: {dict(reading)!r}")
    return raw


def counter_delta(prev: int, cur: int, max_counts: float = float("inf")) -> tuple[int, bool]:
    """Counts between two accumulator readings and whether the accumulator restarted.

    A decrease from a value below 2**32 is a 32-bit wrap, unless the counts it would
    mean exceed ``max_counts`` (what the package could draw at most since the last
    reading); any other decrease is a restart from zero, whose counts since are ``cur``.
    """
    if cur >= prev:
        return cur - prev, False
    if prev < _WRAP_32 and cur + _WRAP_32 - prev <= max_counts:
        return cur + _WRAP_32 - prev, False
    return cur, True


def _call(amdsmi: ModuleType, fn: Any, *args: Any) -> Any:
    """``fn(*args)``, retried up to :data:`RETRIES` times on a transient status."""
    for attempt in range(RETRIES + 1):
        try:
            return fn(*args)
        except amdsmi.AmdSmiLibraryException as e:
            if e.get_error_code() not in TRANSIENT_STATUS or attempt == RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class AmdSmiMeter(Meter):
    """Energy of one AMD GPU: its accumulator (counter) or its socket power (sampled)."""

    def __init__(self, amdsmi: ModuleType, handle: Any, device: AmdGpu, library: Mapping[str, Any]) -> None:
        """Open the device; ``library`` holds the amdsmi and library versions for the record."""
        self._smi = amdsmi
        self._handle = handle
        self.device = device
        amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)  # reference-counted; balanced in close()
        self._open = True
        self._restarts = 0
        self._counts = 0
        self.reading = ReadingKind.COUNTER if device.energy_counter else ReadingKind.POWER
        try:
            if device.energy_counter:
                first = _call(amdsmi, amdsmi.amdsmi_get_energy_count, handle)
                self._prev = accumulator(first)
                self._uj_per_count = float(first["counter_resolution"])
                self._prev_at = time.monotonic()
        except BaseException:
            self.close()
            raise
        how = (
            f"AMD SMI energy accumulator (amdsmi_get_energy_count) of the {device.name}"
            if device.energy_counter
            else f"AMD SMI socket power ({device.power_key}) of the {device.name}, sampled"
        )
        details = {**device.as_dict(), **library, "method": how}
        details["energy_scope"] = "the GPU package (AMD SMI reports power and energy per socket)"
        details["covers"] = ["gpu"]
        self._info = MeterInfo(
            name=f"amdgpu:{device.index}",
            component=Component.GPU,
            provenance=Provenance.MEASURED_COUNTER if device.energy_counter else Provenance.SAMPLED_POWER,
            details=details,
        )

    @property
    def info(self) -> MeterInfo:
        """Name, component and provenance of this meter."""
        return self._info

    def read(self) -> float:
        """Joules since the meter was made (counter) or watts now (power)."""
        try:
            if self.reading is ReadingKind.POWER:
                info = _call(self._smi, self._smi.amdsmi_get_power_info, self._handle)
                watts = _number(info.get(self.device.power_key))
                if watts is None:
                    key = self.device.power_key
                    raise MeterError(f"AMD GPU {self.device.index}: amdsmi_get_power_info gave {key}={info.get(key)!r}")
                return watts
            cur = accumulator(_call(self._smi, self._smi.amdsmi_get_energy_count, self._handle))
        except self._smi.AmdSmiException as e:
            what = f"AMD SMI error on GPU {self.device.index} ({self.device.name}): {_error(e)}"
            code = getattr(e, "get_error_code", None)
            if callable(code) and code() in TRANSIENT_STATUS:  # still busy after the retries: skip this reading
                raise TransientMeterError(what) from e
            raise MeterError(what) from e
        now = time.monotonic()
        most = MAX_PACKAGE_W * (now - self._prev_at) / (self._uj_per_count * 1e-6)
        delta, restarted = counter_delta(self._prev, cur, most)
        self._prev_at = now
        if restarted:
            self._restarts += 1
            self.note(  # said once and recorded by the sampler
                f"the energy accumulator of AMD GPU {self.device.index} went back from {self._prev} to {cur} "
                "(driver reload?): counting on from its new value; the energy between the last reading and the "
                "reload is not counted"
            )
        self._prev = cur
        self._counts += delta
        return self._counts * self._uj_per_count * 1e-6

    def close(self) -> None:
        """Release the library's reference (safe to call twice)."""
        if self._open:
            self._open = False
            _optional(self._smi.amdsmi_shut_down)


def _identify(amdsmi: ModuleType, handles: Sequence[Any]) -> tuple[list[int], list[list[str]], str]:
    """Handle positions in HIP's order, the ``GPU-`` identifiers of each (in that order), and how it was found."""
    bdfs = [str(amdsmi.amdsmi_get_gpu_device_bdf(h)) for h in handles]
    enum = [_optional(getattr(amdsmi, "amdsmi_get_gpu_enumeration_info", None), h) or {} for h in handles]
    hip = [x for x in (e.get("hip_id") for e in enum) if isinstance(x, int)]
    kfd_info = [_optional(getattr(amdsmi, "amdsmi_get_gpu_kfd_info", None), h) or {} for h in handles]
    kfd = [x for x in (k.get("node_id") for k in kfd_info) if isinstance(x, int)]
    if len(set(hip)) == len(handles):  # every device has its own HIP index
        order, how = sorted(range(len(handles)), key=hip.__getitem__), "HIP index (AMD SMI enumeration info)"
    elif len(set(kfd)) == len(handles):
        order, how = sorted(range(len(handles)), key=kfd.__getitem__), "KFD node (ROCr's order)"
    else:
        order, how = sorted(range(len(handles)), key=lambda j: bdfs[j].lower()), "PCI bus order"
    ids: list[list[str]] = []
    for j in order:
        serial = str((_optional(amdsmi.amdsmi_get_gpu_asic_info, handles[j]) or {}).get("asic_serial", ""))
        names = [f"GPU-{serial[2:].lower()}"] if serial.lower().startswith("0x") else []
        hip_uuid = enum[j].get("hip_uuid")
        if isinstance(hip_uuid, str) and hip_uuid.startswith("GPU-") and hip_uuid.lower() not in map(str.lower, names):
            names.append(hip_uuid)
        ids.append(names)
    return order, ids, how


def select(
    requested: Sequence[int | str] | None, ids: Sequence[Sequence[str]], env: Mapping[str, str]
) -> tuple[list[int], str, str]:
    """Positions (in HIP's order) of the GPUs this process may use, which setting chose them, and the settings.

    Raises:
        ValueError: ``requested`` names a GPU that is not visible.
    """
    rocr = visible.parse_visible(env.get(ROCR), ids)
    hip_name = HIP if env.get(HIP) is not None else CUDA
    hip = visible.parse_visible(env.get(hip_name), [ids[i] for i in rocr])
    shown = [rocr[i] for i in hip]
    set_vars = [f"{k}={env[k]!r}" for k in (ROCR, hip_name) if env.get(k) is not None]
    where = ", ".join(set_vars) or f"{HIP}, {ROCR} and {CUDA} unset"
    chosen = visible.choose(requested, shown, ids, where)
    how = "explicit gpus=" if requested is not None else (" and ".join(k.split("=")[0] for k in set_vars) or "all")
    return chosen, how, where


def _check(amdsmi: ModuleType, handles: Sequence[Any]) -> list[tuple[bool, str, str | None, float | None]]:
    """For each handle: use the accumulator?, what the check found, the power key and the power at discovery."""

    def probe(h: Any) -> tuple[int | None, float, float | None, str | None, float]:
        energy = _optional(amdsmi.amdsmi_get_energy_count, h)
        key, watts = power_reading(_optional(amdsmi.amdsmi_get_power_info, h) or {})
        raw = energy.get("energy_accumulator", energy.get("power")) if energy else None
        res = float(energy["counter_resolution"]) if energy else 0.0
        return (raw if isinstance(raw, int) else None), res, watts, key, time.perf_counter()

    first = [probe(h) for h in handles]
    if any(p[0] is not None for p in first):
        time.sleep(COUNTER_CHECK_S)
    found = []
    for h, (raw0, res, w0, key, t0) in zip(handles, first):
        raw1, _, w1, key1, t1 = probe(h) if raw0 is not None else (None, 0.0, None, None, 0.0)
        key = key or key1
        watts = w0 if w0 is not None else w1
        if raw0 is None or raw1 is None:
            found.append((False, "no energy accumulator (amdsmi_get_energy_count not supported)", key, watts))
            continue
        joules = counter_delta(raw0, raw1)[0] * res * 1e-6
        powers = [w for w in (w0, w1) if w is not None]
        if not powers:
            ok = joules > 0
            text = "accumulator moves; not cross-checked (no power reading)" if ok else "accumulator does not move"
        else:
            expected = sum(powers) / len(powers) * (t1 - t0)
            ok = COUNTER_RATIO[0] < joules / expected < COUNTER_RATIO[1]
            text = f"accumulator {joules:.3g} J against power x time {expected:.3g} J over {t1 - t0:.2f} s"
            text += "" if ok else f" (outside {COUNTER_RATIO[0]:g}-{COUNTER_RATIO[1]:g}x: not used)"
        found.append((ok, text, key, watts))
    return found


def _describe(amdsmi: ModuleType, handle: Any, index: int, uuid: str | None, check: tuple[Any, ...]) -> AmdGpu:
    ok, text, key, watts = check
    asic = _optional(amdsmi.amdsmi_get_gpu_asic_info, handle) or {}
    cap = _number((_optional(amdsmi.amdsmi_get_power_cap_info, handle) or {}).get("power_cap"))
    driver = _optional(getattr(amdsmi, "amdsmi_get_gpu_driver_info", None), handle) or {}
    partition = _optional(getattr(amdsmi, "amdsmi_get_gpu_compute_partition", None), handle)
    return AmdGpu(
        index=index,
        name=str(asic.get("market_name") or "AMD GPU"),
        uuid=uuid,
        bdf=str(amdsmi.amdsmi_get_gpu_device_bdf(handle)),
        power_limit_w=cap / 1e6 if cap is not None else None,  # microwatts on Linux
        power_draw_w=watts,
        energy_counter=ok,
        counter_check=text,
        power_key=key,
        compute_partition=str(partition) if partition else None,
        driver_version=str(driver["driver_version"]) if driver.get("driver_version") not in (None, "N/A") else None,
    )


def _library(amdsmi: ModuleType) -> dict[str, Any]:
    version = _optional(amdsmi.amdsmi_get_lib_version) or {}
    parts = [version.get(k) for k in ("year", "major", "minor", "release") if version.get(k) is not None]
    return {
        "amdsmi_version": str(getattr(amdsmi, "__version__", "before 6.1 (no __version__)")),
        "library_version": ".".join(str(p) for p in parts) or None,
    }


def discover_amd_gpus(requested: Sequence[int | str] | None = None) -> tuple[list[AmdSmiMeter], str]:
    """Meters for the AMD GPUs this process may use, and why these (or none).

    Never raises for missing hardware or software; raises ValueError only when
    ``requested`` names a GPU that AMD SMI lists but the process may not use.
    """
    amdsmi, why = load_amdsmi()
    if amdsmi is None:
        return [], why
    try:
        amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
    except Exception as e:  # noqa: BLE001 - no driver, no GPU, a library/bindings mismatch
        return [], f"AMD SMI could not start ({_error(e)}): no AMD GPU driver or GPU"
    meters: list[AmdSmiMeter] = []
    skipped: list[str] = []
    try:
        try:
            handles = list(amdsmi.amdsmi_get_processor_handles())
            order, ids, ordered_by = _identify(amdsmi, handles)
        except Exception as e:  # noqa: BLE001 - whatever the bindings raise, there is no AMD meter
            return [], f"AMD SMI failed while listing GPUs: {_error(e)}"
        if not handles:
            return [], "AMD SMI found no GPU"
        chosen, how, where = select(requested, ids, os.environ)  # ValueError: gpus= names a GPU not visible
        if not chosen:
            return [], f"no AMD GPU visible to this process ({where})"
        checks = _check(amdsmi, [handles[order[i]] for i in chosen])
        library = _library(amdsmi)
        for i, check in zip(chosen, checks):
            handle = handles[order[i]]
            if not check[0] and check[2] is None:
                skipped.append(
                    f"amdgpu:{i} reports neither energy nor power ({check[1]}); on an MI250 die or a partitioned "
                    "MI300 AMD SMI shows the package's figures on its first device"
                )
                continue
            try:
                device = _describe(amdsmi, handle, i, ids[i][0] if ids[i] else None, check)
                meters.append(AmdSmiMeter(amdsmi, handle, device, library))
            except Exception as e:  # noqa: BLE001 - one broken GPU must not hide the others
                skipped.append(f"amdgpu:{i} skipped ({_error(e)})")
    finally:
        _optional(amdsmi.amdsmi_shut_down)
    if not meters:
        return [], "; ".join(skipped)
    kinds = ", ".join(f"amdgpu:{m.device.index} {m.info.provenance.value}" for m in meters)
    text = f"{len(meters)} of {len(handles)} AMD GPU(s) by {how} ({ordered_by}; {library['amdsmi_version']}): {kinds}"
    return meters, text + "".join(f"; {x}" for x in skipped)
