"""Serving ``/metrics`` for Prometheus to scrape, with ``prometheus_client`` (imported only here, on use).

Each exporter has its own registry holding one collector, which turns the newest snapshot's
:class:`~co2cb.export.metrics.Family` list into Prometheus metric families on every scrape: nothing
is computed between scrapes, and the process's default registry (and its process metrics) is left
alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from co2cb.export.extras import PROMETHEUS, load
from co2cb.export.metrics import Family

log = logging.getLogger(__name__)


class FamilyCollector:
    """A ``prometheus_client`` collector of the families ``source()`` returns at collection time."""

    def __init__(self, source: Callable[[], list[Family]]) -> None:
        self._source = source
        self._core = load(PROMETHEUS, "core")

    def collect(self) -> Iterator[Any]:
        """Prometheus metric families of the newest snapshot."""
        core = self._core
        for family in self._source():
            spec = family.spec
            if spec.kind == "info":
                info = core.InfoMetricFamily(spec.name, spec.help, labels=[])
                for labels, _ in family.samples:
                    info.add_metric([], labels)
                yield info
                continue
            names = list(family.samples[0][0])
            kind = core.CounterMetricFamily if spec.kind == "counter" else core.GaugeMetricFamily
            metric = kind(spec.name, spec.help, labels=names)
            for labels, value in family.samples:
                metric.add_metric([labels[n] for n in names], value)
            yield metric


def registry_of(source: Callable[[], list[Family]]) -> Any:
    """A ``CollectorRegistry`` holding only a :class:`FamilyCollector` of ``source``."""
    registry = load(PROMETHEUS, "registry").CollectorRegistry(auto_describe=False)
    registry.register(FamilyCollector(source))
    return registry


class PrometheusServer:
    """``/metrics`` over HTTP, on a thread of its own.

    Args:
        registry: What to serve (from :func:`registry_of`).
        addr: Address to bind (``"127.0.0.1"``; ``"0.0.0.0"`` for every interface).
        port: TCP port; 0 picks a free one.
    """

    def __init__(self, registry: Any, addr: str, port: int) -> None:
        self._registry, self.addr, self.port = registry, addr, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        """Where the metrics are served, or None when not serving."""
        if self._server is None:
            return None
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> str | None:
        """Start serving; returns the URL, or None (with a warning) when the port cannot be bound."""
        start_http_server = load(PROMETHEUS, "exposition").start_http_server
        try:
            self._server, self._thread = start_http_server(self.port, addr=self.addr, registry=self._registry)
        except OSError as e:
            log.warning(
                "co2cb: cannot serve Prometheus metrics on %s port %d (%s): another process may hold the port; "
                "give prometheus_port= (--prometheus-port) another port, or 0 for any free one. "
                "Measuring goes on without serving.",
                self.addr,
                self.port,
                e.strerror or e,
            )
            return None
        self.port = self._server.server_port
        return self.url

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
