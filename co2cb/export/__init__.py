"""Live export of a run's metrics: a Prometheus endpoint, a Pushgateway, OpenTelemetry.

* :mod:`co2cb.export.metrics`: the snapshots the tracker's sampler thread builds, and the metric
  families (names, units, labels) every exporter shows.
* :mod:`co2cb.export.prometheus`: ``/metrics`` for Prometheus to scrape.
* :mod:`co2cb.export.pushgateway`: pushes at each recorded window's close and at the end.
* :mod:`co2cb.export.otel`: observable instruments on the OpenTelemetry metrics API.
* :mod:`co2cb.export.exporter`: the one object a tracker drives.

This package sits below :mod:`co2cb.core`: it knows snapshots of plain numbers, not trackers.
``prometheus_client`` and ``opentelemetry-api`` are imported only when an export is used
(extras ``co2cb[prometheus]`` and ``co2cb[otel]``).
"""

from __future__ import annotations

from co2cb.export.exporter import DEFAULT_ADDR, Exporter, ExportOptions
from co2cb.export.extras import MissingExtra
from co2cb.export.metrics import IntensityNow, MeterSpec, RunInfo, Snapshot
from co2cb.export.pushgateway import AUTH_ENV

__all__ = [
    "AUTH_ENV",
    "DEFAULT_ADDR",
    "ExportOptions",
    "Exporter",
    "IntensityNow",
    "MeterSpec",
    "MissingExtra",
    "RunInfo",
    "Snapshot",
]
