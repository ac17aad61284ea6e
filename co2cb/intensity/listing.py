"""Listing and searching the embedded carbon-intensity regions (behind ``co2cb regions``).

A thin layer over :mod:`co2cb.intensity.database`: a text search over codes and names,
plus an exact :func:`~co2cb.intensity.database.lookup` so that codes which are not
substrings of any listed entry (``DEU``, ``US-TX``, ``gcp:europe-west9`` written
unprefixed) still answer, and the honest count of grids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from co2cb.intensity import database
from co2cb.intensity.database import Lookup, RegionEntry, UnknownRegionError


@dataclass(frozen=True)
class GridCount:
    """How many rows are grids of their own, and how many point at or restate them.

    Attributes:
        grids: Rows with their own value, source and year (countries + eGRID + zones).
        countries: Country rows (Ember/OWID, and ``WORLD``).
        egrid: U.S. EPA eGRID subregions.
        zones: Electricity Maps sub-national zones.
        gcp: Google Cloud regions (Google's own figure for a grid already counted).
        marginal: Marginal (combined-margin) factors: another kind of figure for the same places.
        aliases: Cloud regions and subdivisions pointing at a grid row.
    """

    grids: int
    countries: int
    egrid: int
    zones: int
    gcp: int
    marginal: int
    aliases: int

    def sentence(self) -> str:
        """One line saying what the count means."""
        return (
            f"{self.grids} grids have their own value, source and year ({self.countries} countries and areas, "
            f"{self.egrid} eGRID subregions, {self.zones} Electricity Maps zones); {self.gcp} Google Cloud "
            f"regions, {self.marginal} marginal factors and {self.aliases} aliases (AWS and Azure regions, "
            "subdivisions) point at or restate them and are not counted"
        )


@dataclass(frozen=True)
class RegionListing:
    """The answer to ``co2cb regions [QUERY]``.

    Attributes:
        query: The text searched for (``""``: everything).
        marginal: Whether marginal rows were included.
        entries: Matching rows and aliases, best first.
        exact: The lookup of ``query`` as a code, when it resolves (None otherwise).
        count: The grid count.
        suggestions: Nearest codes when nothing matched.
    """

    query: str
    marginal: bool
    entries: list[RegionEntry]
    exact: Lookup | None
    count: GridCount
    suggestions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def grid_count() -> GridCount:
    """The grid count of the embedded database (see :func:`co2cb.intensity.database.count_grids`)."""
    by_table = database.count_by_table()
    return GridCount(
        grids=database.count_grids(),
        countries=by_table["countries"],
        egrid=by_table["egrid"],
        zones=by_table["zones"],
        gcp=by_table["gcp"],
        marginal=by_table["marginal"],
        aliases=by_table["aliases"],
    )


def list_regions(query: str = "", *, marginal: bool = False) -> RegionListing:
    """Rows and aliases matching ``query`` (codes or names, case- and accent-insensitive).

    If ``query`` is a code that :func:`~co2cb.intensity.database.lookup` resolves but
    neither it nor its row is listed (no code or name contains the text: ``DEU`` -> ``DE``),
    that row is put first. Nothing found: :attr:`RegionListing.entries` is empty and
    :attr:`RegionListing.suggestions` names the nearest codes.

    Args:
        query: Text to find; ``""`` lists everything.
        marginal: Include the marginal (combined-margin) rows.
    """
    text = query.strip()
    entries = database.search(text, marginal=marginal)
    exact: Lookup | None = None
    if text:
        try:
            exact = database.lookup(text, marginal=marginal)
        except UnknownRegionError:
            exact = None
    listed = {e.code.upper() for e in entries}
    if exact is not None and not listed & {exact.row.code.upper(), text.upper()}:
        row = exact.row
        entries.insert(0, RegionEntry(row.code, row.name, row.g_per_kwh, row.year, row.source, row.kind, row.licence))
    suggestions = [] if entries else database.database().suggest(text.upper())
    return RegionListing(text, marginal, entries, exact, grid_count(), suggestions)
