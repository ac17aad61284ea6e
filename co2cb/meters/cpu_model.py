"""What CPU this is, whether it is virtual, and how much power such a CPU draws.

Used by the CPU estimate when RAPL is not available. Everything here is pure
standard library and never raises on a missing or unreadable file: "don't know"
is ``None`` (or the documented default).

Two power models are looked up here, from the package's own tables in
``co2cb/data`` (built by :mod:`tools.build_cpu_tables`, attributions in
``co2cb/data/ATTRIBUTION.md``):

* :func:`lookup_tdp`: the thermal design power (TDP, watts per socket) of a CPU
  model, from vendor datasets (Intel ARK, AMD) and aggregated lists (CodeCarbon,
  Eco2AI).
* :func:`vcpu_power`: idle and full-load watts per vCPU of a CPU
  microarchitecture, from the Cloud Carbon Footprint coefficients (derived from
  SPECpower_ssj2008 results). Power of one vCPU at utilisation ``u`` (0..1) is
  ``min_w + u * (max_w - min_w)``.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PathLike = str | os.PathLike[str]

CPUINFO_PATH = "/proc/cpuinfo"
DMI_ROOT = "/sys/class/dmi/id"
TDP_TABLE = "cpu_tdp.csv"
VCPU_TABLE = "vcpu_power.csv"
UNKNOWN_ARCHITECTURE = "unknown (average of all)"
UNKNOWN_HYPERVISOR = "unknown hypervisor"
DEFAULT_PROVIDER = "aws"

# ---------------------------------------------------------------------------
# /proc/cpuinfo
# ---------------------------------------------------------------------------


def _read_text(path: PathLike) -> str | None:
    """Return a file's text, or None if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _cpuinfo_fields(cpuinfo_path: PathLike) -> list[tuple[str, str]]:
    """``(key, value)`` pairs of every ``key : value`` line of a cpuinfo file; [] if unreadable."""
    text = _read_text(cpuinfo_path)
    if text is None:
        return []
    fields = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.append((key.strip(), value.strip()))
    return fields


def _first(fields: Iterable[tuple[str, str]], key: str) -> str | None:
    """The first non-empty value of ``key`` (exact, case-sensitive), else None."""
    return next((value for k, value in fields if k == key and value), None)


# ARM "CPU implementer" and "CPU part" codes (Linux arch/arm64/include/asm/cputype.h) of server-class
# cores, to name an aarch64 CPU whose cpuinfo has no "model name".
_ARM_IMPLEMENTERS = {
    0x41: "ARM",
    0x46: "Fujitsu",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x51: "Qualcomm",
    0x61: "Apple",
    0xC0: "Ampere",
}
_ARM_PARTS = {
    (0x41, 0xD03): "ARM Cortex-A53",
    (0x41, 0xD07): "ARM Cortex-A57",
    (0x41, 0xD08): "ARM Cortex-A72",
    (0x41, 0xD0B): "ARM Cortex-A76",
    (0x41, 0xD0C): "ARM Neoverse-N1",
    (0x41, 0xD40): "ARM Neoverse-V1",
    (0x41, 0xD49): "ARM Neoverse-N2",
    (0x41, 0xD4F): "ARM Neoverse-V2",
    (0x41, 0xD8E): "ARM Neoverse-N3",
    (0x41, 0xD84): "ARM Neoverse-V3",
    (0xC0, 0xAC3): "Ampere AmpereOne",
}


def _parse_int(text: str | None) -> int | None:
    """Parse a decimal or ``0x`` hexadecimal integer; None if absent or malformed."""
    if not text:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _arm_model_name(fields: list[tuple[str, str]]) -> str | None:
    """Name an ARM CPU from its implementer and part codes (aarch64 cpuinfo has no "model name")."""
    implementer = _parse_int(_first(fields, "CPU implementer"))
    part = _parse_int(_first(fields, "CPU part"))
    if implementer is None:
        return None
    if part is not None and (implementer, part) in _ARM_PARTS:
        return _ARM_PARTS[(implementer, part)]
    vendor = _ARM_IMPLEMENTERS.get(implementer, f"implementer 0x{implementer:02x}")
    return f"{vendor} CPU part 0x{part:03x}" if part is not None else f"{vendor} CPU"


