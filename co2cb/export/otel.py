"""Recording through the OpenTelemetry metrics API (``opentelemetry-api``, imported only here, on use).

co2cb configures no SDK: the instruments come from ``opentelemetry.metrics.get_meter("co2cb")``, so the
MeterProvider the application set (with its OTLP, Prometheus or console exporter) carries them, and
without one they cost nothing. The instruments are observable (asynchronous): the SDK's reader calls
back when it collects, and each callback reports the newest snapshot of every run of the process.

The instruments are made once per process (an instrument name can be registered only once per
meter); runs join and leave a shared list. A stopped run keeps reporting its final values until the
process exits, so that a reader collecting after the run still gets them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from co2cb._version import __version__
from co2cb.export.extras import OTEL, load
from co2cb.export.metrics import SPECS, Family, Spec

SCOPE = "co2cb"
"""Name of the OpenTelemetry meter (instrumentation scope)."""

_lock = threading.Lock()
_sources: list[Callable[[], list[Family]]] = []
_instruments: list[Any] = []


def _observe(spec: Spec, metrics: Any) -> Callable[[Any], Iterator[Any]]:
    def callback(_options: Any) -> Iterator[Any]:
        with _lock:
            sources = list(_sources)
        for source in sources:
            for family in source():
                if family.spec is spec:
                    for labels, value in family.samples:
                        yield metrics.Observation(value, labels)

    return callback


def _make_instruments() -> None:
    """Create the observable instruments on the global meter provider's ``co2cb`` meter (once)."""
    metrics = load(OTEL)
    meter = metrics.get_meter(SCOPE, __version__)
    for spec in SPECS:
        make = meter.create_observable_counter if spec.kind == "counter" else meter.create_observable_gauge
        _instruments.append(
            make(spec.otel_name, callbacks=[_observe(spec, metrics)], unit=spec.unit, description=spec.help)
        )


def join(source: Callable[[], list[Family]]) -> None:
    """Report the families ``source()`` returns at each collection, from now until the process exits.

    Raises:
        MissingExtra: ``opentelemetry-api`` is not installed.
    """
    with _lock:
        if not _instruments:
            _make_instruments()
        _sources.append(source)
