"""co2cb's totals beside a Keras ``BackupAndRestore`` backup, so that a fit it resumes continues the run.

Keras' ``BackupAndRestore`` saves the model and the epoch reached, but no callback state. co2cb keeps the
run's state (:meth:`co2cb.training.monitor.TrainingMonitor.state_dict`: its totals, epochs and run folder)
in :data:`STATE_FILE` in the same folder, written after each training epoch (the one before kept as
:data:`PREVIOUS_FILE`), and loads it when a fit starts from that backup: the new run folder links the old
one and its totals go on from it, as a checkpoint does in Lightning and Hugging Face. co2cb's epoch end runs
before ``BackupAndRestore`` saves, so a fit that fails in between leaves co2cb one epoch ahead of the
backup: the state taken is the newest whose epochs are not past the epoch Keras restores. Keras removes the
folder, these files with it, when a fit ends normally.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from co2cb.training.monitor import TrainingMonitor

STATE_FILE = "co2cb_state.json"
PREVIOUS_FILE = "co2cb_state.previous.json"
KERAS_METADATA = "training_metadata.json"  # BackupAndRestore's: the epoch a resumed fit starts from


def backup_folder(callbacks: Iterable[Any]) -> Path | None:
    """The folder of a ``BackupAndRestore`` among ``callbacks``, or None."""
    for callback in callbacks:
        folder = getattr(callback, "backup_dir", None)
        if type(callback).__name__ == "BackupAndRestore" and isinstance(folder, (str, os.PathLike)):
            return Path(folder)
    return None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def resume_from_backup(monitor: TrainingMonitor, callbacks: Iterable[Any]) -> Path | None:
    """Load into ``monitor`` the state saved beside a backup Keras is about to restore; the backup's folder."""
    folder = backup_folder(callbacks)
    metadata = _json(folder / KERAS_METADATA) if folder is not None else None
    if folder is None or metadata is None or not isinstance(metadata.get("epoch"), int):
        return folder
    for state in (_json(folder / STATE_FILE), _json(folder / PREVIOUS_FILE)):
        done = state.get("epochs_done") if state is not None else None
        if state is not None and isinstance(done, int) and done <= metadata["epoch"]:
            monitor.load_state_dict(state)
            break
    return folder


def save_beside_backup(folder: Path | None, monitor: TrainingMonitor) -> None:
    """Write ``monitor``'s state into ``folder``, the one before kept (a kill leaves whole files)."""
    if folder is None or not monitor.measuring:
        return
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{STATE_FILE}.part"
    part.write_text(json.dumps(monitor.state_dict()), encoding="utf-8")
    if (folder / STATE_FILE).is_file():
        os.replace(folder / STATE_FILE, folder / PREVIOUS_FILE)
    os.replace(part, folder / STATE_FILE)
