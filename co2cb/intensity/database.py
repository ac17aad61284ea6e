"""The embedded regional carbon-intensity database and its lookups.

Rows come from the embedded tables (:mod:`co2cb.intensity.tables`), one file per source and
licence:

* ``countries``: Ember/OWID, every ISO-coded country (latest year) and ``WORLD``;
* ``egrid``: the 27 U.S. EPA eGRID2022 subregions (CO2 only);
* ``zones``: Electricity Maps sub-national zones (US balancing authorities,
  Canadian provinces, Australian states, ...), ODbL;
* ``gcp``: Google Cloud regions with Google's own yearly grid figure;
* ``marginal``: UNFCCC/IFI combined-margin factors (``kind="marginal"``), CC BY-SA.

AWS / Azure regions and ISO 3166-2 subdivisions (``US-CA``) are *aliases*: they
point at the grid row that serves them and say why (:attr:`Lookup.via`).

All values are in gCO2e/kWh (eGRID: gCO2/kWh). Data is loaded lazily, once.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from co2cb.intensity.base import IntensityInfo, plausibility
from co2cb.intensity.tables import (
    GRID_TABLES,
    TABLE_FILES,
    GridRow,
    RawRows,
    read_tables,
    row_from_csv,
)

#: Countries whose every ISO 3166-2 subdivision is in the alias table (or is a
#: zone key): an unknown ``XX-...`` code there is an error, not the national row.
COMPLETE_SUBDIVISIONS: frozenset[str] = frozenset({"US", "CA", "AU", "IN", "JP", "BR"})

CLOUD_PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure")

LIST_HINT = "list regions with `co2cb regions [QUERY]` or co2cb.intensity.database.search(QUERY)"

_ISO_3166_2 = re.compile(r"^([A-Z]{2})-([A-Z0-9]{1,3})$")


@dataclass(frozen=True)
class Lookup:
    """The row found for a query, and how it was reached.

    Attributes:
        row: The row whose value is used.
        query: The code as asked.
        via: How the query led to the row (alias, alpha-3, cloud region...); ``""`` when direct.
    """

    row: GridRow
    query: str
    via: str


@dataclass(frozen=True)
class RegionEntry:
    """A search result: a row, or an alias shown with its target's figure.

    Attributes:
        code: Code to pass to :func:`lookup`.
        name: Human-readable name.
        g_per_kwh: Intensity in gCO2e/kWh of the row it stands for.
        year: Year of that figure.
        source: Publisher of that figure.
        kind: ``"average"`` or ``"marginal"``.
        licence: Licence of that figure's data file.
        alias_of: Code of the grid row an alias points to; None for a row.
        basis: ``"lifecycle"`` or ``"operational"`` (see :class:`~co2cb.intensity.tables.GridRow`).
        note: What is doubtful about the figure (see :func:`caveat_of`), or ``""``.
    """

    code: str
    name: str
    g_per_kwh: float
    year: int
    source: str
    kind: str
    licence: str
    alias_of: str | None = None
    basis: str = ""
    note: str = ""


class UnknownRegionError(ValueError):
    """A region code that is in none of the tables.

    Attributes:
        query: The code as asked.
        suggestions: Nearest codes, best first.
    """

    def __init__(self, query: str, suggestions: list[str], hint: str = "") -> None:
        self.query = query
        self.suggestions = suggestions
        self.hint = hint
        near = f"nearest: {', '.join(suggestions)}" if suggestions else "no close match"
        extra = f"; {hint}" if hint else ""
        super().__init__(f"unknown region {query!r} ({near}){extra}; {LIST_HINT}")


@dataclass(frozen=True)
class _Alias:
    code: str
    name: str
    target: str
    via: str


class Database:
    """All tables, indexed for lookups. Build with :func:`load_database`."""

    def __init__(self, tables: dict[str, RawRows], aliases: dict[str, RawRows]) -> None:
        self.rows: dict[str, dict[str, GridRow]] = {}
        self.country_of: dict[str, str] = {}
        self.alpha3: dict[str, str] = {}
        for table, raw_rows in tables.items():
            index: dict[str, GridRow] = {}
            for raw in raw_rows:
                row = row_from_csv(raw, table)
                index[row.code.upper()] = row
                if raw.get("alpha3", "").isalpha():  # countries, and country zones from Electricity Maps
                    self.alpha3[raw["alpha3"].upper()] = row.code
                if table == "countries":
                    self.country_of[row.code] = row.code
                elif table == "egrid":
                    self.country_of[row.code] = "US"
                elif table in ("zones", "gcp") and raw.get("country"):
                    self.country_of[row.code] = raw["country"]
            self.rows[table] = index
        self.grids: dict[str, GridRow] = {}
        for table in GRID_TABLES:
            self.grids.update(self.rows.get(table, {}))
        self.aliases: dict[str, _Alias] = {}
        for raw_rows in aliases.values():
            for raw in raw_rows:
                alias = _Alias(raw["code"], raw["name"], raw["target"], raw["via"])
                if alias.target.upper() not in self.grids:
                    raise ValueError(f"alias {alias.code} points to {alias.target}, which is not a grid row")
                self.aliases[alias.code.upper()] = alias
        self.names: dict[str, str | None] = {}
        for row in self.grids.values():
            key = _fold(row.name)
            self.names[key] = None if key in self.names else row.code  # None: ambiguous

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, query: str, *, marginal: bool = False) -> Lookup:
        """See :func:`lookup`."""
        if not isinstance(query, str):
            raise UnknownRegionError(repr(query), [], "a region code is a string")
        key = query.strip().upper()
        found = self._find(key)
        if found is None:
            if marginal and key in self.rows["marginal"]:
                return Lookup(self.rows["marginal"][key], query, "marginal factor only (no average row)")
            hint = "only a marginal factor exists: pass marginal=True" if key in self.rows["marginal"] else ""
            raise UnknownRegionError(query, self.suggest(key), hint)
        row, via, matched = found
        if marginal:
            return self._marginal(row, via, matched, query)
        return Lookup(row, query, via)

    def _find(self, key: str) -> tuple[GridRow, str, str] | None:
        """``(row, via, code matched)`` for a normalised query, or None."""
        if not key:
            return None
        if ":" in key:
            return self._find_prefixed(key)
        if key in self.grids:
            return self.grids[key], "", key
        if len(key) == 3 and key in self.alpha3:
            code = self.alpha3[key]
            return self.grids[code.upper()], f"alpha-3 {key} -> {code}", key
        if key in self.aliases:
            return self._follow(self.aliases[key]), self.aliases[key].via, key
        cloud = [f"{p.upper()}:{key}" for p in CLOUD_PROVIDERS if self._cloud(f"{p.upper()}:{key}") is not None]
        if len(cloud) == 1:
            row, via = self._cloud(cloud[0])  # type: ignore[misc]
            taken = f"{key.lower()} taken as {cloud[0].lower()}"
            return row, f"{taken}; {via}" if via else taken, cloud[0]
        iso = _ISO_3166_2.match(key)
        if iso and iso.group(1) in self.grids and iso.group(1) not in COMPLETE_SUBDIVISIONS:
            country = iso.group(1)
            via = f"{key}: no sub-national grid in the database; the national grid {country} is used"
            return self.grids[country], via, key
        named = self.names.get(_fold(key))
        if named:
            row = self.grids[named.upper()]
            return row, f"name {row.name!r} -> {named}", named.upper()
        return None

    def _find_prefixed(self, key: str) -> tuple[GridRow, str, str] | None:
        prefix, _, rest = key.partition(":")
        rest = rest.strip()
        if prefix.strip() in ("AWS", "GCP", "AZURE"):
            cloud_key = f"{prefix.strip()}:{rest.replace(' ', '') if prefix.strip() == 'AZURE' else rest}"
            found = self._cloud(cloud_key)
            return None if found is None else (found[0], found[1], cloud_key)
        if prefix.strip() == "EGRID" and rest in self.rows["egrid"]:
            return self.rows["egrid"][rest], "", rest
        if prefix.strip() in ("EM", "ELECTRICITYMAPS") and rest in self.rows["zones"]:
            return self.rows["zones"][rest], "", rest
        return None

    def _cloud(self, key: str) -> tuple[GridRow, str] | None:
        if key in self.rows["gcp"]:
            return self.rows["gcp"][key], ""
        if key in self.aliases:
            return self._follow(self.aliases[key]), self.aliases[key].via
        return None

    def _follow(self, alias: _Alias) -> GridRow:
        return self.grids[alias.target.upper()]

    def _marginal(self, row: GridRow, via: str, matched: str, query: str) -> Lookup:
        candidates = [matched, row.code.upper()]
        parts = row.code.upper().split("-")
        candidates += ["-".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]
        country = self.country_of.get(row.code)
        if country:
            candidates.append(country.upper())
        marginal = self.rows["marginal"]
        for code in candidates:
            if code in marginal:
                found = marginal[code]
                note = f"marginal factor for {found.code}"
                if code not in (matched, row.code.upper()):
                    note += f" (marginal factors are per country or territory; {row.code} is in {found.code})"
                return Lookup(found, query, f"{via}; {note}" if via else note)
        note = f"no marginal factor for {row.code}: the average is returned"
        return Lookup(row, query, f"{via}; {note}" if via else note)

    # -- listing ---------------------------------------------------------------------------

    def suggest(self, key: str, n: int = 5) -> list[str]:
        """Nearest codes to a query, by code and by name (difflib), as ``"CODE (name)"``."""
        texts: dict[str, str] = {}
        for table in (*GRID_TABLES, "gcp"):
            for row in self.rows[table].values():
                texts.setdefault(_fold(row.name), row.code)
                texts[_fold(row.code)] = row.code
        for alias in self.aliases.values():
            texts[_fold(alias.code)] = alias.code
            texts.setdefault(_fold(alias.name), alias.code)
        for a3 in self.alpha3:
            texts.setdefault(_fold(a3), a3)
        out: list[str] = []
        for text in difflib.get_close_matches(_fold(key[:64]), list(texts), n=3 * n, cutoff=0.6):
            if texts[text] not in out:
                out.append(texts[text])
        return [self._label(code) for code in out[:n]]

    def _label(self, code: str) -> str:
        key = code.upper()
        row = self.grids.get(key) or self.rows["gcp"].get(key)
        if row is not None:
            return f"{row.code} ({row.name})"
        if key in self.aliases:
            return f"{self.aliases[key].code} ({self.aliases[key].name})"
        if key in self.alpha3:
            return f"{key} (alpha-3 of {self.alpha3[key]})"
        return code

    def entries(self, *, marginal: bool = False) -> list[RegionEntry]:
        """Every row and alias as search entries."""
        out = [_entry(row) for table in (*GRID_TABLES, "gcp") for row in self.rows[table].values()]
        for alias in self.aliases.values():
            target = self._follow(alias)
            out.append(
                RegionEntry(
                    alias.code,
                    alias.name,
                    target.g_per_kwh,
                    target.year,
                    target.source,
                    target.kind,
                    target.licence,
                    alias_of=target.code,
                    basis=target.basis,
                    note=caveat_of(target),
                )
            )
        if marginal:
            out += [_entry(row) for row in self.rows["marginal"].values()]
        return out


def _fold(text: str) -> str:
    """Case- and accent-insensitive form of a text ("Québec" -> "quebec")."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _entry(row: GridRow) -> RegionEntry:
    return RegionEntry(
        row.code,
        row.name,
        row.g_per_kwh,
        row.year,
        row.source,
        row.kind,
        row.licence,
        basis=row.basis,
        note=caveat_of(row),
    )


