"""Keras 3: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`, on every backend.

Values go into the ``logs`` dict Keras hands to every callback, so ``History``, ``CSVLogger``,
``TensorBoard`` and any other logger get them, under co2cb's names (:mod:`co2cb.training.names`)
with Keras' ``val_`` convention. Keras logs nothing at train end: there the run's final total, equal
to the record's, replaces the last epoch's running total in ``History``, goes into the ``logs`` of
``on_train_end`` and into the ``tensorboard_dir``.

How it hooks into Keras 3 (read from ``callbacks/callback_list.py`` and the backends' ``Trainer.fit``):
the callback moves itself first in the ``CallbackList`` (a logger only sees keys added before it);
validation runs inside the epoch, in ``on_test_begin``/``on_test_end``, with its own window; the
per-step work runs in ``on_train_batch_begin`` (on the fit's thread, in order) and the callback
declares ``async_safe``, so Keras keeps dispatching batch ends on its thread pool; a ``fit`` that
raised is noticed by :class:`~co2cb.integrations.keras_fitwatch.FitWatch` (Keras has no exception hook).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import keras

from co2cb.integrations.keras_backup import resume_from_backup, save_beside_backup
from co2cb.integrations.keras_fitwatch import FitAborted, FitWatch, arrange
from co2cb.integrations.keras_model import final_logs, fit_plan, fit_progress, model_devices, set_final_values
from co2cb.integrations.keras_steps import StepHooks
from co2cb.training import names
from co2cb.training.collective import RankInfo, SingleProcess
from co2cb.training.guard import guarded
from co2cb.training.monitor import TrainingMonitor
from co2cb.training.steps import no_step
from co2cb.training.tensorboard import VAL_PREFIX, TensorBoardOutput

__all__ = ["CO2Callback", "FitAborted"]


class CO2Callback(StepHooks, keras.callbacks.Callback):
    """Energy and CO2 per epoch in Keras' ``logs``: ``History``, ``CSVLogger`` and ``TensorBoard`` get them.

    ``model.fit(..., callbacks=[CO2Callback(), keras.callbacks.TensorBoard("logs")])``. At the end of
    each epoch the logs hold, for its training part: ``co2cb/epoch_energy_kwh``, ``co2cb/epoch_co2_kg``,
    ``co2cb/epoch_power_w``; the run's total so far ``co2cb/total_energy_kwh`` and ``co2cb/total_co2_kg``;
    from epoch ``forecast_after_epochs`` on, ``co2cb/forecast_co2_kg`` for the whole ``fit``
    (``CSVLogger`` fixes its columns at the first epoch: keep the default 1 to have it there); and,
    where Keras validated, ``val_co2cb/epoch_energy_kwh`` and ``val_co2cb/epoch_co2_kg``. At train
    end ``History`` holds the run's final total (see the module's docstring). Each ``fit`` writes one
    run folder with the run name, tags, the final value of the ``monitor`` metrics and every epoch;
    with ``verbose`` it prints the forecast after each epoch and the totals at the end
    (``CO2CB_QUIET=1`` silences them).

    Wherever it is listed, the callback runs first (behind Keras' progress bar, which is left
    without these values), so every logger and ``EarlyStopping``/``ModelCheckpoint`` see them. A
    ``fit`` that raises is recorded as failed within ``keras_fitwatch.WATCH_PERIOD_S``. A ``fit`` that
    ``BackupAndRestore`` resumes continues the run (:mod:`~co2cb.integrations.keras_backup`). Nothing the callback does
    stops training, except the carbon budget: a failure gives one warning and training goes on.

    Args:
        run_name: Name of the run in the record.
        tags: Labels written into the record.
        monitor: Metrics whose final value is recorded, e.g. ``["val_accuracy"]``.
        budget_kg: Stop training (``model.stop_training``) once the CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Every ``log_steps`` training batches, put into that batch's ``logs`` the energy, CO2 and
            power since the previous log (``co2cb/step_*``) and the run's total so far (``co2cb/total_*``),
            for ``TensorBoard(update_freq=log_steps)`` and the ``tensorboard_dir``; the budget is then
            checked at each log too. 0 (default): off.
        log_detail: Also log the energy per measured component (``co2cb/epoch_energy_cpu_kwh``...), the
            validation's power, the intensity used (``co2cb/intensity_g_per_kwh``) and the forecast's
            energy (``co2cb/forecast_energy_kwh``).
        tensorboard_dir: Also write the co2cb values as TensorBoard event files here, laid out as
            ``keras.callbacks.TensorBoard`` does (``train``/``validation`` runs, ``epoch_``/``batch_`` tags),
            with the ``tensorboard`` package and without TensorFlow, for the torch and JAX backends (on
            TensorFlow, ``keras.callbacks.TensorBoard`` gets every value), and the provenance (region and
            why, intensity, PUE, meters) as hparams and text.
        **tracker_options: Options for :class:`co2cb.Tracker` (``region``, ``pue``, ``interval_s``,
            ``output_dir``, ``save``, ``scope``, ``meters``...); ``gpus`` overrides the GPUs found
            from the model's weights.

    Raises:
        ValueError: An option is invalid (:class:`co2cb.ConfigError` for a tracker option); the message
            says what to change.
    """

    async_safe = True  # the batch-end hook (log_steps) only moves values made on the fit's thread into the logs

    def __init__(
        self,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        monitor: Sequence[str] = (),
        budget_kg: float | None = None,
        budget_on: str = "total",
        forecast_after_epochs: int = 1,
        log_steps: int = 0,
        log_detail: bool = False,
        tensorboard_dir: str | os.PathLike[str] | None = None,
        **tracker_options: Any,
    ) -> None:
        super().__init__()
        if isinstance(log_steps, bool) or not isinstance(log_steps, int) or log_steps < 0:
            raise ValueError(f"log_steps={log_steps!r} is not valid: give an integer >= 0 (0: no per-step values)")
        self._gpus = tracker_options.pop("gpus", None)
        self._options: dict[str, Any] = {
            "run_name": run_name,
            "tags": tags,
            "monitor": monitor,
            "budget_kg": budget_kg,
            "budget_on": budget_on,
            "forecast_after_epochs": forecast_after_epochs,
            "tracker_options": tracker_options,
            "detail": log_detail,
        }
        self.co2 = TrainingMonitor(**self._options)  # checks every option now; a fresh one for each later fit
        self.log_steps = log_steps
        self.tensorboard_dir = tensorboard_dir
        self._measuring = False  # set while a fit is measured
        self._mark_step: Callable[[int], None] = no_step  # marks a step boundary while a fit is measured (hot path)
        self._tensorboard = TensorBoardOutput()
        self._watch: FitWatch | None = None
        self._owner: Any = None  # the CallbackList calling this callback in the current fit
        self._lock = threading.Lock()  # the fit watch ends a run from its own thread
        self._order_warned = False
        self._batches = 0  # training batch hooks this fit (one per steps_per_execution batches)
        self._per_execution = 1  # batches per training batch hook
        self._pending: dict[int, dict[str, float]] = {}  # batch -> per-step values its batch end adds to its logs
        self._first_epoch: int | None = None
        self._val_logs: dict[str, float] = {}
        self._backup: Path | None = None  # a BackupAndRestore's folder: co2cb's state is kept there too

    @property
    def tracker(self) -> Any:
        """The tracker of the current (or last) fit."""
        return self.co2.tracker

    # ------------------------------------------------------------ life cycle
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Run first among the callbacks, then start measuring the fit."""
        self._start(self._arrange())

    @guarded
    def _arrange(self) -> FrameType | None:
        self._owner, fit_frame = arrange(self, warn=not self._order_warned)
        self._order_warned = self._order_warned or self._owner is None
        return fit_frame

    @guarded
    def _start(self, fit_frame: FrameType | None) -> None:
        with self._lock:
            self._end_watch()
            if self._measuring:  # the last fit raised and nothing saw it end
                self._abort(FitAborted("fit ended without on_train_end"))
            if self.co2.tracker is not None:  # a later fit: totals, forecast and budget start over
                self.co2 = TrainingMonitor(**self._options, check=False)  # checked when the callback was built
            self._batches, self._pending, self._first_epoch, self._val_logs = 0, {}, None, {}
            gpus, uses_gpu = model_devices(self.model) if self._gpus is None else (list(self._gpus), True)
            self.co2.verbose = bool((self.params or {}).get("verbose", 1))
            self._backup = resume_from_backup(self.co2, getattr(self._owner, "callbacks", ()))
            self.co2.start(SingleProcess(), RankInfo(), fit_plan(self.params), gpus, uses_gpu)
            self._per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
            self._set_measuring(True)
            if self.tensorboard_dir is not None:
                self._tensorboard.open(self.tensorboard_dir, self.co2.provenance())
            if fit_frame is not None:
                monitor = self.co2
                self._watch = FitWatch(
                    fit_frame, self.model, self._owner, lambda error: self._fit_raised(monitor, error)
                )

    @guarded
    def _fit_raised(self, monitor: TrainingMonitor, error: BaseException) -> None:
        """The fit watch saw ``fit`` leave without ``on_train_end`` (on the watch's thread)."""
        with self._lock:
            if self._measuring and self.co2 is monitor:
                self._end_watch()
                self._abort(error)

    def _abort(self, error: BaseException) -> None:
        """Stop measuring the fit that raised; the record says why."""
        self._set_measuring(False)
        self._tensorboard.close()
        self.co2.fail(error)

    def _set_measuring(self, on: bool) -> None:
        """Measure the fit, its step marker bound on the fit's thread (where Keras calls batch begins), or stop."""
        self._measuring = on
        self._mark_step = self.co2.steps.marker() if on else no_step

    def _end_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    @guarded
    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        """Record the final metrics and stop measuring; print the totals."""
        with self._lock:
            self._end_watch()
            if not self._measuring:
                return
            self._set_measuring(False)
            self.co2.record_metrics(final_logs(self.model))  # monitored keys added by callbacks after this one
            self.co2.record_metrics(logs if isinstance(logs, dict) else {})
            result = self.co2.finish()
            if result is not None:
                self._final_totals(logs)
            self._tensorboard.close()
        if result is not None:
            self.co2.say_totals(result)

    @guarded
    def _final_totals(self, logs: dict[str, Any] | None) -> None:
        """The record's final total: into ``logs``, the last epoch of ``History`` and the ``tensorboard_dir``."""
        totals = self.co2.total_metrics()
        if isinstance(logs, dict):
            logs.update(totals)
        set_final_values(self.model, totals)
        self._tensorboard.write_final(totals)

    # ------------------------------------------------------------ epochs
    @guarded
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Open the epoch's window."""
        if self._measuring:
            self._first_epoch = epoch if self._first_epoch is None else self._first_epoch
            self._val_logs = {}
            self.co2.train_epoch_begin(epoch)

    @guarded
    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Open the validation window (an ``evaluate()`` outside ``fit`` is not measured)."""
        if self._measuring and self.co2.in_train_epoch:
            self.co2.val_begin()

    @guarded
    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        """Close the validation window; its values join the epoch's logs."""
        if self._measuring and self.co2.in_validation:
            for report in self.co2.val_end():
                self._val_logs.update(names.for_framework(report.metrics, report.kind, VAL_PREFIX))

    @guarded
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Close the epoch and put its values (and its validation's) into ``logs``."""
        if not (self._measuring and self.co2.in_train_epoch):
            return
        self._pending.clear()  # Keras has run every batch end of the epoch (it waits for them before this hook)
        values: dict[str, float] = {}
        first = 0 if self.co2.resume.saved else self._first_epoch  # resumed: the totals are the whole run's
        for report in self.co2.train_epoch_end(fit_progress(self.params, first, epoch)):
            values.update(names.for_framework(report.metrics, report.kind, VAL_PREFIX))
        values.update(self._val_logs)
        self._val_logs = {}
        if isinstance(logs, dict):
            logs.update(values)
            self.co2.record_metrics(logs)
        self._apply_budget()
        self._tensorboard.write(values, epoch)
        save_beside_backup(self._backup, self.co2)

    def _apply_budget(self) -> None:
        if self.co2.stop_reason and self.model is not None and not self.model.stop_training:
            self.model.stop_training = True
