"""Every Python snippet in the README runs as written."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from co2cb.cli.main import main

README = Path(__file__).resolve().parent.parent / "README.md"
ALL_SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Ray Train's snippet starts a Ray cluster of worker processes: tests/test_ray_train.py runs it, as written.
SNIPPETS = [s for s in ALL_SNIPPETS if "ray.train" not in s]


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_readme_has_exactly_two_setup_commands() -> None:
    setup = README.read_text().split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"```bash\n", setup)) == 2


def test_ci_runs_the_readme_test_command() -> None:
    text = README.read_text()
    test_command = next(line for line in text.splitlines() if "python -m pytest" in line and line.startswith("python3"))
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command.strip() in ci.splitlines()


def test_command_lines_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``co2cb ...`` line of the README's shell blocks, in order, in a fresh folder; each exits 0."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CO2CB_QUIET", "1")
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    python = f"{sys.executable} "  # the README's "python" is the one running the tests
    commands = [shlex.split(line.replace("python ", python, 1)) for line in lines if line.startswith("co2cb ")]
    assert len(commands) >= 7
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    assert len(list((tmp_path / "co2cb-runs").iterdir())) == 2
    assert (tmp_path / "compare.png").stat().st_size > 0 and (tmp_path / "report.html").stat().st_size > 0
