"""One object that feeds every exporter a run asked for: Prometheus endpoint, Pushgateway, OpenTelemetry.

Threads: :meth:`Exporter.update` runs on the tracker's sampler thread (it swaps one reference);
:meth:`Exporter.window_closed` on whatever thread closes a recorded window (it sets an event);
scrapes, pushes and OpenTelemetry collections read the newest snapshot on their own threads. Nothing
here may stop a run: a port in use or a failing gateway gives a warning and measuring goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from co2cb.export import otel
from co2cb.export.extras import OTEL, PROMETHEUS, require
from co2cb.export.metrics import Family, RunInfo, Snapshot, families
from co2cb.export.prometheus import PrometheusServer, registry_of
from co2cb.export.pushgateway import JOB, Pusher

log = logging.getLogger(__name__)

DEFAULT_ADDR = "127.0.0.1"


@dataclass(frozen=True)
class ExportOptions:
    """Which live exports a run makes (checked by :class:`co2cb.core.config.TrackerConfig`).

    Attributes:
        prometheus_port: Serve ``/metrics`` on this TCP port (0: any free port); None: no endpoint.
        prometheus_addr: Address the endpoint binds.
        pushgateway: Push to this Pushgateway URL at each recorded window's close and at stop.
        opentelemetry: Record through the OpenTelemetry metrics API.
    """

    prometheus_port: int | None = None
    prometheus_addr: str = DEFAULT_ADDR
    pushgateway: str | None = None
    opentelemetry: bool = False

    @property
    def wanted(self) -> bool:
        """Whether any export is asked for."""
        return self.prometheus_port is not None or self.pushgateway is not None or self.opentelemetry

    def check_installed(self) -> None:
        """Check that the packages the options need are installed (nothing is imported).

        Raises:
            MissingExtra: One is not; the message names the extra to install.
        """
        if self.prometheus_port is not None:
            require(PROMETHEUS, "prometheus_port")
        if self.pushgateway is not None:
            require(PROMETHEUS, "pushgateway")
        if self.opentelemetry:
            require(OTEL, "opentelemetry")


class Exporter:
    """Serves, pushes and records one run's newest snapshot.

    Args:
        options: What to export.

    Raises:
        MissingExtra: A package the options need is not installed.
    """

    def __init__(self, options: ExportOptions) -> None:
        options.check_installed()
        self.options = options
        self._run: RunInfo | None = None
        self._snap: Snapshot | None = None
        self._families: tuple[Snapshot | None, list[Family]] = (None, [])
        self.server: PrometheusServer | None = None
        self.pusher: Pusher | None = None

    @property
    def prometheus_url(self) -> str | None:
        """Where ``/metrics`` is served, or None."""
        return self.server.url if self.server is not None else None

    def families(self) -> list[Family]:
        """The metric families of the newest snapshot (made once per snapshot, on the reader's thread)."""
        snap, made = self._families
        newest = self._snap
        if newest is None or self._run is None:
            return []
        if snap is not newest:
            made = families(self._run, newest)
            self._families = (newest, made)
        return made

    def start(self, run: RunInfo, snap: Snapshot) -> list[str]:
        """Start every export with the run's first snapshot.

        Returns:
            Lines saying where the metrics go, for the user.
        """
        self._run, self._snap = run, snap
        where = []
        o = self.options
        if o.prometheus_port is not None or o.pushgateway is not None:
            registry = registry_of(self.families)
            if o.prometheus_port is not None:
                self.server = PrometheusServer(registry, o.prometheus_addr, o.prometheus_port)
                url = self.server.start()
                if url is not None:
                    where.append(f"co2cb: Prometheus metrics at {url}")
            if o.pushgateway is not None:
                grouping = {"instance": run.host, "run": run.run, "run_id": run.run_id}
                self.pusher = Pusher(o.pushgateway, registry, grouping)
                self.pusher.start()
                where.append(
                    f"co2cb: pushing metrics to the Pushgateway at {o.pushgateway} at each recorded window's close "
                    f"and at the end (job={JOB!r}, instance={run.host!r}, run={run.run!r}, run_id={run.run_id!r})"
                )
        if o.opentelemetry:
            otel.join(self.families)
            where.append(f"co2cb: recording metrics through OpenTelemetry (meter {otel.SCOPE!r})")
        return where

    def update(self, snap: Snapshot) -> None:
        """Make ``snap`` the newest snapshot (sampler thread)."""
        self._snap = snap

    def window_closed(self) -> None:
        """A recorded window closed: ask for a push (returns at once)."""
        if self.pusher is not None:
            self.pusher.request()

    def stop(self, snap: Snapshot | None) -> None:
        """Export the final snapshot (None: keep the newest): the last push, then the endpoint closes.

        OpenTelemetry keeps reporting the final snapshot. Safe to call twice, and before :meth:`start`.
        """
        if snap is not None:
            self._snap = snap
        if self.pusher is not None:
            self.pusher.stop()
        if self.server is not None:
            self.server.stop()
