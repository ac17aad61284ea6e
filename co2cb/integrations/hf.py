"""Hugging Face ``Trainer``: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`.

How the values reach every ``report_to`` integration
----------------------------------------------------
The Trainer calls its callbacks in list order: ``DefaultFlowCallback``, then the ``report_to``
integrations (TensorBoard, W&B, MLflow...), then the user's callbacks, then the progress printer.
A value a user callback adds to ``logs`` in ``on_log`` therefore never reaches TensorBoard. The
callback fixes the order itself: when the Trainer calls ``on_init_end`` (and again at
``on_train_begin``) it finds the Trainer's ``CallbackHandler`` one frame up the stack (the handler
calling it) and moves itself just ahead of the first reporting callback, still after
``DefaultFlowCallback`` (whose ``control`` flags it reads). Then:

* per logging step, in ``on_log``, it adds the energy and CO2 since the last log to the Trainer's
  own ``logs`` (and to the ``state.log_history`` entry the Trainer has just appended), before any
  integration sees them;
* per training epoch and per evaluation it emits an entry of its own through the handler's
  ``on_log`` (every callback, every integration), appended to ``state.log_history`` exactly as
  ``Trainer.log`` does, with ``control.should_log`` saved and restored so that the Trainer's own
  epoch log still happens.

``CO2Callback.attach(trainer)`` does the same binding explicitly, for a callback added after the
Trainer was built (``trainer.add_callback``) or a trainer that does not call its callbacks through
``CallbackHandler``. Binding also wraps ``trainer.train`` (on the instance) so that measurement
stops, and says so in the record, when training raises: the Trainer has no exception hook.

Evaluation has its own windows: one opens when the Trainer is about to evaluate (``control.
should_evaluate`` after ``DefaultFlowCallback``; else at the first ``on_prediction_step``) and closes
in ``on_evaluate``. The Trainer evaluates *after* ``on_epoch_end`` with ``eval_strategy="epoch"``,
so a training epoch whose evaluation follows is closed after that evaluation: its energy is reported
without the evaluation's, and the run's totals include both.

Resume: the callback is an ``ExportableState``; the Trainer saves its state (the job's totals so far)
in every checkpoint's ``trainer_state.json`` and loads that file back into ``state`` when training
resumes, with or without ``restore_callback_states_from_checkpoint``; ``on_train_begin`` reads it
from ``state.stateful_callbacks``. With that option the Trainer replaces the callback by a copy built
from the saved arguments; the copy puts the user's instance (with all its options) back in its place.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import weakref
from collections.abc import Sequence
from typing import Any

from transformers.trainer_callback import CallbackHandler, PrinterCallback, ProgressCallback, TrainerCallback

from co2cb.integrations.torch_collective import TorchCollective
from co2cb.training.monitor import Energy, RankInfo, SingleProcess, TrainingMonitor, guarded, sum_over_ranks
from co2cb.units import format_energy, format_mass

try:  # transformers >= 4.41: callback state saved in checkpoints
    from transformers.trainer_callback import ExportableState
except ImportError:  # pragma: no cover - older transformers: no callback state in checkpoints
    ExportableState = object  # type: ignore[assignment, misc]

log = logging.getLogger(__name__)

STATE_ATTRIBUTE = "co2cb_state"
_STACK_DEPTH = 12  # frames searched for the Trainer and its CallbackHandler
# The instance bound to each handler: the copy the Trainer builds when it restores callback states
# uses it to put the user's own instance back.
_BOUND: weakref.WeakKeyDictionary[Any, CO2Callback] = weakref.WeakKeyDictionary()


def _reporting_types() -> tuple[type, ...]:
    """Callback classes that report ``logs`` (the ``report_to`` integrations and the printers)."""
    types: list[type] = [ProgressCallback, PrinterCallback]
    try:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    except ImportError:  # pragma: no cover - layout of older transformers
        return tuple(types)
    types.extend(cb for cb in INTEGRATION_TO_CALLBACK.values() if isinstance(cb, type))
    return tuple(types)


def _trainer_type() -> type | None:
    module = sys.modules.get("transformers.trainer")
    return getattr(module, "Trainer", None)


def _from_stack(callback: CO2Callback) -> tuple[Any, Any]:
    """The Trainer and the CallbackHandler that are calling ``callback`` now (either may be None)."""
    trainer_type = _trainer_type()
    handler = trainer = None
    frame = sys._getframe(2)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            break
        obj = frame.f_locals.get("self")
        if handler is None and isinstance(obj, CallbackHandler) and _holds(obj, callback):
            handler = obj
        if trainer_type is not None and isinstance(obj, trainer_type):
            trainer = obj
            break
        frame = frame.f_back
    if handler is None and trainer is not None and _holds(getattr(trainer, "callback_handler", None), callback):
        handler = trainer.callback_handler
    return trainer, handler


def _holds(handler: Any, callback: Any) -> bool:
    return handler is not None and any(cb is callback for cb in getattr(handler, "callbacks", ()))


def _collective(args: Any) -> TorchCollective | SingleProcess:
    import torch.distributed as dist

    if args.world_size > 1 and dist.is_available() and dist.is_initialized():
        return TorchCollective(dist)
    return SingleProcess()


def _devices(args: Any) -> tuple[list[int] | None, bool]:
    """The CUDA devices this process trains on, and whether it uses a GPU at all."""
    device = args.device
    if device.type != "cuda":
        return None, False
    if args.n_gpu > 1:  # one process driving every visible GPU (DataParallel)
        return None, True
    return [device.index or 0], True


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class _TrainGuard:
    """Stands in for ``trainer.train``: when training raises, measurement stops (recorded), then it re-raises."""

    def __init__(self, trainer: Any, inner: Any) -> None:
        self.trainer = trainer
        self.inner = inner  # an instance-level ``train`` already there, or None for the class's
        functools.update_wrapper(self, type(trainer).train)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        train = self.inner if self.inner is not None else functools.partial(type(self.trainer).train, self.trainer)
        try:
            return train(*args, **kwargs)
        except BaseException as error:
            for cb in list(getattr(self.trainer.callback_handler, "callbacks", ())):
                if isinstance(cb, CO2Callback):
                    cb._fail(error)
            raise


class CO2Callback(TrainerCallback, ExportableState):
    """Energy and CO2 per epoch, per evaluation and per logging step, in the Trainer's own logs.

    Add it to the Trainer: ``Trainer(..., callbacks=[CO2Callback()], args=TrainingArguments(report_to=
    ["tensorboard"]))``. Every ``logging_steps`` the Trainer's log gets the energy and CO2 since the
    last log; every training epoch and every evaluation gets an entry with its energy (total and
    per component), CO2, mean power and the intensity used, plus running totals and, after the first
    epoch, the forecast of the whole run. The values are in ``trainer.state.log_history`` and reach
    every ``report_to`` integration (TensorBoard shows them as ``train/co2cb/...``). Under
    torch.distributed each rank measures its own GPU, host-level meters run once per host, epoch
    values are summed over ranks and one process writes the run folder, which holds the run name,
    tags and the final value of the ``monitor`` metrics.

    Args:
        run_name: Name of the run in the record (default: ``TrainingArguments.run_name``, else the run id).
        tags: Labels written into the record.
        monitor: Logged metrics whose final value is recorded, e.g. ``["eval_loss", "eval_accuracy"]``.
        budget_kg: Stop training (``control.should_training_stop``) once the job's CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Add energy and CO2 to every logging step (default True).
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
        log_steps: bool = True,
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
        }
        self.co2 = self._new_monitor()  # checks the options now
        self.log_steps = log_steps
        self._handler: Any = None
        self._emitting = False
        self._training = False
        self._eval_open = False
        self._epoch_open = False
        self._epoch_deferred = False
        self._epoch = 0
        self._snapshot: Energy | None = None  # the job's energy this segment, at the last checkpoint step

    def _new_monitor(self) -> TrainingMonitor:
        o = self._options
        return TrainingMonitor(
            run_name=o["run_name"],
            tags=o["tags"],
            monitor=o["monitor"],
            budget_kg=o["budget_kg"],
            budget_on=o["budget_on"],
            forecast_after_epochs=o["forecast_after_epochs"],
            tracker_options=o["tracker_options"],
        )

    # ------------------------------------------------------------------ binding
    @classmethod
    def attach(cls, trainer: Any, **options: Any) -> CO2Callback:
        """Bind the trainer's CO2Callback (adding one built from ``options`` if it has none) to ``trainer``.

        Only needed when the callback was added with ``trainer.add_callback`` after the Trainer was
        built (to stop measuring if the first ``train()`` raises) or when the trainer does not call
        its callbacks through a ``CallbackHandler``; ``Trainer(callbacks=[CO2Callback()])`` binds by
        itself.

        Returns:
            The bound callback.

        Raises:
            ValueError: ``options`` given while the trainer already has a CO2Callback.
        """
        found = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, cls)]
        if found and options:
            raise ValueError("this trainer already has a CO2Callback: give its options there, not to attach()")
        callback = found[0] if found else cls(**options)
        if not found:
            trainer.add_callback(callback)
        callback._bind(trainer, trainer.callback_handler)
        return callback

    def _bind(self, trainer: Any, handler: Any) -> None:
        if handler is not None and _holds(handler, self):
            _BOUND[handler] = self
            self._handler = handler
            self._move_ahead(handler)
        if trainer is not None and not isinstance(trainer.__dict__.get("train"), _TrainGuard):
            trainer.train = _TrainGuard(trainer, trainer.__dict__.get("train"))

    def _move_ahead(self, handler: Any) -> None:
        """Stand just before the first reporting callback, so that they all see what this one adds."""
        callbacks = list(handler.callbacks)
        mine = next(i for i, cb in enumerate(callbacks) if cb is self)
        reporting = _reporting_types()
        first = next((i for i, cb in enumerate(callbacks) if isinstance(cb, reporting)), None)
        if first is not None and first < mine:
            callbacks.pop(mine)
            callbacks.insert(first, self)
            handler.callbacks = callbacks  # a new list: a dispatch loop in progress keeps the old one

    @guarded()
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        trainer, handler = _from_stack(self)
        self._bind(trainer, handler)

    # ------------------------------------------------------------------ life cycle
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        owner = self._adopt() or self
        if owner is not self:  # the Trainer restored a copy of the callback: the user's instance goes on
            owner.on_train_begin(args, state, control, **kwargs)
            return
        self._start(args, state, control)

    @guarded()
    def _adopt(self) -> CO2Callback:
        trainer, handler = _from_stack(self)
        if handler is None and _holds(self._handler, self):
            handler = self._handler
        original = _BOUND.get(handler) if handler is not None else None
        if original is not None and original is not self and not _holds(handler, original):
            handler.callbacks = [original if cb is self else cb for cb in handler.callbacks]
            original._bind(trainer, handler)
            return original
        if handler is None:
            log.warning(
                "co2cb: could not find the Trainer's callback handler: CO2 values reach trainer.state.log_history "
                "but not the report_to integrations. Call CO2Callback.attach(trainer) before training."
            )
        self._bind(trainer, handler)
        return self

    @guarded()
    def _start(self, args: Any, state: Any, control: Any) -> None:
        if self.co2.tracker is not None and self.co2.tracker.running:  # a restart (auto_find_batch_size)
            self.co2.fail(RuntimeError("training restarted before it ended"))
        self.co2 = self._new_monitor()
        self._eval_open = self._epoch_open = self._epoch_deferred = False
        self._snapshot = None
        if self.co2.run_name is None and getattr(args, "run_name", None):
            self.co2.run_name = args.run_name
        if state.global_step > 0:  # resuming: the checkpoint's trainer_state.json is in `state`
            saved = self._saved_state(state)
            if saved is not None:
                self.co2.load_state_dict(saved)
        collective = _collective(args)
        rank = RankInfo.gathered(collective, args.local_process_index)
        gpus, uses_gpu = _devices(args)
        tracker = self.co2.tracker_for(rank, gpus, uses_gpu)
        import transformers

        plan = {
            "max_steps": state.max_steps,
            "num_train_epochs": state.num_train_epochs,
            "total_steps": state.max_steps,
            "start_step": state.global_step,
            "framework": f"transformers {transformers.__version__}",
        }
        self.co2.start(tracker, collective, rank, plan)
        self._training = True
        # A checkpoint written before this callback was added lacks its entry, and Trainer._save_checkpoint
        # would fail on it.
        stateful = getattr(state, "stateful_callbacks", None)  # transformers >= 4.41
        if isinstance(stateful, dict):
            stateful.setdefault(type(self).__name__, self.state())
        if getattr(args, "eval_on_start", False):
            self._eval_begin()

    def _refresh_saved_state(self, state: Any) -> None:
        """Put this callback's state in ``state`` now: older transformers (4.41 checked) write into checkpoints
        the callback states taken when training started (only ``TrainerControl``'s is refreshed at a save);
        newer ones (5.x checked) refresh every callback's state at the save, after this."""
        stateful = getattr(state, "stateful_callbacks", None)
        if isinstance(stateful, dict) and not isinstance(stateful.get(type(self).__name__), list):
            stateful[type(self).__name__] = self.state()

    def _saved_state(self, state: Any) -> dict[str, Any] | None:
        entry = (getattr(state, "stateful_callbacks", None) or {}).get(type(self).__name__)
        if isinstance(entry, list):
            entry = entry[0] if entry else None
        saved = (entry or {}).get("attributes", {}).get(STATE_ATTRIBUTE) if isinstance(entry, dict) else None
        return saved if isinstance(saved, dict) and saved.get("run_id") else None

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._finish(args, state, control)

    @guarded()
    def _finish(self, args: Any, state: Any, control: Any) -> None:
        if not self._training:
            return
        self._training = False
        if self._eval_open:
            self._eval_end(args, state, control)
        if self._epoch_open:
            self._train_epoch_end(args, state, control)
        status = "stopped by the carbon budget" if self.co2.stop_reason else "completed"
        self.co2.finish(status)

    @guarded()
    def _fail(self, error: BaseException) -> None:
        if self._training:
            self._training = False
            self.co2.fail(error)

    # ------------------------------------------------------------------ steps (hot path)
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        tracker = self.co2.tracker
        if tracker is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
                tracker.begin("step", record=False)
            except Exception:  # noqa: BLE001 - co2cb must never stop a training run
                pass

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        tracker = self.co2.tracker
        if tracker is None:
            return
        try:  # noqa: SIM105 - contextlib.suppress costs more on this hot path
            tracker.end("step")
        except Exception:  # noqa: BLE001 - co2cb must never stop a training run
            pass
        if control.should_save or control.should_evaluate:
            self._before_save_or_evaluate(state, control)

    @guarded()
    def _before_save_or_evaluate(self, state: Any, control: Any) -> None:
        """``DefaultFlowCallback`` (called before this one) asked for a checkpoint or an evaluation."""
        if not self._training:
            return
        if control.should_save:
            self._take_snapshot()
            self._refresh_saved_state(state)
        if control.should_evaluate and not self._eval_open:
            self._eval_begin()

    def _take_snapshot(self) -> None:
        """The job's energy this segment so far, for the checkpoint about to be written (a collective).

        ``state()`` runs on the saving process only, so it cannot gather; with one process the
        monitor's own state is exact at any moment and no snapshot is needed.
        """
        tracker = self.co2.tracker
        if tracker is None or not tracker.running or self.co2.collective.world_size == 1:
            return
        mine = Energy.of(tracker.totals())
        per_rank = [Energy.from_vector(v) for v in self.co2.collective.gather(mine.vector())]
        self._snapshot = sum_over_ranks(per_rank)

    # ------------------------------------------------------------------ logging steps
    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if self._emitting or logs is None:
            return
        self._on_log(state, control, logs)

    @guarded()
    def _on_log(self, state: Any, control: Any, logs: dict[str, Any]) -> None:
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

    # ------------------------------------------------------------------ epochs
    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_begin(args, state, control)

    @guarded()
    def _epoch_begin(self, args: Any, state: Any, control: Any) -> None:
        if not self._training:
            return
        if self._eval_open:
            self._eval_end(args, state, control)
        if self._epoch_open:  # the evaluation it waited for did not come
            self._train_epoch_end(args, state, control)
        self._epoch = int(state.epoch or 0)
        self.co2.epoch_begin("train")
        self._epoch_open = True

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._epoch_end(args, state, control)

    @guarded()
    def _epoch_end(self, args: Any, state: Any, control: Any) -> None:
        if not (self._training and self._epoch_open):
            return
        if control.should_evaluate:
            # The Trainer evaluates right after this hook: the epoch closes after the evaluation, so that
            # its energy is reported without the evaluation's and the run's totals count both.
            self._epoch_deferred = True
            if not self._eval_open:
                self._eval_begin()
            return
        self._train_epoch_end(args, state, control)

    def _train_epoch_end(self, args: Any, state: Any, control: Any) -> None:
        self._epoch_open = self._epoch_deferred = False
        progress = state.global_step / state.max_steps if state.max_steps else None
        report = self.co2.epoch_end("train", self._epoch, progress)
        self._refresh_saved_state(state)
        self._emit(args, state, control, report.metrics)
        forecast = self.co2.forecast
        if forecast is not None and state.is_world_process_zero:
            print(
                f"co2cb: after epoch {self._epoch} ({forecast.progress:.0%} done) the run is forecast at "
                f"{format_energy(forecast.energy_kwh)} and {format_mass(forecast.co2_kg)} CO2e"
            )
        self._apply_budget(control)

    # ------------------------------------------------------------------ evaluation
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._training and not self._eval_open:  # an evaluation nobody announced: open its window late
            self._late_eval_begin()

    @guarded()
    def _late_eval_begin(self) -> None:
        self._eval_begin()

    def _eval_begin(self) -> None:
        self.co2.epoch_begin("val")
        self._eval_open = True

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._after_eval(args, state, control)

    def on_predict(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._after_eval(args, state, control)

    @guarded()
    def _after_eval(self, args: Any, state: Any, control: Any) -> None:
        if not self._training:
            return
        if self._eval_open:
            self._eval_end(args, state, control)
        if self._epoch_deferred:
            self._train_epoch_end(args, state, control)

    def _eval_end(self, args: Any, state: Any, control: Any) -> None:
        self._eval_open = False
        report = self.co2.epoch_end("val", self._epoch)
        if not self._epoch_open:  # outside a training epoch (eval_on_start, a second eval dataset): count it here
            self.co2.totals = self.co2.totals.plus(report.energy)
        self._refresh_saved_state(state)
        self._emit(args, state, control, report.metrics)

    # ------------------------------------------------------------------ output
    def _emit(self, args: Any, state: Any, control: Any, metrics: dict[str, float]) -> None:
        """Log ``metrics`` as ``Trainer.log`` does: into ``state.log_history``, then every callback's ``on_log``."""
        logs: dict[str, Any] = dict(metrics)
        if state.epoch is not None:
            logs["epoch"] = state.epoch
        state.log_history.append({**logs, "step": state.global_step})
        handler = self._handler
        if handler is None:
            return
        should_log = control.should_log  # the handler's on_log clears it: the Trainer's own log must still happen
        self._emitting = True
        try:
            handler.on_log(args, state, control, logs)
        finally:
            self._emitting = False
            control.should_log = should_log

    def _apply_budget(self, control: Any) -> None:
        if self.co2.stop_reason:
            control.should_training_stop = True

    # ------------------------------------------------------------------ resume (ExportableState)
    def state(self) -> dict[str, Any]:
        """What the Trainer saves in a checkpoint: the JSON-ready options and the job's totals so far."""
        o = self._options
        args = {k: v for k, v in o.items() if k != "tracker_options" and _jsonable(v)}
        args.update({k: v for k, v in o["tracker_options"].items() if _jsonable(v)})
        args["log_steps"] = self.log_steps
        return {"args": args, "attributes": {STATE_ATTRIBUTE: self._checkpoint_state()}}

    def _checkpoint_state(self) -> dict[str, Any]:
        saved = self.co2.state_dict()  # one process: exact now; several: closed epochs + this rank's open share
        if self._snapshot is not None:  # several processes: the job's figure gathered when the save was decided
            snapshot = self.co2.totals_before_run.plus(self._snapshot)
            if snapshot.total_joules > Energy.from_vector(saved["totals"]).total_joules:
                saved["totals"] = snapshot.vector()
        return saved