def read_cpu_model(cpuinfo_path: PathLike = CPUINFO_PATH) -> str | None:
    """The CPU model name, as the kernel reports it.

    Rules, first that applies: the ``model name`` line (x86); the ``cpu`` line (POWER);
    on aarch64, which has no model name, a known ``CPU implementer``/``CPU part`` pair
    (e.g. ``"ARM Neoverse-N1"`` for 0x41/0xd0c, the core of AWS Graviton2); a non-numeric
    ``Processor`` line (32-bit ARM, old arm64 kernels); a generic name from the codes
    (``"ARM CPU part 0xd4b"``).

    Args:
        cpuinfo_path: The cpuinfo file to read.

    Returns:
        The model name, e.g. ``"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"``, or None if
        the file is unreadable or names no model.
    """
    fields = _cpuinfo_fields(cpuinfo_path)
    name = _first(fields, "model name") or _first(fields, "cpu")
    if name:
        return name
    arm = _arm_model_name(fields)
    if arm is not None and arm in _ARM_PARTS.values():
        return arm
    processor = _first(fields, "Processor")
    return processor if processor and not processor.isdigit() else arm


def count_sockets(cpuinfo_path: PathLike = CPUINFO_PATH) -> int:
    """Number of CPU packages (sockets): distinct ``physical id`` values, at least 1.

    Args:
        cpuinfo_path: The cpuinfo file to read.
    """
    ids = {value for key, value in _cpuinfo_fields(cpuinfo_path) if key == "physical id"}
    return max(1, len(ids))


@dataclass(frozen=True)
class CpuSignature:
    """The CPUID identity of a CPU as cpuinfo reports it.

    Attributes:
        vendor: ``vendor_id``, e.g. ``"GenuineIntel"``, ``"AuthenticAMD"``.
        family: ``cpu family`` (decimal).
        model: ``model`` (decimal).
        stepping: ``stepping``, or None if absent.
    """

    vendor: str
    family: int
    model: int
    stepping: int | None = None


def read_cpu_signature(cpuinfo_path: PathLike = CPUINFO_PATH) -> CpuSignature | None:
    """The x86 vendor, family, model and stepping from cpuinfo; None if absent (ARM) or unreadable.

    Useful when a hypervisor hides the model number (e.g. the model name is just ``"AMD EPYC"``):
    :func:`architecture_from_signature` still tells the microarchitecture.
    """
    fields = _cpuinfo_fields(cpuinfo_path)
    vendor = _first(fields, "vendor_id")
    family = _parse_int(_first(fields, "cpu family"))
    model = _parse_int(_first(fields, "model"))
    if vendor is None or family is None or model is None:
        return None
    return CpuSignature(vendor, family, model, _parse_int(_first(fields, "stepping")))


# ---------------------------------------------------------------------------
# Virtualisation
# ---------------------------------------------------------------------------

_DMI_FILES = (
    "sys_vendor",
    "product_name",
    "product_version",
    "bios_vendor",
    "bios_version",
    "board_vendor",
    "chassis_vendor",
    "chassis_asset_tag",
)
_AZURE_ASSET_TAG = "7783-7084-3265-9085"  # the chassis asset tag of every Azure VM

