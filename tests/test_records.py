"""Run folders: durable JSON Lines, safe under SIGKILL and concurrent runs, schema as documented."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import co2cb.records.writer as writer
from co2cb import ConfigError, Tracker, read_records
from co2cb.core.results import iso
from co2cb.records.writer import RECORD_FILE, SCHEMA_VERSION, RunRecorder, check_writable, encode_line

WRITER = """
import sys, time
from co2cb import Tracker
t = Tracker(output_dir=sys.argv[1], run_name=sys.argv[2], intensity=300, interval_s=0.05, cpu_tdp_w=50)
t.start()
print(t.run_folder, flush=True)
for i in range(int(sys.argv[3])):
    with t.window("epoch", meta={"epoch": i}):
        for _ in range(50):
            t.begin("step", record=False); sum(range(2000)); t.end("step")
    print(i, flush=True)
time.sleep(float(sys.argv[4]))
t.stop()
"""


def _run_writer(out: Path, name: str, epochs: int, linger: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), name, str(epochs), str(linger)], stdout=subprocess.PIPE, text=True
    )


def test_sigkill_keeps_every_closed_window(tmp_path: Path) -> None:
    proc = _run_writer(tmp_path, "killed", 1000, 0)
    assert proc.stdout is not None
    folder = Path(proc.stdout.readline().strip())
    closed = -1
    while closed < 5:
        closed = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    lines = read_records(folder)  # every line parses
    assert lines[0]["type"] == "header"
    epochs = [x["meta"]["epoch"] for x in lines if x["type"] == "window" and x["name"] == "epoch"]
    assert epochs[: closed + 1] == list(range(closed + 1)), "every window closed before the kill is on disk"
    assert not any(x["type"] == "summary" for x in lines)


def test_concurrent_runs_in_one_parent_do_not_mix(tmp_path: Path) -> None:
    procs = [_run_writer(tmp_path, f"run{i}", 8, 0.1) for i in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 3
    names = set()
    for folder in folders:
        lines = read_records(folder)
        header, summary = lines[0], lines[-1]
        names.add(header["run_name"])
        assert header["run_id"] == folder.name
        assert summary["type"] == "summary" and summary["status"] == "completed"
        assert [x["meta"]["epoch"] for x in lines if x.get("name") == "epoch"] == list(range(8))
        assert {x["type"] for x in lines} == {"header", "window", "summary"}
    assert names == {"run0", "run1", "run2"}


def test_record_schema(tmp_path: Path) -> None:
    with Tracker(
        output_dir=tmp_path,
        run_name="schema",
        tags={"model": "tiny"},
        intensity=250,
        pue=1.2,
        cpu_tdp_w=40,
        interval_s=0.05,
    ) as t:
        with t.window("epoch", meta={"epoch": 0}):
            sum(range(200_000))
        for _ in range(10):
            t.begin("step", record=False)
            t.end("step")
    assert t.run_folder is not None and (t.run_folder / RECORD_FILE).is_file()
    header, *windows, summary = read_records(t.run_folder)
    assert header["schema"] == SCHEMA_VERSION and header["run_name"] == "schema" and header["tags"] == {"model": "tiny"}
    assert {"run_id", "start", "host", "hardware", "meters", "meter_choices", "intensity", "config", "versions"} <= set(
        header
    )
    assert all(m["provenance"] in ("measured-counter", "sampled-power", "estimate") for m in header["meters"])
    assert header["intensity"]["g_per_kwh"] == 250
    assert [w["name"] for w in windows] == ["epoch", "run"]
    epoch = windows[0]
    assert epoch["meta"] == {"epoch": 0}
    assert epoch["energy_kwh"]["total"] == pytest.approx(epoch["energy_kwh"]["cpu"] + epoch["energy_kwh"]["ram"])
    assert epoch["co2_kg"] == pytest.approx(epoch["energy_kwh"]["total"] * 250 * 1.2 / 1000)
    assert epoch["provenance"] == {"cpu": "estimate", "ram": "estimate"}
    assert epoch["seconds"] == pytest.approx(epoch["end_unix_s"] - epoch["start_unix_s"], abs=1e-6)
    assert summary["type"] == "summary" and summary["co2_kg"] == pytest.approx(windows[1]["co2_kg"])
    assert summary["steps"]["step"]["count"] == 10


def test_exception_in_context_is_recorded_as_failed(tmp_path: Path) -> None:
    tracker = Tracker(output_dir=tmp_path, intensity=100, cpu_tdp_w=10)
    with pytest.raises(RuntimeError), tracker:
        raise RuntimeError("boom")
    summary = read_records(tracker.run_folder)[-1]  # type: ignore[arg-type]
    assert summary["status"] == "failed" and "boom" in summary["error"]


def test_not_a_run_folder_and_newer_schema(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a co2cb run folder"):
        read_records(tmp_path)
    (tmp_path / RECORD_FILE).write_text(json.dumps({"type": "header", "schema": SCHEMA_VERSION + 1}) + "\n")
    with pytest.raises(ValueError, match="upgrade co2cb"):
        read_records(tmp_path)


def test_unwritable_output_folder_fails_at_construction(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="output_dir"):
        Tracker(output_dir=blocker / "runs", intensity=100)


def test_disk_error_after_start_does_not_stop_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(output_dir=tmp_path, intensity=100, cpu_tdp_w=10).start()
    assert tracker._sink.recorder is not None
    os.close(tracker._sink.recorder._fd)  # simulate the file going away under us
    time.sleep(0.01)
    with tracker.window("epoch") as w:
        pass
    tracker.stop()
    assert w.result is not None
    assert sum("could not write" in r.getMessage() for r in caplog.records) == 1


def test_a_tracker_left_running_is_stopped_at_exit(tmp_path: Path) -> None:
    code = f"from co2cb import Tracker; Tracker(output_dir={str(tmp_path)!r}, intensity=100).start()"
    subprocess.run([sys.executable, "-c", code], check=True)
    (folder,) = tmp_path.iterdir()
    assert read_records(folder)[-1]["status"] == "stopped at interpreter exit"


def test_checking_the_output_folder_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "not" / "yet"
    check_writable(target)
    assert not (tmp_path / "not").exists()
    check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_a_folder_proved_writable_is_not_probed_again_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from co2cb.records import writer

    probes: list[str] = []
    real = writer.secrets.token_hex
    monkeypatch.setattr(writer.secrets, "token_hex", lambda n: probes.append("probe") or real(n))
    folder = tmp_path / "runs"
    folder.mkdir()
    check_writable(folder)
    check_writable(folder)  # the callback's check, then the tracker's at the run's start: one probe
    assert probes == ["probe"]
    later = time.monotonic() + writer.WRITABLE_FOR_S + 1
    monkeypatch.setattr(writer.time, "monotonic", lambda: later)
    check_writable(folder)
    assert probes == ["probe", "probe"]
    folder.rmdir()
    folder.write_text("a file where the folder was")  # gone bad: no remembered probe hides it
    with pytest.raises(NotADirectoryError):
        check_writable(folder)


def test_an_output_folder_under_a_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="file"):
        check_writable(tmp_path / "file" / "runs")
    with pytest.raises(ConfigError, match="set output_dir or CO2CB_OUTPUT_DIR to a writable folder"):
        Tracker(output_dir=tmp_path / "file" / "runs", intensity=300)


def test_a_line_with_nan_or_infinity_is_written_with_null() -> None:
    line = {"type": "window", "co2_kg": float("nan"), "energy_kwh": {"cpu": float("inf"), "ram": 1.5}, "x": [-math.inf]}
    assert json.loads(encode_line(line)) == {
        "type": "window",
        "co2_kg": None,
        "energy_kwh": {"cpu": None, "ram": 1.5},
        "x": [None],
    }
    finite = {"type": "window", "co2_kg": 0.25, "meta": {"epoch": 3, "ranks": (0, 1)}, "what": Path("/x")}
    assert encode_line(finite) == b'{"type":"window","co2_kg":0.25,"meta":{"epoch":3,"ranks":[0,1]},"what":"/x"}\n'


def test_one_fsync_thread_serves_every_run_folder_within_its_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs share the process's fsync thread (no thread start per run); each written line is fsynced within
    SYNC_WITHIN_S (plus the round), off the writing thread; a closed run leaves the round."""
    import threading

    from co2cb.records import writer

    synced: dict[int, list[tuple[float, str]]] = {}
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.setdefault(os.fstat(fd).st_ino, []).append((time.monotonic(), threading.current_thread().name))
        real_fsync(fd)

    monkeypatch.setattr(writer.os, "fsync", fsync)
    recorders = [writer.RunRecorder(tmp_path) for _ in range(3)]
    sync_threads = [t for t in threading.enumerate() if t.name == "co2cb-record-sync"]
    assert len(sync_threads) == 1 and sync_threads[0].is_alive()
    written = time.monotonic()
    for r in recorders:
        r.write({"type": "event", "n": 1})
    deadline = time.monotonic() + 10 * writer.SYNC_WITHIN_S
    inodes = [os.stat(r.path).st_ino for r in recorders]
    while time.monotonic() < deadline and not all(synced.get(i) for i in inodes):
        time.sleep(0.05)
    for i in inodes:
        (at, thread), *_ = synced[i]
        assert thread == "co2cb-record-sync" and at - written < 10 * writer.SYNC_WITHIN_S
    recorders[0].close()  # its last fsync on the closing thread; the round no longer visits it
    assert synced[inodes[0]][-1][1] == threading.current_thread().name
    assert recorders[0] not in set(writer.SYNCER._recorders)
    for r in recorders[1:]:
        r.close()
    assert [json.loads(line)["n"] for line in recorders[1].path.read_text().splitlines()] == [1]


