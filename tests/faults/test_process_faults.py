"""Faults of processes and threads: Ctrl-C under ``co2cb run``, a forked child, two threads, a folder gone bad."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from co2cb import Tracker, read_records
from co2cb.meters.process import ProcessTree
from co2cb.records.writer import RECORD_FILE
from tests.fakes.meters import ConstantPower

ROOT = Path(__file__).resolve().parents[2]

CHECKPOINTING_SCRIPT = """
import sys, time
try:
    print("ready", flush=True)  # inside the try: a Ctrl-C right after it is the handler's to catch
    time.sleep(60)
except KeyboardInterrupt:
    time.sleep(1.0)  # saving a checkpoint: a second Ctrl-C here would cut it short
    open(sys.argv[1], "w").write("saved")
    print("checkpoint saved", flush=True)
"""


def _read_until(fd: int, text: bytes, timeout_s: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX terminal")
def test_row2_ctrl_c_under_co2cb_run_reaches_the_command_once(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    script = tmp_path / "train.py"
    script.write_text(CHECKPOINTING_SCRIPT)
    argv = [sys.executable, "-m", "co2cb", "run", "--output-dir", str(tmp_path / "runs"), "--"]
    argv += [sys.executable, str(script), str(checkpoint)]
    env = {**os.environ, "CO2CB_QUIET": "1", "PYTHONPATH": str(ROOT)}
    pid, terminal = pty.fork()  # the child gets a terminal of its own, whose foreground group it leads
    if pid == 0:  # pragma: no cover - the child
        os.chdir(ROOT)
        os.execve(sys.executable, argv, env)
    try:
        assert b"ready" in _read_until(terminal, b"ready")
        os.write(terminal, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its whole foreground group
        output = _read_until(terminal, b"co2cb: record in")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(terminal)
    assert checkpoint.exists() and checkpoint.read_text() == "saved", (status, output.decode(errors="replace"))
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    (folder,) = (tmp_path / "runs").iterdir()
    summary = read_records(folder)[-1]
    assert summary["type"] == "summary" and summary["exit_code"] == 0


def test_row2_sigterm_and_sighup_are_forwarded(tmp_path: Path) -> None:
    code = "import signal, sys, time; print('ready', flush=True); time.sleep(60)"
    for signal_name, number in (("SIGTERM", 15), ("SIGHUP", 1)):
        command = [sys.executable, "-c", code]
        proc = subprocess.Popen(
            [sys.executable, "-m", "co2cb", "run", "--output-dir", str(tmp_path / signal_name), "--", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "CO2CB_QUIET": "1"},
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(number)
        assert proc.wait(timeout=60) == 128 + number, signal_name  # the command died of the forwarded signal


COUNTS_SIGNALS = """
import signal, sys, time
got = []
signal.signal(signal.SIGTERM, lambda n, f: got.append(n))
signal.signal(signal.SIGUSR1, lambda n, f: got.append(n))
print("ready", flush=True)
while not got:
    time.sleep(0.01)
