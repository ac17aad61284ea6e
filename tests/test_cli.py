"""The `co2cb` command line: `info` and `run`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from co2cb import read_records

CLI = [sys.executable, "-m", "co2cb"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CO2CB_REGION": "FR", "CO2CB_OUTPUT_DIR": str(tmp_path / "runs")}


def test_info_text_and_json(tmp_path: Path) -> None:
    text = subprocess.run([*CLI, "info"], capture_output=True, text=True, env=_env(tmp_path), check=True).stdout
    assert "Meters:" in text and "Carbon intensity" in text and "FR" in text
    assert "gpu: none" in text and "NVML" in text  # the reason there is no GPU meter
    found = json.loads(
        subprocess.run([*CLI, "info", "--json"], capture_output=True, text=True, env=_env(tmp_path), check=True).stdout
    )
    assert {c["component"] for c in found["choices"]} == {"gpu", "cpu", "ram"}
    assert found["intensity"]["region"] == "FR"


def test_run_passes_exit_code_and_writes_a_record(tmp_path: Path) -> None:
    code = "import sys; sum(range(3_000_000)); sys.exit(3)"
    done = subprocess.run(
        [*CLI, "run", "--name", "demo", "--interval", "0.1", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
    )
    assert done.returncode == 3
    assert "g CO2e" in done.stderr and "record in" in done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    header, *_, summary = read_records(folder)
    assert header["run_name"] == "demo"
    assert summary["exit_code"] == 3 and summary["status"] == "failed"
    assert summary["command"][-1] == code
    assert summary["energy_kwh"]["cpu"] > 0, "the child's CPU time counts"


def test_run_success_and_missing_command(tmp_path: Path) -> None:
    ok = subprocess.run(
        [*CLI, "run", "--", sys.executable, "-c", "pass"], capture_output=True, text=True, env=_env(tmp_path)
    )
    assert ok.returncode == 0
    missing = subprocess.run(
        [*CLI, "run", "--", "no-such-command-co2cb"], capture_output=True, text=True, env=_env(tmp_path)
    )
    assert missing.returncode == 127 and "cannot start" in missing.stderr
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\n")
    refused = subprocess.run([*CLI, "run", "--", str(script)], capture_output=True, text=True, env=_env(tmp_path))
    assert refused.returncode == 126 and "cannot start" in refused.stderr  # the shell's code for it
    empty = subprocess.run([*CLI, "run"], capture_output=True, text=True, env=_env(tmp_path))
    assert empty.returncode == 2 and "give a command" in empty.stderr


def test_run_bad_option_says_what_to_change(tmp_path: Path) -> None:
    bad = subprocess.run(
        [*CLI, "run", "--interval", "0", "--", "true"], capture_output=True, text=True, env=_env(tmp_path)
    )
    assert bad.returncode == 2 and "between 0.05 and 60" in bad.stderr


def test_an_unknown_region_is_the_same_clean_error_in_info_and_run(tmp_path: Path) -> None:
    """``--region nowhere`` and ``CO2CB_REGION=nowhere``: one line naming the nearest codes, exit 2, no traceback."""
    env = {**_env(tmp_path), "CO2CB_REGION": "nowhere", "CO2CB_QUIET": "1"}
    clean = {k: v for k, v in env.items() if k != "CO2CB_REGION"}
    said = {}
    for name, argv, environ in (
        ("info --region", ["info", "--region", "nowhere"], clean),
        ("info with CO2CB_REGION", ["info"], env),
        ("run --region", ["run", "--region", "nowhere", "--", sys.executable, "-c", "pass"], clean),
        ("run with CO2CB_REGION", ["run", "--", sys.executable, "-c", "pass"], env),
    ):
        done = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=environ)
        assert done.returncode == 2, (name, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
        said[name] = done.stderr.split(": ", 1)[1]
    assert all("unknown region 'nowhere' (nearest:" in text for text in said.values())
    # and where the code came from: the variable is named, as a user who passed no --region looks for it
    assert "it came from CO2CB_REGION=nowhere" in said["info with CO2CB_REGION"] == said["run with CO2CB_REGION"]
    assert "given as an argument" in said["info --region"] == said["run --region"]


def test_a_command_whose_bytes_are_not_utf8_names_a_run_every_report_reads(tmp_path: Path) -> None:
    env = _env(tmp_path)
    done = subprocess.run([*CLI, "run", "--", "echo", os.fsdecode(b"caf\xe9")], capture_output=True, env=env)
    assert done.returncode == 0
    (folder,) = (tmp_path / "runs").iterdir()
    header, *_, summary = read_records(folder)
    assert header["run_name"] == "echo caf\ufffd" and summary["command"] == ["echo", "caf\ufffd"]
    out = tmp_path / "report.html"
    report = subprocess.run([*CLI, "report", str(tmp_path / "runs"), "-o", str(out)], capture_output=True, env=env)
    assert report.returncode == 0, report.stderr  # before: matplotlib refused the name's lone surrogate
