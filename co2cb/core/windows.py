"""Windows: the ones open now (:class:`OpenWindows`), and a window's figures from two points of the energy curve."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from co2cb.core.emissions import co2_kg
from co2cb.core.results import WindowResult
from co2cb.core.timeline import Timeline
from co2cb.intensity.base import FixedIntensity, IntensitySource
from co2cb.intensity.series import notes_for, refine_segments

Vector = Sequence[float]


class WindowMaker:
    """Turns a stretch of the curve into a :class:`WindowResult`.

    Args:
        channels: Meter names, in curve order.
        components: Each channel's component (``gpu``, ``cpu``, ``ram``).
        provenance: Each channel's reading kind (``measured-counter``, ``sampled-power``, ``estimate``).
        intensity: The carbon intensity behind ``co2_kg``.
        marginal: A marginal intensity recorded next to it, or None.
        pue: Power usage effectiveness applied (>= 1.0).
        unix: Converts a ``perf_counter_ns`` time to seconds since the epoch.
        losses: Returns ``(meter, at_ns)`` of every meter lost so far.
    """

    def __init__(
        self,
        channels: Sequence[str],
        components: Sequence[str],
        provenance: Sequence[str],
        intensity: IntensitySource,
        marginal: IntensitySource | None,
        pue: float,
        unix: Callable[[int], float],
        losses: Callable[[], Sequence[tuple[str, int]]],
    ) -> None:
        self.channels, self.components, self.provenance = list(channels), list(components), list(provenance)
        self.intensity, self.marginal, self.pue = intensity, marginal, pue
        self._unix, self._losses = unix, losses
        self._fixed = all(type(s) is FixedIntensity for s in (intensity, marginal) if s is not None)
        kinds: dict[str, set[str]] = {}
        for comp, prov in zip(self.components, self.provenance):
            kinds.setdefault(comp, set()).add(prov)
        self._by_component = {k: "+".join(sorted(v)) for k, v in kinds.items()}  # the same for every window

    def make(
        self,
        name: str,
        t0: int,
        j0: Vector,
        t1: int,
        j1: Vector,
        meta: dict[str, Any],
        timeline: Timeline,
    ) -> WindowResult:
        """The window ``name`` from ``(t0, j0)`` to ``(t1, j1)`` (``perf_counter_ns``, cumulative joules).

        ``timeline`` gives the points in between when the intensity varies with time (call it under the
        sampler's lock).
        """
        meter_j = {ch: max(0.0, b - a) for ch, a, b in zip(self.channels, j0, j1)}
        joules = dict.fromkeys(self._by_component, 0.0)
        for ch, comp in zip(self.channels, self.components):
            joules[comp] += meter_j[ch]
        start_s, end_s = self._unix(t0), self._unix(t1)
        if self._fixed:  # one figure for all times: the window's energy needs no splitting
            segments = [(start_s, end_s, sum(j1) - sum(j0))]
        else:
            segments = []
            prev_t, prev_total = t0, sum(j0)
            for t, cum in [*timeline.points_between(t0, t1), (t1, j1)]:
                total = sum(cum)
                segments.append((self._unix(prev_t), self._unix(t), total - prev_total))
                prev_t, prev_total = t, total
        co2, g = co2_kg(refine_segments(segments, self.intensity), self.intensity, self.pue)
        notes = notes_for(self.intensity, start_s, end_s)
        co2_m = g_m = None
        if self.marginal is not None:
            co2_m, g_m = co2_kg(refine_segments(segments, self.marginal), self.marginal, self.pue)
            notes += [f"marginal: {n}" for n in notes_for(self.marginal, start_s, end_s)]
        return WindowResult(
            name=name,
            start_unix_s=start_s,
            end_unix_s=end_s,
            seconds=(t1 - t0) * 1e-9,
            joules=joules,
            meter_joules=meter_j,
            co2_kg=co2,
            g_per_kwh=g,
            pue=self.pue,
            provenance=dict(self._by_component),
            unavailable=tuple(meter for meter, at_ns in self._losses() if at_ns <= t1),
            meta=meta,
            intensity_kind=self.intensity.info.kind,
            co2_kg_marginal=co2_m,
            g_per_kwh_marginal=g_m,
            intensity_notes=tuple(notes),
        )


@dataclass
class OpenWindow:
    """A recorded window that is open.

    Attributes:
        name: The window's name.
        t_ns: When it opened, ``perf_counter_ns``.
        joules: Cumulative joules per channel at ``t_ns``; None until the curve reaches ``t_ns``.
        meta: Fields recorded with it.
        thread: ``threading.get_ident()`` of the thread that opened it.
    """

    name: str
    t_ns: int
    joules: list[float] | None
    meta: dict[str, Any] = field(default_factory=dict)
    thread: int = field(default_factory=threading.get_ident)


class OpenWindows:
    """The recorded windows open now, by name; safe to use from several threads.

    A close takes the latest window of its name that the closing thread opened, else the latest of any
    thread (a window may close on another thread than the one that opened it), so that two threads
    using the same name never pair one's open with the other's close.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, list[OpenWindow]] = {}
        self._lock = threading.Lock()

    def push(self, window: OpenWindow) -> None:
        """Add an open window."""
        with self._lock:
            self._by_name.setdefault(window.name, []).append(window)

    def pop(self, name: str) -> OpenWindow | None:
        """Take the window of ``name`` to close (see the class notes), or None when none is open."""
        me = threading.get_ident()
        with self._lock:
            stack = self._by_name.get(name)
            if not stack:
                return None
            mine = [i for i, w in enumerate(stack) if w.thread == me]
            window = stack.pop(mine[-1] if mine else -1)
            if not stack:
                del self._by_name[name]
            return window

    def of(self, name: str) -> list[OpenWindow]:
        """The open windows of ``name``, oldest first."""
        with self._lock:
            return list(self._by_name.get(name, ()))

    def names(self) -> list[str]:
        """Names with an open window."""
        with self._lock:
            return list(self._by_name)

    def settle(self, timeline: Timeline) -> None:
        """Give the windows opened before the curve's last point their start energy (call under the curve's lock)."""
        last = timeline.last_time or 0
        with self._lock:
            for stack in self._by_name.values():
                for window in stack:
                    if window.joules is None and window.t_ns <= last:
                        window.joules = timeline.at(window.t_ns)


@dataclass
class WindowHandle:
    """Returned by :meth:`co2cb.Tracker.window`; ``result`` is set when the window closes."""

    name: str
    result: WindowResult | None = None
