"""Framework-neutral measurement of a training run: what every adapter does, in one place.

The Lightning, Hugging Face and Keras callbacks are thin shells that translate their hooks into
calls on :class:`TrainingMonitor`:

* ``start`` when fitting starts, ``finish`` at the end (or ``fail`` on an exception);
* ``step_begin``/``step_end`` around each training batch (the hot path: two clock reads);
* ``log_step`` at the framework's logging cadence: energy and CO2 since the last log, read off
  the sampler's curve (no meter read);
* ``epoch_begin``/``epoch_end`` for training and validation epochs: the job's values (summed
  over ranks), running totals, the forecast of the whole run and the carbon budget.

Distributed jobs: each rank measures its own devices; host-level meters (RAPL, CPU and RAM
estimates) run on one rank per host only, over the processes of every local rank. Epoch values
are gathered from all ranks (a :class:`Collective` given by the adapter) and summed, never
averaged; the record holds the job's total and its split per rank and per host, written by
global rank 0 alone.

Nothing here may stop training except the carbon budget the user asked for: every call that
can fail is wrapped by the adapters with :func:`guarded`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any, Protocol, TypeVar

from co2cb.core.options import check_options
from co2cb.core.results import EnergySums, WindowResult
from co2cb.core.tracker import Tracker
from co2cb.meters.base import COMPONENTS
from co2cb.units import JOULES_PER_KWH, format_mass

log = logging.getLogger(__name__)

PREFIX = "co2cb/"
STATE_VERSION = 1
BUDGET_MODES = ("total", "forecast")

T = TypeVar("T")


class Collective(Protocol):
    """How the adapter exchanges numbers between the ranks of a job."""

    world_size: int
    rank: int

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (small, picklable), in rank order, on every rank."""


@dataclass
class SingleProcess:
    """The collective of a job of one process."""

    world_size: int = 1
    rank: int = 0

    def gather(self, value: Any) -> list[Any]:
        return [value]


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank.
        local_rank: Rank on this host.
        world_size: Number of processes in the job.
        local_pids: Process ids of every rank on this host (for the host-level meters).
        hosts: Host name of every rank, in rank order.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_pids: tuple[int, ...] = ()
    hosts: tuple[str, ...] = field(default_factory=lambda: (socket.gethostname(),))

    @classmethod
    def gathered(cls, collective: Collective, local_rank: int) -> RankInfo:
        """This process's place in the job, from every rank's host and pid (a collective: every rank calls it)."""
        me = (socket.gethostname(), os.getpid(), local_rank)
        everyone = collective.gather(me)
        return cls(
            rank=collective.rank,
            local_rank=local_rank,
            world_size=collective.world_size,
            local_pids=tuple(pid for host, pid, _ in everyone if host == me[0]),
            hosts=tuple(host for host, _, _ in everyone),
        )


@dataclass
class Energy(EnergySums):
    """Energy and CO2 of a stretch of training (summable across ranks and windows).

    Attributes:
        joules: Per component (``gpu``, ``cpu``, ``ram``), joules, before PUE.
        co2_kg: Emissions, kg CO2e, including PUE.
        seconds: Wall-clock duration, seconds (the longest rank's, when summed across ranks).
    """

    joules: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))
    co2_kg: float = 0.0
    seconds: float = 0.0

    @classmethod
    def of(cls, result: WindowResult) -> Energy:
        """The energy of a window result."""
        joules = dict.fromkeys(COMPONENTS, 0.0)
        joules.update(result.joules)
        return cls(joules, result.co2_kg, result.seconds)

    def vector(self) -> list[float]:
        """Flat form for collectives: joules per component, CO2, seconds."""
        return [self.joules[c] for c in COMPONENTS] + [self.co2_kg, self.seconds]

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> Energy:
        """Inverse of :meth:`vector`."""
        n = len(COMPONENTS)
        return cls(dict(zip(COMPONENTS, values[:n])), values[n], values[n + 1])

    def plus(self, other: Energy) -> Energy:
        """Sum of two consecutive stretches (durations add)."""
        joules = {c: self.joules[c] + other.joules[c] for c in COMPONENTS}
        return Energy(joules, self.co2_kg + other.co2_kg, self.seconds + other.seconds)

    def minus(self, other: Energy) -> Energy:
        """What is left of this stretch without a part of it (floored at zero)."""
        joules = {c: max(0.0, self.joules[c] - other.joules[c]) for c in COMPONENTS}
        return Energy(joules, max(0.0, self.co2_kg - other.co2_kg), max(0.0, self.seconds - other.seconds))

    def as_record(self) -> dict[str, Any]:
        """JSON-ready form (kWh, kg, seconds)."""
        energy = {c: j / JOULES_PER_KWH for c, j in self.joules.items()}
        energy["total"] = self.kwh
        return {"energy_kwh": energy, "co2_kg": self.co2_kg, "seconds": self.seconds}


