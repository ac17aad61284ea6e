"""Run folders: one JSON Lines file per run, every line flushed and fsynced.

Layout: ``<output_dir>/<run-id>/run.jsonl`` with a ``header`` line, one
``window`` line per closed window at epoch level and above, and a ``summary``
line on a normal end. A run killed at any moment keeps every line it wrote.
Run ids are unique (UTC time plus random hex) and folders are made with an
atomic ``mkdir``, so runs sharing a parent folder never touch each other's files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RECORD_FILE = "run.jsonl"
OUTPUT_DIR_ENV = "CO2CB_OUTPUT_DIR"
DEFAULT_OUTPUT_DIR = "co2cb-runs"


def default_output_dir() -> Path:
    """``CO2CB_OUTPUT_DIR`` if set, else ``./co2cb-runs``."""
    return Path(os.environ.get(OUTPUT_DIR_ENV) or DEFAULT_OUTPUT_DIR)


def check_writable(parent: Path) -> None:
    """Prove that run folders can be made under ``parent``, without leaving anything behind.

    An existing folder gets a probe file written and removed; a folder still to be made is checked
    on its nearest existing ancestor, so merely checking options creates no folder.

    Raises:
        OSError: With the path and the system's reason.
    """
    if parent.is_dir():
        probe = parent / f".co2cb-write-test-{os.getpid()}-{secrets.token_hex(4)}"
        with open(probe, "w") as f:
            f.write("ok")
        probe.unlink()
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


class RunRecorder:
    """Appends JSON lines to one run's record file, durably."""

    def __init__(self, parent: Path, run_id: str | None = None) -> None:
        """Create the run folder (a fresh id is drawn if the folder exists)."""
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
        self._lock = threading.Lock()

    def write(self, line: dict[str, Any]) -> None:
        """Append one JSON line and fsync it."""
        data = (json.dumps(_clean(line), separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.path} is closed")
            os.write(self._fd, data)
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            if self._fd >= 0:
                fd, self._fd = self._fd, -1
                with contextlib.suppress(OSError):  # already gone: every line was fsynced anyway
                    os.close(fd)