# (substring of the lower-cased DMI text, name returned). Clouds before hypervisors: a cloud VM
# also shows its hypervisor (KVM, Xen, Hyper-V).
_DMI_SIGNATURES: tuple[tuple[str, str], ...] = (
    ("amazon ec2", "Amazon EC2"),
    (".amazon", "Amazon EC2"),  # old Xen-based EC2: bios_version "4.11.amazon"
    ("google compute engine", "Google Compute Engine"),
    ("oraclecloud", "Oracle Cloud"),
    ("alibaba cloud", "Alibaba Cloud"),
    ("digitalocean", "DigitalOcean"),
    ("hetzner", "Hetzner Cloud"),
    ("openstack", "OpenStack"),
    ("vmware", "VMware"),
    ("virtualbox", "VirtualBox"),
    ("innotek", "VirtualBox"),
    ("parallels", "Parallels"),
    ("bhyve", "bhyve"),
    ("qemu", "QEMU"),
    ("kvm", "KVM"),
    ("xen", "Xen"),
    ("bochs", "Bochs"),
)


def _dmi_text(dmi_root: PathLike) -> dict[str, str]:
    """The readable DMI identity files under ``dmi_root``, stripped; unreadable ones are left out."""
    values = {}
    for name in _DMI_FILES:
        text = _read_text(Path(dmi_root) / name)
        if text and text.strip():
            values[name] = text.strip()
    return values


def _dmi_virtualization(dmi: dict[str, str]) -> str | None:
    """Name the cloud or hypervisor that the DMI identity shows, else None."""
    if dmi.get("chassis_asset_tag") == _AZURE_ASSET_TAG:
        return "Microsoft Azure"
    if (
        dmi.get("sys_vendor", "").lower().startswith("microsoft")
        and "virtual machine" in dmi.get("product_name", "").lower()
    ):
        return "Microsoft Hyper-V"
    blob = " | ".join(dmi.values()).lower()
    return next((name for needle, name in _DMI_SIGNATURES if needle in blob), None)


def _has_hypervisor_flag(cpuinfo_path: PathLike) -> bool:
    """True when the x86 ``flags`` line has ``hypervisor`` (set by every common hypervisor)."""
    flags = _first(_cpuinfo_fields(cpuinfo_path), "flags") or ""
    return "hypervisor" in flags.split()


def detect_virtualization(cpuinfo_path: PathLike = CPUINFO_PATH, dmi_root: PathLike = DMI_ROOT) -> str | None:
    """Name the cloud or hypervisor this machine runs on, or None.

    Rules, first that applies:

    1. DMI (``sys_vendor``, ``product_name``, ``bios_vendor``, ``bios_version``, ``chassis_asset_tag``...)
       names a cloud: ``"Amazon EC2"``, ``"Google Compute Engine"``, ``"Microsoft Azure"`` (Azure's
       chassis asset tag), ``"Oracle Cloud"``, ... Cloud bare-metal instances are reported too: their
       power is still best described by the cloud's per-vCPU model.
    2. DMI names a hypervisor: ``"Microsoft Hyper-V"`` ("Microsoft Corporation" / "Virtual Machine"),
       ``"VMware"``, ``"VirtualBox"``, ``"QEMU"``, ``"KVM"``, ``"Xen"``, ...
    3. The cpuinfo ``hypervisor`` flag is set: ``"unknown hypervisor"``.

    Args:
        cpuinfo_path: The cpuinfo file to read.
        dmi_root: The DMI identity folder (``/sys/class/dmi/id``).

    Returns:
        The name, or None when nothing shows a virtual machine (or nothing could be read: unreadable
        files mean "don't know", never an exception).
    """
    name = _dmi_virtualization(_dmi_text(dmi_root))
    if name is not None:
        return name
    return UNKNOWN_HYPERVISOR if _has_hypervisor_flag(cpuinfo_path) else None


# ---------------------------------------------------------------------------
# Model name normalisation
# ---------------------------------------------------------------------------

