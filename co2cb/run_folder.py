"""Kept for ``co2cb.run_folder.find_runs`` and friends: the run loader now lives in :mod:`co2cb.records.reader`."""

from co2cb.records.reader import RecordedRun, RunFolderError, find_runs, load_run

__all__ = ["RecordedRun", "RunFolderError", "find_runs", "load_run"]
