"""co2cb/docs/methodology.md, shipped in the package, states what the code does: constants, sources, citations."""

from __future__ import annotations

import csv
import importlib
import inspect
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import co2cb
from co2cb.intensity.pue import CLOUD_PUE
from co2cb.intensity.region import CLOUD_ENV_VARS
from co2cb.meters.base import Provenance
from co2cb.meters.estimates import RAM_WATTS_PER_GB_SOURCE

ROOT = Path(__file__).resolve().parent.parent
DOC = (resources.files("co2cb") / "docs" / "methodology.md").read_text(encoding="utf-8")  # as the package ships it
FLAT = " ".join(DOC.split())  # line breaks inside paragraphs do not matter


def constant_rows() -> list[tuple[str, str, str]]:
    """(label, value, code expression) of each row of the "Constants" table."""
    section = DOC.split("## 9. Constants", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[4].startswith("`co2cb."):
            rows.append((cells[0], cells[1], cells[4].strip("`")))
    return rows


def evaluate(expression: str) -> Any:
    """Evaluate a doc row's code expression, importing the co2cb modules it names."""
    for dotted in re.findall(r"co2cb(?:\.\w+)+", expression):
        parts = dotted.split(".")
        for end in range(len(parts), 1, -1):
            try:
                importlib.import_module(".".join(parts[:end]))
                break
            except ImportError:
                continue
    return eval(expression, {"co2cb": co2cb})  # trusted: the repository's own documentation


def test_the_constants_table_is_there() -> None:
    labels = [label for label, _, _ in constant_rows()]
    assert len(labels) >= 20
    for needed in (
        "RAM power per GB in use",
        "default sampling interval",
        "PUE, Google Cloud",
        "per-vCPU full-load power, unknown architecture (AWS table mean)",
        "world average intensity",
    ):
        assert needed in labels


@pytest.mark.parametrize(("label", "value", "expression"), constant_rows(), ids=[r[0] for r in constant_rows()])
def test_each_constant_matches_the_code(label: str, value: str, expression: str) -> None:
    actual = evaluate(expression)
    decimals = len(value.split(".", 1)[1]) if "." in value else 0
    assert math.isclose(float(value), actual, rel_tol=0, abs_tol=0.5 * 10**-decimals + 1e-12), (label, actual)


def test_the_tracker_default_interval_is_the_documented_one() -> None:
    documented = next(float(v) for label, v, _ in constant_rows() if label == "default sampling interval")
    power_only = next(float(v) for label, v, _ in constant_rows() if label.startswith("default sampling interval with"))
    assert inspect.signature(co2cb.Tracker).parameters["interval_s"].default is None  # chosen from the meters
    assert f"default **{documented}" in FLAT and f"or **{power_only:g} s** when a meter only gives power" in FLAT


def test_the_equivalents_are_listed_with_their_published_factors_and_source() -> None:
    from co2cb.report.compare.equivalents import EPA_PAGE, EPA_URL, EQUIVALENTS

    section = DOC.split("## 10. Everyday equivalents", 1)[1].split("\n## ", 1)[0]
    assert " ".join(EPA_PAGE.split()) in " ".join(section.split()) and EPA_URL in section
    for equivalent in EQUIVALENTS:
        row = next(line for line in section.splitlines() if line.startswith(f"| {equivalent.label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert equivalent.published.startswith(cells[1].split(" per ")[0]), (cells[1], equivalent.published)
        assert math.isclose(float(cells[2]), evaluate(cells[3].strip("`")), rel_tol=1e-6), equivalent.label


def test_the_ram_constant_names_codecarbon_3s_own_model() -> None:
    assert "CodeCarbon 3 instead counts 5 W per DIMM" in FLAT and "as used by CodeCarbon and" not in FLAT


def test_sources_named_in_the_code_are_named_in_the_doc() -> None:
    assert " ".join(RAM_WATTS_PER_GB_SOURCE.split()) in FLAT
    for pue in CLOUD_PUE.values():
        assert pue.source in FLAT, pue.source
        assert f"| {pue.value:g} | {pue.year} | {pue.source}" in DOC
    vcpu = csv.DictReader((ROOT / "co2cb" / "data" / "vcpu_power.csv").open())
    for source in {row["source"] for row in vcpu}:
        assert source in FLAT, source


def test_intensity_tables_are_described_with_their_source_and_latest_year() -> None:
    data = ROOT / "co2cb" / "intensity" / "data"
    section = DOC.split("### 4.2 Which figure", 1)[1].split("\n#", 1)[0]
    table = "\n".join(x for x in section.splitlines() if x.startswith("|"))
    for name in (
        "countries_owid_ember.csv",
        "us_egrid2022.csv",
        "zones_electricitymaps.csv",
        "cloud_gcp_google.csv",
        "marginal_unfccc_ifi_2021.csv",
    ):
        rows = list(csv.DictReader((data / name).open()))
        (source,) = {row["source"] for row in rows}
        line = next((x for x in table.splitlines() if f"| {source} |" in x), None)
        assert line is not None, source
        assert str(max(int(row["year"]) for row in rows)) in line, (source, line)


def test_per_vcpu_spread_is_the_tables() -> None:
    rows = [r for r in csv.DictReader((ROOT / "co2cb" / "data" / "vcpu_power.csv").open()) if r["provider"] == "aws"]
    found = re.search(r"full-load power ranges from (\S+) to (\S+) W per vCPU", FLAT)
    assert found is not None
    assert float(found.group(1)) == min(float(r["max_w"]) for r in rows)
    assert float(found.group(2)) == max(float(r["max_w"]) for r in rows)


def test_choices_made_by_the_code_are_listed() -> None:
    for provenance in Provenance:
        assert f"`{provenance.value}`" in DOC
    for variable, _ in CLOUD_ENV_VARS:
        assert f"`{variable}`" in DOC, variable
    assert "`CO2CB_REGION`" in DOC


def test_tested_accuracy_is_the_tests() -> None:
    accuracy_tests = (ROOT / "tests" / "test_accuracy.py").read_text()
    assert (
        "assert error < 0.005" in accuracy_tests
        and "allowed = 0.005 * truth + late_reads_allowance(gpu.power" in accuracy_tests
    )
    assert "within 0.5 % of the true energy" in FLAT


@pytest.mark.parametrize(
    "citation",
    [
        "Lacoste et al. (2019)",
        "Henderson et al. (2020)",
        "Dodge et al. (2022)",
        "Patterson et al. (2022)",
        "Budennyy et al. 2022",
    ],
)
def test_the_papers_behind_the_methods_are_cited(citation: str) -> None:
    assert citation in FLAT
    author = citation.split()[0]
    references = DOC.split("## References", 1)[1]
    assert re.search(rf"^- {author}, ", references, flags=re.M), author


def test_the_statement_cites_the_methodology_where_an_installed_package_has_it() -> None:
    from co2cb.report.statement_text import METHODOLOGY

    shipped = METHODOLOGY.split()[0]
    assert shipped == "co2cb/docs/methodology.md"
    assert resources.files("co2cb").joinpath(*shipped.split("/")[1:]).read_text(encoding="utf-8") == DOC
    assert "https://github.com/co2cb/co2cb/blob/main/co2cb/docs/methodology.md" in METHODOLOGY