def caveat_of(row: GridRow) -> str:
    """What is doubtful about a row's figure: its note and, outside the plausible band, why (``""`` if nothing)."""
    return "; ".join(n for n in (row.note, plausibility(row.g_per_kwh)) if n)


def load_database(data_dir: Path | None = None) -> Database:
    """Read every table from ``data_dir`` (default: the embedded data) into a :class:`Database`."""
    return Database(*read_tables(data_dir))


@functools.lru_cache(maxsize=1)
def database() -> Database:
    """The embedded database, loaded on first use."""
    return load_database()


def lookup(code: str, *, marginal: bool = False) -> Lookup:
    """Find the carbon-intensity row for a region code.

    Accepted, case-insensitively: ISO 3166-1 alpha-2 or alpha-3 (``FR``, ``FRA``),
    ISO 3166-2 (``US-CA``, ``CA-QC``, ``IN-MH``), eGRID subregions (``CAMX``,
    ``egrid:CAMX``), Electricity Maps zone keys (``US-CAL-CISO``), cloud regions
    (``aws:eu-west-3``, ``gcp:europe-west9``, ``azure:francecentral``; unprefixed
    when only one provider has the name), ``WORLD`` and exact grid names
    (``France``). Subdivisions of countries without sub-national rows fall back
    to the national row, and :attr:`Lookup.via` says so.

    Args:
        code: Region code.
        marginal: Return the UNFCCC/IFI marginal (combined-margin) row for the
            region's country or territory where there is one; otherwise the
            average row, with ``via`` saying no marginal factor exists.

    Returns:
        The row, the query and how one led to the other.

    Raises:
        UnknownRegionError: The code is in no table; the message names the nearest codes.
    """
    return database().lookup(code, marginal=marginal)


