"""Tracker options, checked once at construction so nothing fails inside a training loop."""

from __future__ import annotations

import copy
import ipaddress
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from co2cb.export import DEFAULT_ADDR, ExportOptions, MissingExtra
from co2cb.export.pushgateway import auth_problem, url_problem
from co2cb.meters.base import COMPONENTS, Meter, Provenance
from co2cb.meters.discovery import SCOPES
from co2cb.records.writer import check_writable, default_output_dir

MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 60.0
DEFAULT_INTERVAL_S = 1.0
"""Seconds between readings when no meter only gives power (counters and estimates)."""
POWER_ONLY_INTERVAL_S = 0.1
"""Seconds between readings by default when a meter only gives power (``sampled-power``: NVML without its
energy counter, AMD socket power): power that swings with a period near 1 s (training steps, data loading)
aliases at 1 s, by up to the swing; at 0.1 s a window of 10 readings is within 0.5 % for periods of 0.5 s and
longer (tested). Cost: about 3 ms of CPU a second with the CPU and RAM estimates (0.3 % of a core)."""


class ConfigError(ValueError):
    """An option has a value co2cb cannot use; the message says what to change."""


def _positive(name: str, value: float | None, upper: float = math.inf) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= upper:
        raise ConfigError(f"{name}={value!r} is not valid: give a number greater than 0 and at most {upper:g}")