@dataclass
class _Point:
    x: float


ODD_LINE = {
    "type": "window",
    "co2_kg": float("nan"),
    "energy_kwh": {"cpu": float("inf"), "ram": 1.6325717333332487e-14, "total": 5.068e-06},
    "start_unix_s": 1796684840.674094,
    "meta": {
        "epoch": np.int64(3),
        "loss": np.float64(0.25),
        "ranks": (0, 1),
        "at": datetime(2026, 12, 7),
        "p": _Point(1),
    },
    "what": Path("/x"),
    "name": "é",
}


@pytest.mark.parametrize("encoder", ["orjson", "standard library"])
def test_both_encoders_write_the_same_values(encoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert writer._fast_encode is not None, "orjson is a dependency: record lines take its encoder"
    if encoder == "standard library":
        monkeypatch.setattr(writer, "_fast_encode", None)
    data = encode_line(ODD_LINE)
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == {
        "type": "window",
        "co2_kg": None,
        "energy_kwh": {"cpu": None, "ram": 1.6325717333332487e-14, "total": 5.068e-06},
        "start_unix_s": 1796684840.674094,
        "meta": {"epoch": "3", "loss": 0.25, "ranks": [0, 1], "at": "2026-12-07 00:00:00", "p": "_Point(x=1)"},
        "what": "/x",
        "name": "é",
    }
    assert json.loads(encode_line({"keys": {1: "a", None: "b"}, "big": 2**70})) == {  # what orjson refuses
        "keys": {"1": "a", "null": "b"},
        "big": 2**70,
    }


@given(st.floats(min_value=0, max_value=4e9) | st.integers(0, 4_000_000_000).map(lambda s: s - 5e-7))
def test_iso_stamps_are_what_datetime_writes(unix_s: float) -> None:
    assert iso(unix_s) == datetime.fromtimestamp(unix_s, tz=timezone.utc).isoformat(timespec="milliseconds")


def test_lines_written_together_take_one_write_and_a_refusing_disk_keeps_them_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = RunRecorder(tmp_path)
    real_write = os.write
    calls: list[bytes] = []
    refuse = [True]

    def disk(fd: int, data: bytes) -> int:
        calls.append(bytes(data))
        if refuse[0]:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", disk)
    with pytest.raises(OSError):
        recorder.write({"n": 1}, {"n": 2})
    assert len(calls) == 1 and recorder.pending == 2
    assert recorder.path.read_bytes() == b""
    refuse[0] = False
    recorder.write({"n": 3})
    monkeypatch.undo()
    recorder.close()
    assert [json.loads(x)["n"] for x in recorder.path.read_text().splitlines()] == [1, 2, 3]
    assert recorder.pending == 0
