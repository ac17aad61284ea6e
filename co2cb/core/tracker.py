"""The public entry point: :class:`Tracker` measures energy and CO2 in named windows."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from co2cb.core import forks
from co2cb.core.config import ConfigError
from co2cb.core.header import loss_records, run_header, summary_line
from co2cb.core.live import LiveFeed
from co2cb.core.options import TRACKER_OPTIONS, tracker_config
from co2cb.core.results import WindowResult, iso
from co2cb.core.sampler import Sampler
from co2cb.core.sink import RecordSink
from co2cb.core.steps import StepBook, StepWindows
from co2cb.core.windows import OpenWindow, OpenWindows, WindowHandle, WindowMaker
from co2cb.intensity.base import IntensitySource
from co2cb.intensity.choice import IntensityOption, announce, choose
from co2cb.meters.base import Meter
from co2cb.meters.discovery import MeterSet, discover
from co2cb.records.writer import new_run_id

log = logging.getLogger(__name__)

RUN_WINDOW = "run"


class Tracker(StepWindows):
    """Measures energy and CO2 of a run and of named windows inside it.

    Use it as a context manager or with :meth:`start`/:meth:`stop`::

        with co2cb.Tracker(run_name="pretrain") as tracker:
            for epoch in range(3):
                with tracker.window("epoch"):
                    for batch in data:
                        tracker.begin("step", record=False)
                        train(batch)
                        tracker.end("step")
        print(tracker.result.co2_kg)

    Windows are named, nestable and overlapping. Recorded windows (the default) are written to the run
    folder when they close; step windows (``record=False``) only append a timestamp and are summarised by
    :meth:`step_stats`. From several threads, each thread's steps are its own series (folded into one set
    of statistics), and a window closes the latest one of its name that the same thread opened. A process
    forked from a running tracker drops its copy (:mod:`co2cb.core.forks`).
    """

    def __init__(
        self,
        *,
        run_name: str | None = None,
        output_dir: str | os.PathLike[str] | None = None,
        save: bool = True,
        interval_s: float | None = None,
        scope: str = "process",
        gpus: Sequence[int | str] | None = None,
        components: Sequence[str] = ("gpu", "cpu", "ram"),
        sync_boundaries: bool = True,
        intensity: IntensityOption = None,
        region: str | None = None,
        pue: float | None = None,
        marginal_intensity: IntensityOption = None,
        powercap_root: str | os.PathLike[str] | None = None,
        cpu_tdp_w: float | None = None,
        ram_watts_per_gb: float | None = None,
        keep_steps: bool = False,
        tags: Mapping[str, Any] | None = None,
        meters: Sequence[Meter] | None = None,
        pids: Sequence[int] | None = None,
        prometheus_port: int | None = None,
        prometheus_addr: str = "127.0.0.1",
        pushgateway: str | None = None,
        opentelemetry: bool = False,
    ) -> None:
        """Check every option and find the meters; nothing is measured before :meth:`start`.

        Args:
            run_name: A name for the run (default: the run id).
            output_dir: Parent of run folders (default ``CO2CB_OUTPUT_DIR`` or ``./co2cb-runs``).
            save: Write a run folder; False keeps results in memory only.
            interval_s: Seconds between background readings, 0.05 to 60; default 1, or 0.1 when a meter
                only gives power (``sampled-power``: at 1 s, power swinging with a period near a second aliases).
            scope: ``"process"`` (this process and its children) or ``"machine"``.
            gpus: GPUs to measure (CUDA ordinals or ``GPU-`` UUIDs); default: all visible.
            components: Which of ``"gpu"``, ``"cpu"``, ``"ram"`` to measure.
            sync_boundaries: Read the meters when a recorded window closes, and when it opens if a meter
                measures (exact edges; waits at most 50 ms on a meter call, else reads the curve). Without it a
                window's start is read off the curve once the sampler passes it, and its end is extended from
                the last interval's power. Step windows never read.
            intensity: What ``co2_kg`` uses: carbon intensity in gCO2e/kWh; an
                :class:`IntensitySource`; the path of a CSV series ``timestamp, gCO2e/kWh``
                (average; see :mod:`co2cb.intensity.series`); ``"electricitymaps"`` for the live
                API (token in ``ELECTRICITYMAPS_API_TOKEN``; see
                :mod:`co2cb.intensity.electricitymaps`); default: the region's table value.
            region: Region code for the intensity (``"FR"``, ``"US-CA"``, ``"aws:eu-west-3"``).
            pue: Power usage effectiveness of the data centre, 1.0 to 3.0; default: the cloud
                provider's published figure for a cloud region, else 1.0.
            marginal_intensity: A marginal intensity recorded next to an average one, as
                ``co2_kg_marginal``: gCO2e/kWh, a CSV series path, ``"table"`` (the region's
                UNFCCC/IFI combined-margin factor) or a marginal :class:`IntensitySource`.
            powercap_root: Folder holding RAPL zones (default ``CO2CB_POWERCAP_ROOT`` or
                ``/sys/class/powercap``).
            cpu_tdp_w: Use this CPU TDP, watts (all sockets), when the CPU is estimated.
            ram_watts_per_gb: RAM estimate constant, watts per GB (default 0.375).
            keep_steps: Keep every step window, not only their statistics.
            tags: Free-form labels written into the run record.
            meters: Use these meters instead of discovering them (advanced, tests).
            pids: Root processes of the tree measured in process scope (default: this process; the
                ranks of a job on one host, for host-level meters read once per host).
            prometheus_port: Serve the live metrics (:mod:`co2cb.export`) on ``/metrics`` at this TCP
                port for Prometheus to scrape (0: any free port; see :attr:`prometheus_url`). Needs
                ``co2cb[prometheus]``. A port in use gives a warning and the run goes on.
            prometheus_addr: Address the endpoint binds: this machine only by default; ``"0.0.0.0"``
                for every interface.
            pushgateway: Push the live metrics to this Prometheus Pushgateway URL at each recorded
                window's close and at stop, from a background thread (credentials in
                ``CO2CB_PUSHGATEWAY_AUTH``, never in the URL). Needs ``co2cb[prometheus]``.
            opentelemetry: Record the live metrics through the OpenTelemetry metrics API (the
                application's MeterProvider exports them). Needs ``co2cb[otel]``.

        Raises:
            ConfigError: An option is invalid; the message says what to change.
        """
        try:
            arguments = {k: v for k, v in locals().items() if k in TRACKER_OPTIONS}  # this call's options
            self.config = tracker_config(**arguments)
            self.choice = choose(intensity, region, marginal_intensity=marginal_intensity, pue=pue)
            self.intensity: IntensitySource = self.choice.source
            self.marginal_intensity: IntensitySource | None = self.choice.marginal
            self.pue = self.choice.pue.value
            given = MeterSet(meters=list(meters)) if meters is not None else None
            self.meter_set = given or discover(pids=pids, **self.config.discovery_options())
        except ValueError as e:
            raise e if isinstance(e, ConfigError) else ConfigError(str(e)) from e
        meters = self.meter_set.meters
        self.config = self.config.with_interval_for(meters)
        self._channels = [m.info.name for m in meters]
        self._sampler = Sampler(meters, self.config.interval, on_tick=self._on_tick)
        export = self.config.export
        self._live = LiveFeed(export, self._sampler, self.choice, self._unix) if export.wanted else None
        self._windows = WindowMaker(
            self._channels,
            [m.info.component.value for m in meters],
            [m.info.provenance.value for m in meters],
            self.intensity,
            self.marginal_intensity,
            self.pue,
            self._unix,
            self._sampler.unavailable,
        )
        self._steps = StepBook(len(self._channels), self.config.keep_steps, self._sampler)
        self._open = OpenWindows()
        self._local = threading.local()  # this thread's step buffers, by name
        self._sink = RecordSink()
        self._started = False
        self._stopped = False
        self._wall0 = 0.0
        self._perf0 = 0
        self.run_id: str | None = None
        self.result: WindowResult | None = None

    # ----------------------------------------------------------------- life cycle
    @property
    def run_folder(self) -> Path | None:
        """The run's record folder (None before start or when ``save=False``)."""
        return self._sink.recorder.folder if self._sink.recorder is not None else None

    @property
    def start_unix_s(self) -> float:
        """When :meth:`start` ran, seconds since the epoch (0 before)."""
        return self._wall0

    @property
    def prometheus_url(self) -> str | None:
        """Where the live metrics are served for Prometheus (``prometheus_port``), or None."""
        return self._live.exporter.prometheus_url if self._live is not None else None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started and not self._stopped

    def start(self, header: Mapping[str, Any] | None = None) -> Tracker:
        """Start measuring: open the run folder, write its header, start the sampler and the run window.

        Args:
            header: Extra fields for the header line (adapters: the job's shape, a resumed run).
        """
        if self._started:
            return self
        self._wall0, self._perf0 = time.time(), time.perf_counter_ns()
        if self.config.save:  # the folder may have gone bad since construction: then the run stays in memory
            self._sink.open(lambda: self.config.resolved_output_dir)
        self.run_id = self._sink.recorder.run_id if self._sink.recorder is not None else new_run_id()
        self._started = True
        announce(self.choice)
        for problem in self.meter_set.problems:
            self._sink.warn_once(problem, f"co2cb: {problem}")
        atexit.register(self._stop_at_exit)
        forks.watch(self)
        self._sampler.start()
        first = self._sampler.timeline.last_time or time.perf_counter_ns()
        self._open.push(OpenWindow(RUN_WINDOW, first, self._sampler.timeline.at(first)))
        if self._live is not None:
            self._live.start(self.config.run_name or self.run_id, self.run_id, self.meter_set.choices)
        self._sink.write({**self.header(), **dict(header or {})})
        return self

    def stop(self, summary: Mapping[str, Any] | None = None, write_run: bool = True) -> WindowResult | None:
        """Stop measuring: close open windows, write the summary line, release the meters.

        Args:
            summary: Extra fields for the summary line (final metrics, status, ...); they override the
                run window's own fields. A callable value is called with the run window's final result.
            write_run: Write the run window's line; False when the caller writes the job's own
                (a distributed adapter summing every rank).

        Returns:
            The run window's result (also kept as :attr:`result`).
        """
        if not self._started or self._stopped:
            return self.result
        self._stopped = True
        atexit.unregister(self._stop_at_exit)
        forks.unwatch(self)
        self._sampler.stop()
        t = self._sampler.timeline.last_time or time.perf_counter_ns()
        for name in [n for n in self._open.names() if n != RUN_WINDOW]:
            while self._close(name, t, {"closed_by": "stop"}) is not None:
                pass
        self.result = self._close(RUN_WINDOW, t, {}, write=write_run)
        self._sink.write_events(self._sampler.take_events(), self._unix)
        self._steps.fold_all()
        extra = {k: v(self.result) if callable(v) else v for k, v in (summary or {}).items()}
        self._sink.write(summary_line(self.result, self.all_step_stats(), self._sampler, self._unix, extra))
        if self._live is not None:
            self._live.stop()  # the final values: the last push, then the endpoint closes
        self._sink.close()
        self.meter_set.close()
        self.choice.close()
        return self.result

    def _stop_at_exit(self) -> None:
        self.stop({"status": "stopped at interpreter exit"})

    def drop_in_child(self) -> None:
        """In a forked child (:mod:`co2cb.core.forks`): forget the parent's run; this copy writes nothing."""
        atexit.unregister(self._stop_at_exit)
        self._stopped = True
        self._sink.recorder = self._live = None
        self._open = OpenWindows()
        self._sampler.forget_in_child()

    def __enter__(self) -> Tracker:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop({"status": "failed", "error": repr(exc)} if exc is not None else None)

    # ----------------------------------------------------------------- windows
    def begin(self, name: str, record: bool = True) -> None:
        """Open a window.

        Args:
            name: The window's name. A name is used either for recorded windows or for
                step windows, not both.
            record: True (default): a recorded window, written to the run folder when it
                closes. False: a step window, which only stores a timestamp (the per-step
                hot path: no I/O, no lock, no syscall beyond the clock).
        """
        if not record:
            self.step_stamps(name).append(time.perf_counter_ns())
            return
        if not self.running:
            self._sink.warn_once(
                f"begin-{name}", f"co2cb: window {name!r} opened while the tracker is not running; ignored"
            )
            return
        if name in self._steps.series:
            self._sink.warn_once(f"mixed-{name}", f"co2cb: {name!r} is a step window name; use another name. Ignored")
            return
        t = self._sampler.read_now(closing=False) if self.config.sync_boundaries else time.perf_counter_ns()
        self._open.push(OpenWindow(name, t, self._sampler.opening_joules(t)))

    def end(
        self, name: str, meta: Mapping[str, Any] | None = None, write: bool = True, at_ns: int | None = None
    ) -> WindowResult | None:
        """Close the most recent open window of this name.

        Args:
            name: The window's name.
            meta: Extra fields recorded with a recorded window (epoch index, ...).
            write: Write the window's line now; False when the caller writes a combined one
                with :meth:`write_result` (a distributed adapter summing ranks).
            at_ns: Close it as of this earlier moment (``perf_counter_ns``), from the curve: exactly at a time
                :meth:`end_mark` gave, else between the readings on either side (one is taken now if none is newer).

        Returns:
            The window's result for a recorded window; None for a step window.
        """
        try:
            self._local.stamps[name].append(-time.perf_counter_ns())
            return None
        except (AttributeError, KeyError):
            if name in self._steps.series:  # a step name this thread has not opened: paired with nothing
                self._steps.stamps_here(name, self._local).append(-time.perf_counter_ns())
                return None
        opened = self._open.of(name)
        if not opened:
            self._sink.warn_once(f"end-{name}", f"co2cb: window {name!r} closed but it is not open; ignored")
            return None
        if at_ns is None:
            t = self._close_time(opened)
        else:
            t = max(at_ns, opened[-1].t_ns)
            if self.config.sync_boundaries and self.running and (self._sampler.timeline.last_time or -1) < t:
                self._sampler.read_now(after=t)  # the curve must reach t: a reading now
        return self._close(name, t, dict(meta or {}), write=write)

    def end_mark(self, name: str) -> int:
        """When :meth:`end` would close ``name`` now (the meters read as it reads them), for ``end(at_ns=)`` later."""
        return self._close_time(self._open.of(name))

    def _close_time(self, opened: list[OpenWindow]) -> int:
        """Now, for closing the last of ``opened``: the meters read with ``sync_boundaries``, else a clock read."""
        if opened and self.config.sync_boundaries and self.running:
            return self._sampler.read_now(after=opened[-1].t_ns)
        return time.perf_counter_ns()

    def open_windows(self, name: str) -> list[int]:
        """Start marks (for :meth:`between`) of the open recorded windows of this name, oldest first."""
        return [w.t_ns for w in self._open.of(name)]

    def write_result(self, *results: WindowResult) -> None:
        """Write window lines for results the caller made (e.g. summed over ranks), in one ``write()``."""
        if self._sink.recorder is not None and results:
            self._sink.write(*(r.as_record() for r in results))

    def write_event(self, line: Mapping[str, Any]) -> None:
        """Write one extra line (it must have a ``type``), e.g. a resume from a checkpoint."""
        if self._sink.recorder is not None:
            self._sink.write({"at": iso(time.time()), **dict(line)})

    @contextmanager
    def window(self, name: str, meta: Mapping[str, Any] | None = None) -> Iterator[WindowHandle]:
        """A recorded window around a block; the handle's ``result`` is set when the block ends."""
        handle = WindowHandle(name)
        self.begin(name)
        try:
            yield handle
        finally:
            handle.result = self.end(name, meta)

    def _close(self, name: str, t_ns: int, meta: dict[str, Any], write: bool = True) -> WindowResult | None:
        opened = self._open.pop(name)
        if opened is None:  # another thread closed it meanwhile
            return None
        with self._sampler.lock:
            timeline = self._sampler.timeline
            start_j = opened.joules if opened.joules is not None else timeline.at(opened.t_ns)
            result = self._windows.make(
                name, opened.t_ns, start_j, t_ns, timeline.at(t_ns), {**opened.meta, **meta}, timeline
            )
        if write and self._sink.recorder is not None:
            self._sink.write(result.as_record())
        if self._live is not None:
            self._live.window_closed()  # asks the pushing thread for a push; nothing more here
        if result.intensity_notes:
            self._sink.warn_once(
                "intensity-notes",
                f"co2cb: window {name!r}: {result.intensity_notes[0]} (notes on the "
                "intensity are in each window's intensity_notes)",
            )
        return result

    # ----------------------------------------------------------------- queries
    def mark(self, settle: bool = False, after: int = -1) -> int:
        """A point in time (``perf_counter_ns``) for :meth:`between`. Hot-path safe.

        Args:
            settle: Read the meters for this mark while the curve spans less than one sampler interval
                (early in a run, where a counter's rate past the last reading would come from a span of
                a few milliseconds: zero, or several times the truth); later it is a clock read.
            after: The series' previous mark: its reading is not this one's too (no empty interval between).
        """
        if settle and self.running and not self._sampler.timeline.steady:
            return self._sampler.read_now(after=after)
        return time.perf_counter_ns()

    def between(self, start: int, end: int | None = None, name: str = "interval") -> WindowResult:
        """Energy and CO2 between two marks, read off the curve (no meter read, nothing written).

        Past the newest reading the curve is extended with the last interval's power.
        """
        end = time.perf_counter_ns() if end is None else end
        with self._sampler.lock:
            tl = self._sampler.timeline
            return self._windows.make(name, start, tl.at(start), end, tl.at(end), {}, tl)

    def totals(self, read: bool = False, settled: bool = False) -> WindowResult:
        """The run so far.

        Args:
            read: Read the meters now (exact; for epoch-level callers such as checkpoints). By
                default the curve is extended from the last reading (no meter read: hot-path safe).
            settled: Up to the last reading only, not extended past it: never more than the run's
                final figure, up to one sampler interval behind (a running total for loggers).
        """
        opened = self._open.of(RUN_WINDOW)
        if not opened:
            return self.result if self.result is not None else self.between(self._perf0, self._perf0, RUN_WINDOW)
        run = opened[0]
        end = self._sampler.read_now() if read and self.running else time.perf_counter_ns()
        with self._sampler.lock:
            tl = self._sampler.timeline
            if settled and not read:
                end = max(run.t_ns, min(end, tl.last_time or end))
            return self._windows.make(RUN_WINDOW, run.t_ns, run.joules or tl.at(run.t_ns), end, tl.at(end), {}, tl)

    def _on_tick(self) -> None:
        """After each background reading: settle window starts, fold big step buffers, record meter events, export."""
        with self._sampler.lock:
            self._open.settle(self._sampler.timeline)
        self._steps.fold_big()
        self._sink.write_events(self._sampler.take_events(), self._unix)
        if self._live is not None:
            self._live.tick()

    # ----------------------------------------------------------------- records
    def _unix(self, t_ns: int) -> float:
        return self._wall0 + (t_ns - self._perf0) * 1e-9

    def header(self) -> dict[str, Any]:
        """The run record's header line."""
        return run_header(self.run_id, self.config, self.start_unix_s, self.meter_set, self.choice)

    def meter_losses(self) -> list[dict[str, Any]]:
        """The meters lost so far, as the summary line lists them (``meter``, ``at``, ``error``)."""
        return loss_records(self._sampler, self._unix)
