"""``co2cb whatif RUN --region X [--region Y ...]``: a recorded run's CO2 in other regions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from co2cb.cli.regions import FORMATS, table_lines, write_csv
from co2cb.intensity.database import UnknownRegionError
from co2cb.planning.inputs import PlanningInputError, parse_pue
from co2cb.planning.whatif import PATTERSON_2022, WhatIf, WhatIfError, whatif
from co2cb.units import format_energy, format_mass

CSV_COLUMNS = (
    "query",
    "region",
    "region_name",
    "g_per_kwh",
    "year",
    "source",
    "kind",
    "basis",
    "pue",
    "co2_kg",
    "ratio",
)


def arg_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` from a parser raising :class:`PlanningInputError`; keeps its message, once."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except PlanningInputError as exc:
            message = str(exc)
            if message.startswith("--") and ": " in message:
                message = message.split(": ", 1)[1]
            raise argparse.ArgumentTypeError(message) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def register(sub: Any) -> None:
    """Add the ``whatif`` subcommand."""
    p = sub.add_parser(
        "whatif",
        help="recompute a recorded run's CO2 for other regions",
        description="Recompute the CO2 of a run recorded by co2cb as if it had drawn the same energy from other "
        "grids, and print each region's CO2 and its ratio to the CO2 recorded. The energy is the record's "
        "(the summary's energy_kwh.total; for a run killed before its summary, the sum of its outermost closed "
        "windows, a lower bound); the PUE is the record's unless --pue is given.",
        epilog=f"{PATTERSON_2022}. Exit status: 0 done, 1 RUN is not a readable run, 2 a bad argument "
        "(an unknown region names the nearest codes).",
    )
    p.add_argument("run", metavar="RUN", help="run folder made by co2cb, e.g. co2cb-runs/20261127-021939-3fa2c1")
    p.add_argument(
        "--region",
        action="append",
        required=True,
        metavar="CODE",
        help="region to compare with (FR, US-CA, aws:eu-north-1, gcp:europe-west9...); repeat for more",
    )
    p.add_argument("--pue", type=arg_type(parse_pue), help="PUE to use instead of the run's own (1.0 to 3.0)")
    p.add_argument("--marginal", action="store_true", help="use each region's marginal factor where there is one")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.set_defaults(handler=handle)


def print_whatif(result: WhatIf, fmt: str) -> None:
    """Print a what-if in ``fmt`` (``table``, ``csv`` or ``json``)."""
    rows = [
        [o.query, o.region, o.region_name, o.g_per_kwh, o.year, o.source, o.kind, o.basis, o.pue, o.co2_kg, o.ratio]
        for o in result.outcomes
    ]
    if fmt == "json":
        print(json.dumps(result.as_dict(), indent=2))
        return
    if fmt == "csv":
        write_csv(CSV_COLUMNS, rows)
        return
    run = result.run
    name = f" ({run.run_name})" if run.run_name and run.run_name != run.run_id else ""
    where = run.region + (f" ({run.region_name})" if run.region_name and run.region_name != run.region else "")
    about = [
        p
        for p in (
            where,
            run.source if run.source != run.region_name else "",
            str(run.year) if run.year else "",
            run.kind,
            run.basis or "basis not recorded",
        )
        if p
    ]
    print(f"run {run.run_id}{name}: {format_energy(run.energy_kwh)} before PUE, from {run.energy_from}")
    print(
        f"recorded: {format_mass(run.co2_kg)} CO2e at {run.g_per_kwh:.4g} gCO2e/kWh x PUE {run.pue:g} "
        f"({', '.join(about)})"
    )
    print(f"PUE for the regions below: {result.pue:g} (from {result.pue_from})\n")
    shown = [
        [
            o.query,
            o.region,
            o.region_name,
            f"{o.g_per_kwh:g}",
            o.year,
            o.source,
            o.kind,
            o.basis,
            format_mass(o.co2_kg),
            "n/a" if o.ratio is None else f"{o.ratio:.3g}x",
        ]
        for o in result.outcomes
    ]
    headers = ("region", "grid", "name", "gCO2e/kWh", "year", "source", "kind", "basis", "CO2e", "x recorded")
    for line in table_lines(headers, shown):
        print(line)
    vias = [f"  {o.query}: {o.via}" for o in result.outcomes if o.via]
    if vias:
        print("\n" + "\n".join(vias))
    for warning in result.warnings:
        print(f"\nwarning: {warning}")
    print(f"\n{PATTERSON_2022}.")


def handle(args: argparse.Namespace) -> int:
    """Recompute and print; 1 for an unusable run folder, 2 for an unknown region."""
    try:
        result = whatif(args.run, args.region, pue=args.pue, marginal=args.marginal)
    except UnknownRegionError as exc:
        print(f"co2cb whatif: {exc}", file=sys.stderr)
        return 2
    except WhatIfError as exc:
        print(f"co2cb whatif: {exc}", file=sys.stderr)
        return 1
    print_whatif(result, args.format)
    return 0
