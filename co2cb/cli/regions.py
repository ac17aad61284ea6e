"""``co2cb regions [QUERY]``: list and search the embedded carbon-intensity regions."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from typing import Any

from co2cb.intensity.listing import RegionListing, list_regions

FORMATS = ("table", "csv", "json")
COLUMNS = ("code", "name", "g_per_kwh", "year", "source", "kind", "basis", "alias_of", "note")


def register(sub: Any) -> None:
    """Add the ``regions`` subcommand."""
    p = sub.add_parser(
        "regions",
        help="list and search the embedded carbon-intensity regions",
        description="List the regions co2cb knows (code, name, gCO2e/kWh, year, source, kind, basis), or those "
        "whose code or name contains QUERY. Aliases (AWS and Azure regions, subdivisions such as US-CA) are shown "
        "with the grid they point at. The basis says what a figure counts: lifecycle (Ember/OWID, Electricity "
        "Maps) or operational (Google's region figures, eGRID, the UNFCCC/IFI factors), which read lower for "
        "the same grid: compare figures of one basis. A doubtful figure (outside 10 to 1,200 gCO2e/kWh, or "
        "repeated by its source for years) is marked with ! and explained below the table.",
        epilog="Exit status: 0 when something matched, 1 when nothing did (the nearest codes are named).",
    )
    p.add_argument(
        "query",
        nargs="?",
        default="",
        metavar="QUERY",
        help="text to find in codes and names, e.g. FR, quebec, aws:eu, CAMX (default: list all)",
    )
    p.add_argument("--marginal", action="store_true", help="also list marginal (combined-margin, UNFCCC/IFI) factors")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.set_defaults(handler=handle)


def table_lines(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Rows as text columns, each as wide as its widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]


def write_csv(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Rows as CSV on standard output."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([["" if c is None else c for c in row] for row in rows])


def print_listing(listing: RegionListing, fmt: str) -> None:
    """Print a listing in ``fmt`` (``table``, ``csv`` or ``json``)."""
    rows = [
        [e.code, e.name, f"{e.g_per_kwh:g}", e.year, e.source, e.kind, e.basis, e.alias_of, e.note]
        for e in listing.entries
    ]
    if fmt == "json":
        print(json.dumps(listing.as_dict(), indent=2))
        return
    if fmt == "csv":
        write_csv(COLUMNS, rows)
        return
    if listing.exact is not None and listing.exact.via:
        print(f"{listing.query}: {listing.exact.via}")
    shown = [
        [c, n, f"{g}{' !' if t else ''}", y, s, k, b, f"-> {a}" if a else ""] for c, n, g, y, s, k, b, a, t in rows
    ]
    headers = ("code", "name", "gCO2e/kWh", "year", "source", "kind", "basis", "alias of")
    for line in table_lines(headers, shown):
        print(line)
    doubtful = list(dict.fromkeys(f"  {e.alias_of or e.code}: {e.note}" for e in listing.entries if e.note))
    if doubtful:
        print("\n! doubtful figures:\n" + "\n".join(doubtful))
    bases = {e.basis for e in listing.entries if e.basis}
    if len(bases) > 1:
        print("\nLifecycle and operational figures are listed together: compare figures of one basis only.")
    print(f"\n{len(listing.entries)} shown. {listing.count.sentence()}.")


def handle(args: argparse.Namespace) -> int:
    """List or search; 1 when nothing matches."""
    listing = list_regions(args.query, marginal=args.marginal)
    if not listing.entries:
        near = f"nearest: {', '.join(listing.suggestions)}" if listing.suggestions else "no close match"
        print(
            f"co2cb regions: no region matches {args.query!r} ({near}); try part of a code or name, "
            "or `co2cb regions` to list them all",
            file=sys.stderr,
        )
        return 1
    print_listing(listing, args.format)
    return 0
