"""Idle and full-load watts of one vCPU, by microarchitecture and cloud provider.

From the shipped table ``co2cb/data/vcpu_power.csv``: the Cloud Carbon Footprint coefficients
(derived from SPECpower_ssj2008 results), one table per provider (AWS, GCP, Azure). Power of one
vCPU at utilisation ``u`` (0..1) is ``min_w + u * (max_w - min_w)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from co2cb.meters.cpu.architecture import architecture_from_name, architecture_from_signature
from co2cb.meters.cpu.identify import CpuSignature
from co2cb.meters.cpu.tables import parse_year, read_package_csv

VCPU_TABLE = "vcpu_power.csv"
UNKNOWN_ARCHITECTURE = "unknown (average of all)"
DEFAULT_PROVIDER = "aws"


@dataclass(frozen=True)
class VcpuPower:
    """Idle and full-load power of one vCPU.

    Attributes:
        architecture: Microarchitecture row used, or ``"unknown (average of all)"``.
        min_w: Power of one idle vCPU, watts.
        max_w: Power of one fully loaded vCPU, watts.
        source: Where the figures come from (provider table included).
        year: Snapshot year of the coefficients.
    """

    architecture: str
    min_w: float
    max_w: float
    source: str
    year: int | None


_PROVIDERS = (("aws", ("aws", "amazon", "ec2")), ("gcp", ("gcp", "google")), ("azure", ("azure",)))


def _provider_key(provider: str | None) -> str | None:
    """``"aws"``, ``"gcp"`` or ``"azure"`` for a provider or a ``detect_virtualization`` name, else None."""
    text = (provider or "").lower()
    return next((key for key, needles in _PROVIDERS if any(n in text for n in needles)), None)


@functools.cache
def _vcpu_rows() -> dict[str, tuple[str, dict[str, VcpuPower]]]:
    """The per-vCPU table, loaded once: provider -> (source, architecture -> row)."""
    table: dict[str, tuple[str, dict[str, VcpuPower]]] = {}
    for row in read_package_csv(VCPU_TABLE):
        source = f"{row['source']}, {row['provider']} table"
        power = VcpuPower(
            row["architecture"], float(row["min_w"]), float(row["max_w"]), source, parse_year(row["year"])
        )
        table.setdefault(row["provider"], (row["source"], {}))[1][row["architecture"]] = power
    return table


def _average(provider: str) -> VcpuPower:
    """Mean idle and full-load watts over every architecture of one provider's table."""
    source, rows = _vcpu_rows()[provider]
    powers = list(rows.values())
    years = [p.year for p in powers if p.year is not None]
    return VcpuPower(
        UNKNOWN_ARCHITECTURE,
        sum(p.min_w for p in powers) / len(powers),
        sum(p.max_w for p in powers) / len(powers),
        f"{source}, {provider} table, mean of {len(powers)} architectures",
        max(years) if years else None,
    )


def vcpu_power(
    model_name: str | None, provider: str | None = None, *, signature: CpuSignature | None = None
) -> VcpuPower:
    """Idle and full-load watts of one vCPU of this CPU (Cloud Carbon Footprint coefficients).

    The microarchitecture comes from, in order: a codename in the name (QEMU models such as
    "Intel Xeon Processor (Cascadelake)", "AMD EPYC-Rome"; Graviton; Neoverse N1/V1/V2 as
    Graviton2/3/4); the model number (see
    :func:`~co2cb.meters.cpu.architecture.architecture_from_name`); the CPUID ``signature`` if
    given (see :func:`~co2cb.meters.cpu.architecture.architecture_from_signature`). The row is
    taken from the provider's table when it has that architecture, else from AWS's (the
    largest), else from any provider's. An unknown architecture gets the mean over all
    architectures of the provider's table (AWS's when the provider is not AWS, GCP or Azure),
    labelled ``"unknown (average of all)"``.

    Args:
        model_name: CPU model name (any spelling), or None.
        provider: ``"aws"``, ``"gcp"``, ``"azure"`` or a
            :func:`~co2cb.meters.cpu.identify.detect_virtualization` name such as ``"Amazon EC2"``;
            anything else means AWS's table.
        signature: CPUID identity from :func:`~co2cb.meters.cpu.identify.read_cpu_signature`, used
            when the name tells nothing.

    Returns:
        The table row (or the provider's mean), with its source and snapshot year.
    """
    table = _vcpu_rows()
    key = _provider_key(provider)
    architecture = (architecture_from_name(model_name) if model_name else None) or architecture_from_signature(
        signature
    )
    if architecture is not None:
        for name in (key, DEFAULT_PROVIDER, *sorted(table)):
            if name in table and architecture in table[name][1]:
                return table[name][1][architecture]
    return _average(key if key in table else DEFAULT_PROVIDER)
