"""Threads started off the caller's thread (the sampler's): started by the process's starter, failures said."""

from __future__ import annotations

import threading

from co2cb.core.starter import STARTER


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
