"""Run folders: one JSON Lines file per run; every line written whole, fsynced off the training thread.

Layout: ``<output_dir>/<run-id>/run.jsonl`` with a ``header`` line, one ``window`` line per closed
window at epoch level and above, ``event`` lines, and a ``summary`` line on a normal end.

Durability: :meth:`RunRecorder.write` hands each line to the kernel whole with ``write()`` on the
caller's thread, so a process killed at any moment (SIGKILL) keeps every line written before; the
process's one fsync thread (:class:`Syncer`, started with the first run folder of the process) comes by
every :data:`SYNC_WITHIN_S` and fsyncs what each open run wrote since (group commit: lines written
meanwhile share one fsync; a write never wakes it), and
:meth:`RunRecorder.close` fsyncs the rest, so a power loss costs at most the last second. The file
always parses: a short write is retried for its remainder, and a line that cannot be written (disk
full, I/O error) is cut back to the last whole line and kept in memory, to be written, in order, by
the next write that succeeds. A record file deleted under a running run is noticed (one warning);
the run goes on in memory.

Run ids are unique (UTC time plus random hex) and folders are made with an atomic ``mkdir``, so runs
sharing a parent folder never touch each other's files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RECORD_FILE = "run.jsonl"
OUTPUT_DIR_ENV = "CO2CB_OUTPUT_DIR"
DEFAULT_OUTPUT_DIR = "co2cb-runs"
SYNC_WITHIN_S = 1.0
"""Longest time a written line waits for its fsync, seconds (the background thread's period)."""
MAX_PENDING_LINES = 100_000
"""Writes (a line, or lines written together) kept in memory while the disk refuses them; older ones are dropped
past this (and said so)."""


def default_output_dir() -> Path:
    """``CO2CB_OUTPUT_DIR`` if set (an empty value counts as unset), else ``./co2cb-runs``.

    Raises:
        ValueError: ``CO2CB_OUTPUT_DIR`` holds only spaces.
    """
    value = os.environ.get(OUTPUT_DIR_ENV, "")
    if value and not value.strip():
        raise ValueError(
            f"{OUTPUT_DIR_ENV}={value!r} is blank: set it to the folder for run records, or unset it "
            f"for ./{DEFAULT_OUTPUT_DIR}"
        )
    return Path(value or DEFAULT_OUTPUT_DIR)


WRITABLE_FOR_S = 60.0
"""How long a folder that took a probe file counts as writable without another probe, seconds (a callback's
options are checked when it is built and again when its run starts; the run folder's own ``mkdir`` at
start is the last word)."""
_proved_writable: dict[str, float] = {}  # folder -> time.monotonic() of its last successful probe


def check_writable(parent: Path) -> None:
    """Prove that run folders can be made under ``parent``, without leaving anything behind.

    An existing folder gets a probe file written and removed (not again within :data:`WRITABLE_FOR_S`);
    a folder still to be made is checked on its nearest existing ancestor, so merely checking options
    creates no folder.

    Raises:
        OSError: With the path and the system's reason.
    """
    if parent.is_dir():
        key = os.path.abspath(parent)
        if time.monotonic() - _proved_writable.get(key, -math.inf) < WRITABLE_FOR_S:
            return
        probe = parent / f".co2cb-write-test-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            with open(probe, "w") as f:
                f.write("ok")
        finally:  # a full disk fails the write (or the close) of a file already made
            probe.unlink(missing_ok=True)
        _proved_writable[key] = time.monotonic()
        return
    ancestor = parent.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(ancestor))
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "no permission to make a folder in it", str(ancestor))


def new_run_id() -> str:
    """A run id such as ``20261127-021939-3fa2c1``: UTC start time and 6 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _clean(value: Any) -> Any:
    """Replace NaN and infinities (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


_encode_strict = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False).encode  # made once, not per line
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _other(value: Any) -> Any:
    """What orjson writes for a value it does not know: a float subclass (numpy's float64) as a number, else text."""
    return float(value) if isinstance(value, float) else str(value)


def _orjson_encoder() -> Callable[[dict[str, Any]], bytes] | None:
    """The ``dumps`` of orjson as a record line needs it (newline-ended), or None where orjson cannot be imported."""
    try:
        import orjson
    except ImportError:  # a platform without its wheel: the standard library's encoder
        return None
    options = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    return partial(orjson.dumps, default=_other, option=options)


