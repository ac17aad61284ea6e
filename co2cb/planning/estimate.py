"""Planning estimates before training: accelerators' published board power x hours x PUE x grid intensity.

In the manner of the ML CO2 Impact calculator (Lacoste et al. 2019): energy is
``count x hours x board power x utilisation``, plus optional CPU and RAM power, times
the data centre's PUE; CO2 is that energy times the region's carbon intensity. Board
power is the vendor's published maximum (TDP / total board power), not a measurement,
so the result is an *estimate*, an upper bound at utilisation 1.0.

The accelerator table ``co2cb/data/accelerators.csv`` has one row per product and form
factor, each with its vendor source (title and URL) and year.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from co2cb.intensity.base import IntensityInfo
from co2cb.intensity.database import lookup, to_intensity_info
from co2cb.intensity.pue import resolve_pue
from co2cb.intensity.region import resolve_region
from co2cb.meters.estimates import RAM_WATTS_PER_GB

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
ESTIMATE_LABEL = "ESTIMATE from published board power, not a measurement"
RAM_SOURCE = "3 W per 8 GB (Crucial/Micron), as used by CodeCarbon and Eco2AI (Budennyy et al. 2022)"

#: Limits of user input (inclusive).
MAX_HOURS = 1_000_000.0
MAX_COUNT = 1_000_000
MIN_PUE, MAX_PUE = 1.0, 3.0
MAX_BOARD_WATTS = 5_000.0
MAX_CPU_WATTS = 1_000_000.0
MAX_RAM_GB = 1_000_000.0

_LEADING_WORDS = frozenset({"nvidia", "amd", "google", "tesla", "instinct", "cloud"})
_NOISE_WORDS = frozenset({"gpu", "tensor", "core", "accelerator", "card"})
_HOUR_UNITS = {
    "": 1.0,
    "h": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "hour": 1.0,
    "hours": 1.0,
    "d": 24.0,
    "day": 24.0,
    "days": 24.0,
    "min": 1 / 60,
    "mins": 1 / 60,
    "minutes": 1 / 60,
}
_NUMBER_UNIT = re.compile(r"^([0-9.eE+\-_]+)\s*([a-z]*)$")
_HINT_UNPUBLISHED = {
    "a10g": "NVIDIA publishes no board power for the A10G (a variant made for AWS G5 instances); "
    "`nvidia-smi -q -d POWER` on the instance shows its power limit",
}


class PlanningInputError(ValueError):
    """A planning input (GPU count, hours, utilisation, PUE, watts) that cannot be used; says what to give."""


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


@dataclass(frozen=True)
class Factor:
    """One input of an estimate, with where it comes from.

    Attributes:
        name: ``"board power"``, ``"utilisation"``, ``"PUE"``, ``"carbon intensity"``...
        value: The number used.
        unit: Its unit (``"W"``, ``"gCO2e/kWh"``, ``""`` for ratios).
        source: Who publishes it, or ``"default"`` / ``"given by the user"``.
        year: Year the figure stands for, or None.
    """

    name: str
    value: float
    unit: str
    source: str
    year: int | None


@dataclass(frozen=True)
class PlanningEstimate:
    """Energy and CO2 of a planned job, from published figures.

    Attributes:
        label: Says this is an estimate, not a measurement.
        accelerator: The accelerator row used (None when ``--gpu-watts`` stands alone).
        accelerator_via: How the GPU name led to the row.
        count: Number of accelerators.
        hours: Job length, hours.
        board_power_w: Power per accelerator used, watts.
        board_power_source: Where that power comes from.
        utilization: Fraction of board power drawn on average (1.0 = all the time).
        cpu_watts: Extra CPU power for the whole job, watts (0 when not given).
        ram_gb: RAM in use for the whole job, GB (0 when not given).
        ram_watts_per_gb: RAM power constant, watts per GB.
        gpu_kwh: Accelerator energy, kWh (before PUE).
        cpu_kwh: CPU energy, kWh (before PUE).
        ram_kwh: RAM energy, kWh (before PUE).
        it_kwh: Sum of the above, kWh (before PUE).
        pue: Data centre power usage effectiveness.
        pue_source: Where the PUE comes from.
        total_kwh: ``it_kwh x pue``, kWh drawn from the grid.
        intensity: Carbon intensity used, its region, source, year and why.
        co2_kg: ``total_kwh x intensity``, kg CO2e.
        factors: Every factor with its source and year.
    """

    label: str
    accelerator: Accelerator | None
    accelerator_via: str
    count: int
    hours: float
    board_power_w: float
    board_power_source: str
    utilization: float
    cpu_watts: float
    ram_gb: float
    ram_watts_per_gb: float
    gpu_kwh: float
    cpu_kwh: float
    ram_kwh: float
    it_kwh: float
    pue: float
    pue_source: str
    total_kwh: float
    intensity: IntensityInfo
    co2_kg: float
    factors: list[Factor] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


# -- the accelerator table ------------------------------------------------------------------


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


# -- parsers of user input --------------------------------------------------------------------


def _number(text: object, what: str, example: str) -> tuple[float, str]:
    """A finite number and its (lower-case) unit word from ``text``."""
    if isinstance(text, bool):
        raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
    if isinstance(text, (int, float)):
        try:
            value, unit = float(text), ""
        except OverflowError:
            raise PlanningInputError(f"{what}: {text!r} is too large; give e.g. {example}") from None
    elif isinstance(text, str):
        match = _NUMBER_UNIT.match(text.strip().casefold())
        if match is None:
            raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
        try:
            value = float(match.group(1))
        except ValueError:
            raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}") from None
        unit = match.group(2)
    else:
        raise PlanningInputError(f"{what}: {text!r} is not a number; give e.g. {example}")
    if not math.isfinite(value):
        raise PlanningInputError(f"{what}: {text!r} is not a finite number; give e.g. {example}")
    return value, unit


def _plain(text: object, what: str, example: str) -> float:
    value, unit = _number(text, what, example)
    if unit:
        raise PlanningInputError(f"{what}: {text!r} has a unit co2cb does not take here; give e.g. {example}")
    return value


def parse_hours(text: object) -> float:
    """Job length in hours, from ``"36"``, ``"36h"``, ``"1.5 d"`` or ``"90min"``.

    Raises:
        PlanningInputError: Not a number, an unknown unit, or outside (0, 1,000,000] hours.
    """
    value, unit = _number(text, "--hours", "36 (hours), 36h, 1.5d or 90min")
    if unit not in _HOUR_UNITS:
        raise PlanningInputError(f"--hours: unknown unit {unit!r} in {text!r}; use h, d or min (default hours)")
    hours = value * _HOUR_UNITS[unit]
    if not 0 < hours <= MAX_HOURS:
        raise PlanningInputError(f"--hours: {text!r} is outside 0 < hours <= {MAX_HOURS:,.0f}; give e.g. 36")
    return hours


def parse_count(text: object) -> int:
    """Number of accelerators: a whole number from 1 to 1,000,000.

    Raises:
        PlanningInputError: Not a whole number, or out of range.
    """
    value = _plain(text, "--count", "8")
    if not value.is_integer():
        raise PlanningInputError(f"--count: {text!r} is not a whole number of accelerators; give e.g. 8")
    if not 1 <= value <= MAX_COUNT:
        raise PlanningInputError(f"--count: {text!r} is outside 1..{MAX_COUNT:,}; give e.g. 8")
    return int(value)


def parse_utilization(text: object) -> float:
    """Mean fraction of board power drawn: ``0.7`` or ``"70%"``, in (0, 1].

    Raises:
        PlanningInputError: Not a number, or outside (0, 1] (0-100%).
    """
    percent = isinstance(text, str) and text.strip().endswith("%")
    body = text.strip()[:-1] if isinstance(text, str) and percent else text
    try:
        value = _plain(body, "--utilization", "0.7 or 70%")
    except PlanningInputError:
        raise PlanningInputError(
            f"--utilization: {text!r} is not a fraction or a percentage; give e.g. 0.7 or 70%"
        ) from None
    if percent:
        value /= 100.0
    if not 0 < value <= 1:
        raise PlanningInputError(f"--utilization: {text!r} is outside 0 < u <= 1 (0-100%); give e.g. 0.7 or 70%")
    return value


def parse_pue(text: object) -> float:
    """Data centre power usage effectiveness, 1.0 to 3.0.

    Raises:
        PlanningInputError: Not a number, or outside 1.0..3.0.
    """
    value = _plain(text, "--pue", "1.1")
    if not MIN_PUE <= value <= MAX_PUE:
        raise PlanningInputError(f"--pue: {text!r} is outside {MIN_PUE}..{MAX_PUE}; give e.g. 1.1 (1.0 = no overhead)")
    return value


def parse_watts(
    text: object, *, option: str = "--gpu-watts", maximum: float = MAX_BOARD_WATTS, allow_zero: bool = False
) -> float:
    """A power in watts (``"400"`` or ``"400W"``) within ``(0, maximum]`` (``[0, maximum]`` with ``allow_zero``).

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    value, unit = _number(text, option, "400 or 400W")
    if unit not in ("", "w"):
        raise PlanningInputError(f"{option}: {text!r} is not in watts; give e.g. 400 or 400W")
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= maximum):
        low = "0 <=" if allow_zero else "0 <"
        raise PlanningInputError(f"{option}: {text!r} is outside {low} W <= {maximum:,.0f}; give e.g. 400")
    return value