_TRADEMARKS = re.compile(r"\((?:r|tm|c)\)|[®™©]", re.IGNORECASE)  # before NFKC, which turns "™" into "TM"
_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), repl)
    for pattern, repl in (
        (r"@.*$", ""),  # "@ 2.90GHz" and anything after it
        (r"\(\s*\d+(?:\.\d+)?\s*[km]b?\s+cache\b[^)]*\)", ""),  # ARK's "(9M Cache, up to 4.00 GHz)"
        (r"\bincludes\b.*$", ""),  # ARK's "includes Intel Optane Memory"
        (r",?\s*\d+\s+compute\s+cores\b.*$", ""),  # AMD APUs: ", 12 Compute Cores 4C+8G"
        (r"\s+(?:with\s+|w/\s*)?(?:amd\s+)?radeon\b.*$", ""),  # "with Radeon Graphics", "w/ Radeon 780M", "RADEON R7"
        (r"\s+(?:with|and)\s+(?:near\s+silent|wraith)\b.*$", ""),  # "and Near Silent Thermal Solution"
        (r"\s*\(oem\s+only\)", ""),
        (r"\b(?:\d+|dual|triple|quad|six|eight|twelve|sixteen)[- ]cores?\b", " "),  # "64-Core", "Dual-Core"
        (r"\b(?:cpu|processor|apu)s?\b", " "),
        (r"\b\d+(?:st|nd|rd|th)\s+gen(?:eration)?\b", " "),  # "11th Gen Intel", "7th Gen A12-9800"
        (r"\b(amd|intel)\s+\1\b", r"\1"),  # "AMD 7th Gen AMD PRO A12-9800B" -> "AMD PRO A12-9800B"
        (r"\b(e[357]-\d{4}\w*)\s+0\b", r"\1"),  # "E5-2670 0": Sandy Bridge-EP (v1)
        (r"\b(e[357]-\d{4}[a-z]*?)(v\d)\b", r"\1 \2"),  # "E5-2686v4" -> "E5-2686 v4"
    )
)

# First words that name a product family made by only one vendor: the vendor is added when missing.
_AMD_FAMILY = re.compile(
    r"^(?:ryzen|epyc|athlon|sempron|phenom|opteron|turion|fx\b|fx-|pro\s+a\d|a\d{1,2}(?:-|\s|$)|e[12](?:-|\s|$))",
    re.IGNORECASE,
)
_INTEL_FAMILY = re.compile(r"^(?:xeon|celeron|pentium|atom|itanium|core\s+(?:i\d|ultra|[2-9]\b))", re.IGNORECASE)


def normalise_model_name(name: str) -> str:
    """Clean a CPU model name for matching, keeping its case.

    Removes trademarks ("(R)", "(TM)", "®", "™"), the clock after "@", the words "CPU",
    "Processor" and "APU", core counts ("64-Core", "Dual-Core"), "with Radeon Graphics" tails,
    "11th Gen"-style prefixes and the " 0" that marks a v1 Xeon E5 ("E5-2670 0"), collapses
    spaces, and adds the vendor to names that lack it but can only be one vendor's ("Ryzen 7
    5800X" -> "AMD Ryzen 7 5800X", "Threadripper" -> "AMD Ryzen Threadripper", "Xeon" -> "Intel
    Xeon"). Idempotent.

    Args:
        name: A model name as cpuinfo or a dataset writes it.

    Returns:
        The cleaned name, e.g. ``"Intel Xeon Platinum 8375C"`` for
        ``"Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"``.
    """
    text = unicodedata.normalize("NFKC", _TRADEMARKS.sub(" ", name)).replace("\u200b", "")
    for pattern, repl in _SUBSTITUTIONS:
        text = pattern.sub(repl, text)
    text = " ".join(text.split()).strip(" ,-/")
    if re.match(r"^threadripper\b", text, re.IGNORECASE):
        text = "Ryzen " + text
    if _AMD_FAMILY.match(text):
        text = "AMD " + text
    elif _INTEL_FAMILY.match(text):
        text = "Intel " + text
    return text


def _key(name: str) -> str:
    """Exact-match key: normalised, case-folded."""
    return normalise_model_name(name).casefold()


