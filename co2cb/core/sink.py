"""Where a tracker's record lines go: its run folder, or nowhere; a fault is said once and never raised.

Nothing here may stop a training run: a folder that cannot be made (read-only, no space or inodes
left since the options were checked) leaves the run measured in memory only, and a line the disk
refuses is kept by the :class:`~co2cb.records.writer.RunRecorder` until the disk takes it. Each fault is
said once, as a warning that names the file and what co2cb does about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from co2cb.core.results import iso
from co2cb.core.sampler import MeterEvent
from co2cb.records.writer import RunRecorder

log = logging.getLogger("co2cb.core.tracker")


class RecordSink:
    """A tracker's record: the recorder (None when nothing is saved) and the warnings said so far."""

    def __init__(self) -> None:
        self.recorder: RunRecorder | None = None
        self.warned: set[str] = set()

    def open(self, parent: Callable[[], Path]) -> None:
        """Make the run folder under ``parent()``; on failure say so once and leave the run in memory."""
        try:
            self.recorder = RunRecorder(parent())
        except (OSError, ValueError) as e:
            why = getattr(e, "strerror", None) or e
            where = getattr(e, "filename", None)
            self.warn_once(
                "folder",
                f"co2cb: cannot make a run folder{f' under {where}' if where else ''} ({why}); the run is measured "
                "in memory only (tracker.result); give a writable folder as output_dir= (co2cb run: --output-dir)",
            )

    def write(self, *lines: dict[str, Any]) -> None:
        """Write lines, with one ``write()``; a failure is said once (the recorder keeps them, to write them later)."""
        if self.recorder is None:
            return
        try:
            self.recorder.write(*lines)
        except Exception as e:  # noqa: BLE001 - a full disk must not stop training
            self.warn_once(
                "write",
                f"co2cb: could not write to {self.recorder.path} ({getattr(e, 'strerror', None) or e}); the lines "
                "are kept and written once it takes them again; measuring goes on",
            )

    def write_events(self, events: Sequence[MeterEvent], unix: Callable[[int], float]) -> None:
        """Write meter events (a counter reset, failed readings) as ``event`` lines."""
        for e in events:
            self.write({"type": "event", "event": "meter", "meter": e.meter, "at": iso(unix(e.at_ns)), "what": e.what})

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` as a warning, the first time ``key`` is seen."""
        if key not in self.warned:
            self.warned.add(key)
            log.warning(message)

    def close(self) -> None:
        """Close the record file (fsyncing what is left)."""
        if self.recorder is not None:
            self.recorder.close()
