"""What CPU this is, whether it is virtual, and how much power such a CPU draws.

Used by the CPU estimate when RAPL is not available. Everything here is pure standard library
and never raises on a missing or unreadable file: "don't know" is ``None`` (or the documented
default).

* :mod:`~co2cb.meters.cpu.identify`: the model name, CPUID signature and sockets from
  ``/proc/cpuinfo``; the cloud or hypervisor from DMI.
* :mod:`~co2cb.meters.cpu.names`: model names cleaned for matching.
* :mod:`~co2cb.meters.cpu.tdp`: :func:`lookup_tdp`, the thermal design power (TDP, watts per
  socket) of a CPU model, from vendor datasets (Intel ARK, AMD) and aggregated lists
  (CodeCarbon, Eco2AI).
* :mod:`~co2cb.meters.cpu.architecture`: the microarchitecture from the name or the signature.
* :mod:`~co2cb.meters.cpu.vcpu`: :func:`vcpu_power`, idle and full-load watts per vCPU of a
  microarchitecture, from the Cloud Carbon Footprint coefficients (derived from
  SPECpower_ssj2008 results). Power of one vCPU at utilisation ``u`` (0..1) is
  ``min_w + u * (max_w - min_w)``.

The tables live in ``co2cb/data`` (built by :mod:`tools.build_cpu_tables`, attributions in
``co2cb/data/ATTRIBUTION.md``).
"""

from co2cb.meters.cpu.architecture import architecture_from_name, architecture_from_signature
from co2cb.meters.cpu.identify import (
    CpuSignature,
    count_sockets,
    detect_virtualization,
    read_cpu_model,
    read_cpu_signature,
)
from co2cb.meters.cpu.names import normalise_model_name
from co2cb.meters.cpu.tdp import TdpMatch, lookup_tdp
from co2cb.meters.cpu.vcpu import VcpuPower, vcpu_power

__all__ = [
    "CpuSignature",
    "TdpMatch",
    "VcpuPower",
    "architecture_from_name",
    "architecture_from_signature",
    "count_sockets",
    "detect_virtualization",
    "lookup_tdp",
    "normalise_model_name",
    "read_cpu_model",
    "read_cpu_signature",
    "vcpu_power",
]