_BRANDS = ("intel", "amd", "apple", "ampere", "arm", "qualcomm", "snapdragon", "via", "nvidia")
# Words that may be present or absent in different spellings of one CPU; dropped by the fuzzy key.
_FAMILY_WORDS = frozenset(
    {
        "xeon",
        "core",
        "ryzen",
        "threadripper",
        "epyc",
        "opteron",
        "platinum",
        "gold",
        "silver",
        "bronze",
        "mobile",
        "scalable",
        "family",
    }
)
_MODEL_NUMBER = re.compile(r"\d{3}")

FuzzyKey = tuple[str, tuple[str, ...]]


def _fuzzy_key(name: str) -> tuple[FuzzyKey, frozenset[str]] | None:
    """Conservative fuzzy key of a name, with its family words; None when it has no brand or model number.

    The key is (brand, remaining words): brand, family words ("Xeon", "Platinum", "Ryzen", ...) and
    lone tier digits ("Ryzen 7", "Core 5") are dropped, everything else is kept, so "E5-2686 v3"
    and "E5-2686 v4", or "6284" and "6284 SE", never meet. A model-number token (three or more
    digits) must remain.
    """
    words = _key(name).split()
    brand = next((w for w in words if w in _BRANDS), None)
    if brand is None:
        return None
    rest = tuple(w for w in words if w not in _FAMILY_WORDS and w not in _BRANDS and not re.fullmatch(r"\d", w))
    if not any(_MODEL_NUMBER.search(w) for w in rest):
        return None
    return (brand, rest), frozenset(w for w in words if w in _FAMILY_WORDS)


def _compatible(families: frozenset[str], other: frozenset[str]) -> bool:
    """True when one set of family words contains the other ("Xeon" fits "Xeon Platinum"; "Ryzen" not "Opteron")."""
    return families <= other or other <= families


# ---------------------------------------------------------------------------
# TDP table
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TdpMatch:
    """A CPU model found in the TDP table.

    Attributes:
        model: The matched table row's model name.
        tdp_w: Thermal design power of one socket, watts.
        source: The upstream dataset of that row.
        year: Launch year, or the dataset's snapshot year when the source ends in "(snapshot year)".
        exact: True for an exact match of the normalised name, False for a fuzzy one.
    """

    model: str
    tdp_w: float
    source: str
    year: int | None
    exact: bool


