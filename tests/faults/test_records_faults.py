"""Faults of the run record: a disk that fills and frees again, a deleted run folder, damaged lines, bad headers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from co2cb import Tracker, read_records
from co2cb.records.reader import RunFolderError, find_runs, load_run
from co2cb.records.writer import RECORD_FILE
from tests.cli import run_cli

ROOT = Path(__file__).resolve().parents[2]

FILLS_AND_FREES = """
import os, resource, signal, sys
from co2cb import Tracker, read_records
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG instead of killing us
t = Tracker(output_dir=sys.argv[1], intensity=300, interval_s=0.05, cpu_tdp_w=50).start()
record = t.run_folder / "run.jsonl"
with t.window("epoch", meta={"epoch": 0}):
    pass
# The disk fills in the middle of the next line: the kernel takes part of it (a short write), then refuses.
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(record) + 100, resource.RLIM_INFINITY))
for epoch in (1, 2, 3):
    with t.window("epoch", meta={"epoch": epoch}):
        pass
print(len(read_records(t.run_folder)), flush=True)  # the file parses while the disk is full
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # and frees again
for epoch in (4, 5):
    with t.window("epoch", meta={"epoch": epoch}):
        pass
t.stop()
print(t.run_folder, flush=True)
"""


def test_row1_disk_that_fills_and_frees_keeps_every_line_and_the_run_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # co2cb report writes its page here
    done = subprocess.run(
        [sys.executable, "-c", FILLS_AND_FREES, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    while_full, folder = done.stdout.split()
    assert int(while_full) == 2, "while the disk is full the file holds its whole lines only: header, epoch 0"
    assert "could not write" in done.stderr and done.stderr.count("could not write") == 1
    text = (Path(folder) / RECORD_FILE).read_text()
    records = [json.loads(x) for x in text.splitlines()]  # every line parses, with no help from co2cb
    epochs = [x["meta"]["epoch"] for x in records if x.get("name") == "epoch"]
    assert epochs == [0, 1, 2, 3, 4, 5], "the lines refused while the disk was full are written once it frees"
    assert records[-1]["type"] == "summary"
    for command in ("compare", "report"):
        code, _, err = run_cli([command, folder], capsys)
        assert code == 0, err


def test_row10_deleted_run_folder_is_said_and_the_run_goes_on_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = Tracker(output_dir=tmp_path, intensity=100, cpu_tdp_w=10, interval_s=0.05).start()
    folder = tracker.run_folder
    assert folder is not None
    (folder / RECORD_FILE).unlink()
    folder.rmdir()
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        with tracker.window("epoch") as epoch:
            pass
        deadline = time.monotonic() + 30
        while not any("was deleted" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
        with tracker.window("epoch"):
            pass
        result = tracker.stop()
    said = [r.getMessage() for r in caplog.records if "was deleted" in r.getMessage()]
    assert len(said) == 1 and str(folder) in said[0] and "in memory" in said[0]
    assert result is not None and epoch.result is not None and result.seconds > 0
    assert not folder.exists(), "nothing recreates a folder the user deleted"


def _record(folder: Path, *lines: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / RECORD_FILE).write_bytes(b"".join(lines))
    return folder


def _good_run(tmp_path: Path) -> list[bytes]:
    with Tracker(output_dir=tmp_path / "source", intensity=100, cpu_tdp_w=10, interval_s=0.05) as tracker:
        for epoch in range(3):
            with tracker.window("epoch", meta={"epoch": epoch}):
                pass
    assert tracker.run_folder is not None
    return (tracker.run_folder / RECORD_FILE).read_bytes().splitlines(keepends=True)


def test_row1_damaged_line_is_skipped_with_file_and_line(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # co2cb report writes its page here
    good = _good_run(tmp_path)
    half = good[2][: len(good[2]) // 2]  # a half line with the next line appended to it, as a short write left it
    folder = _record(tmp_path / "runs" / "damaged", *good[:2], half + good[3], *good[4:])
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        run = load_run(folder)
    assert run.complete and [e.index for e in run.epochs] == [0]
    said = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(said) == 1 and f"{folder / RECORD_FILE}" in said[0] and "line 3" in said[0]
    for command in ("compare", "report", "statement", "whatif"):
        argv = [command, str(tmp_path / "runs")] if command != "whatif" else [command, str(folder), "--region", "FR"]
        code, _, err = run_cli(argv, capsys)
        assert code == 0, (command, err)


BAD_FIRST_LINES = {
    "number": (b"42\n", "first line is not a header"),
    "list": (b"[1,2,3]\n", "first line is not a header"),
    "schema-text": (b'{"type": "header", "schema": "2"}\n', "no valid record schema \\('2'"),
    "schema-null": (b'{"type": "header", "schema": null}\n', "no valid record schema \\(None"),
    "not-utf8": (b'{"type": "header", "run_id": "\xff\xfe"}\n', "not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIRST_LINES))
def test_row11_bad_first_line_is_a_clean_error_with_file_and_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    first, message = BAD_FIRST_LINES[case]
    folder = _record(tmp_path / case, first, b'{"type": "window", "name": "epoch"}\n')
    where = f"{folder / RECORD_FILE}:1"
    with pytest.raises(ValueError, match=message) as raised:
        read_records(folder)
    assert where in str(raised.value)
    with pytest.raises(RunFolderError, match=message):
        find_runs([folder])
    for command in ("compare", "report", "statement", "whatif"):
        argv = [command, str(folder)] + (["--region", "FR"] if command == "whatif" else [])
        code, _, err = run_cli(argv, capsys)
        assert code != 0 and err.startswith(f"co2cb {command}: ") and where in err, (command, err)
        assert "Traceback" not in err


def test_row11_a_run_that_cannot_be_read_under_a_parent_folder_is_left_out_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    parent = tmp_path / "co2cb-runs"
    good = _record(parent / "good", *_good_run(tmp_path))
    empty = _record(parent / "empty")  # killed before its header
    cut = _record(parent / "cut", b'{"type": "header", "run_')  # killed while writing it
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        runs = find_runs([parent])
    assert [r.path for r in runs] == [good]  # before: one such run stopped every command on the folder
    said = " ".join(r.getMessage() for r in caplog.records)
    assert said.count("a run left out: ") == 2 and f"{empty / RECORD_FILE}" in said and f"{cut / RECORD_FILE}" in said
    code, out, _ = run_cli(["statement", str(parent)], capsys)
    assert code == 0 and "The run" in out
    with pytest.raises(RunFolderError, match="is empty"):  # named by itself, it is still an error
        find_runs([empty])
    (good / RECORD_FILE).write_bytes(b"")
    with pytest.raises(RunFolderError, match=r"holds no run folder that can be read: .*is empty"):
        find_runs([parent])


def test_row1_a_full_disk_leaves_no_write_probe_behind(tmp_path: Path) -> None:
    """The check that a folder takes files writes a small one; on a full disk that write fails, and it goes too."""
    probe = """
