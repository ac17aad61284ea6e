"""Running ``co2cb`` commands in-process, through the real entry point :func:`co2cb.cli.main.main`."""

from __future__ import annotations

import pytest

from co2cb.cli.main import main


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``co2cb ARGV...``: exit code, stdout and stderr (argparse errors raise ``SystemExit`` as usual)."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err