def sum_over_ranks(per_rank: Sequence[Energy]) -> Energy:
    """The job's energy: every rank's joules and CO2 added; the duration is the longest rank's."""
    total = Energy()
    for e in per_rank:
        total = Energy(
            {c: total.joules[c] + e.joules[c] for c in COMPONENTS},
            total.co2_kg + e.co2_kg,
            max(total.seconds, e.seconds),
        )
    return total


@dataclass
class Forecast:
    """Predicted energy and CO2 of the whole run, from the share of it done so far.

    Attributes:
        energy_kwh: Predicted energy of the whole run, kWh.
        co2_kg: Predicted emissions of the whole run, kg CO2e.
        progress: Share of the run done (optimizer steps done / steps planned), 0..1.
    """

    energy_kwh: float
    co2_kg: float
    progress: float


@dataclass
class EpochReport:
    """What an adapter logs and does at the end of an epoch.

    Attributes:
        metrics: Name -> value, ready for the framework's loggers.
        energy: The job's energy for the epoch.
        stop_reason: Set when the carbon budget says training must stop.
    """

    metrics: dict[str, float]
    energy: Energy
    stop_reason: str | None = None


def guarded(default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Make an adapter hook unable to raise: a failure gives one warning and ``default``."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @wraps(fn)
        def safe(self: Any, *args: Any, **kwargs: Any) -> T:
            try:
                return fn(self, *args, **kwargs)
            except Exception as e:  # noqa: BLE001 - co2cb must never stop a training run
                warned: set[str] = self.__dict__.setdefault("_co2cb_warned", set())
                if fn.__name__ not in warned:
                    warned.add(fn.__name__)
                    log.warning("co2cb: %s failed (%s: %s); training goes on", fn.__name__, type(e).__name__, e)
                return default

        return safe

    return wrap


class TrainingMonitor:
    """Measures a training job in epochs and logging steps, for any framework."""

    def __init__(
        self,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        monitor: Sequence[str] = (),
        budget_kg: float | None = None,
        budget_on: str = "total",
        forecast_after_epochs: int = 1,
        tracker_options: Mapping[str, Any] | None = None,
    ) -> None:
        """Store and check the options; nothing is measured before :meth:`start`.

        Args:
            run_name: Name of the run in the record (default: the run id).
            tags: Labels written into the record (model, dataset, stage...).
            monitor: Names of metrics whose final value is recorded (e.g. ``["val_acc"]``).
            budget_kg: Stop training once the job's CO2 passes this many kg CO2e.
            budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
            forecast_after_epochs: Epochs to measure before forecasting the whole run.
            tracker_options: Options for :class:`co2cb.Tracker` (interval_s, region, pue, ...).

        Raises:
            ValueError: An option is invalid; the message says what to change.
        """
        if budget_kg is not None and (isinstance(budget_kg, bool) or not budget_kg > 0):
            raise ValueError(f"budget_kg={budget_kg!r} is not valid: give a number of kg CO2e greater than 0")
        if budget_on not in BUDGET_MODES:
            raise ValueError(f"budget_on={budget_on!r} is not valid: use 'total' or 'forecast'")
        if not isinstance(forecast_after_epochs, int) or forecast_after_epochs < 1:
            raise ValueError(f"forecast_after_epochs={forecast_after_epochs!r} is not valid: give an integer >= 1")
        reserved = sorted({"run_name", "tags", "gpus", "pids"} & set(tracker_options or {}))
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be passed as tracker options here: run_name and tags are the "
                "callback's own arguments, and each rank's GPUs and processes are found from the framework"
            )
        check_options(**{k: v for k, v in (tracker_options or {}).items() if k != "components"})
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.monitor = tuple([monitor] if isinstance(monitor, str) else monitor)
        self.budget_kg = budget_kg
        self.budget_on = budget_on
        self.forecast_after_epochs = forecast_after_epochs
        self.tracker_options = dict(tracker_options or {})
        self.tracker: Tracker | None = None
        self.collective: Collective = SingleProcess()
        self.rank = RankInfo()
        self.totals = Energy()  # the job's, all ranks, including earlier (resumed) segments
        self.epochs_done = 0
        self.forecast: Forecast | None = None
        self.final_metrics: dict[str, float] = {}
        self._resumed: dict[str, Any] | None = None
        self._val_in_epoch = Energy()
        self._last_log_mark = 0
        self._stop_reason: str | None = None

    # ------------------------------------------------------------------ life cycle
    @property
    def writer(self) -> bool:
        """Whether this process writes the run record (global rank 0)."""
        return self.rank.rank == 0

    def tracker_for(self, rank: RankInfo, gpus: Sequence[int] | None, uses_gpu: bool) -> Tracker:
        """Build this rank's tracker: its own GPUs; host-level meters on local rank 0 only.

        Raises:
            co2cb.ConfigError: A tracker option is invalid.
        """
        options = dict(self.tracker_options)
        components = [c for c in options.pop("components", COMPONENTS) if c != "gpu" or uses_gpu]
        if rank.local_rank != 0:
            components = [c for c in components if c == "gpu"]
        if not components:  # e.g. local rank 1 of a CPU job: its share is measured by local rank 0
            options["meters"] = []
        return Tracker(
            run_name=self.run_name,
            tags=self.tags,
            save=bool(options.pop("save", True)) and rank.rank == 0,
            components=components or ["cpu"],
            gpus=list(gpus) if gpus is not None and uses_gpu else None,
            pids=rank.local_pids or None,
            **options,
        )

    def start(self, tracker: Tracker, collective: Collective, rank: RankInfo, plan: Mapping[str, Any]) -> None:
        """Start measuring.

        Args:
            tracker: This rank's tracker (from :meth:`tracker_for`).
            collective: How to exchange numbers with the other ranks.
            rank: Where this process sits in the job.
            plan: What the run is to do (``max_epochs``, ``max_steps``, ``total_steps``), for the record.
        """
        self.tracker, self.collective, self.rank = tracker, collective, rank
        header: dict[str, Any] = {
            "job": {"world_size": rank.world_size, "framework_plan": dict(plan)},
            "monitor": list(self.monitor),
            "budget": {"kg": self.budget_kg, "on": self.budget_on} if self.budget_kg else None,
        }
        if self._resumed:
            header["resumed_from"] = {k: self._resumed.get(k) for k in ("run_id", "run_folder", "epochs_done")}
        tracker.start(header=header)
        self._last_log_mark = tracker.mark()

    # ------------------------------------------------------------------ hot path
    def step_begin(self) -> None:
        """A training batch starts (a clock read and an append)."""
        assert self.tracker is not None
        self.tracker.begin("step", record=False)

    def step_end(self) -> None:
        """A training batch ended (a clock read and an append)."""
        assert self.tracker is not None
        self.tracker.end("step")

    # ------------------------------------------------------------------ logging steps
    def log_step(self) -> dict[str, float]:
        """Energy and CO2 since the last log, read off the curve (this rank's; no meter read)."""
        assert self.tracker is not None
        now = self.tracker.mark()
        since = self.tracker.between(self._last_log_mark, now, name="log_interval")
        self._last_log_mark = now
        metrics = {
            PREFIX + "step_energy_kwh": since.kwh,
            PREFIX + "step_co2_kg": since.co2_kg,
            PREFIX + "step_power_w": since.mean_watts,
        }
        if self.collective.world_size == 1:
            run = self.tracker.totals()
            metrics[PREFIX + "run_co2_kg"] = self.totals_before_run.co2_kg + run.co2_kg
            self._check_budget(self.totals_before_run.co2_kg + run.co2_kg, during_epoch=True)
        return metrics

    @property
    def totals_before_run(self) -> Energy:
        """The job's totals from earlier segments of a resumed run."""
        return Energy.from_vector(self._resumed["totals"]) if self._resumed else Energy()

    # ------------------------------------------------------------------ epochs
    def epoch_begin(self, kind: str) -> None:
        """Open a ``train_epoch`` or ``val_epoch`` window."""
        assert self.tracker is not None
        if kind == "train":
            self._val_in_epoch = Energy()
        self.tracker.begin(f"{kind}_epoch")

    def epoch_end(self, kind: str, epoch: int, progress: float | None = None) -> EpochReport:
        """Close the epoch window, sum it over ranks, update totals, forecast and budget.

        Args:
            kind: ``"train"`` or ``"val"``.
            epoch: The epoch index.
            progress: Share of the run done (0..1) for the forecast; None if unknown.
        """
        assert self.tracker is not None
        if not self.tracker.open_windows(f"{kind}_epoch"):
            return EpochReport({}, Energy(), self._stop_reason)  # not opened here: the epoch a checkpoint resumed in
        local = self.tracker.end(f"{kind}_epoch", write=False)
        if local is None:
            return EpochReport({}, Energy(), self._stop_reason)
        mine = Energy.of(local)
        per_rank = [Energy.from_vector(v) for v in self.collective.gather(mine.vector())]
        job = sum_over_ranks(per_rank)
        prefix = PREFIX + f"{kind}_epoch_"
        if kind == "val":
            if self.tracker.open_windows("train_epoch"):
                self._val_in_epoch = self._val_in_epoch.plus(job)
            else:  # an evaluation outside any training epoch counts in the totals by itself
                self.totals = self.totals.plus(job)
            reported = job
        else:
            # Validation inside a training epoch is reported apart: train = epoch - validation.
            reported = job.minus(self._val_in_epoch)
            self.totals = self.totals.plus(job)
            self.epochs_done += 1
        metrics = {
            prefix + "energy_kwh": reported.kwh,
            prefix + "co2_kg": reported.co2_kg,
            prefix + "power_w": reported.mean_watts,
            **{prefix + f"energy_{c}_kwh": reported.joules[c] / JOULES_PER_KWH for c in COMPONENTS},
            PREFIX + "intensity_g_per_kwh": local.g_per_kwh if local is not None else math.nan,
        }
        if kind == "train":
            run_totals = self.totals_before_run.plus(self.totals)
            metrics[PREFIX + "total_energy_kwh"] = run_totals.kwh
            metrics[PREFIX + "total_co2_kg"] = run_totals.co2_kg
            if progress and self.epochs_done >= self.forecast_after_epochs and 0 < progress <= 1:
                self.forecast = Forecast(run_totals.kwh / progress, run_totals.co2_kg / progress, progress)
                metrics[PREFIX + "forecast_energy_kwh"] = self.forecast.energy_kwh
                metrics[PREFIX + "forecast_co2_kg"] = self.forecast.co2_kg
            self._check_budget(run_totals.co2_kg, during_epoch=False)
        if self.writer and local is not None:
            meta: dict[str, Any] = {"epoch": epoch, "kind": kind, **self._split(per_rank)}
            if kind == "train":
                meta["validation_excluded"] = self._val_in_epoch.as_record()
                if self.forecast is not None:
                    meta["forecast"] = vars(self.forecast)
            self.tracker.write_result(self._as_result(local, reported, meta))
        return EpochReport(metrics, reported, self._stop_reason)

    @staticmethod
    def _as_result(local: WindowResult, job: Energy, meta: dict[str, Any]) -> WindowResult:
        """The job's figures in a window result (per-meter energy is this rank's alone, so left out)."""
        return replace(
            local,
            seconds=job.seconds,
            joules={c: job.joules[c] for c in COMPONENTS if c in local.joules or job.joules[c]},
            meter_joules={},
            co2_kg=job.co2_kg,
            co2_kg_marginal=None,
            g_per_kwh_marginal=None,
            meta=meta,
        )

    def _split(self, per_rank: list[Energy]) -> dict[str, Any]:
        if self.collective.world_size == 1:
            return {}
        hosts = self.rank.hosts
        by_host: dict[str, Energy] = {}
        for host, e in zip(hosts, per_rank):
            by_host[host] = sum_over_ranks([by_host.get(host, Energy()), e])
        return {
            "per_rank": [e.as_record() for e in per_rank],
            "per_host": {h: e.as_record() for h, e in by_host.items()},
        }

    # ------------------------------------------------------------------ budget
    def _check_budget(self, co2_so_far: float, during_epoch: bool) -> None:
        if self.budget_kg is None or self._stop_reason is not None:
            return
        if co2_so_far > self.budget_kg:
            self._stop_reason = (
                f"co2cb: carbon budget reached: {format_mass(co2_so_far)} CO2e so far, budget "
                f"{format_mass(self.budget_kg)}; stopping training"
            )
        elif (
            self.budget_on == "forecast"
            and not during_epoch
            and self.forecast is not None
            and self.forecast.co2_kg > self.budget_kg
        ):
            self._stop_reason = (
                f"co2cb: carbon budget would be passed: the whole run is forecast at "
                f"{format_mass(self.forecast.co2_kg)} CO2e ({self.forecast.progress:.0%} done), budget "
                f"{format_mass(self.budget_kg)}; stopping training"
            )
        if self._stop_reason:
            log.warning(self._stop_reason)

    @property
    def stop_reason(self) -> str | None:
        """Why the budget stopped training, or None."""
        return self._stop_reason

    # ------------------------------------------------------------------ end
    def record_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Keep the latest value of the monitored metrics (call with the framework's metrics)."""
        for name in self.monitor:
            if name in metrics:
                try:
                    self.final_metrics[name] = float(metrics[name])
                except (TypeError, ValueError):
                    continue

    def finish(self, status: str = "completed") -> WindowResult | None:
        """Stop measuring; the run's job totals go into the summary (collective: every rank calls it)."""
        tracker = self.tracker
        if tracker is None or not tracker.running:
            return None
        if self.collective.world_size == 1:
            return self._stop(status, None, {})
        run = tracker.totals(read=True)
        per_rank = [Energy.from_vector(v) for v in self.collective.gather(Energy.of(run).vector())]
        job = sum_over_ranks(per_rank)
        if self.writer:
            tracker.write_result(self._as_result(run, job, {"kind": "run", **self._split(per_rank)}))
        return self._stop(status, job, self._split(per_rank))

    def fail(self, error: BaseException) -> None:
        """Stop measuring after an exception (this rank only; no collective)."""
        tracker = self.tracker
        if tracker is not None and tracker.running:
            self._stop(f"failed: {type(error).__name__}: {error}", None, {})

    def _stop(self, status: str, job: Energy | None, split: dict[str, Any]) -> WindowResult | None:
        assert self.tracker is not None
        summary: dict[str, Any] = {
            "status": status,
            "epochs": self.epochs_done,
            "final_metrics": self.final_metrics,
            "forecast": vars(self.forecast) if self.forecast else None,
            "stop_reason": self._stop_reason,
        }
        if job is not None:  # a job of several ranks: the summary holds their sum, not this rank's share
            summary.update(job.as_record())
            summary["meter_energy_kwh"] = {}
            summary["mean_power_w"] = job.mean_watts
            summary["job"] = {"world_size": self.collective.world_size, **split}
        if self._resumed:  # the whole run across its segments (this segment read just before stopping)
            mine = job if job is not None else Energy.of(self.tracker.totals(read=True))
            summary["resumed_total"] = self.totals_before_run.plus(mine).as_record()
        return self.tracker.stop(summary, write_run=job is None)

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Totals to save in a checkpoint: the job's finished epochs, plus this rank's share of the open one.

        No collective here: frameworks may save checkpoints on one rank only. With one process the
        totals are exact at any moment (mid-epoch or at validation end).
        """
        tracker = self.tracker
        so_far = self.totals
        if tracker is not None and tracker.running:
            if self.collective.world_size == 1:
                so_far = Energy.of(tracker.totals(read=True))
            else:
                open_epoch = tracker.open_windows("train_epoch")
                if open_epoch:
                    so_far = so_far.plus(Energy.of(tracker.between(open_epoch[-1], name="open_epoch")))
        return {
            "version": STATE_VERSION,
            "run_id": tracker.run_id if tracker else None,
            "run_folder": str(tracker.run_folder) if tracker and tracker.run_folder else None,
            "totals": self.totals_before_run.plus(so_far).vector(),
            "epochs_done": self.epochs_done + (self._resumed or {}).get("epochs_done", 0),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the totals of a checkpointed run; its run folder is linked from the new one."""
        if state.get("version") != STATE_VERSION:
            log.warning("co2cb: checkpoint state of an unknown version %r ignored", state.get("version"))
            return
        self._resumed = dict(state)
        if self.tracker is not None and self.tracker.running:
            self.tracker.write_event(
                {"type": "resume", "resumed_from": {k: state.get(k) for k in ("run_id", "run_folder", "epochs_done")}}
            )