def is_known(code: str) -> bool:
    """Whether :func:`lookup` finds an average row for ``code``."""
    try:
        database().lookup(code)
    except UnknownRegionError:
        return False
    return True


def search(query: str = "", *, marginal: bool = False) -> list[RegionEntry]:
    """Rows and aliases whose code or name contains ``query`` (case-insensitive).

    Matching ignores case and accents ("quebec" finds "Québec"). Exact code
    matches come first, then codes starting with the query, then the rest, each
    by code. An empty query lists everything.

    Args:
        query: Text to find in codes and names.
        marginal: Also list the marginal rows.
    """
    q = _fold(query.strip())
    hits = [e for e in database().entries(marginal=marginal) if q in _fold(e.code) or q in _fold(e.name)]

    def rank(entry: RegionEntry) -> tuple[int, str, str]:
        code = _fold(entry.code)
        return (0 if code == q else 1 if code.startswith(q) else 2, code, entry.kind)

    return sorted(hits, key=rank)


def rows(table: str | None = None) -> list[GridRow]:
    """The rows of one table (see :data:`TABLE_FILES`), or of all tables."""
    db = database()
    tables = [table] if table is not None else list(TABLE_FILES)
    return [row for name in tables for row in db.rows[name].values()]


def count_grids() -> int:
    """How many rows are grids with their own value, source and year.

    Counts the country, eGRID and Electricity Maps rows. Aliases (AWS / Azure
    regions, ISO 3166-2 subdivisions) point at one of those and do not count;
    nor do GCP regions (Google's figure for a grid already counted) or marginal
    rows (another kind of figure for the same grids).
    """
    db = database()
    return sum(len(db.rows[table]) for table in GRID_TABLES)


def count_by_table() -> dict[str, int]:
    """Rows per table and aliases per alias file."""
    db = database()
    counts = {table: len(db.rows[table]) for table in TABLE_FILES}
    counts["aliases"] = len(db.aliases)
    return counts


def to_intensity_info(found: Lookup, reason: str) -> IntensityInfo:
    """The core's :class:`~co2cb.core.emissions.IntensityInfo` for a lookup.

    Args:
        found: Result of :func:`lookup`.
        reason: Why this region was chosen (e.g. :attr:`Resolution.reason`); the
            lookup's ``via`` is appended when it adds something.
    """
    full = reason
    if found.via and found.via not in reason:
        full = f"{reason}; {found.via}" if reason else found.via
    row = found.row
    return IntensityInfo(
        g_per_kwh=row.g_per_kwh,
        region=row.code,
        region_name=row.name,
        source=row.source,
        year=row.year,
        kind=row.kind,
        reason=full,
        basis=row.basis,
        caveat=caveat_of(row),
    )
