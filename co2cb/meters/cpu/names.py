"""CPU model names cleaned for matching: one spelling for cpuinfo's, the vendors' and the datasets' names."""

from __future__ import annotations

import re
import unicodedata

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