def _read_package_csv(name: str) -> list[dict[str, str]]:
    """Rows of a CSV file shipped in ``co2cb/data``."""
    text = (resources.files("co2cb") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _year(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


@functools.cache
def _tdp_index() -> tuple[dict[str, TdpMatch], dict[FuzzyKey, list[tuple[TdpMatch, frozenset[str]]]]]:
    """The TDP table by exact key and by fuzzy key (with each row's family words), loaded once."""
    exact: dict[str, TdpMatch] = {}
    fuzzy: dict[FuzzyKey, list[tuple[TdpMatch, frozenset[str]]]] = {}
    for row in _read_package_csv(TDP_TABLE):
        match = TdpMatch(row["model"], float(row["tdp_w"]), row["source"], _year(row["year"]), True)
        exact.setdefault(_key(match.model), match)
        fuzzy_key = _fuzzy_key(match.model)
        if fuzzy_key is not None:
            fuzzy.setdefault(fuzzy_key[0], []).append((match, fuzzy_key[1]))
    return exact, fuzzy


def lookup_tdp(model_name: str) -> TdpMatch | None:
    """Find a CPU model's TDP (watts per socket) in the table.

    Rules: 1. exact match of the normalised name (see :func:`normalise_model_name`), case
    ignored; 2. fuzzy: same brand and the same words once family words ("Xeon", "Platinum",
    "Ryzen", "Core"...) and lone tier digits are dropped, e.g. "Intel Xeon 8375C" finds "Intel
    Xeon Platinum 8375C"; the family words of one must include the other's, so "AMD Ryzen 6274"
    never finds "AMD Opteron 6274". A name that fits rows with different TDPs is ambiguous and
    finds nothing. Names without a model number (e.g. "AMD EPYC", "Intel Xeon CPU @ 2.20GHz")
    never match.

    Args:
        model_name: A model name in any spelling, e.g. ``"AMD EPYC 7763 64-Core Processor"``.

    Returns:
        The match, or None rather than a wrong CPU.
    """
    if not model_name or not model_name.strip():
        return None
    exact, fuzzy = _tdp_index()
    found = exact.get(_key(model_name))
    if found is not None:
        return found
    fuzzy_key = _fuzzy_key(model_name)
    if fuzzy_key is None:
        return None
    key, families = fuzzy_key
    candidates = [match for match, row_families in fuzzy.get(key, []) if _compatible(families, row_families)]
    if not candidates or len({c.tdp_w for c in candidates}) != 1:
        return None
    best = candidates[0]
    return TdpMatch(best.model, best.tdp_w, best.source, best.year, exact=False)


# ---------------------------------------------------------------------------
# Per-vCPU power by microarchitecture
# ---------------------------------------------------------------------------


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


# Codenames as they appear in names (QEMU/KVM CPU models such as "Intel Xeon Processor (Cascadelake)"
# or "AMD EPYC-Rome Processor"), mapped to the table's architecture names.
_CODENAMES: tuple[tuple[str, str], ...] = (
    (r"sandy\s*bridge", "Sandy Bridge"),
    (r"ivy\s*bridge", "Ivy Bridge"),
    (r"haswell", "Haswell"),
    (r"broadwell", "Broadwell"),
    (r"sky\s*lake", "Skylake"),
    (r"cascade\s*lake", "Cascade Lake"),
    (r"cooper\s*lake", "Cascade Lake"),
    (r"ice\s*lake", "Ice Lake"),
    (r"sapphire\s*rapids", "Sapphire Rapids"),
    (r"emerald\s*rapids", "Emerald Rapids"),
    (r"granite\s*rapids", "Granite Rapids"),
    (r"coffee\s*lake", "Coffee Lake"),
    (r"\bnaples\b", "EPYC 1st Gen"),
    (r"\brome\b", "EPYC 2nd Gen"),
    (r"\bmilan\b", "EPYC 3rd Gen"),
    (r"\b(?:genoa|bergamo|siena)\b", "EPYC 4th Gen"),
    (r"\bturin\b", "EPYC 5th Gen"),
    (r"graviton\s*4", "Graviton4"),
    (r"graviton\s*3\s*e", "Graviton3E"),
    (r"graviton\s*3", "Graviton3"),
    (r"graviton\s*2?", "Graviton2"),
    (r"neoverse[- ]?n1|ampere\s+altra", "Graviton2"),
    (r"neoverse[- ]?v1", "Graviton3"),
    (r"neoverse[- ]?v2|nvidia\s+grace|google\s+axion", "Graviton4"),
)

_SCALABLE_GENERATION = {
    "1": "Skylake",
    "2": "Cascade Lake",
    "3": "Ice Lake",
    "4": "Sapphire Rapids",
    "5": "Emerald Rapids",
}
_E5_VERSION = {"": "Sandy Bridge", "2": "Ivy Bridge", "3": "Haswell", "4": "Broadwell"}
_E3_VERSION = {"": "Sandy Bridge", "2": "Ivy Bridge", "3": "Haswell", "4": "Broadwell", "5": "Skylake"}
_EPYC_GENERATION = {  # (series digit, generation digit) -> architecture
    ("7", "1"): "EPYC 1st Gen",
    ("3", "1"): "EPYC 1st Gen",
    ("7", "2"): "EPYC 2nd Gen",
    ("7", "3"): "EPYC 3rd Gen",
    ("9", "4"): "EPYC 4th Gen",
    ("8", "4"): "EPYC 4th Gen",
    ("4", "4"): "EPYC 4th Gen",
    ("9", "5"): "EPYC 5th Gen",
    ("4", "5"): "EPYC 5th Gen",
}


def _intel_architecture(name: str) -> str | None:
    """Microarchitecture of an Intel Xeon (or 8th/9th-gen Core) from its model number.

    * Xeon E5/E7 ``-xxxx`` then no version / v2 / v3 / v4: Sandy Bridge / Ivy Bridge / Haswell /
      Broadwell (E7 without a version is Westmere-EX: not mapped).
    * Xeon E3-12xx no version .. v5: Sandy Bridge .. Skylake (v6, Kaby Lake, is not mapped).
    * Xeon Scalable (Platinum/Gold/Silver/Bronze ``NGxx``, cloud suffixes C/CL/M allowed): the second
      digit G is the generation: 1 Skylake, 2 Cascade Lake, 3 Ice Lake (3xxxH/HL Cooper Lake counts as
      Cascade Lake), 4 Sapphire Rapids, 5 Emerald Rapids. Xeon Max 94xx: Sapphire Rapids.
    * Xeon 6 ``6xxxP`` (P-cores): Granite Rapids (the E-core Sierra Forest ``6xxxE`` is not mapped).
    * Xeon E-21xx/E-22xx and Core i3/i5/i7/i9-8xxx/9xxx desktop (K, F, T, KS) and H parts: Coffee Lake.
    """
    if m := re.search(r"\be([357])-\d{4}[a-z]*(?:\s+v(\d))?\b", name):
        family, version = m.group(1), m.group(2) or ""
        if family == "7" and not version:
            return None
        return (_E3_VERSION if family == "3" else _E5_VERSION).get(version)
    if m := re.search(r"\b(?:platinum|gold|silver|bronze)\s+[3-9](\d)\d{2}([a-z]*)\b", name):
        generation, suffix = m.group(1), m.group(2)
        if generation == "3" and suffix.startswith("h"):
            return "Cascade Lake"
        return _SCALABLE_GENERATION.get(generation)
    if re.search(r"\bxeon\s+(?:cpu\s+)?max\s+94\d{2}", name):
        return "Sapphire Rapids"
    if re.search(r"\bxeon\s+6\d{3}p\b", name):
        return "Granite Rapids"
    if re.search(r"\be-2[12]\d{2}[a-z]*\b", name) or re.search(r"\bi[3579]-[89]\d{3}(?:k|kf|f|t|ks|h|hk)?\b", name):
        return "Coffee Lake"
    return None


def _amd_architecture(name: str) -> str | None:
    """Microarchitecture of an AMD EPYC from its model number ``S xx G`` (cloud variants like 7R13,
    7B12, 9V74 included): the series digit S and the last digit G give the generation.

    7xx1 and 3xx1: 1st Gen (Naples, Zen); 7xx2: 2nd Gen (Rome); 7xx3: 3rd Gen (Milan);
    9xx4, 8xx4 and 4xx4: 4th Gen (Genoa, Bergamo, Siena, EPYC 4004); 9xx5 and 4xx5: 5th Gen (Turin).
    Other combinations are not mapped.
    """
    m = re.search(r"\bepyc\s+([3-9])[0-9a-z]{2}(\d)[a-z]*\b", name)
    return _EPYC_GENERATION.get((m.group(1), m.group(2))) if m else None


def _architecture_from_name(model_name: str) -> str | None:
    """Microarchitecture from a model name: a codename in it, else the Intel or AMD model-number rules."""
    name = normalise_model_name(model_name).lower()
    raw = model_name.lower()
    for pattern, architecture in _CODENAMES:
        if re.search(pattern, raw):
            return architecture
    if "amd" in name.split():
        return _amd_architecture(name)
    if "intel" in name.split():
        return _intel_architecture(name)
    return None


def architecture_from_signature(signature: CpuSignature | None) -> str | None:
    """Microarchitecture of an x86 server CPU from its CPUID family/model (and stepping).

    Intel family 6: model 45 Sandy Bridge-EP, 62 Ivy Bridge-EP, 63 Haswell-EP, 79/86 Broadwell,
    85 Skylake-SP (stepping 0-4) or Cascade Lake (5-7) or Cooper Lake (10-11, as Cascade Lake),
    106/108 Ice Lake-SP/D, 143 Sapphire Rapids, 207 Emerald Rapids, 173/174 Granite Rapids,
    158/165 (stepping 10+) Coffee Lake. AMD family 23 model 1 Naples (EPYC 1st Gen), 49 Rome;
    family 25 models 0-15 Milan, 16-31 and 160-175 Genoa/Bergamo/Siena; family 26 models 0-31
    Turin. Client parts and anything else: None.
    """
    if signature is None:
        return None
    vendor, family, model, stepping = signature.vendor, signature.family, signature.model, signature.stepping
    if vendor == "GenuineIntel" and family == 6:
        if model == 85:
            if stepping is None:
                return None
            return "Skylake" if stepping <= 4 else "Cascade Lake"
        if model == 158 and (stepping or 0) < 10:
            return None  # Kaby Lake
        return {
            45: "Sandy Bridge",
            62: "Ivy Bridge",
            63: "Haswell",
            79: "Broadwell",
            86: "Broadwell",
            106: "Ice Lake",
            108: "Ice Lake",
            143: "Sapphire Rapids",
            207: "Emerald Rapids",
            173: "Granite Rapids",
            174: "Granite Rapids",
            158: "Coffee Lake",
            165: "Coffee Lake",
        }.get(model)
    if vendor == "AuthenticAMD":
        if family == 23:
            return {1: "EPYC 1st Gen", 49: "EPYC 2nd Gen"}.get(model)
        if family == 25:
            if model <= 15:
                return "EPYC 3rd Gen"
            if 16 <= model <= 31 or 160 <= model <= 175:
                return "EPYC 4th Gen"
        if family == 26 and model <= 31:
            return "EPYC 5th Gen"
    return None


_PROVIDERS = (("aws", ("aws", "amazon", "ec2")), ("gcp", ("gcp", "google")), ("azure", ("azure",)))


def _provider_key(provider: str | None) -> str | None:
    """``"aws"``, ``"gcp"`` or ``"azure"`` for a provider or a :func:`detect_virtualization` name, else None."""
    text = (provider or "").lower()
    return next((key for key, needles in _PROVIDERS if any(n in text for n in needles)), None)


@functools.cache
def _vcpu_rows() -> dict[str, tuple[str, dict[str, VcpuPower]]]:
    """The per-vCPU table, loaded once: provider -> (source, architecture -> row)."""
    table: dict[str, tuple[str, dict[str, VcpuPower]]] = {}
    for row in _read_package_csv(VCPU_TABLE):
        source = f"{row['source']}, {row['provider']} table"
        power = VcpuPower(row["architecture"], float(row["min_w"]), float(row["max_w"]), source, _year(row["year"]))
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
    Graviton2/3/4); the model number (see :func:`_intel_architecture` and
    :func:`_amd_architecture`); the CPUID ``signature`` if given (see
    :func:`architecture_from_signature`). The row is taken from the provider's table when it has
    that architecture, else from AWS's (the largest), else from any provider's. An unknown
    architecture gets the mean over all architectures of the provider's table (AWS's when the
    provider is not AWS, GCP or Azure), labelled ``"unknown (average of all)"``.

    Args:
        model_name: CPU model name (any spelling), or None.
        provider: ``"aws"``, ``"gcp"``, ``"azure"`` or a :func:`detect_virtualization` name such as
            ``"Amazon EC2"``; anything else means AWS's table.
        signature: CPUID identity from :func:`read_cpu_signature`, used when the name tells nothing.
    """
    table = _vcpu_rows()
    key = _provider_key(provider)
    architecture = (_architecture_from_name(model_name) if model_name else None) or architecture_from_signature(
        signature
    )
    if architecture is not None:
        for name in (key, DEFAULT_PROVIDER, *sorted(table)):
            if name in table and architecture in table[name][1]:
                return table[name][1][architecture]
    return _average(key if key in table else DEFAULT_PROVIDER)
