"""The README's "What co2cb does when things go wrong" table and this suite name the same tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

FAULTS = Path(__file__).resolve().parent
README = FAULTS.parents[1] / "README.md"
SECTION = "## What co2cb does when things go wrong"


def _table_tests() -> list[str]:
    section = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| What goes")]
    assert rows, "the table has no rows"
    names = []
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        assert len(cells) == 3, row
        named = re.findall(r"`(test_\w+)`", cells[2])
        assert named, f"a row without its test: {row}"
        names += named
    return names


def _suite_tests() -> set[str]:
    found = set()
    for path in FAULTS.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        found |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return found


def test_every_test_the_table_names_exists() -> None:
    assert sorted(set(_table_tests()) - _suite_tests()) == []


def test_every_fault_test_is_in_the_table() -> None:
    assert sorted(_suite_tests() - set(_table_tests())) == []


def test_every_row_of_the_issue_has_a_test() -> None:
    rows = {int(m) for name in _table_tests() for m in re.findall(r"^test_row(\d+)_", name)}
    assert rows == set(range(1, 14))
