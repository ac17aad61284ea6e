"""The microarchitecture of a CPU, from its model name or its CPUID signature.

Names the architecture rows of the per-vCPU table (:mod:`co2cb.meters.cpu.vcpu`): Intel
``"Sandy Bridge"`` .. ``"Granite Rapids"``, AMD ``"EPYC 1st Gen"`` .. ``"EPYC 5th Gen"``, AWS
``"Graviton2"`` .. ``"Graviton4"`` (ARM Neoverse cores count as the Graviton of the same core).
"""

from __future__ import annotations

import re

from co2cb.meters.cpu.identify import CpuSignature
from co2cb.meters.cpu.names import normalise_model_name

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
    """Microarchitecture of an AMD EPYC from its model number ``S xx G``.

    Cloud variants like 7R13, 7B12, 9V74 are included: the series digit S and the last digit G give
    the generation.

    7xx1 and 3xx1: 1st Gen (Naples, Zen); 7xx2: 2nd Gen (Rome); 7xx3: 3rd Gen (Milan);
    9xx4, 8xx4 and 4xx4: 4th Gen (Genoa, Bergamo, Siena, EPYC 4004); 9xx5 and 4xx5: 5th Gen (Turin).
    Other combinations are not mapped.
    """
    m = re.search(r"\bepyc\s+([3-9])[0-9a-z]{2}(\d)[a-z]*\b", name)
    return _EPYC_GENERATION.get((m.group(1), m.group(2))) if m else None


def architecture_from_name(model_name: str) -> str | None:
    """Microarchitecture from a model name: a codename in it, else the Intel or AMD model-number rules.

    Codenames are those of QEMU/KVM CPU models ("Intel Xeon Processor (Cascadelake)", "AMD
    EPYC-Rome"), Graviton, and Neoverse N1/V1/V2 (as Graviton2/3/4); the model-number rules are
    :func:`_intel_architecture` and :func:`_amd_architecture`.

    Args:
        model_name: CPU model name, any spelling.

    Returns:
        The table's architecture name, e.g. ``"Cascade Lake"``, or None when the name does not tell.
    """
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