import resource, signal, sys
from co2cb.records.writer import check_writable
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))  # a full disk: no byte goes in
try:
    check_writable(__import__("pathlib").Path(sys.argv[1]))
except OSError as e:
    print("refused", e.errno)
"""
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.startswith("refused"), done.stderr
    assert list(tmp_path.iterdir()) == []  # before: an empty .co2cb-write-test-* file stayed


def test_row11_invalid_utf8_inside_a_record_names_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = _good_run(tmp_path)
    folder = _record(tmp_path / "utf8", *good[:2], b'{"type": "event", "note": "\xff"}\n', *good[2:])
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        lines = read_records(folder)
    assert len(lines) == len(good)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"{folder / RECORD_FILE}" in said and "line 3 (not valid UTF-8" in said


def test_row12_non_numeric_figures_do_not_read_as_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = _good_run(tmp_path)
    summary = json.loads(good[-1])
    summary["energy_kwh"] = {**summary["energy_kwh"], "cpu": "lots"}
    folder = _record(tmp_path / "lots", *good[:-1], json.dumps(summary).encode() + b"\n")
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        run = load_run(folder)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "energy_kwh.cpu is 'lots', not a number" in said and f"line {len(good)}" in said
    assert not run.complete, "the damaged summary is not taken for totals"
    assert "lower bound" in run.totals_from and run.totals_windows == ["run"], "totals from the run window instead"
