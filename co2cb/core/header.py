"""The run record's first and last lines: the header and the summary.

The header says what ran where (host, scheduler), with which meters, intensity and versions; the
summary holds the run window, the steps and the meter losses.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from co2cb._version import __version__
from co2cb.core.config import TrackerConfig
from co2cb.core.results import WindowResult, iso
from co2cb.core.sampler import Sampler
from co2cb.core.scheduler import scheduler_context
from co2cb.core.steps import StepStats
from co2cb.intensity.choice import IntensityChoice
from co2cb.meters.discovery import MeterSet
from co2cb.records.writer import SCHEMA_VERSION


def run_header(
    run_id: str | None, config: TrackerConfig, start_unix_s: float, meter_set: MeterSet, choice: IntensityChoice
) -> dict[str, Any]:
    """The header line of a run record.

    Args:
        run_id: The run's id.
        config: The tracker's validated options.
        start_unix_s: When the run started, seconds since the epoch.
        meter_set: The meters found, with why each was chosen.
        choice: The intensity, marginal intensity and PUE, with their provenance.
    """
    marginal = choice.marginal
    return {
        "type": "header",
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "run_name": config.run_name or run_id,
        "tags": config.tags,
        "start": iso(start_unix_s),
        "start_unix_s": start_unix_s,
        "host": {"hostname": socket.gethostname(), "pid": os.getpid(), "platform": sys.platform},
        "scheduler": scheduler_context(),
        "hardware": {"gpus": [g.as_dict() for g in meter_set.gpus], "cpu": meter_set.cpu},
        "meters": [m.info.as_dict() for m in meter_set.meters],
        "meter_choices": [c.as_dict() for c in meter_set.choices],
        "intensity": choice.source.info.as_dict(),
        "region": choice.region_record(),
        "marginal_intensity": None if marginal is None else marginal.info.as_dict(),
        "pue": choice.pue.value,
        "pue_info": choice.pue.as_dict(),
        "config": config.as_record(),
        "versions": library_versions(),
    }


def summary_line(
    result: WindowResult | None,
    steps: Mapping[str, StepStats],
    sampler: Sampler,
    unix: Callable[[int], float],
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The summary line of a stopped run: its run window, steps and meter losses; ``extra`` fields override them.

    Args:
        result: The run window's result (None when the run window was never opened).
        steps: Statistics of every step window.
        sampler: The run's sampler (meter losses, its CPU time).
        unix: Converts a ``perf_counter_ns`` time to seconds since the epoch.
        extra: Fields given by the caller (status, final metrics...).
    """
    line: dict[str, Any] = {"type": "summary", "status": "completed"}
    if result is not None:
        line.update({k: v for k, v in result.as_record().items() if k not in ("type", "name")})
    line["steps"] = {name: s.as_record() for name, s in steps.items()}
    line["meter_losses"] = loss_records(sampler, unix)
    line["sampler_cpu_s"] = sampler.cpu_seconds
    line.update(dict(extra or {}))
    return line


def loss_records(sampler: Sampler, unix: Callable[[int], float]) -> list[dict[str, Any]]:
    """The sampler's lost meters for the record: ``meter``, ``at`` (ISO time) and ``error``."""
    return [{"meter": x.meter, "at": iso(unix(x.at_ns)), "error": x.error} for x in sampler.losses]


_FOUND_VERSIONS: dict[tuple[str, ...], dict[str, str]] = {}
"""Package versions found, by the packages asked for: the modules a process runs do not change under it, and
reading package metadata takes milliseconds (it walks ``sys.path``)."""


def library_versions() -> dict[str, str]:
    """Versions of co2cb, Python, its dependencies and the ML frameworks already imported (none is imported here)."""
    versions = {"co2cb": __version__, "python": sys.version.split()[0]}
    frameworks = {
        m: m.replace("_", "-")
        for m in ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "jax")
    }
    wanted = ("psutil", "nvidia-ml-py", *(dist for module, dist in frameworks.items() if module in sys.modules))
    found = _FOUND_VERSIONS.get(wanted)
    if found is None:
        found = {}
        for dist in wanted:
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        _FOUND_VERSIONS[wanted] = found
    return {**versions, **found}