@dataclass(frozen=True)
class TrackerConfig:
    """Validated tracker options (see :class:`co2cb.Tracker` for their meaning)."""

    run_name: str | None = None
    output_dir: Path | None = None
    save: bool = True
    interval_s: float | None = None  # None: chosen from the meters (see Tracker)
    scope: str = "process"
    gpus: tuple[int | str, ...] | None = None
    components: tuple[str, ...] = COMPONENTS
    sync_boundaries: bool = True
    pue: float | None = None
    powercap_root: str | None = None
    cpu_tdp_w: float | None = None
    ram_watts_per_gb: float | None = None
    keep_steps: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    prometheus_port: int | None = None
    prometheus_addr: str = DEFAULT_ADDR
    pushgateway: str | None = None
    opentelemetry: bool = False

    def __post_init__(self) -> None:
        if self.interval_s is not None and (
            isinstance(self.interval_s, bool)
            or not isinstance(self.interval_s, (int, float))
            or not (MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S)
        ):
            raise ConfigError(
                f"interval_s={self.interval_s!r} is out of range: give a sampling interval between "
                f"{MIN_INTERVAL_S} and {MAX_INTERVAL_S:g} seconds (default {DEFAULT_INTERVAL_S}, "
                f"{POWER_ONLY_INTERVAL_S} with a meter that only gives power)"
            )
        if self.scope not in SCOPES:
            raise ConfigError(f"scope={self.scope!r} is not valid: use 'process' (default) or 'machine'")
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown or not self.components:
            raise ConfigError(
                f"components={list(self.components)!r} is not valid: choose one or more of {', '.join(COMPONENTS)}"
            )
        if self.pue is not None and (
            isinstance(self.pue, bool) or not isinstance(self.pue, (int, float)) or not 1.0 <= self.pue <= 3.0
        ):
            raise ConfigError(
                f"pue={self.pue!r} is not valid: give the data centre's PUE, between 1.0 and 3.0, "
                "or leave it out (None) for the cloud provider's published figure (1.0 off the cloud)"
            )
        _positive("cpu_tdp_w", self.cpu_tdp_w, 2000)
        _positive("ram_watts_per_gb", self.ram_watts_per_gb, 10)
        if self.gpus is not None:
            for g in self.gpus:
                if isinstance(g, bool) or not (
                    (isinstance(g, int) and g >= 0) or (isinstance(g, str) and (g.isdigit() or g.startswith("GPU-")))
                ):
                    raise ConfigError(f"gpus: {g!r} is not a GPU: give CUDA ordinals (0, 1, ...) or 'GPU-...' UUIDs")
        _check_export(self)
        if self.save:
            try:
                out = self.resolved_output_dir
            except ValueError as e:  # a blank CO2CB_OUTPUT_DIR
                raise ConfigError(str(e)) from None
            try:
                check_writable(out)
            except OSError as e:
                raise ConfigError(
                    f"cannot write run records to {out} ({e.strerror or e}): set output_dir or CO2CB_OUTPUT_DIR to a "
                    "writable folder (in Python, save=False keeps the results in memory only)"
                ) from e

    @property
    def export(self) -> ExportOptions:
        """The live exports asked for (see :mod:`co2cb.export`)."""
        return ExportOptions(self.prometheus_port, self.prometheus_addr, self.pushgateway, self.opentelemetry)

    @property
    def resolved_output_dir(self) -> Path:
        """Where run folders go: ``output_dir``, else ``CO2CB_OUTPUT_DIR``, else ``./co2cb-runs``."""
        return Path(self.output_dir) if self.output_dir is not None else default_output_dir()

    def discovery_options(self) -> dict[str, Any]:
        """The options :func:`co2cb.meters.discovery.discover` takes."""
        return {
            "scope": self.scope,
            "gpus": self.gpus,
            "powercap_root": self.powercap_root,
            "cpu_tdp_w": self.cpu_tdp_w,
            "ram_watts_per_gb": self.ram_watts_per_gb,
            "components": self.components,
        }

    @property
    def interval(self) -> float:
        """The sampling interval, seconds (1 until :meth:`with_interval_for` chose one)."""
        return float(self.interval_s) if self.interval_s is not None else DEFAULT_INTERVAL_S

    def with_interval_for(self, meters: Sequence[Meter]) -> TrackerConfig:
        """This config with its interval chosen.

        The one given, else 0.1 s when a meter only gives power (:data:`POWER_ONLY_INTERVAL_S`), else 1 s.
        """
        if self.interval_s is not None:
            return self
        power_only = any(m.info.provenance is Provenance.SAMPLED_POWER for m in meters)
        chosen = copy.copy(self)  # checked already: not checked again (that would probe the output folder again)
        object.__setattr__(chosen, "interval_s", POWER_ONLY_INTERVAL_S if power_only else DEFAULT_INTERVAL_S)
        return chosen

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form for the run header."""
        d = dict(vars(self))  # flat fields: no dataclasses.asdict deep copy (a tenth of a tracker's start)
        d["tags"] = dict(self.tags)
        d["output_dir"] = str(self.resolved_output_dir)
        d["gpus"] = list(self.gpus) if self.gpus is not None else None
        d["components"] = list(self.components)
        return d


_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def _check_export(c: TrackerConfig) -> None:
    """The live-export options: a port, an address to bind, a Pushgateway URL, and their packages installed."""
    port, addr = c.prometheus_port, c.prometheus_addr
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ConfigError(
            f"prometheus_port={port!r} is not valid: give a TCP port from 1 to 65535 (0: any free port), "
            "or None to serve no metrics"
        )
    if not isinstance(addr, str) or not (_is_ip(addr) or _HOST_NAME.match(addr)):
        raise ConfigError(
            f"prometheus_addr={addr!r} is not valid: give the address to bind, '{DEFAULT_ADDR}' (default, this "
            "machine only) or e.g. '0.0.0.0' (every interface)"
        )
    if addr != DEFAULT_ADDR and port is None:
        raise ConfigError(f"prometheus_addr={addr!r} is given without prometheus_port: give the port to serve on too")
    if c.pushgateway is not None:
        problem = url_problem(c.pushgateway) or auth_problem()  # the URL is not quoted: it may hold a secret
        if problem:
            raise ConfigError(f"pushgateway is not valid: {problem}")
    if not isinstance(c.opentelemetry, bool):
        raise ConfigError(f"opentelemetry={c.opentelemetry!r} is not valid: give True or False")
    try:
        c.export.check_installed()
    except MissingExtra as e:
        raise ConfigError(str(e)) from None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def as_tuple(value: Sequence[Any] | None) -> tuple[Any, ...] | None:
    """A sequence option as a tuple (None stays None; a lone string becomes one item; a tuple, of any kind, is kept)."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        return (value,)
    return value if isinstance(value, tuple) else tuple(value)
