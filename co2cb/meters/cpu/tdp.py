"""The thermal design power (TDP, watts per socket) of a CPU model, from the shipped TDP table.

The table ``co2cb/data/cpu_tdp.csv`` merges vendor datasets (Intel ARK, AMD) and aggregated
lists (CodeCarbon, Eco2AI); :func:`lookup_tdp` finds a model in it by exact or conservative
fuzzy match of the cleaned name (:func:`~co2cb.meters.cpu.names.normalise_model_name`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from co2cb.meters.cpu.names import normalise_model_name
from co2cb.meters.cpu.tables import parse_year, read_package_csv

TDP_TABLE = "cpu_tdp.csv"

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


def _key(name: str) -> str:
    """Exact-match key: normalised, case-folded."""
    return normalise_model_name(name).casefold()


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


@functools.cache
def _tdp_index() -> tuple[dict[str, TdpMatch], dict[FuzzyKey, list[tuple[TdpMatch, frozenset[str]]]]]:
    """The TDP table by exact key and by fuzzy key (with each row's family words), loaded once."""
    exact: dict[str, TdpMatch] = {}
    fuzzy: dict[FuzzyKey, list[tuple[TdpMatch, frozenset[str]]]] = {}
    for row in read_package_csv(TDP_TABLE):
        match = TdpMatch(row["model"], float(row["tdp_w"]), row["source"], parse_year(row["year"]), True)
        exact.setdefault(_key(match.model), match)
        fuzzy_key = _fuzzy_key(match.model)
        if fuzzy_key is not None:
            fuzzy.setdefault(fuzzy_key[0], []).append((match, fuzzy_key[1]))
    return exact, fuzzy


def lookup_tdp(model_name: str) -> TdpMatch | None:
    """Find a CPU model's TDP (watts per socket) in the table.

    Rules: 1. exact match of the normalised name (see
    :func:`~co2cb.meters.cpu.names.normalise_model_name`), case ignored; 2. fuzzy: same brand
    and the same words once family words ("Xeon", "Platinum", "Ryzen", "Core"...) and lone tier
    digits are dropped, e.g. "Intel Xeon 8375C" finds "Intel Xeon Platinum 8375C"; the family
    words of one must include the other's, so "AMD Ryzen 6274" never finds "AMD Opteron 6274".
    A name that fits rows with different TDPs is ambiguous and finds nothing. Names without a
    model number (e.g. "AMD EPYC", "Intel Xeon CPU @ 2.20GHz") never match.

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