_fast_encode = _orjson_encoder()


def encode_line(line: dict[str, Any]) -> bytes:
    """One record line as UTF-8 JSON ending in a newline (NaN and infinities become null).

    orjson (a dependency) writes it: about 1.5 us for an epoch's window line, against 24 us for the standard
    library's encoder, whose shortest float repr is the cost. A line orjson refuses (a key that is not a string,
    an integer past 64 bits) goes to the standard library's encoder as it is; only a line that holds a NaN or
    an infinity there (or a key it cannot take) is walked and cleaned. Either way unknown values are written as
    text (``str``), float subclasses (numpy's) as numbers.
    """
    if _fast_encode is not None:
        try:
            return _fast_encode(line)
        except TypeError:  # a key or an integer orjson does not take: the standard library's encoder writes it
            pass
    try:
        text = _encode_strict(line)
    except (TypeError, ValueError):
        text = _encode(_clean(line))
    return (text + "\n").encode()


class RunRecorder:
    """Appends JSON lines to one run's record file; see the module's notes on durability.

    Attributes:
        run_id: The run's id (the folder's name).
        folder: The run folder.
        path: The record file.
        lost: Why the file is no longer written (it was deleted), or None.
    """

    def __init__(self, parent: Path, run_id: str | None = None) -> None:
        """Create the run folder (a fresh id is drawn if the folder exists) and start the fsync thread.

        Raises:
            OSError: The folder or its file cannot be made.
        """
        parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            self.run_id = run_id or new_run_id()
            self.folder = parent / self.run_id
            try:
                self.folder.mkdir()
                break
            except FileExistsError:
                if run_id is not None:
                    raise
        else:  # pragma: no cover - 100 collisions of 24 random bits
            raise FileExistsError(f"could not create a new run folder under {parent}")
        self.path = self.folder / RECORD_FILE
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._size = 0  # bytes of whole lines in the file: where a failed write is cut back to
        self._pending: deque[bytes] = deque()  # writes the disk refused (each one line or more), oldest first
        self._dropped = 0
        self._lock = threading.Lock()
        self._dirty = False  # lines written since the last fsync
        self.lost: str | None = None
        self._sync_lock = threading.Lock()  # held by the fsync thread's round over this file, and by close()
        self._sync_fd = os.dup(self._fd)  # the fsync thread's own handle (-1 once closed)
        SYNCER.add(self)

    @property
    def pending(self) -> int:
        """Lines waiting in memory because the disk refused them."""
        return sum(data.count(b"\n") for data in self._pending)

    def write(self, *lines: dict[str, Any]) -> None:
        """Append JSON lines, whole, with one ``write()`` on this thread; they are fsynced within :data:`SYNC_WITHIN_S`.

        Raises:
            OSError: The lines could not be written now (disk full, I/O error); they are kept and written
                before the next line, and the file is cut back to its last whole line.
            ValueError: The recorder is closed.
        """
        data = b"".join(map(encode_line, lines))
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.path} is closed")
            if self.lost is not None:
                return  # said once when noticed; the run goes on in memory
            self._pending.append(data)
            if len(self._pending) > MAX_PENDING_LINES:
                self._dropped += self._pending.popleft().count(b"\n")
            self._flush()
        self._dirty = True  # a flag, not a wake-up: the fsync thread comes by within SYNC_WITHIN_S

    def _flush(self) -> None:
        """Write the pending lines in order (call under the lock); raise at the first that fails."""
        while self._pending:
            data = self._pending[0]
            try:
                self._write_whole(data)
            except OSError:
                self._cut_back()
                raise
            self._size += len(data)
            self._pending.popleft()

    def _write_whole(self, data: bytes) -> None:
        """``write()`` until every byte is in: a short write is retried for its remainder."""
        view = memoryview(data)
        done = 0
        while done < len(view):
            n = os.write(self._fd, view[done:])
            if n <= 0:
                raise OSError(errno.ENOSPC, "the disk took no bytes", str(self.path))
            done += n

    def _cut_back(self) -> None:
        """Truncate the file to its last whole line, so that the file parses and the line can be written again."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as e:
            log.debug("co2cb: could not cut %s back to %d bytes (%s)", self.path, self._size, e)

    def sync_round(self) -> None:
        """The fsync thread's visit to this run folder.

        It fsyncs what was written since the last visit, writes what the disk refused before, and notices
        a record file deleted under the run.
        """
        with self._sync_lock:
            fd = self._sync_fd
            if fd < 0:
                return
            if self._dirty:
                self._dirty = False  # before the fsync: a line written during it is synced next round
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            if self._pending:
                self._retry_pending()
            self._check_linked(fd)

    def _retry_pending(self) -> None:
        """Write the lines the disk refused, now that it may take them (without waiting on a writer)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._fd >= 0 and self.lost is None:
                with contextlib.suppress(OSError):
                    self._flush()
                    self._dirty = True
        finally:
            self._lock.release()

    def _check_linked(self, fd: int) -> None:
        try:
            linked = os.fstat(fd).st_nlink > 0
        except OSError:
            return
        if linked or self.lost is not None:
            return
        self.lost = f"{self.path} was deleted while the run was going on"
        log.warning(
            "co2cb: %s; nothing more is written there and the run goes on in memory (tracker.result, "
            "tracker.totals()); keep run folders until their runs have ended",
            self.lost,
        )

    def close(self) -> None:
        """Write what the disk refused before, if it can now, fsync and close the file. Safe to call twice."""
        SYNCER.remove(self)
        with self._sync_lock:  # after the fsync thread's round over this file, if one is going on
            sync_fd, self._sync_fd = self._sync_fd, -1
            if sync_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(sync_fd)
        with self._lock:
            if self._fd < 0:
                return
            fd, self._fd = self._fd, -1
            if self._pending and self.lost is None:
                try:
                    self._fd = fd
                    self._flush()
                except OSError as e:
                    log.warning(
                        "co2cb: %d line(s) could not be written to %s at the end (%s); they are lost from the "
                        "record (the results in memory hold them)",
                        len(self._pending),
                        self.path,
                        e.strerror or e,
                    )
                finally:
                    self._fd = -1
            with contextlib.suppress(OSError):  # already gone: nothing more can be done for it
                os.fsync(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        if self._dropped:
            log.warning("co2cb: %d line(s) for %s were dropped while the disk refused them", self._dropped, self.path)


class Syncer:
    """The process's one fsync thread, shared by every open run folder (:meth:`RunRecorder.sync_round`).

    Started with the first run folder of the process and kept, so a later run starts no thread of its own
    (a thread start costs 0.2 to 0.4 ms on a small VM); in a forked child it is started again when needed.
    While no run folder is open it sleeps until one is (it never wakes for nothing: a wake-up would take the
    GIL from whatever runs then, e.g. a boundary's meter read). Recorders are held weakly: one that is dropped
    without :meth:`RunRecorder.close` leaves the round.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._some_open = threading.Condition(self._lock)  # notified when a run folder is added
        self._recorders: weakref.WeakSet[RunRecorder] = weakref.WeakSet()
        self._thread: threading.Thread | None = None

    def forget_in_child(self) -> None:
        """In a forked child: the parent's run folders are not this process's, and its thread is not running."""
        self.__init__()  # type: ignore[misc]

    def add(self, recorder: RunRecorder) -> None:
        """Visit ``recorder`` every :data:`SYNC_WITHIN_S` from now on (starting the thread if it is not running)."""
        with self._lock:
            self._recorders.add(recorder)
            self._some_open.notify()
            if self._thread is None or not self._thread.is_alive():  # (a forked child: see forget_in_child)
                self._thread = threading.Thread(target=self._run, name="co2cb-record-sync", daemon=True)
                self._thread.start()

    def remove(self, recorder: RunRecorder) -> None:
        """Stop visiting ``recorder`` (its close does the last fsync)."""
        with self._lock:
            self._recorders.discard(recorder)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._recorders:
                    self._some_open.wait()
            time.sleep(SYNC_WITHIN_S)
            with self._lock:
                recorders = list(self._recorders)
            for recorder in recorders:
                try:
                    recorder.sync_round()
                except Exception:  # the fsync thread must outlive any bug
                    log.exception("co2cb: record sync failed for %s", recorder.path)


SYNCER = Syncer()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=SYNCER.forget_in_child)
