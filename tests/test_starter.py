"""Threads started off the caller's thread (the sampler's): started by the process's starter, failures said."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from co2cb import Tracker, read_records
from co2cb.core import sampler as sampler_module
from co2cb.core.starter import STARTER
from tests.fakes.meters import ConstantPower


class Recorded(threading.Thread):
    """A thread that notes which thread started it."""

    started_by = ""

    def start(self) -> None:
        self.started_by = threading.current_thread().name
        super().start()


class Refused(threading.Thread):
    """A thread the system refuses to start."""

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def test_the_starter_thread_starts_a_thread_and_the_event_says_when() -> None:
    ran = threading.Event()
    thread = Recorded(target=ran.set, daemon=True)
    failures: list[BaseException] = []
    started = STARTER.start(thread, failures.append)
    assert started.wait(10) and ran.wait(10)
    thread.join(10)
    assert thread.started_by == "co2cb-starter" and failures == []


def test_a_thread_that_cannot_start_is_reported_to_its_owner() -> None:
    failures: list[BaseException] = []
    started = STARTER.start(Refused(target=lambda: None), failures.append)
    assert started.wait(10)
    assert [str(e) for e in failures] == ["can't start new thread"]
    ran = threading.Event()
    assert STARTER.start(threading.Thread(target=ran.set, daemon=True), failures.append).wait(10)
    assert ran.wait(10)  # the starter went on


def test_a_tracker_whose_sampler_thread_cannot_start_reads_at_boundaries_and_stops(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert STARTER.start(threading.Thread(target=lambda: None), print).wait(10)  # the starter runs already
    monkeypatch.setattr(sampler_module.threading, "Thread", Refused)  # (threading's: no thread starts now)
    tracker = Tracker(meters=[ConstantPower(100.0)], save=False, intensity=100, interval_s=0.05)
    with tracker:
        time.sleep(0.05)
        with tracker.window("epoch") as window:
            time.sleep(0.1)
    assert "the sampler's thread could not start (can't start new thread)" in caplog.text
    assert window.result is not None and window.result.joules["cpu"] == pytest.approx(10.0, rel=0.3)
    assert tracker.result is not None and tracker.result.joules["cpu"] > window.result.joules["cpu"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_starts_trackers_of_its_own(tmp_path: Path) -> None:
    """The parent's starter and fsync threads do not run in a child: the child starts its own and writes its run."""
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
            code = 0 if child.result is not None and {"co2cb-starter", "co2cb-record-sync"} <= names else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    parent.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    summaries = [read_records(folder)[-1]["type"] for folder in tmp_path.iterdir()]
    assert summaries == ["summary", "summary"]  # the child's run and the parent's, each in its own folder
