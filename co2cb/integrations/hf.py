"""Hugging Face ``Trainer``: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`.

How values reach every ``report_to`` integration is :mod:`co2cb.integrations.hf_binding`'s job: the
callback stands ahead of them in the Trainer's ``CallbackHandler``. Then:

* with ``log_steps``, per logging step, in ``on_log``, it adds the energy and CO2 since the last log
  and the run's total to the Trainer's own ``logs`` (and to the ``state.log_history`` entry the
  Trainer has just appended), before any integration sees them;
* per training epoch and per evaluation it emits an entry of its own through the handler's ``on_log``;
  an evaluation's keys start with ``eval_``, so the integrations show them under ``eval/`` as they
  show ``eval_loss`` (``transformers.integrations.integration_utils.rewrite_logs``; MLflow keeps the key);
* at train end it emits the run's final total, equal to the record's, then gives the run record to
  the integrations that store files (MLflow, W&B); at the first epoch, after the integrations have
  opened their runs, it gives them the provenance (:mod:`co2cb.integrations.trackers`).

Evaluation has its own windows: one opens when the Trainer is about to evaluate (``control.
should_evaluate`` after ``DefaultFlowCallback``; else at the first ``on_prediction_step``) and closes
in ``on_evaluate``. The Trainer evaluates *after* ``on_epoch_end`` with ``eval_strategy="epoch"``,
so such an epoch closes after that evaluation (``validation_follows``).

Resume: the callback is an ``ExportableState``; the Trainer saves its state (the job's totals so far)
in every checkpoint's ``trainer_state.json`` and loads that file back into ``state`` when training
resumes, with or without ``restore_callback_states_from_checkpoint``; ``on_train_begin`` reads it
from ``state.stateful_callbacks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers.trainer_callback import TrainerCallback

from co2cb.integrations.hf_binding import (
    STATE_ATTRIBUTE,
    Binding,
    add_missing_state,
    exportable_state,
    refresh_saved_state,
    saved_state,
    training_plan,
)
from co2cb.integrations.launchers import where_to_write
from co2cb.integrations.torch_collective import collective_for, cuda_devices
from co2cb.integrations.trackers import hand_to_each, hf_attach, hf_provenance
from co2cb.records.writer import RECORD_FILE
from co2cb.training import names
from co2cb.training.collective import RankInfo
from co2cb.training.guard import guarded
from co2cb.training.monitor import EpochReport, TrainingMonitor

try:  # transformers >= 4.41: callback state saved in checkpoints
    from transformers.trainer_callback import ExportableState
except ImportError:  # pragma: no cover - older transformers: no callback state in checkpoints
    ExportableState = object  # type: ignore[assignment, misc]

EVAL_PREFIX = "eval_"  # the Trainer's prefix for evaluation metrics; its integrations show them under eval/


class CO2Callback(TrainerCallback, ExportableState):
    """Energy and CO2 per epoch, per evaluation and per logging step, in the Trainer's own logs.

    Add it to the Trainer: ``Trainer(..., callbacks=[CO2Callback()], args=TrainingArguments(report_to=
    ["tensorboard"]))``. Every training epoch gets an entry with its energy, CO2 and mean power
    (``co2cb/epoch_*``, evaluation left out), the run's total so far (``co2cb/total_*``) and, after the
    first epoch, the forecast of the whole run (``co2cb/forecast_co2_kg``); every evaluation one with
    its energy and CO2 (``eval_co2cb/epoch_*``, shown under ``eval/``); the end of training one with the
    run's final total, equal to the record's. The values are in ``trainer.state.log_history`` and
    reach every ``report_to`` integration; TensorBoard, MLflow and W&B also get the provenance, and
    MLflow and W&B the run record. Under torch.distributed each rank measures its own
    GPU, host-level meters run once per host, epoch values are summed over ranks and one process
    writes the run folder, which holds the run name, tags and the final value of the ``monitor``
    metrics.

    Args:
        run_name: Name of the run in the record (default: ``TrainingArguments.run_name``, else the run id).
        tags: Labels written into the record.
        monitor: Logged metrics whose final value is recorded, e.g. ``["eval_loss", "eval_accuracy"]``.
        budget_kg: Stop training (``control.should_training_stop``) once the job's CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Also add the energy, CO2 and power since the last log (``co2cb/step_*``) and the run's
            total to every logging step; the budget is then checked there too.
        log_detail: Also log the energy per measured component, the evaluation's power, the intensity
            and the forecast's energy.
        **tracker_options: Options for :class:`co2cb.Tracker` (``interval_s``, ``region``, ``pue``,
            ``output_dir``, ``scope``...).

    Raises:
        ValueError: An option is invalid, tracker options included (``co2cb.ConfigError``); the
            message says what to change. Nothing fails later inside training: a failure there gives
            one warning and training goes on.
    """

    def __init__(
        self,
        *,
        run_name: str | None = None,
        tags: dict[str, Any] | None = None,
        monitor: Sequence[str] = (),
        budget_kg: float | None = None,
        budget_on: str = "total",
        forecast_after_epochs: int = 1,
        log_steps: bool = False,
        log_detail: bool = False,
        **tracker_options: Any,
    ) -> None:
        self._options: dict[str, Any] = {
            "run_name": run_name,
            "tags": dict(tags or {}),
            "monitor": [monitor] if isinstance(monitor, str) else list(monitor),
            "budget_kg": budget_kg,
            "budget_on": budget_on,
            "forecast_after_epochs": forecast_after_epochs,
            "tracker_options": dict(tracker_options),
            "detail": log_detail,
        }
        self.co2 = TrainingMonitor(**self._options)  # checks the options now; a fresh one for each train()
        self.log_steps = log_steps
        self.binding = Binding(self)
        self._training = False
        self._told = False  # the integrations have the provenance

    @classmethod
    def attach(cls, trainer: Any, **options: Any) -> CO2Callback:
        """Bind the trainer's CO2Callback (adding one built from ``options`` if it has none) to ``trainer``.

        Only needed when the callback was added with ``trainer.add_callback`` after the Trainer was
        built (to stop measuring if the first ``train()`` raises) or when the trainer does not call
        its callbacks through a ``CallbackHandler``; ``Trainer(callbacks=[CO2Callback()])`` binds by
        itself.

        Raises:
            ValueError: ``options`` given while the trainer already has a CO2Callback.
        """
        found = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, cls)]
        if found and options:
            raise ValueError("this trainer already has a CO2Callback: give its options there, not to attach()")
        callback = found[0] if found else cls(**options)
        if not found:
            trainer.add_callback(callback)
        callback.binding.bind(trainer, trainer.callback_handler)
        return callback

    @guarded
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Bind to the Trainer that is being built."""
        self.binding.bind_from_stack()

    # ------------------------------------------------------------------ life cycle
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start measuring (every process, together); resume the totals of a checkpoint."""
        owner = self._adopt() or self
        if owner is not self:  # the Trainer restored a copy of the callback: the user's instance goes on
            owner.on_train_begin(args, state, control, **kwargs)
            return
        self._start(args, state)

    @guarded
    def _adopt(self) -> Any:
        return self.binding.adopt()

    @guarded
    def _start(self, args: Any, state: Any) -> None:
        if self._training:  # a restart (auto_find_batch_size)
            self.fail(RuntimeError("training restarted before it ended"))
        self.co2 = TrainingMonitor(**self._options, check=False)  # checked when the callback was built
        if self.co2.run_name is None and getattr(args, "run_name", None):
            self.co2.run_name = args.run_name
        if state.global_step > 0 and (saved := saved_state(state, type(self).__name__, STATE_ATTRIBUTE)):
            self.co2.load_state_dict(saved)  # resuming: the checkpoint's trainer_state.json
        collective = collective_for(args.world_size)
        rank = RankInfo.gathered(collective, args.local_process_index)
        self.co2.tracker_options = where_to_write(self.co2.tracker_options)  # Ray Train workers change directory
        self.co2.start(collective, rank, training_plan(state), *cuda_devices(args.device, args.n_gpu > 1))
        self._training, self._told = True, False
        add_missing_state(state, type(self).__name__, self.state)
        if getattr(args, "eval_on_start", False):
            self.co2.val_begin()

    @guarded
    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close what is open and stop measuring."""
        if self._training:
            self._training = False
            self._emit(args, state, control, self.co2.close_pending())
            self._tell()
            if self.co2.finish() is not None:
                self.binding.emit(args, state, control, self.co2.total_metrics())  # the record's final figure
                folder = self.co2.tracker.run_folder if self.co2.writer and self.co2.tracker is not None else None
                if folder is not None and (folder / RECORD_FILE).is_file():
                    hand_to_each(hf_attach, self._integrations(), folder / RECORD_FILE)

    def _integrations(self) -> list[Any]:
        """The other callbacks of the Trainer's handler (its ``report_to`` integrations among them)."""
        return [cb for cb in getattr(self.binding.handler, "callbacks", ()) if cb is not self]

    def _tell(self) -> None:
        """Give the integrations the provenance, once per run (after their own ``on_train_begin``)."""
        if not self._told and self.co2.writer and self.co2.measuring:
            self._told = True
            hand_to_each(hf_provenance, self._integrations(), self.co2.provenance())

    @guarded
    def fail(self, error: BaseException) -> None:
        """Training raised (called by the binding's guard of ``trainer.train``): record the failure."""
        if self._training:
            self._training = False
            self.co2.fail(error)

    # ------------------------------------------------------------------ steps (hot path)
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A step starts: a clock read."""
        self.co2.steps.begin()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """A step ends: a clock read; get ready for a checkpoint or an evaluation the Trainer decided on."""
        self.co2.steps.end()
        if control.should_save or control.should_evaluate:
            self._before_save_or_evaluate(state, control)

    @guarded
    def _before_save_or_evaluate(self, state: Any, control: Any) -> None:
        if not self._training:
            return
        if control.should_save:
            self.co2.take_snapshot()
            refresh_saved_state(state, type(self).__name__, self.state())
        if control.should_evaluate:
            self.co2.val_begin()

    # ------------------------------------------------------------------ logging steps
    @guarded
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Add the energy and CO2 since the last log to a training log."""
        if self.binding.emitting or logs is None:
            return
        self.co2.record_metrics(logs)
        if not (self.log_steps and self._training and "loss" in logs):  # a training log (eval logs: eval_loss)
            return
        metrics = self.co2.log_step()
        logs.update(metrics)
        history = state.log_history
        last = history[-1] if history else None
        if isinstance(last, dict) and last.get("step") == state.global_step and last.get("loss") == logs["loss"]:
            last.update(metrics)  # Trainer.log appended a copy of `logs` just before calling on_log
        self._apply_budget(control)

    # ------------------------------------------------------------------ epochs and evaluations
    @guarded
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Open the training epoch (closing an evaluation or an epoch still open)."""
        if self._training:
            self._tell()
            self._emit(args, state, control, self.co2.train_epoch_begin(int(state.epoch or 0)))

    @guarded
    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the training epoch, or let it wait for the evaluation the Trainer runs next."""
        if self._training:
            progress = state.global_step / state.max_steps if state.max_steps else None
            reports = self.co2.train_epoch_end(progress, validation_follows=bool(control.should_evaluate))
            self._emit(args, state, control, reports)

    @guarded
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """An evaluation nobody announced: open its window late."""
        if self._training and not self.co2.in_validation:
            self.co2.val_begin()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Close the evaluation (and the epoch that waited for it)."""
        self._after_eval(args, state, control)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        """Close the prediction's window, as an evaluation's."""
        self._after_eval(args, state, control)

    @guarded
    def _after_eval(self, args: Any, state: Any, control: Any) -> None:
        if self._training:
            self._emit(args, state, control, self.co2.val_end())

    # ------------------------------------------------------------------ output
    def _emit(self, args: Any, state: Any, control: Any, reports: list[EpochReport]) -> None:
        if reports and control.should_save:  # a checkpoint follows: it gets the totals with these epochs
            refresh_saved_state(state, type(self).__name__, self.state())
        for report in reports:
            self.binding.emit(args, state, control, names.for_framework(report.metrics, report.kind, EVAL_PREFIX))
        self._apply_budget(control)

    def _apply_budget(self, control: Any) -> None:
        if self.co2.stop_reason:
            control.should_training_stop = True

    # ------------------------------------------------------------------ resume (ExportableState)
    def state(self) -> dict[str, Any]:
        """What the Trainer saves in a checkpoint: the JSON-ready options and the job's totals so far."""
        return exportable_state(self._options, self.log_steps, self.co2.state_dict())
