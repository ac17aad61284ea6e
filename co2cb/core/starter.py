"""Threads started by a helper thread, so that the caller does not wait for them to run.

``threading.Thread.start()`` returns only once the new thread runs: 0.2 to 0.4 ms on a small VM, paid
by the training thread in every framework's start hook. The process's one starter thread (started with
the first tracker of the process, and again in a forked child) starts them instead; the caller gets
an event that is set once the thread has started, or could not be.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Failed = Callable[[BaseException], None]


class Starter:
    """Starts threads off the caller's thread (see the module's notes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[threading.Thread, threading.Event, Failed]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self, thread: threading.Thread, on_failure: Failed) -> threading.Event:
        """Have ``thread`` started soon; the event is set once it has been (after ``on_failure(error)`` if it failed).

        Raises:
            RuntimeError: The starter thread itself could not be started (the system's thread limit).
        """
        started = threading.Event()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # (a forked child: see forget_in_child)
                self._thread = threading.Thread(target=self._run, name="co2cb-starter", daemon=True)
                self._thread.start()
            self._queue.put((thread, started, on_failure))
        return started

    def forget_in_child(self) -> None:
        """In a forked child: the parent's starter thread does not run here, and its queue is not this process's."""
        self.__init__()  # type: ignore[misc]

    def _run(self) -> None:
        while True:
            thread, started, on_failure = self._queue.get()
            try:
                thread.start()
            except Exception as e:  # noqa: BLE001 - said by the owner; the starter goes on
                on_failure(e)
            finally:
                started.set()


STARTER = Starter()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=STARTER.forget_in_child)
