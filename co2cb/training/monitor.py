"""Framework-neutral measurement of a training run: every rule the adapters share, in one place.

The Lightning, Hugging Face and Keras callbacks translate their hooks into calls on
:class:`TrainingMonitor` (start/finish, steps, logging steps, training epochs and validations,
checkpoints) and write what it returns into their framework's loggers. The rules that live here
and nowhere else:

* Validation inside a training epoch is reported apart (train = epoch - validation). A training
  epoch whose validation follows it (``validation_follows=True``) closes when that validation ends.
* The names and the default set of logged values (:mod:`co2cb.training.names`); only components
  some meter of the job measures are logged.
* The run's total (``co2cb/total_*``): everything measured since :meth:`start`, start-up, validation
  and the time between epochs included, earlier segments of a resumed run too; logged at each training
  epoch's end (and step log) up to the last reading, so never above the final figure, and once more at
  the end (:meth:`total_metrics` after :meth:`finish`), where it equals the record's total.
* The forecast line (:mod:`co2cb.training.lines`): printed by the process that writes the record after each
  training epoch, once ``forecast_after_epochs`` are measured and while the run is not done, unless ``CO2CB_QUIET``
  is set (at start) or the adapter is not verbose; epochs are counted from 1 across resumed segments.
* The finish status: :data:`COMPLETED`, :data:`BUDGET_STOPPED`, :data:`NOT_ENDED` or ``failed: ...``.
* Distributed jobs: each rank measures its own devices, host-level meters run on one rank per host;
  epoch values are gathered and summed over ranks (one gather per training epoch, with the validation that
  ends it), and global rank 0 alone writes the record.

Nothing here may stop training except the carbon budget: adapters wrap their hooks with
:func:`co2cb.training.guard.guarded`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.meters.base import COMPONENTS
from co2cb.training import names
from co2cb.training.budget import Budget
from co2cb.training.checkpoint import Resume
from co2cb.training.checkpoint_state import CheckpointState
from co2cb.training.collective import Collective, RankInfo, SingleProcess, measured, rank_tracker, start_together
from co2cb.training.energy import Energy, EpochReport, Forecast, sum_over_ranks
from co2cb.training.job import Job, Shares, meter_components
from co2cb.training.lines import RunLines
from co2cb.training.options import check_monitor_options, monitored
from co2cb.training.provenance import provenance
from co2cb.training.steps import StepClock
from co2cb.training.totals import RunTotal

log = logging.getLogger(__name__)

COMPLETED = "completed"
BUDGET_STOPPED = "stopped by the carbon budget"
NOT_ENDED = "stopped without fit end"


class TrainingMonitor(CheckpointState, RunLines):
    """Measures a training job in epochs, validations and logging steps, for any framework."""

    def __init__(
        self,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        monitor: Sequence[str] | str = (),
        budget_kg: float | None = None,
        budget_on: str = "total",
        forecast_after_epochs: int = 1,
        tracker_options: Mapping[str, Any] | None = None,
        detail: bool = False,
        check: bool = True,
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
            detail: Also log the energy per component, the validation's power, the intensity and the
                forecast's energy (see :mod:`co2cb.training.names`).
            check: Check the options. False for a run's fresh monitor built from options an earlier
                monitor checked (checking the tracker options probes the output folder: about 0.4 ms).

        Raises:
            ValueError: An option is invalid; the message says what to change.
        """
        self.budget = Budget(budget_kg, budget_on)
        if check:
            check_monitor_options(forecast_after_epochs, tracker_options or {})
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.monitor = monitored(monitor)
        self.forecast_after_epochs = forecast_after_epochs
        self.tracker_options = dict(tracker_options or {})
        self.detail = bool(detail)
        self.verbose = True  # the adapter says no where its framework was asked to be silent (Keras verbose=0)
        self.tracker: Tracker | None = None
        self.collective: Collective = SingleProcess()
        self.rank = RankInfo()
        self.job = Job()  # the job's ranks, as gathered at start
        self.components: tuple[str, ...] = COMPONENTS  # those some meter of the job measures (set at start)
        self.epochs_done = 0
        self.forecast: Forecast | None = None
        self.final_metrics: dict[str, float] = {}
        self.resume = Resume()
        self.total = RunTotal(self.resume)  # what loggers get as the run's total
        self._last_log_mark = 0
        self.steps = StepClock()  # the hot path: adapters call steps.begin/end (or a marker) around each batch
        self._epoch: int | None = None  # index of the open training epoch
        self._epoch_pending = False  # the open training epoch closes when its validation ends
        self._progress: float | None = None  # the pending epoch's progress, for the forecast
        self._val_open = False
        self._val_ended: int | None = None  # when a validation ended whose window closes with its epoch's
        self._val_in_epoch = Energy()
        self._val_per_rank = [Energy()] * self.collective.world_size

    # ------------------------------------------------------------------ state
    @property
    def measuring(self) -> bool:
        """Between :meth:`start` and the end of the run."""
        return self.tracker is not None and self.tracker.running

    @property
    def in_train_epoch(self) -> bool:
        """A training epoch is open (possibly waiting for its validation)."""
        return self._epoch is not None

    @property
    def in_validation(self) -> bool:
        """A validation window is open."""
        return self._val_open

    @property
    def stop_reason(self) -> str | None:
        """Why the budget stopped training, or None."""
        return self.budget.stop_reason

    # ------------------------------------------------------------------ life cycle
    def tracker_for(self, rank: RankInfo, gpus: Sequence[int] | None, uses_gpu: bool) -> Tracker:
        """Build this rank's tracker (see :func:`co2cb.training.collective.rank_tracker`)."""
        return rank_tracker(self.tracker_options, rank, gpus, uses_gpu, run_name=self.run_name, tags=self.tags)

    def start(
        self,
        collective: Collective,
        rank: RankInfo,
        plan: Mapping[str, Any],
        gpus: Sequence[int] | None = None,
        uses_gpu: bool = False,
    ) -> None:
        """Build this rank's tracker and start measuring (a collective: every rank calls it).

        Args:
            collective: How to exchange numbers with the other ranks.
            rank: Where this process sits in the job.
            plan: What the run is to do (``max_epochs``, ``max_steps``, ``total_steps``), for the record.
            gpus: The CUDA devices this rank trains on (None: all visible).
            uses_gpu: Whether this rank trains on a GPU at all.

        Raises:
            RuntimeError: Some rank could not start; then none measures (their collectives would not match).
        """
        self.collective, self.rank = collective, rank
        self.hush()
        try:
            per_rank = start_together(collective, lambda: self._start_tracker(plan, gpus, uses_gpu))
        except RuntimeError as e:
            tracker, self.tracker = self.tracker, None
            if tracker is not None and tracker.running:
                tracker.stop({"status": f"not measured: {e}"})
            raise
        self.components = tuple(c for c in COMPONENTS if any(c in p for p in per_rank))
        self.job = Job(collective, rank, per_rank, meter_components(self.tracker) if self.tracker else {})

    def _start_tracker(self, plan: Mapping[str, Any], gpus: Sequence[int] | None, uses_gpu: bool) -> dict[str, str]:
        """Build and start this rank's tracker; how its meters measure each component."""
        self.tracker = self.steps.tracker = self.tracker_for(self.rank, gpus, uses_gpu)
        header: dict[str, Any] = {
            "job": {"world_size": self.rank.world_size, "framework_plan": dict(plan), "hosts": self.rank.about_hosts},
            "monitor": list(self.monitor),
            "budget": {"kg": self.budget.kg, "on": self.budget.on} if self.budget.kg else None,
        }
        if self.resume.link:
            header["resumed_from"] = self.resume.link
        self.tracker.start(header=header)
        self._last_log_mark = self.tracker.mark()
        return measured(self.tracker)

    def close_pending(self) -> list[EpochReport]:
        """Close an open validation and a training epoch still waiting for it (before :meth:`finish`)."""
        reports = self.val_end() if self._val_open else self._close_ended_val()
        if self._epoch is not None and self._epoch_pending:
            reports += self._close_train_epoch(None)
        return reports

    def finish(self, status: str | None = None) -> WindowResult | None:
        """Stop measuring; the run's job totals go into the summary (a collective: every rank calls it).

        Args:
            status: The run's status; default :data:`COMPLETED`, or :data:`BUDGET_STOPPED` when the
                budget stopped it.
        """
        tracker = self.tracker
        if tracker is None or not tracker.running:
            return None
        self.steps.close()
        status = status or (BUDGET_STOPPED if self.budget.stop_reason else COMPLETED)
        if self.collective.world_size == 1:
            return self._stop(status, None)
        run = tracker.totals(read=True)
        shares = self.job.shares(run, tracker.meter_losses())
        job = shares.total
        line = self.job.result(run, job, {"kind": "run", **self.job.split(shares.per_rank, shares.lost)}, shares)
        if self.writer:
            tracker.write_result(line)
        return self._stop(status, job, self.job.summary(line, shares))

    def fail(self, error: BaseException) -> list[EpochReport]:
        """Stop measuring after an exception (this rank only; no collective).

        Returns:
            A validation that ended waiting for its epoch's close, closed now with one process (with several,
            the stop closes its window, as it does every open window).
        """
        if not self.measuring:
            return []
        reports = self._close_ended_val() if self.collective.world_size == 1 else []
        self._stop(f"failed: {type(error).__name__}: {error}", None)
        return reports

    def abandon(self) -> None:
        """Stop measuring when the framework tears down without ending the fit (this rank only)."""
        if self.measuring:
            if self.collective.world_size == 1:
                self._close_ended_val()
            self._stop(NOT_ENDED, None)

    # ------------------------------------------------------------------ logging steps
    def log_step(self) -> dict[str, float]:
        """Energy, CO2 and power since the last log, read off the curve (this rank's), and the run's total.

        No meter read, except while the curve spans less than one sampler interval (early in the run,
        see :meth:`co2cb.Tracker.mark`). The total is logged, and the budget checked, with one process only
        (a job's total needs every rank).
        """
        assert self.tracker is not None
        now = self.tracker.mark(settle=True, after=self._last_log_mark)
        since = self.tracker.between(self._last_log_mark, now, name="log_interval")
        self._last_log_mark = now
        metrics = names.step(since.kwh, since.co2_kg, since.seconds)
        if self.collective.world_size == 1:
            run = self.total.this_process(self.tracker)
            metrics.update(names.totals(run.kwh, run.co2_kg))
            self.budget.check(run.co2_kg, None, during_epoch=True)
        return metrics

    def total_metrics(self) -> dict[str, float]:
        """The run's total as logged (``co2cb/total_*``); after :meth:`finish`, the record's final figure."""
        return self.total.metrics()

    def provenance(self) -> dict[str, str | float]:
        """What the figures rest on, flat, for a tracker's params or config (empty before :meth:`start`)."""
        return provenance(self.tracker) if self.tracker is not None else {}

    # ------------------------------------------------------------------ epochs
    def train_epoch_begin(self, epoch: int) -> list[EpochReport]:
        """Open a training epoch; first close what is still open (a validation, an epoch that waited for it)."""
        reports = self.close_pending()
        if self._epoch is not None:  # the framework never ended the last epoch
            reports += self._close_train_epoch(None)
        assert self.tracker is not None
        self._val_in_epoch = Energy()
        self._val_per_rank = [Energy()] * self.collective.world_size
        self._epoch, self._epoch_pending = epoch, False
        self.tracker.begin("train_epoch")
        return reports

    def train_epoch_end(self, progress: float | None, validation_follows: bool = False) -> list[EpochReport]:
        """Close the training epoch, or mark it to close when the validation that follows it ends.

        Args:
            progress: Share of the run done (0..1) for the forecast; None if unknown.
            validation_follows: The framework validates right after this hook (HF's ``eval_strategy="epoch"``):
                the epoch closes at :meth:`val_end`, so its energy is reported without the validation's and
                the totals count both.
        """
        if self._epoch is None:
            return []
        if validation_follows:
            self._epoch_pending, self._progress = True, progress
            if not self._val_open:
                self.val_begin()
            return []
        return self._close_train_epoch(progress)

    def val_begin(self) -> None:
        """Open a validation window (inside a training epoch or on its own)."""
        if self._val_open:
            return
        assert self.tracker is not None
        self.steps.close()
        self.tracker.begin("val_epoch")
        self._val_open = True

    def val_end(self, with_epoch: bool = False) -> list[EpochReport]:
        """Close the validation window; then the training epoch that waited for it, if any.

        Args:
            with_epoch: The open training epoch ends right after this validation (Lightning validates
                after an epoch's last batch, then ends the epoch): the meters are read now, and the
                validation's window closes with the epoch's, as of that reading. Its report comes with the
                epoch's.

        A training epoch that waited for this validation (``validation_follows``) closes now, with it: both in
        one gather across ranks, as with ``with_epoch``.
        """
        if not self._val_open:
            return []
        self._val_open = False
        if self._epoch is not None and (with_epoch or self._epoch_pending):
            assert self.tracker is not None
            self._val_ended = self.tracker.end_mark("val_epoch")
            return self._close_train_epoch(self._progress) if self._epoch_pending else []
        return self._close("val", self._epoch if self._epoch is not None else self.epochs_done, None)

    def _close_ended_val(self) -> list[EpochReport]:
        """Close the window of a validation that ended with ``with_epoch`` (see :meth:`val_end`), if any."""
        ended, self._val_ended = self._val_ended, None
        if ended is None:
            return []
        return self._close("val", self._epoch if self._epoch is not None else self.epochs_done, None, at_ns=ended)

    def _close_train_epoch(self, progress: float | None) -> list[EpochReport]:
        """Close the training epoch now, and a validation that ended it (:meth:`val_end`) as of its end: one gather."""
        ended, self._val_ended = self._val_ended, None
        index = self._epoch if self._epoch is not None else 0
        self.steps.close()
        val = self._end("val", ended) if ended is not None else None
        train = self._end("train")
        if train is not None and self.tracker is not None:
            shares = self.total.gather(self.tracker, self.job, train, earlier=val)
            val_shares = shares.earlier
        else:  # not opened here: the epoch a checkpoint resumed in
            val_shares = self.job.shares(val) if val is not None else None
        closed = [self._report("val", index, None, val, val_shares)] if val is not None and val_shares else []
        self._epoch, self._epoch_pending = None, False  # after the validation's report, which counts in the epoch
        if train is not None:
            closed.append(self._report("train", index, progress, train, shares))
        return self._publish(closed)

    def _close(self, kind: str, epoch: int, progress: float | None, at_ns: int | None = None) -> list[EpochReport]:
        """Close a window (as of ``at_ns``; default now), sum it over ranks (a collective), update the rest."""
        local = self._end(kind, at_ns)
        if local is None or self.tracker is None:
            return []
        # a window closed as of an earlier time leaves the run's total to the epoch that closes next
        shares = self.total.gather(self.tracker, self.job, local) if at_ns is None else self.job.shares(local)
        return self._publish([self._report(kind, epoch, progress, local, shares)])

    def _end(self, kind: str, at_ns: int | None = None) -> WindowResult | None:
        """This rank's ``{kind}_epoch`` window, closed as of ``at_ns`` (default now); None if it is not open here."""
        assert self.tracker is not None
        if not self.tracker.open_windows(f"{kind}_epoch"):
            return None  # not opened here: the epoch a checkpoint resumed in
        return self.tracker.end(f"{kind}_epoch", write=False, at_ns=at_ns)

    def _report(
        self, kind: str, epoch: int, progress: float | None, local: WindowResult, shares: Shares
    ) -> tuple[EpochReport, WindowResult | None]:
        """A closed window's shares: its values, the run's total and forecast; its line where this rank writes."""
        assert self.tracker is not None
        per_rank = shares.per_rank
        job = sum_over_ranks(per_rank)
        if kind == "val":
            if self._epoch is not None:
                self._val_in_epoch = self._val_in_epoch.plus(job)
                self._val_per_rank = [v.plus(e) for v, e in zip(self._val_per_rank, per_rank)]
            reported = job
        else:  # validation inside a training epoch is reported apart: train = epoch - validation, per rank too
            per_rank = [e.minus(v) for e, v in zip(per_rank, self._val_per_rank)]
            reported = sum_over_ranks(per_rank)
            self.epochs_done += 1
        g_per_kwh = self.job.intensity(local, reported)
        metrics = names.window(kind, reported, reported.co2_kg, g_per_kwh, self.components, self.detail)
        run = self.total.value
        totals = names.totals(run.kwh, run.co2_kg)
        if kind == "train":
            metrics.update(totals)
            metrics.update(self._forecast(progress, run))
        line = None
        if self.writer:
            meta: dict[str, Any] = {"epoch": epoch, "kind": kind, **self.job.split(per_rank, shares.lost)}
            if kind == "train":
                meta["validation_excluded"] = self._val_in_epoch.as_record()
                if self.forecast is not None:
                    meta["forecast"] = vars(self.forecast)
            line = self.job.result(local, reported, meta, shares)
        return EpochReport(kind, epoch, metrics, reported, totals), line

    def _publish(self, closed: list[tuple[EpochReport, WindowResult | None]]) -> list[EpochReport]:
        """Write the closed windows' record lines, together (one ``write()``); their reports."""
        assert self.tracker is not None
        self.tracker.write_result(*(line for _, line in closed if line is not None))
        return [report for report, _ in closed]

    def _forecast(self, progress: float | None, run: Energy) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if progress and self.epochs_measured >= self.forecast_after_epochs and 0 < progress <= 1:
            self.forecast = Forecast(run.kwh / progress, run.co2_kg / progress, progress)
            metrics[names.FORECAST_CO2] = self.forecast.co2_kg
            if self.detail:
                metrics[names.FORECAST_ENERGY] = self.forecast.energy_kwh
            self.say_forecast(self.forecast, self.epochs_measured)  # from 1, every segment
        self.budget.check(run.co2_kg, self.forecast, during_epoch=False)
        return metrics

    # ------------------------------------------------------------------ end
    def record_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Keep the latest value of the monitored metrics (call with the framework's metrics)."""
        for name in self.monitor:
            if name in metrics:
                try:
                    self.final_metrics[name] = float(metrics[name])
                except (TypeError, ValueError):
                    continue

    def _stop(self, status: str, job: Energy | None, fields: Mapping[str, Any] | None = None) -> WindowResult | None:
        assert self.tracker is not None
        summary: dict[str, Any] = {
            "status": status,
            "epochs": self.epochs_done,
            "final_metrics": self.final_metrics,
            "forecast": vars(self.forecast) if self.forecast else None,
            "stop_reason": self.budget.stop_reason,
        }
        summary.update(fields or {})  # a job of several ranks: their sum, not this rank's share
        if self.resume.saved:  # the whole run across its segments, from this segment's final figure (the summary's)
            before = self.resume.totals_before
            summary["resumed_total"] = lambda run: (
                before.plus(job or Energy.of(run)).as_record() if run or job else None
            )
        result = self.tracker.stop(summary, write_run=job is None)
        segment = job if job is not None or result is None else Energy.of(result)
        if segment is not None:  # the record's total: what a logger gets at the end
            self.total.end(segment)
        return result
