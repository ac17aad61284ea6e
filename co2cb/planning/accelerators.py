"""The accelerator table: published board power per product and form factor, loaded, checked and searched.

``co2cb/data/accelerators.csv`` has one row per product and form factor, each with its vendor
source (title and URL) and year. :func:`find_accelerator` finds a row by name (case, spaces,
dashes and vendor words do not matter; a bare family name picks its first form) and
:func:`suggest_accelerators` names the nearest rows for a name that is in none.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from co2cb.planning.inputs import MAX_BOARD_WATTS, PlanningInputError

ACCELERATOR_FILE = "accelerators.csv"
ACCELERATOR_COLUMNS = (
    "name",
    "aliases",
    "family",
    "form_factor",
    "board_power_w",
    "vendor",
    "source",
    "url",
    "year",
    "note",
)
_LEADING_WORDS = frozenset({"nvidia", "amd", "google", "tesla", "instinct", "cloud"})
_NOISE_WORDS = frozenset({"gpu", "tensor", "core", "accelerator", "card"})
_HINT_UNPUBLISHED = {
    "a10g": "NVIDIA publishes no board power for the A10G (a variant made for AWS G5 instances); "
    "`nvidia-smi -q -d POWER` on the instance shows its power limit",
}


class UnknownAcceleratorError(PlanningInputError):
    """An accelerator name that is in no row of the table.

    Attributes:
        query: The name as asked.
        suggestions: Nearest accelerator names, best first.
    """

    def __init__(self, query: str, suggestions: list[str], hint: str = "") -> None:
        self.query = query
        self.suggestions = suggestions
        near = f"nearest: {', '.join(suggestions)}" if suggestions else "no close match"
        extra = f"; {hint}" if hint else ""
        super().__init__(
            f"unknown accelerator {query!r} ({near}){extra}; list them with `co2cb estimate --list-gpus`, "
            "or give the board power with --gpu-watts"
        )


@dataclass(frozen=True)
class Accelerator:
    """One accelerator and its published board power.

    Attributes:
        name: Product and form factor (``"NVIDIA A100 SXM4 40GB"``).
        aliases: Other names it answers to (case, spaces and dashes do not matter).
        family: Product family (``"A100"``); its bare name picks the family's first row.
        form_factor: ``"SXM4"``, ``"PCIe card"``, ``"OAM module"``...
        board_power_w: Published maximum board power (TDP / TBP), watts.
        vendor: ``"NVIDIA"``, ``"AMD"`` or ``"Google"``.
        source: Title of the vendor document the figure is from.
        url: Where that document is.
        year: Year the product was announced.
        note: What the figure covers (configurable ranges, peak or typical, per module...).
    """

    name: str
    aliases: tuple[str, ...]
    family: str
    form_factor: str
    board_power_w: float
    vendor: str
    source: str
    url: str
    year: int
    note: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class AcceleratorMatch:
    """The row found for a name, and how.

    Attributes:
        accelerator: The row.
        query: The name as asked.
        via: How the name led to the row (a family's default form, other forms); ``""`` when exact.
    """

    accelerator: Accelerator
    query: str
    via: str


def name_key(text: str) -> str:
    """Comparable form of an accelerator name: ``"NVIDIA A100-SXM4-40GB"`` -> ``"a100sxm440gb"``.

    Case, accents, spaces, dashes and punctuation do not matter; a leading vendor word
    (NVIDIA, AMD, Google, Tesla, Instinct, Cloud) and the words GPU, Tensor, Core,
    Accelerator and Card are dropped.
    """
    folded = unicodedata.normalize("NFKD", text.casefold())
    tokens = re.findall(r"[a-z0-9]+", folded)
    while tokens and tokens[0] in _LEADING_WORDS:
        tokens.pop(0)
    return "".join(t for t in tokens if t not in _NOISE_WORDS)


def _to_accelerator(raw: dict[str, str], number: int) -> Accelerator:
    where = f"{ACCELERATOR_FILE} line {number}"
    try:
        row = Accelerator(
            name=raw["name"].strip(),
            aliases=tuple(a.strip() for a in raw["aliases"].split(";") if a.strip()),
            family=raw["family"].strip(),
            form_factor=raw["form_factor"].strip(),
            board_power_w=float(raw["board_power_w"]),
            vendor=raw["vendor"].strip(),
            source=raw["source"].strip(),
            url=raw["url"].strip(),
            year=int(raw["year"]),
            note=(raw.get("note") or "").strip(),
        )
    except (KeyError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: bad row {raw!r} ({exc})") from exc
    problems = validate_accelerator(row)
    if problems:
        raise ValueError(f"{where}: {row.name!r}: {'; '.join(problems)}")
    return row


def validate_accelerator(row: Accelerator) -> list[str]:
    """What is wrong with a row (empty when it is valid)."""
    problems = []
    if not row.name or not row.family or not row.form_factor or not row.vendor:
        problems.append("no name, family, form factor or vendor")
    if not (math.isfinite(row.board_power_w) and 1.0 <= row.board_power_w <= MAX_BOARD_WATTS):
        problems.append(f"board power {row.board_power_w} W is outside 1..{MAX_BOARD_WATTS:g} W")
    if not 2010 <= row.year <= 2100:
        problems.append(f"year {row.year} is implausible")
    if not row.source:
        problems.append("no source")
    if not row.url.startswith("https://"):
        problems.append(f"source URL {row.url!r} is not an https:// address")
    return problems


def load_accelerators(path: Path | None = None) -> list[Accelerator]:
    """Read and check the accelerator table (default: the embedded one).

    Raises:
        ValueError: A row is malformed, or two rows answer to the same name.
    """
    if path is not None:
        text = path.read_text(encoding="utf-8")
    else:
        text = (resources.files("co2cb") / "data" / ACCELERATOR_FILE).read_text(encoding="utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != ACCELERATOR_COLUMNS:
        raise ValueError(f"{ACCELERATOR_FILE}: columns must be {', '.join(ACCELERATOR_COLUMNS)}")
    rows = [_to_accelerator(raw, number) for number, raw in enumerate(reader, 2)]
    owner: dict[str, str] = {}
    for row in rows:
        for key in {name_key(n) for n in (row.name, *row.aliases)}:
            if not key:
                raise ValueError(f"{ACCELERATOR_FILE}: {row.name!r} has an empty name or alias")
            if owner.setdefault(key, row.name) != row.name:
                raise ValueError(f"{ACCELERATOR_FILE}: {key!r} names both {owner[key]!r} and {row.name!r}")
    return rows


@functools.lru_cache(maxsize=1)
def accelerators() -> tuple[Accelerator, ...]:
    """The embedded accelerator table, loaded on first use."""
    return tuple(load_accelerators())


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, Accelerator]:
    return {name_key(n): row for row in accelerators() for n in (row.name, *row.aliases)}


def _label(row: Accelerator) -> str:
    return f"{row.name} ({row.board_power_w:g} W)"


def suggest_accelerators(query: str, n: int = 5) -> list[str]:
    """Nearest accelerator names to ``query``, as ``"NAME (W)"``, best first."""
    key = name_key(query[:200])[:64]
    index = _index()
    out: list[Accelerator] = []
    if key:
        family = [
            r
            for r in accelerators()  # same family first: "h100 sxm6" -> the H100 rows
            if len(key) >= 2 and (key.startswith(name_key(r.family)) or name_key(r.family).startswith(key))
        ]
        out += sorted(family, key=lambda r: -len(name_key(r.family)))  # the most specific family first
        for near in difflib.get_close_matches(key, list(index), n=4 * n, cutoff=0.6):
            if index[near] not in out:
                out.append(index[near])
    return [_label(row) for row in out[:n]]


def find_accelerator(name: object) -> AcceleratorMatch:
    """The table row for an accelerator name (case-insensitive; aliases such as ``"a100-80gb"``).

    A bare family name (``"A100"``, ``"H100"``) picks the family's first row (the SXM form
    where there is one) and :attr:`AcceleratorMatch.via` names the other forms.

    Raises:
        UnknownAcceleratorError: The name is in no row; the message names the nearest ones.
    """
    if not isinstance(name, str):
        raise UnknownAcceleratorError(repr(name), [], "an accelerator name is a string")
    key = name_key(name)
    if not key:
        raise UnknownAcceleratorError(name, [], "give a name such as A100, H100 SXM or MI300X")
    row = _index().get(key)
    if row is None:
        raise UnknownAcceleratorError(name, suggest_accelerators(name), _HINT_UNPUBLISHED.get(key, ""))
    via = ""
    if key == name_key(row.family):
        others = [r for r in accelerators() if r.family == row.family and r is not row]
        if others:
            via = f"{name.strip()!r} is taken as {_label(row)}; name the form for another: " + ", ".join(
                _label(r) for r in others
            )
    return AcceleratorMatch(row, name, via)
