"""Checking :class:`co2cb.Tracker` options without measuring anything (adapters call it at construction)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from co2cb.core.config import ConfigError, TrackerConfig, as_tuple
from co2cb.export import DEFAULT_ADDR
from co2cb.intensity.choice import choose
from co2cb.intensity.database import lookup
from co2cb.intensity.electricitymaps import DEFAULT_BASE_URL, URL_ENV, check_base_url
from co2cb.meters.process import running

TRACKER_OPTIONS = frozenset(
    {
        "run_name",
        "output_dir",
        "save",
        "interval_s",
        "scope",
        "gpus",
        "components",
        "sync_boundaries",
        "intensity",
        "region",
        "pue",
        "marginal_intensity",
        "powercap_root",
        "cpu_tdp_w",
        "ram_watts_per_gb",
        "keep_steps",
        "tags",
        "meters",
        "pids",
        "prometheus_port",
        "prometheus_addr",
        "pushgateway",
        "opentelemetry",
    }
)
"""The keyword arguments of :class:`co2cb.Tracker` (a test keeps this equal to its signature)."""

EXPORT_OPTIONS = frozenset({"prometheus_port", "prometheus_addr", "pushgateway", "opentelemetry"})
"""The live-export options (:mod:`co2cb.export`): one process per host uses them in a distributed job."""


REGION_ENV = "CO2CB_REGION"


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def check_inputs(o: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """Types and blanks the other checks would not catch, each named with its fix.

    Raises:
        ConfigError: A wrong type (``region=5``, ``save="no"``), a blank string (``region=""``,
            ``CO2CB_REGION=" "``, ``output_dir=""``), or ``pids`` naming no running process.
    """
    env = os.environ if environ is None else environ
    region = o.get("region")
    if region is not None and (not isinstance(region, str) or _blank(region)):
        raise ConfigError(
            f"region={region!r} is not valid: give a region code as text, e.g. 'FR', 'US-CA' or 'aws:eu-west-3' "
            "(co2cb regions lists them), or leave it out to have it found"
        )
    if _blank(env.get(REGION_ENV)) and env.get(REGION_ENV):
        raise ConfigError(f"{REGION_ENV}={env[REGION_ENV]!r} is blank: set it to a region code such as FR, or unset it")
    output_dir = o.get("output_dir")
    if output_dir is not None and (not isinstance(output_dir, (str, os.PathLike)) or _blank(str(output_dir))):
        raise ConfigError(
            f"output_dir={output_dir!r} is not valid: give the folder for run records (a path), or leave it out "
            "for CO2CB_OUTPUT_DIR or ./co2cb-runs"
        )
    for name in ("save", "sync_boundaries", "keep_steps"):
        if name in o and not isinstance(o[name], bool):
            raise ConfigError(f"{name}={o[name]!r} is not valid: give True or False")
    for name in ("run_name", "pushgateway"):
        if o.get(name) is not None and (not isinstance(o[name], str) or _blank(o[name])):
            raise ConfigError(f"{name}={o[name]!r} is not valid: give a non-blank string, or leave it out")
    if o.get("tags") is not None and not isinstance(o["tags"], Mapping):
        raise ConfigError(f"tags={o['tags']!r} is not valid: give a dict of labels, e.g. {{'model': 'bert'}}")
    _check_pids(o.get("pids"))


def _check_pids(pids: Any) -> None:
    if pids is None:
        return
    if isinstance(pids, (str, bytes)) or not isinstance(pids, Sequence) or not pids:
        raise ConfigError(f"pids={pids!r} is not valid: give a list of process ids, or leave it out for this process")
    for pid in pids:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ConfigError(f"pids: {pid!r} is not a process id: give positive whole numbers, e.g. [os.getpid()]")
        if not running(pid):
            raise ConfigError(
                f"pids: no process {pid} is running: give the ids of running processes, or leave pids out to "
                "measure this process and its children"
            )


def tracker_config(**options: Any) -> TrackerConfig:
    """The validated :class:`TrackerConfig` for Tracker arguments of the same names."""
    o = dict(options)
    check_inputs(o)
    return TrackerConfig(
        run_name=o.get("run_name"),
        output_dir=Path(o["output_dir"]) if o.get("output_dir") is not None else None,
        save=o.get("save", True),
        interval_s=o.get("interval_s"),
        scope=o.get("scope", "process"),
        gpus=as_tuple(o.get("gpus")),
        components=tuple(as_tuple(o.get("components", ("gpu", "cpu", "ram"))) or ()),
        sync_boundaries=o.get("sync_boundaries", True),
        pue=o.get("pue"),
        powercap_root=str(o["powercap_root"]) if o.get("powercap_root") is not None else None,
        cpu_tdp_w=o.get("cpu_tdp_w"),
        ram_watts_per_gb=o.get("ram_watts_per_gb"),
        keep_steps=o.get("keep_steps", False),
        tags={str(k): v for k, v in (o.get("tags") or {}).items()},
        prometheus_port=o.get("prometheus_port"),
        prometheus_addr=o.get("prometheus_addr", DEFAULT_ADDR),
        pushgateway=o.get("pushgateway"),
        opentelemetry=o.get("opentelemetry", False),
    )


def check_options(**options: Any) -> None:
    """Check :class:`Tracker` options without measuring anything (adapters call it at construction).

    Unknown names, out-of-range values, unknown regions and bad intensity series fail here; the
    live intensity provider is not contacted.

    Raises:
        ConfigError: An option is invalid; the message says what to change.
    """
    names = TRACKER_OPTIONS
    unknown = sorted(set(options) - names)
    if unknown:
        hints = {u: difflib.get_close_matches(u, names, n=1) for u in unknown}
        said = ", ".join(f"{u!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for u, h in hints.items())
        raise ConfigError(f"unknown co2cb option {said}; the options are those of co2cb.Tracker")
    try:
        tracker_config(**options)
        live = "electricitymaps" in (options.get("intensity"), options.get("marginal_intensity"))
        if live:  # the provider is not contacted here, but its URL and region are checked
            try:
                check_base_url(os.environ.get(URL_ENV) or DEFAULT_BASE_URL)
            except ValueError as e:
                raise ConfigError(f"{URL_ENV}: {e}, or unset it for {DEFAULT_BASE_URL}") from None
            if options.get("region") is not None:
                lookup(options["region"])
        else:
            choose(
                options.get("intensity"),
                options.get("region"),
                marginal_intensity=options.get("marginal_intensity"),
                pue=options.get("pue"),
            )
    except ValueError as e:
        raise e if isinstance(e, ConfigError) else ConfigError(str(e)) from e