time.sleep(1.0)  # a second one, if any, lands by now
print(len(got), flush=True)
"""


COMMAND = (sys.executable, "-c", COUNTS_SIGNALS)


def _wrapped(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "co2cb", "run", "--output-dir", str(tmp_path), *flags, "--", *COMMAND],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CO2CB_QUIET": "1"},
        start_new_session=True,  # a process group of its own: the wrapper and the command
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def test_row2_sigusr1_to_co2cb_run_reaches_the_command_and_the_record_ends(tmp_path: Path) -> None:
    """SIGUSR1 (Lightning's requeue signal under SLURM) killed co2cb run before: no summary, the command orphaned."""
    proc = _wrapped(tmp_path)
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "1"  # the command handled it once and ended normally
    (folder,) = tmp_path.iterdir()
    assert read_records(folder)[-1]["type"] == "summary"


def test_row2_no_forward_lets_a_signal_sent_to_the_whole_group_reach_the_command_once(tmp_path: Path) -> None:
    proc = _wrapped(tmp_path, "--no-forward")
    os.killpg(proc.pid, signal.SIGTERM)  # as `kill -- -PGID`, Slurm or systemd do: every process gets it
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "1"  # once; co2cb run outlived it and recorded the end
    (folder,) = tmp_path.iterdir()
    assert read_records(folder)[-1]["type"] == "summary"


FORKING = """
import os, signal, sys
from co2cb import Tracker
from tests.fakes.meters import ConstantPower
t = Tracker(output_dir=sys.argv[1], intensity=100, meters=[ConstantPower()], interval_s=0.05).start()
with t.window("epoch", meta={"epoch": 0}):
    pid = os.fork()
    if pid == 0:  # a worker: it exits normally, running the exit handlers it inherited
        sys.exit(0)
    os.waitpid(pid, 0)
print(t.run_folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the parent dies before its summary
"""


def test_row9_a_forked_child_drops_the_parents_tracker(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORKING, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == -9, done.stderr
    lines = read_records(done.stdout.strip())
    assert [x["type"] for x in lines] == ["header", "window"], "the child wrote nothing into the parent's record"
    assert lines[1]["name"] == "epoch"


def test_row8_a_tracker_used_from_two_threads_loses_no_step_and_pairs_windows_by_thread(tmp_path: Path) -> None:
    tracker = Tracker(save=False, intensity=100, meters=[ConstantPower(50.0)], interval_s=0.05).start()
    results: dict[str, list[float]] = {}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        start.wait()
        seconds = results.setdefault(name, [])
        for _ in range(20):
            tracker.begin("w")
            for _ in range(100):
                tracker.begin("step", record=False)
                tracker.end("step")
            time.sleep(0.01)
            result = tracker.end("w")
            assert result is not None
            seconds.append(result.seconds)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tracker.stop()
    assert tracker.step_stats("step").count == 2 * 20 * 100
    assert min(s for ss in results.values() for s in ss) >= 0.01, "each window holds its own thread's 10 ms sleep"


def test_row5_start_with_a_folder_gone_bad_measures_in_memory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(output_dir=tmp_path / "runs", intensity=100, meters=[ConstantPower()], interval_s=0.05)
    (tmp_path / "runs").write_text("a file where the folder should go")  # the folder went bad after construction
    with caplog.at_level(logging.WARNING, logger="co2cb"):
        tracker.start()
        with tracker.window("epoch") as epoch:
            pass
        result = tracker.stop()
    said = [r.getMessage() for r in caplog.records if "cannot make a run folder" in r.getMessage()]
    assert len(said) == 1 and "in memory" in said[0]
    assert tracker.run_folder is None and tracker.run_id
    assert result is not None and epoch.result is not None


KERAS_FIT = """
import sys, time
import keras, numpy as np
from co2cb.keras import CO2Callback
from tests.fakes.meters import ConstantPower

class RaiseAt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise ValueError("bad batch in epoch 1")

x = np.random.default_rng(0).random((64, 4), dtype=np.float32)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
co2 = CO2Callback(meters=[ConstantPower(50.0)], intensity=100, interval_s=0.05, output_dir=sys.argv[1])
try:
    model.fit(x, x[:, :1], epochs=4, batch_size=16, verbose=0, callbacks=[co2, RaiseAt()])
except ValueError:
    pass  # the caller handles the error and goes on: nothing is being handled when the fit watch looks
time.sleep(0.1)
print(co2.tracker.run_folder, flush=True)
"""


def test_row12_a_keras_fit_whose_exception_the_caller_catches_records_that_exception(tmp_path: Path) -> None:
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    env = {**os.environ, "KERAS_BACKEND": "torch", "CO2CB_QUIET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", KERAS_FIT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    record = Path(done.stdout.strip().splitlines()[-1]) / RECORD_FILE
    lines = [json.loads(x) for x in record.read_text().splitlines()]  # the watch wrote it before the exit
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["status"] == "failed: ValueError: bad batch in epoch 1"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_row9_a_forked_child_starts_trackers_of_its_own(tmp_path: Path) -> None:
    """The parent's fsync thread does not run in a child: the child starts its own and writes its run."""
    parent = Tracker(output_dir=tmp_path, intensity=100, meters=[ConstantPower()], interval_s=0.05).start()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's result is its exit status
        code = 1
        try:
            child = Tracker(output_dir=tmp_path, intensity=100, meters=[ConstantPower()], interval_s=0.05).start()
            with child.window("epoch"):
                time.sleep(0.05)
            child.stop()
            names = {t.name for t in threading.enumerate()}
            code = 0 if child.result is not None and "co2cb-record-sync" in names else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    parent.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    summaries = [read_records(folder)[-1]["type"] for folder in tmp_path.iterdir()]
    assert summaries == ["summary", "summary"]  # the child's run and the parent's, each in its own folder


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_row9_a_forked_child_measures_its_own_cpu_time_not_the_parents() -> None:
    """co2cb keeps its process id (``os.getpid()`` is a system call); a forked child's tree is the child."""
    end = time.process_time() + 0.3
    while time.process_time() < end:  # the parent's CPU time, which the child's own must not include
        pass
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's result is its exit status
        code = 1
        try:
            tree = ProcessTree()
            own = tree.tree_seconds()
            code = 0 if tree.pids == [os.getpid()] and own < 0.2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ProcessTree().pids == [os.getpid()] and ProcessTree().tree_seconds() >= 0.3
