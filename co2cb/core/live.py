"""Feeding a tracker's live exporters (:mod:`co2cb.export`) from its sampler thread.

After each background reading the sampler thread copies the curve's newest point and adds the CO2
of the energy since the previous one (energy x intensity at that time x PUE, split where the
intensity changes, as windows do), so the exported totals match the run record's. Training hooks
never compute anything here: a recorded window's close only asks for a push.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence

from co2cb.core.emissions import co2_kg
from co2cb.core.sampler import Sampler
from co2cb.export import Exporter, ExportOptions, IntensityNow, MeterSpec, RunInfo, Snapshot
from co2cb.intensity.base import IntensitySource
from co2cb.intensity.choice import IntensityChoice, is_quiet
from co2cb.intensity.series import refine_segments
from co2cb.meters.base import Component, MeterChoice

log = logging.getLogger(__name__)


def meter_specs(sampler: Sampler, choices: Sequence[MeterChoice], host: str) -> tuple[MeterSpec, ...]:
    """What the exporters say of each meter: component, device, provenance and why it was chosen."""
    specs = []
    for meter in sampler.meters:
        info = meter.info
        why = [c.reason for c in choices if info.name in c.chosen] or [
            c.reason for c in choices if c.component is info.component
        ]
        device = (
            str(info.details.get("index", info.name.partition(":")[2])) if info.component is Component.GPU else host
        )
        reason = why[0] if why else "a meter given to the tracker"
        specs.append(MeterSpec(info.name, info.component.value, device, info.provenance.value, reason))
    return tuple(specs)


class LiveFeed:
    """A tracker's snapshots, handed to an :class:`~co2cb.export.Exporter`.

    Args:
        options: What to export (its packages are checked here).
        sampler: The tracker's sampler (its curve and lock).
        choice: The intensities and PUE behind the run's CO2.
        unix: Converts a ``perf_counter_ns`` time to seconds since the epoch.

    Raises:
        MissingExtra: A package the options need is not installed.
    """

    def __init__(
        self, options: ExportOptions, sampler: Sampler, choice: IntensityChoice, unix: Callable[[int], float]
    ) -> None:
        self.exporter = Exporter(options)
        self._sampler, self._choice, self._unix = sampler, choice, unix
        self._sources = [s for s in (choice.source, choice.marginal) if s is not None]
        self._lock = threading.Lock()
        self._prev: tuple[int, list[float]] = (0, [])
        self._watts: list[float] | None = None  # until the first interval
        self._grams = [0.0] * len(self._sources)
        self._failed = False
        self._started = False

    def start(self, run_name: str, run_id: str, choices: Sequence[MeterChoice]) -> None:
        """Start exporting, from the curve's first point (call after the sampler's first reading)."""
        host = socket.gethostname()
        meters = meter_specs(self._sampler, choices, host)
        run = RunInfo(run_name, run_id, host, meters, self._choice.source.info, self._choice.pue.source)
        try:
            with self._sampler.lock:
                timeline = self._sampler.timeline
                first = (timeline.times[0], list(timeline.cum[0])) if timeline.times else (0, [])
                t, cum = self._newest()
            with self._lock:
                self._prev = first  # the run window's start: the exported totals are the run's
            where = self.exporter.start(run, self._advance(t, cum))
            self._started = True
        except Exception as e:  # noqa: BLE001 - exporting must never stop a run
            self._fail(e)
            return
        if where and not is_quiet():
            print("\n".join(where), file=sys.stderr, flush=True)

    def tick(self) -> None:
        """After a background reading (sampler thread): export the run so far."""
        if self._failed or not self._started:
            return
        try:
            with self._sampler.lock:
                t, cum = self._newest()
            self.exporter.update(self._advance(t, cum))
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def window_closed(self) -> None:
        """A recorded window closed (any thread): ask for a push; computes nothing."""
        self.exporter.window_closed()

    def stop(self) -> None:
        """Export the final values (after the sampler's last reading) and stop every exporter."""
        snap = None
        if self._started and not self._failed:
            try:
                with self._sampler.lock:
                    t, cum = self._newest()
                snap = self._advance(t, cum)
            except Exception as e:  # noqa: BLE001
                self._fail(e)
        try:
            self.exporter.stop(snap)  # also after a failure: free the port, end the pushing thread
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def _newest(self) -> tuple[int, list[float]]:
        timeline = self._sampler.timeline
        if not timeline.times:
            return 0, [0.0] * timeline.channels
        return timeline.times[-1], list(timeline.cum[-1])

    def _advance(self, t: int, cum: list[float]) -> Snapshot:
        """Add the CO2 of the energy since the previous snapshot; the power is that stretch's mean."""
        with self._lock:
            t0, cum0 = self._prev
            if t > t0:
                seconds = (t - t0) * 1e-9
                self._watts = [max(0.0, b - a) / seconds for a, b in zip(cum0, cum)]
                segment = [(self._unix(t0), self._unix(t), sum(cum) - sum(cum0))]
                for i, source in enumerate(self._sources):
                    self._grams[i] += (
                        1000.0 * co2_kg(refine_segments(segment, source), source, self._choice.pue.value)[0]
                    )
                self._prev = (t, cum)
            return self._snapshot(t, cum)

    def _snapshot(self, t: int, cum: list[float]) -> Snapshot:
        now = self._unix(t)
        lost = {x.meter for x in self._sampler.losses}
        sources: list[IntensitySource] = self._sources
        return Snapshot(
            joules=tuple(cum),
            watts=tuple(self._watts) if self._watts is not None else None,
            alive=tuple(m.info.name not in lost for m in self._sampler.meters),
            co2_grams=self._grams[0] if self._grams else 0.0,
            co2_grams_marginal=self._grams[1] if len(self._grams) > 1 else None,
            intensities=tuple(IntensityNow.of(s.info, s.g_per_kwh_at(now)) for s in sources),
            pue=self._choice.pue.value,
        )

    def _fail(self, error: Exception) -> None:
        if not self._failed:
            self._failed = True
            log.warning("co2cb: live export stopped (%s: %s); measuring goes on", type(error).__name__, error)
