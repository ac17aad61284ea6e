"""Build co2cb's CPU power tables from the raw public datasets.

Usage::

    python -m tools.build_cpu_tables --shared /work/shared/data [--out co2cb/data] [--report]

Writes two CSV files (attributions in ``ATTRIBUTION.md`` next to them):

* ``cpu_tdp.csv`` (``model,tdp_w,source,year``): one row per distinct normalised CPU model name
  (:func:`co2cb.meters.cpu.names.normalise_model_name`, case ignored), its TDP in watts per socket.
  When a model is in several datasets, the first in this order wins: Intel ARK, AMD server, AMD
  desktop (vendor data), CodeCarbon ``cpu_power``, Eco2AI ``cpu_names``; except that a CodeCarbon
  row (which has no dates) gives way to an Eco2AI row with the same TDP and a launch year, and an
  AMD row without a launch date takes its year from such an Eco2AI row (source
  ``"AMD via CodeCarbon (year: Eco2AI cpu_names)"``). ``year`` is the launch
  year where the dataset gives one; otherwise it is the snapshot year of the dataset file and
  the ``source`` ends in ``"(snapshot year)"``. Rows with no TDP, a TDP outside 1..1000 W, no
  digit in the name (e.g. a bare "Intel Xeon"), or no known vendor (e.g. "Steam Deck", or
  CodeCarbon's bare model numbers such as "6274" or "960T") are dropped. A missing vendor is added
  to names of one-vendor families ("Ryzen", "EPYC", "A10-7850K" are AMD's; "Xeon" is Intel's).
* ``vcpu_power.csv`` (``provider,architecture,min_w,max_w,source,year``): Cloud Carbon Footprint's
  per-vCPU idle and full-load watts per microarchitecture for AWS, GCP and Azure (derived from
  SPECpower_ssj2008 results); ``year`` is the snapshot year of the coefficients.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from co2cb.meters.cpu.names import normalise_model_name

TDP_MIN_W = 1.0
TDP_MAX_W = 1000.0

# Snapshot years of the upstream files (dates of the upstream commits read; see shared/data/SOURCES.md).
CODECARBON_CPU_POWER_YEAR = 2026  # codecarbon/data/hardware/cpu_power.csv, 2026-04-13
INTEL_ARK_YEAR = 2025  # cpu_dataset_builder/intel_cpu_ark_dataset.csv, 2025-05-25
AMD_YEAR = 2025  # cpu_dataset_builder/amd_cpu_{desktop,server}_dataset.csv (lists 2025 launches)
ECO2AI_YEAR = 2025  # eco2ai/data/cpu_names.csv, 2025-03-10
CCF_YEAR = 2026  # ccf-coefficients output/coefficients-*-use.csv, 2026-04-24

SRC_ARK = "Intel ARK via CodeCarbon"
SRC_AMD = "AMD via CodeCarbon"
SRC_CODECARBON = "CodeCarbon cpu_power"
SRC_ECO2AI = "Eco2AI cpu_names"
SRC_CCF = "Cloud Carbon Footprint coefficients (SPECpower_ssj2008)"
SNAPSHOT_SUFFIX = " (snapshot year)"

BRANDS = frozenset({"intel", "amd", "apple", "qualcomm", "snapdragon", "via", "zhaoxin", "microsoft"})
CCF_FILES = {
    "aws": "cloud_vcpu_power_ccf_aws.csv",
    "gcp": "cloud_vcpu_power_ccf_gcp.csv",
    "azure": "cloud_vcpu_power_ccf_azure.csv",
}


@dataclass(frozen=True)
class TdpRow:
    """One candidate row of ``cpu_tdp.csv``."""

    model: str
    tdp_w: float
    source: str
    year: int


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------


def _full_year(two_digits: str) -> int:
    """'16' -> 2016, '98' -> 1998."""
    value = int(two_digits)
    return 2000 + value if value < 70 else 1900 + value


def parse_year(text: str, latest: int) -> int | None:
    """Earliest plausible launch year (1970..latest) in a date string, else None.

    Handles "Q2'25", "04'16", "Q216", "Q12021", "Q3 2016", "3Q 2016", "2Q18", "10/10/2024",
    "4/23/25", "07/2020", "2021-03-01" and "Channel: 7/27/2017, OEM: 9/5/2016".
    """
    years: list[int] = []
    for pattern in (
        r"Q[1-4]\s*'?\s*(\d{4}|\d{2})\b",
        r"\b[1-4]Q\s*'?(\d{4}|\d{2})\b",
        r"'(\d{2})\b",
        r"\b\d{1,2}/(?:\d{1,2}/)?(\d{4}|\d{2})\b",
        r"\b(\d{4})-\d{2}(?:-\d{2})?\b",
    ):
        for found in re.findall(pattern, text):
            years.append(int(found) if len(found) == 4 else _full_year(found))
    plausible = [y for y in years if 1970 <= y <= latest]
    return min(plausible) if plausible else None


def parse_watts(text: str) -> float | None:
    """TDP in watts from "125.0", "280W", "35-54W", "155W / 170W", "10-25/25W" or "45+W".

    A range or a choice gives its largest figure (the TDP the part may be configured to run at).
    """
    if re.search(r"\d+\.\d+\.\d+", text):
        return None  # malformed, e.g. CodeCarbon's "27.29.5"
    numbers = [float(n) for n in re.findall(r"\d+(?:\.\d+)?", text)]
    return max(numbers) if numbers else None


def _keep(model: str, tdp_w: float | None) -> bool:
    """True for a usable row: a TDP of 1..1000 W, a digit in the name and a known vendor in it."""
    if tdp_w is None or not TDP_MIN_W <= tdp_w <= TDP_MAX_W:
        return False
    return bool(re.search(r"\d", model)) and bool(BRANDS & set(model.casefold().split()))


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _row(name: str, tdp_w: float | None, year: int | None, source: str, snapshot: int) -> TdpRow | None:
    """A normalised candidate row, or None if it is to be dropped."""
    model = normalise_model_name(name)
    if not _keep(model, tdp_w):
        return None
    assert tdp_w is not None
    if year is None:
        return TdpRow(model, tdp_w, source + SNAPSHOT_SUFFIX, snapshot)
    return TdpRow(model, tdp_w, source, year)


# ---------------------------------------------------------------------------
# Readers, one per dataset
# ---------------------------------------------------------------------------


def read_intel_ark(shared: Path) -> Iterator[TdpRow | None]:
    """Intel ARK scrape: ``cpu_name, launch_date ("Q2'25"), ..., tdp``."""
    for r in _rows(shared / "cpu_intel_ark_codecarbon.csv"):
        year = parse_year(r["launch_date"], INTEL_ARK_YEAR)
        yield _row(r["cpu_name"], parse_watts(r["tdp"]), year, SRC_ARK, INTEL_ARK_YEAR)


def read_amd(shared: Path, filename: str) -> Iterator[TdpRow | None]:
    """AMD product pages: ``Name, ..., Default TDP ("280W", "35-54W"), ..., Launch Date``."""
    for r in _rows(shared / filename):
        year = parse_year(r["Launch Date"], AMD_YEAR)
        yield _row(r["Name"], parse_watts(r["Default TDP"]), year, SRC_AMD, AMD_YEAR)


def read_codecarbon(shared: Path) -> Iterator[TdpRow | None]:
    """CodeCarbon ``cpu_power.csv``: ``Name, TDP``; no dates, so the snapshot year."""
    for r in _rows(shared / "cpu_tdp_codecarbon.csv"):
        yield _row(r["Name"], parse_watts(r["TDP"]), None, SRC_CODECARBON, CODECARBON_CPU_POWER_YEAR)


def read_eco2ai(shared: Path) -> Iterator[TdpRow | None]:
    """Eco2AI ``cpu_names.csv``: ``Model, TDP, ..., Released ("2021-03-01" or empty)``."""
    for r in _rows(shared / "cpu_tdp_eco2ai.csv"):
        year = parse_year(r["Released"], ECO2AI_YEAR)
        yield _row(r["Model"], parse_watts(r["TDP"]), year, SRC_ECO2AI, ECO2AI_YEAR)


def build_tdp_rows(shared: Path, stats: Counter[str] | None = None) -> list[TdpRow]:
    """Merge the datasets in priority order, one row per case-insensitive normalised model name."""
    stats = stats if stats is not None else Counter()
    readers = (
        read_intel_ark(shared),
        read_amd(shared, "cpu_amd_server_codecarbon.csv"),
        read_amd(shared, "cpu_amd_desktop_codecarbon.csv"),
        read_codecarbon(shared),
        read_eco2ai(shared),
    )
    chosen: dict[str, TdpRow] = {}
    for reader in readers:
        for row in reader:
            if row is None:
                stats["dropped"] += 1
                continue
            key = row.model.casefold()
            previous = chosen.get(key)
            if previous is None:
                chosen[key] = row
            elif _gives_launch_year(previous, row):
                chosen[key] = row
                stats["CodeCarbon row replaced by the Eco2AI row with the same TDP and a launch year"] += 1
            elif _lends_launch_year(previous, row):
                chosen[key] = TdpRow(previous.model, previous.tdp_w, f"{SRC_AMD} (year: {SRC_ECO2AI})", row.year)
                stats["AMD row given its launch year by an Eco2AI row with the same TDP"] += 1
            else:
                stats["duplicate dropped"] += 1
                stats["duplicate dropped with another TDP"] += previous.tdp_w != row.tdp_w
    for row in chosen.values():
        stats[f"rows from {row.source}"] += 1
    return sorted(chosen.values(), key=lambda r: r.model.casefold())


def _lends_launch_year(previous: TdpRow, row: TdpRow) -> bool:
    """True when an AMD row has no launch date and an Eco2AI row with the same TDP gives one."""
    return previous.source == SRC_AMD + SNAPSHOT_SUFFIX and row.source == SRC_ECO2AI and previous.tdp_w == row.tdp_w


def _gives_launch_year(previous: TdpRow, row: TdpRow) -> bool:
    """True when an Eco2AI row says the same as a CodeCarbon row and adds the launch year."""
    return previous.source.startswith(SRC_CODECARBON) and row.source == SRC_ECO2AI and previous.tdp_w == row.tdp_w


def build_vcpu_rows(shared: Path) -> list[dict[str, str]]:
    """Cloud Carbon Footprint per-vCPU idle/full-load watts, one row per provider and architecture."""
    rows = []
    for provider, filename in CCF_FILES.items():
        for r in _rows(shared / filename):
            min_w, max_w = float(r["Min Watts"]), float(r["Max Watts"])
            if not 0 < min_w < max_w:
                continue
            rows.append(
                {
                    "provider": provider,
                    "architecture": r["Architecture"].strip(),
                    "min_w": f"{min_w:.4f}",
                    "max_w": f"{max_w:.4f}",
                    "source": SRC_CCF,
                    "year": str(CCF_YEAR),
                }
            )
    return sorted(rows, key=lambda r: (r["provider"], r["architecture"]))


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def _format_watts(value: float) -> str:
    return f"{value:g}"


def write_tdp(rows: list[TdpRow], path: Path) -> None:
    """Write ``cpu_tdp.csv``."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["model", "tdp_w", "source", "year"])
        for r in rows:
            writer.writerow([r.model, _format_watts(r.tdp_w), r.source, r.year])


def write_vcpu(rows: list[dict[str, str]], path: Path) -> None:
    """Write ``vcpu_power.csv``."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(
            f, ["provider", "architecture", "min_w", "max_w", "source", "year"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, required=True, help="folder with the raw datasets (shared/data)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "co2cb" / "data", help="output folder"
    )
    parser.add_argument("--report", action="store_true", help="print counts per source and dropped rows")
    args = parser.parse_args(argv)

    stats: Counter[str] = Counter()
    tdp_rows = build_tdp_rows(args.shared, stats)
    vcpu_rows = build_vcpu_rows(args.shared)
    args.out.mkdir(parents=True, exist_ok=True)
    write_tdp(tdp_rows, args.out / "cpu_tdp.csv")
    write_vcpu(vcpu_rows, args.out / "vcpu_power.csv")
    print(f"cpu_tdp.csv: {len(tdp_rows)} rows; vcpu_power.csv: {len(vcpu_rows)} rows -> {args.out}")
    if args.report:
        for name, count in sorted(stats.items()):
            print(f"  {name}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
