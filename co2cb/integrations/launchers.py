"""Where a launcher puts the run folder: Ray Train's workers change directory.

Ray Train runs ``train_func`` in worker processes whose working directory is a temporary folder of the
Ray session (``/tmp/ray/session_*/artifacts/...``), gone with the cluster. So in a Ray Train worker,
unless ``output_dir`` (or ``CO2CB_OUTPUT_DIR``) is an absolute path, the run folder goes under the
run's storage folder (``RunConfig(storage_path=..., name=...)``, ``~/ray_results/NAME`` by default):
``co2cb-runs`` there, or the relative path given. Storage on a remote filesystem (``s3://...``) is
not written to: the run folder then stays in the worker's working directory, with a warning.

Nothing is imported here: Ray is asked only when the process has already imported ``ray.train``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from co2cb.records.writer import OUTPUT_DIR_ENV

log = logging.getLogger(__name__)

DEFAULT_FOLDER = "co2cb-runs"


def ray_train_storage() -> Path | None:
    """The local folder of the Ray Train run this process is a worker of; None outside one.

    Raises:
        NotADirectoryError: The run's storage is not on the local filesystem (the message says where it is).
    """
    if "ray.train" not in sys.modules:
        return None
    try:
        import ray.train

        storage = ray.train.get_context().get_storage()
    except Exception:  # noqa: BLE001 - not in a Ray Train worker (the driver, a Ray task, an old Ray)
        return None
    path = getattr(storage, "experiment_fs_path", None) or getattr(storage, "trial_fs_path", None)
    filesystem = type(getattr(storage, "storage_filesystem", None)).__name__
    if not path:
        return None
    if filesystem != "LocalFileSystem":
        raise NotADirectoryError(f"the Ray Train run's storage is {path!r} on {filesystem}, not a local folder")
    return Path(path)


def where_to_write(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with ``output_dir`` set for the launcher this process runs under (see the module's notes)."""
    options = dict(options)
    given = options.get("output_dir") or os.environ.get(OUTPUT_DIR_ENV, "").strip() or None
    if not options.get("save", True) or (given is not None and Path(given).is_absolute()):
        return options
    try:
        storage = ray_train_storage()
    except NotADirectoryError as e:
        log.warning("co2cb: %s; the run folder goes to this worker's working directory %s", e, os.getcwd())
        return options
    if storage is not None:
        options["output_dir"] = str(storage / (given or DEFAULT_FOLDER))
    return options
