"""``co2cb when --series FILE --hours H [--from T]``: the start time with the lowest CO2 in an intensity series.

The series is read with the same rules as a tracker's (:mod:`co2cb.intensity.series`):
each value holds until the next row, the last for one median step. A job of H hours
starting at ``s`` emits in proportion to the mean intensity over ``[s, s + H)``
(constant power assumed); co2cb finds the ``s`` that minimises it exactly (the mean
changes slope only where ``s`` or ``s + H`` meets a row), earliest first on ties.

The start is compared with starting now, when now leaves room for the job inside the
series; with the series start when now is outside the series; with ``--from`` when
given (the search then starts there too). Both figures come from the one series, so of
one basis (lifecycle or operational, as the series' publisher gives it): co2cb never
compares them with a table row. Values outside the plausible band (10 to 1,200
gCO2e/kWh) are said in the notes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from co2cb.cli.whatif import arg_type
from co2cb.intensity.base import PLAUSIBLE_G_PER_KWH, plausibility
from co2cb.intensity.series import SeriesIntensity
from co2cb.intensity.series_file import SeriesError, human_seconds, iso_utc, parse_timestamp
from co2cb.planning.inputs import HOURS_HELP, parse_hours


def parse_start(text: str) -> float | None:
    """``--from``: ``"now"`` (None) or a time (ISO 8601 with an offset, or unix seconds).

    Raises:
        ValueError: Not such a time.
    """
    if text.strip().lower() == "now":
        return None
    return parse_timestamp(text)


@dataclass(frozen=True)
class Plan:
    """The best start for a job and what it saves.

    Attributes:
        hours: Job length, hours.
        start_unix_s: Best start, seconds since the epoch.
        end_unix_s: Its end.
        mean_g_per_kwh: Mean intensity over the best window, gCO2e/kWh.
        reference: What the start is compared with: ``"now"``, ``"series start"`` or ``"--from"``.
        reference_unix_s: Start of the compared window.
        reference_mean_g_per_kwh: Mean intensity over it, gCO2e/kWh.
        saving_g_per_kwh: Reference minus best mean, gCO2e per kWh the job uses.
        saving_fraction: That saving over the reference mean (0 when the reference is 0).
        notes: Caveats (gaps overlapped, why the reference is not now).
    """

    hours: float
    start_unix_s: float
    end_unix_s: float
    mean_g_per_kwh: float
    reference: str
    reference_unix_s: float
    reference_mean_g_per_kwh: float
    saving_g_per_kwh: float
    saving_fraction: float
    notes: tuple[str, ...] = ()


def best_start(series: SeriesIntensity, hours: float, earliest: float | None = None, now: float | None = None) -> Plan:
    """The start in the series with the lowest mean intensity for a job of ``hours``.

    Args:
        series: The intensity series.
        hours: Job length, hours.
        earliest: Earliest start (``--from``), seconds since the epoch; None: now, or the
            series start when now is outside the series.
        now: The current time (default ``time.time()``).

    Raises:
        ValueError: The job does not fit in the series from the earliest start.
    """
    length = hours * 3600.0
    t0, t_end = series.start_unix_s, series.end_unix_s
    span = f"the series covers {iso_utc(t0)} to {iso_utc(t_end)} ({human_seconds(t_end - t0)})"
    if length > t_end - t0:
        raise ValueError(f"a {human_seconds(length)} job is longer than the series: {span}")
    notes: list[str] = []
    if earliest is not None:
        reference = "--from"
        if earliest < t0 or earliest + length > t_end:
            raise ValueError(
                f"--from {iso_utc(earliest)}: a {human_seconds(length)} job starting then does not fit in the series; "
                f"{span}"
            )
    else:
        now = time.time() if now is None else now
        if t0 <= now and now + length <= t_end:
            earliest, reference = now, "now"
        elif now < t0 or now >= t_end:
            earliest, reference = t0, "series start"
            notes.append(f"now ({iso_utc(now)}) is outside the series, so starts are compared with its start")
        else:
            raise ValueError(
                f"starting now ({iso_utc(now)}), a {human_seconds(length)} job would end after the series ends "
                f"({iso_utc(t_end)}): give a longer series, fewer --hours, or --from"
            )
    latest = t_end - length
    edges = [*series.times, t_end]
    candidates = {earliest, latest}
    candidates.update(t for t in edges if earliest <= t <= latest)
    candidates.update(t - length for t in edges if earliest <= t - length <= latest)
    scored = sorted((series.mean_between(s, s + length), s) for s in candidates)
    lowest = scored[0][0]
    tolerance = 1e-9 * max(1.0, abs(lowest))
    best = min(s for mean, s in scored if mean <= lowest + tolerance)
    best_mean = series.mean_between(best, best + length)
    ref_mean = series.mean_between(earliest, earliest + length)
    if best_mean > ref_mean:  # float noise: the reference itself is a candidate
        best, best_mean = earliest, ref_mean
    for gap in series.gaps:
        if gap.start_unix_s < best + length and best < gap.end_unix_s:
            notes.append(
                f"the best window overlaps a {human_seconds(gap.seconds)} gap in the series from "
                f"{iso_utc(gap.start_unix_s)}, where the value before the gap is assumed"
            )
    outside = [v for v in series.values if plausibility(v)]
    if outside:
        low, high = PLAUSIBLE_G_PER_KWH
        notes.append(
            f"{len(outside)} of the series' {len(series.values)} values are outside {low:g} to {high:g} gCO2e/kWh "
            f"({min(outside):g} to {max(outside):g}): check its unit (gCO2e/kWh) and source"
        )
    saving = ref_mean - best_mean
    return Plan(
        hours=hours,
        start_unix_s=best,
        end_unix_s=best + length,
        mean_g_per_kwh=best_mean,
        reference=reference,
        reference_unix_s=earliest,
        reference_mean_g_per_kwh=ref_mean,
        saving_g_per_kwh=saving,
        saving_fraction=saving / ref_mean if ref_mean > 0 else 0.0,
        notes=tuple(notes),
    )


def register(sub: Any) -> None:
    """Add the ``when`` subcommand."""
    p = sub.add_parser(
        "when",
        help="find the start time with the lowest CO2 in an intensity series",
        description="Find the start time in a carbon-intensity series (CSV: timestamp, gCO2e/kWh) that gives the "
        "lowest mean intensity, hence CO2, for a job of H hours, and what it saves against starting now.",
    )
    p.add_argument("--series", required=True, metavar="FILE", help="CSV file: timestamp, gCO2e/kWh")
    p.add_argument(
        "--hours",
        required=True,
        type=arg_type(parse_hours),
        metavar="H",
        help=HOURS_HELP,
    )
    p.add_argument(
        "--from",
        dest="start",
        type=_argtype(parse_start),
        default=None,
        metavar="T",
        help="earliest start: ISO 8601 with an offset (2024-05-01T08:00Z) or unix seconds (default: now)",
    )
    p.add_argument(
        "--kw",
        type=_argtype(_positive_kw),
        default=None,
        metavar="P",
        help="the job's mean power in kW, to give the saving in kg CO2e",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=handle)


def _positive_kw(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a number of kW") from None
    if not math.isfinite(value) or not 0 < value <= 1e6:
        raise ValueError(f"{text!r} is not a power between 0 and 1,000,000 kW")
    return value


def _argtype(parse: Any) -> Any:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__
    return convert


def handle(args: argparse.Namespace) -> int:
    """Print the best start; exit 0, or 2 with a message for bad input."""
    try:
        series = SeriesIntensity(args.series)
        plan = best_start(series, args.hours, earliest=args.start)
    except (SeriesError, ValueError) as e:
        print(f"co2cb when: {e}", file=sys.stderr)
        return 2
    kwh = args.kw * args.hours if args.kw is not None else None
    if args.json:
        out = asdict(plan)
        out["notes"] = list(plan.notes)
        out.update(
            start=iso_utc(plan.start_unix_s),
            end=iso_utc(plan.end_unix_s),
            reference_start=iso_utc(plan.reference_unix_s),
            series={
                "path": str(series.path),
                "rows": len(series.times),
                "start": iso_utc(series.start_unix_s),
                "end": iso_utc(series.end_unix_s),
                "median_step_s": series.step_s,
                "gaps": len(series.gaps),
            },
            kw=args.kw,
            kwh=kwh,
            co2_kg=kwh * plan.mean_g_per_kwh / 1000 if kwh is not None else None,
            reference_co2_kg=kwh * plan.reference_mean_g_per_kwh / 1000 if kwh is not None else None,
            saving_kg=kwh * plan.saving_g_per_kwh / 1000 if kwh is not None else None,
        )
        print(json.dumps(out, indent=2))
        return 0
    job = human_seconds(plan.hours * 3600)
    ref = {"now": "starting now", "series start": "starting at the series start", "--from": "starting at --from"}
    print(
        f"Best start for a {job} job: {iso_utc(plan.start_unix_s)} (ends {iso_utc(plan.end_unix_s)}), "
        f"mean {plan.mean_g_per_kwh:.1f} gCO2e/kWh"
    )
    print(
        f"{ref[plan.reference].capitalize()} ({iso_utc(plan.reference_unix_s)}): "
        f"mean {plan.reference_mean_g_per_kwh:.1f} gCO2e/kWh"
    )
    line = f"Saving: {plan.saving_fraction:.1%} ({plan.saving_g_per_kwh:.1f} gCO2e per kWh the job uses)"
    if kwh is not None:
        line += (
            f"; at {args.kw:g} kW ({kwh:g} kWh): {kwh * plan.mean_g_per_kwh / 1000:.3f} kg CO2e instead of "
            f"{kwh * plan.reference_mean_g_per_kwh / 1000:.3f}, {kwh * plan.saving_g_per_kwh / 1000:.3f} kg saved"
        )
    print(line)
    print(
        f"Series: {series.path}, {len(series.times)} rows, {iso_utc(series.start_unix_s)} to "
        f"{iso_utc(series.end_unix_s)}, median step {human_seconds(series.step_s)}; energy at the plug, before PUE"
    )
    for note in plan.notes:
        print(f"Note: {note}")
    return 0
