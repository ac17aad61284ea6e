"""``co2cb estimate --gpu A100 --count 8 --hours 36 --region aws:us-east-1``: a planning estimate before training."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from co2cb.cli.regions import FORMATS, table_lines, write_csv
from co2cb.cli.whatif import arg_type
from co2cb.intensity.database import UnknownRegionError
from co2cb.planning.accelerators import accelerators
from co2cb.planning.estimate import PlanningEstimate, estimate
from co2cb.planning.inputs import (
    HOURS_HELP,
    PlanningInputError,
    parse_count,
    parse_cpu_watts,
    parse_hours,
    parse_pue,
    parse_ram_gb,
    parse_utilization,
    parse_watts,
)
from co2cb.units import format_energy, format_mass

GPU_COLUMNS = ("name", "board_power_w", "form_factor", "vendor", "year", "aliases", "source", "url", "note")


def register(sub: Any) -> None:
    """Add the ``estimate`` subcommand."""
    p = sub.add_parser(
        "estimate",
        help="estimate a planned training job's energy and CO2 from published board power",
        description="A planning ESTIMATE before any training, in the manner of the ML CO2 Impact calculator "
        "(Lacoste et al. 2019): energy = count x hours x board power x utilisation (+ CPU and RAM if given) "
        "x PUE; CO2 = energy x the region's carbon intensity. Board power is the vendor's published maximum "
        "(TDP / total board power), not a measurement: with the default utilisation of 1.0 the result is an "
        "upper bound. Measure the real run with `co2cb run` or a Tracker.",
        epilog="Exit status: 0 done, 2 a bad argument (an unknown GPU or region names the nearest ones).",
    )
    p.add_argument(
        "--gpu",
        metavar="NAME",
        help="accelerator, e.g. A100, a100-80gb, 'H100 SXM', L4, MI300X (case-insensitive; see --list-gpus)",
    )
    p.add_argument("--count", type=arg_type(parse_count), help="number of accelerators, e.g. 8")
    p.add_argument("--hours", type=arg_type(parse_hours), help=HOURS_HELP)
    p.add_argument(
        "--region",
        help="region code for the carbon intensity, e.g. FR or aws:us-east-1 "
        "(default: resolved offline as a run would, and said why)",
    )
    p.add_argument("--pue", type=arg_type(parse_pue), help="data centre PUE, 1.0 to 3.0 (default 1.0: no overhead)")
    p.add_argument(
        "--utilization",
        "--utilisation",
        type=arg_type(parse_utilization),
        metavar="U",
        help="mean fraction of board power drawn, 0.7 or 70%% (default 1.0: board power all the time)",
    )
    p.add_argument(
        "--gpu-watts",
        type=arg_type(parse_watts),
        metavar="W",
        help="board power per accelerator in watts, for one not in the table or to override it",
    )
    p.add_argument(
        "--cpu-watts",
        type=arg_type(parse_cpu_watts),
        default=0.0,
        metavar="W",
        help="mean CPU power of the whole job in watts (not per GPU)",
    )
    p.add_argument(
        "--ram-gb",
        type=arg_type(parse_ram_gb),
        default=0.0,
        metavar="GB",
        help="RAM in use by the whole job in GB, at 0.375 W per GB",
    )
    p.add_argument("--marginal", action="store_true", help="use the region's marginal factor where there is one")
    p.add_argument("--list-gpus", action="store_true", help="list the accelerator table and exit")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.set_defaults(handler=handle)


def print_gpus(fmt: str) -> None:
    """Print the accelerator table in ``fmt``."""
    rows = accelerators()
    if fmt == "json":
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    if fmt == "csv":
        write_csv(
            GPU_COLUMNS,
            [
                [r.name, r.board_power_w, r.form_factor, r.vendor, r.year, ";".join(r.aliases), r.source, r.url, r.note]
                for r in rows
            ],
        )
        return
    shown = [[r.name, f"{r.board_power_w:g}", r.form_factor, r.year, ", ".join(r.aliases), r.source] for r in rows]
    for line in table_lines(("name", "W", "form factor", "year", "also", "source"), shown):
        print(line)
    print(
        f"\n{len(rows)} accelerators; board power is the vendor's published maximum (TDP / TBP). "
        "Sources' addresses: --list-gpus --format csv"
    )


def estimate_lines(est: PlanningEstimate) -> list[str]:
    """The estimate as labelled lines of text."""
    acc = est.accelerator
    what = acc.name if acc else "accelerator(s)"
    lines = [f"{est.label} (planning figure)", ""]
    lines.append(
        f"  accelerators     {est.count} x {what}, {est.board_power_w:g} W each"
        + (f" ({acc.note})" if acc and acc.note else "")
    )
    if est.accelerator_via:
        lines.append(f"                   {est.accelerator_via}")
    for f in est.factors:
        year = f", {f.year}" if f.year else ""
        unit = f" {f.unit}" if f.unit else ""
        lines.append(f"  {f.name:<16} {f.value:g}{unit}  ({f.source}{year})")
    lines.append(
        f"  GPU energy       {est.count} x {est.hours:g} h x {est.board_power_w:g} W x {est.utilization:g} "
        f"= {format_energy(est.gpu_kwh)}"
    )
    if est.cpu_watts:
        lines.append(f"  CPU energy       {est.hours:g} h x {est.cpu_watts:g} W = {format_energy(est.cpu_kwh)}")
    if est.ram_gb:
        lines.append(
            f"  RAM energy       {est.hours:g} h x {est.ram_gb:g} GB x {est.ram_watts_per_gb:g} W/GB "
            f"= {format_energy(est.ram_kwh)}"
        )
    lines.append(f"  energy           {format_energy(est.it_kwh)} x PUE {est.pue:g} = {format_energy(est.total_kwh)}")
    i = est.intensity
    lines.append(f"  region           {i.region} ({i.region_name}), {i.kind}; why: {i.reason}")
    lines.append(
        f"  CO2e             {format_energy(est.total_kwh)} x {i.g_per_kwh:g} gCO2e/kWh = "
        f"{format_mass(est.co2_kg)} CO2e (ESTIMATE)"
    )
    return lines


def handle(args: argparse.Namespace) -> int:
    """Print the estimate (or the accelerator table); 2 for a bad or missing argument."""
    if args.list_gpus:
        print_gpus(args.format)
        return 0
    missing = [o for o, v in (("--count", args.count), ("--hours", args.hours)) if v is None]
    if args.gpu is None and args.gpu_watts is None:
        missing.insert(0, "--gpu (or --gpu-watts)")
    if missing:
        print(
            f"co2cb estimate: give {', '.join(missing)}, e.g. co2cb estimate --gpu A100 --count 8 --hours 36 "
            "--region aws:us-east-1",
            file=sys.stderr,
        )
        return 2
    try:
        est = estimate(
            args.gpu,
            args.count,
            args.hours,
            args.region,
            pue=args.pue,
            utilization=args.utilization,
            cpu_watts=args.cpu_watts,
            ram_gb=args.ram_gb,
            gpu_watts=args.gpu_watts,
            marginal=args.marginal,
        )
    except (PlanningInputError, UnknownRegionError) as exc:
        print(f"co2cb estimate: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(est.as_dict(), indent=2))
    elif args.format == "csv":
        i = est.intensity
        write_csv(
            (
                "label",
                "accelerator",
                "count",
                "hours",
                "board_power_w",
                "utilization",
                "cpu_watts",
                "ram_gb",
                "it_kwh",
                "pue",
                "total_kwh",
                "region",
                "g_per_kwh",
                "intensity_source",
                "intensity_year",
                "co2_kg",
            ),
            [
                [
                    est.label,
                    est.accelerator.name if est.accelerator else "",
                    est.count,
                    est.hours,
                    est.board_power_w,
                    est.utilization,
                    est.cpu_watts,
                    est.ram_gb,
                    est.it_kwh,
                    est.pue,
                    est.total_kwh,
                    i.region,
                    i.g_per_kwh,
                    i.source,
                    i.year,
                    est.co2_kg,
                ]
            ],
        )
    else:
        print("\n".join(estimate_lines(est)))
    return 0