def parse_cpu_watts(text: object) -> float:
    """Mean CPU power of the whole job in watts (``"300"`` or ``"300W"``), 0 to 1,000,000.

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    return parse_watts(text, option="--cpu-watts", maximum=MAX_CPU_WATTS, allow_zero=True)


def parse_ram_gb(text: object) -> float:
    """RAM in use for the job, GB (``"512"`` or ``"512GB"``), 0 to 1,000,000.

    Raises:
        PlanningInputError: Not a number, another unit, or out of range.
    """
    value, unit = _number(text, "--ram-gb", "512")
    if unit not in ("", "gb", "g"):
        raise PlanningInputError(f"--ram-gb: {text!r} is not in GB; give e.g. 512")
    if not 0 <= value <= MAX_RAM_GB:
        raise PlanningInputError(f"--ram-gb: {text!r} is outside 0..{MAX_RAM_GB:,.0f} GB; give e.g. 512")
    return value


# -- the estimate -------------------------------------------------------------------------------


def _intensity(region: str | None, marginal: bool) -> IntensityInfo:
    if region is None:
        resolution = resolve_region()
        return to_intensity_info(lookup(resolution.code, marginal=marginal), resolution.reason)
    return to_intensity_info(lookup(region, marginal=marginal), "--region argument")


def estimate(
    gpu: str | None,
    count: int,
    hours: float,
    region: str | None = None,
    *,
    pue: float | None = None,
    utilization: float | None = None,
    cpu_watts: float = 0.0,
    ram_gb: float = 0.0,
    gpu_watts: float | None = None,
    marginal: bool = False,
) -> PlanningEstimate:
    """Estimate a planned job's energy and CO2 from published board power.

    ``energy (kWh) = (count x hours x board W x utilisation + hours x cpu_watts
    + hours x ram_gb x 0.375 W/GB) / 1000 x PUE``; ``CO2 (kg) = energy x g/kWh / 1000``.

    Args:
        gpu: Accelerator name (see :func:`find_accelerator`); may be None when ``gpu_watts`` is given.
        count: Number of accelerators (>= 1).
        hours: Job length, hours (> 0).
        region: Region code for the carbon intensity; None resolves it offline as a run would.
        pue: Data centre PUE, 1.0 to 3.0 (default: the cloud provider's published figure for a cloud
            region, else 1.0: no overhead, as on premises).
        utilization: Mean fraction of board power drawn, (0, 1] (default 1.0: board power
            all the time, an upper bound).
        cpu_watts: Mean CPU power of the whole job, watts (not multiplied by ``count``).
        ram_gb: RAM in use by the whole job, GB, at 0.375 W per GB.
        gpu_watts: Board power per accelerator in watts, instead of (or overriding) the table's.
        marginal: Use the region's marginal (combined-margin) factor where there is one.

    Raises:
        PlanningInputError: An input is out of range (UnknownAcceleratorError for a GPU name).
        co2cb.intensity.UnknownRegionError: The region is in no table.
    """
    count = parse_count(count)
    hours = parse_hours(hours)
    cpu_watts = parse_cpu_watts(cpu_watts)
    ram_gb = parse_ram_gb(ram_gb)
    match = find_accelerator(gpu) if gpu is not None else None
    if match is None and gpu_watts is None:
        raise PlanningInputError("give --gpu NAME (see --list-gpus) or the board power with --gpu-watts")
    pue_info = resolve_pue(parse_pue(pue) if pue is not None else None, region or resolve_region().code)
    pue, pue_year = pue_info.value, pue_info.year
    pue_source = pue_info.source if pue_info.source == "given by the user" else f"{pue_info.source}: {pue_info.reason}"
    util_source = (
        "given by the user" if utilization is not None else "default: 1.0, board power all the time (an upper bound)"
    )
    utilization = parse_utilization(utilization if utilization is not None else 1.0)
    row = match.accelerator if match else None
    if gpu_watts is not None:
        board_w = parse_watts(gpu_watts)
        power_source, power_year = "given by the user (--gpu-watts)", None
    else:
        assert row is not None
        board_w = row.board_power_w
        power_source, power_year = f"{row.vendor}: {row.source} <{row.url}>", row.year
    intensity = _intensity(region, marginal)

    gpu_kwh = count * hours * board_w * utilization / 1000.0
    cpu_kwh = hours * cpu_watts / 1000.0
    ram_kwh = hours * ram_gb * RAM_WATTS_PER_GB / 1000.0
    it_kwh = gpu_kwh + cpu_kwh + ram_kwh
    total_kwh = it_kwh * pue
    co2_kg = total_kwh * intensity.g_per_kwh / 1000.0

    factors = [
        Factor("board power", board_w, "W", power_source, power_year),
        Factor("utilisation", utilization, "", util_source, None),
    ]
    if cpu_watts:
        factors.append(Factor("CPU power", cpu_watts, "W", "given by the user (--cpu-watts)", None))
    if ram_gb:
        factors.append(Factor("RAM power", RAM_WATTS_PER_GB, "W/GB", RAM_SOURCE, None))
    factors += [
        Factor("PUE", pue, "", pue_source, pue_year),
        Factor(
            "carbon intensity",
            intensity.g_per_kwh,
            "gCO2e/kWh",
            f"{intensity.source} ({intensity.kind}) for {intensity.region}",
            intensity.year,
        ),
    ]
    return PlanningEstimate(
        label=ESTIMATE_LABEL,
        accelerator=row,
        accelerator_via=match.via if match else "",
        count=count,
        hours=hours,
        board_power_w=board_w,
        board_power_source=power_source,
        utilization=utilization,
        cpu_watts=cpu_watts,
        ram_gb=ram_gb,
        ram_watts_per_gb=RAM_WATTS_PER_GB,
        gpu_kwh=gpu_kwh,
        cpu_kwh=cpu_kwh,
        ram_kwh=ram_kwh,
        it_kwh=it_kwh,
        pue=pue,
        pue_source=pue_source,
        total_kwh=total_kwh,
        intensity=intensity,
        co2_kg=co2_kg,
        factors=factors,
    )


def accelerator_rows(query: str = "") -> list[Accelerator]:
    """Rows whose name, alias or family contains ``query`` (compared as :func:`name_key`)."""
    key = name_key(query)
    return [row for row in accelerators() if not key or any(key in name_key(n) for n in _names(row))]


def _names(row: Accelerator) -> Iterable[str]:
    return (row.name, row.family, *row.aliases)
