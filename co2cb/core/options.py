"""Checking :class:`co2cb.Tracker` options without measuring anything (adapters call it at construction)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from co2cb.core.config import ConfigError, TrackerConfig, as_tuple
from co2cb.export import DEFAULT_ADDR
from co2cb.intensity.choice import choose
from co2cb.intensity.database import lookup

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


def tracker_config(**options: Any) -> TrackerConfig:
    """The validated :class:`TrackerConfig` for Tracker arguments of the same names."""
    o = dict(options)
    return TrackerConfig(
        run_name=o.get("run_name"),
        output_dir=Path(o["output_dir"]) if o.get("output_dir") is not None else None,
        save=o.get("save", True),
        interval_s=o.get("interval_s", 1.0),
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
        if live:
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
