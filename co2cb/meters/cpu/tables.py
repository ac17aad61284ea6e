"""Reading the CPU power tables shipped in ``co2cb/data`` (built by :mod:`tools.build_cpu_tables`).

Attributions of the upstream datasets are in ``co2cb/data/ATTRIBUTION.md``.
"""

from __future__ import annotations

import csv
import io
from importlib import resources


def read_package_csv(name: str) -> list[dict[str, str]]:
    """Rows of a CSV file shipped in ``co2cb/data``, as dicts keyed by the header.

    Args:
        name: The file name, e.g. ``"cpu_tdp.csv"``.
    """
    text = (resources.files("co2cb") / "data" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def parse_year(text: str) -> int | None:
    """A table's ``year`` cell as an int; None when it is empty or not a whole number."""
    return int(text) if text.strip().isdigit() else None
