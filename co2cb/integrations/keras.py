"""Keras 3: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`, on every backend.

Values go into the ``logs`` dict Keras hands to every callback, so ``History``, ``CSVLogger``,
``TensorBoard`` and any other logger get them. Names follow Keras: the training part of an epoch
is ``co2cb/epoch_*``, its validation part ``val_co2cb/epoch_*`` (Keras' ``TensorBoard`` then draws
the two on one chart, in its ``train`` and ``validation`` runs).

How it hooks into Keras 3 (read from ``callbacks/callback_list.py`` and the backends' ``Trainer.fit``):

* ``CallbackList`` hands one ``logs`` dict to its callbacks in list order, so a logger only sees the
  keys added by callbacks before it. At train begin the callback finds the ``CallbackList`` calling
  it (the ``self`` of a frame up the stack) and gives it a new list in which it comes first, behind
  Keras' progress bar only (which would print every value on each epoch line). The loop running
  ``on_train_begin`` goes on over the old list, so every callback still gets that hook once.
* Validation runs inside the epoch, between the last training batch and ``on_epoch_end``, in
  ``on_test_begin``/``on_test_end``: it gets its own window and the training value excludes it.
* Keras dispatches ``on_*_batch_end`` on a thread pool (torch and JAX backends) unless a callback
  overrides one without declaring ``async_safe``. This one declares it: its per-step work runs in
  ``on_train_batch_begin`` (always called on the fit's thread, in order) and its
  ``on_train_batch_end`` only moves the values computed there into that batch's ``logs``.
* Keras has no exception hook. While ``fit`` runs, a thread looks every ``WATCH_PERIOD_S`` whether
  ``fit``'s frame is still on the stack of the thread running it; once it is gone without
  ``on_train_end``, ``fit`` raised, and the run is recorded as failed with the exception where it
  can be found (being handled by the caller, or uncaught: ``sys.last_value``).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import keras

from co2cb.core.tracker import Tracker
from co2cb.intensity.choice import is_quiet
from co2cb.meters.base import COMPONENTS
from co2cb.training.monitor import PREFIX, RankInfo, SingleProcess, TrainingMonitor, guarded
from co2cb.units import format_energy, format_mass

log = logging.getLogger(__name__)

VAL_PREFIX = "val_"
WATCH_PERIOD_S = 0.25  # how often the fit watch looks at the stack, seconds
_STACK_DEPTH = 8  # frames searched for the CallbackList calling the callback


class FitAborted(Exception):
    """``fit`` ended without ``on_train_end``: it raised, and the exception was not found."""


class EventWriter:
    """TensorBoard event files written with the ``tensorboard`` package alone (no TensorFlow).

    Each value is written as ``tf.summary.scalar`` writes it (a float32 scalar tensor with the
    scalars plugin's metadata), through tensorboard's ``RecordWriter`` over a plain file: nothing
    here imports TensorFlow, even where it is installed (tensorboard's ``EventFileWriter`` would).
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.scalar import metadata
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event, self._summary = event_pb2.Event, summary_pb2.Summary
        self._tensor, self._shape = tensor_pb2.TensorProto, tensor_shape_pb2.TensorShapeProto
        self._float = types_pb2.DT_FLOAT
        self._metadata = metadata.create_summary_metadata(display_name="", description="")
        self._tags: set[str] = set()  # tags whose metadata is written (once per tag, as TensorFlow does)
        os.makedirs(logdir, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{id(self)}.co2cb"
        self.path = os.path.join(logdir, name)
        self._records = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - closed by close()
        self._write(self._event(wall_time=time.time(), file_version="brain.Event:2"))

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        """Write scalars ``tag -> value`` at ``step`` and flush."""
        if not values:
            return
        summary = self._summary()
        for tag, v in values.items():
            tensor = self._tensor(dtype=self._float, tensor_shape=self._shape(), float_val=[float(v)])
            value = summary.value.add(tag=tag, tensor=tensor)
            if tag not in self._tags:
                self._tags.add(tag)
                value.metadata.CopyFrom(self._metadata)
        self._write(self._event(wall_time=time.time(), step=int(step), summary=summary))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())
        self._records.flush()

    def close(self) -> None:
        if not self._records.closed:
            self._records.close()


class TensorBoardWriter:
    """The co2cb scalars laid out as ``keras.callbacks.TensorBoard`` lays out epoch logs.

    ``logdir/train`` gets ``epoch_<key>`` at step ``epoch`` and ``batch_<key>`` at the global batch;
    ``logdir/validation`` gets ``val_*`` keys without their prefix, so train and validation share a chart.
    """

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)  # a folder that cannot be made fails now, at train begin
        self._runs: dict[str, EventWriter] = {}

    def _run(self, name: str) -> EventWriter:
        if name not in self._runs:
            self._runs[name] = EventWriter(os.path.join(self.logdir, name))
        return self._runs[name]

    def epoch(self, logs: Mapping[str, float], epoch: int) -> None:
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith(VAL_PREFIX)}
        val = {f"epoch_{k[len(VAL_PREFIX) :]}": v for k, v in logs.items() if k.startswith(VAL_PREFIX)}
        if train:
            self._run("train").scalars(train, epoch)
        if val:
            self._run("validation").scalars(val, epoch)

    def batch(self, logs: Mapping[str, float], step: int) -> None:
        self._run("train").scalars({f"batch_{k}": v for k, v in logs.items()}, step)

    def close(self) -> None:
        for writer in self._runs.values():
            writer.close()


def keras_names(metrics: Mapping[str, float], kind: str, components: Sequence[str]) -> dict[str, float]:
    """The monitor's metric names in Keras' convention, leaving out components that are not measured.

    ``co2cb/train_epoch_co2_kg`` -> ``co2cb/epoch_co2_kg``; ``co2cb/val_epoch_co2_kg`` and the
    intensity of the validation window -> ``val_co2cb/epoch_co2_kg``, ``val_co2cb/intensity_g_per_kwh``.
    """
    skipped = {f"energy_{c}_kwh" for c in COMPONENTS if c not in components}
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = key[len(PREFIX) :] if key.startswith(PREFIX) else key
        if name.startswith(f"{kind}_epoch_"):
            name = "epoch_" + name[len(kind) + len("_epoch_") :]
        if name.removeprefix("epoch_") in skipped:
            continue
        out[(VAL_PREFIX if kind == "val" else "") + PREFIX + name] = value
    return out


def _devices(model: Any) -> tuple[list[int] | None, bool]:
    """The GPUs the model's weights live on (CUDA ordinals), and whether it uses a GPU at all."""
    weights = getattr(model, "weights", None) or []
    if not weights:
        return None, False
    value = weights[0].value
    devices = value.devices() if callable(getattr(value, "devices", None)) else {getattr(value, "device", "")}
    gpus: list[int] = []
    for device in devices:
        text = str(device).lower()
        if not any(kind in text for kind in ("cuda", "gpu")):
            continue
        found = re.search(r"(?:cuda|gpu)[^0-9]*(\d+)", text)
        gpus.append(int(found.group(1)) if found else 0)
    if not gpus:
        return None, False
    replicas = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1)
    return (None if replicas and replicas > 1 else sorted(set(gpus))), True  # a TF strategy: every visible GPU


def _dispatcher(callback: keras.callbacks.Callback) -> tuple[keras.callbacks.CallbackList | None, FrameType | None]:
    """The ``CallbackList`` up the stack that is calling ``callback``, and the frame of Keras' ``fit`` calling it.

    Keras gives a callback no handle on its list: the list is the ``self`` of a frame up the stack
    (``CallbackList.on_train_begin``), and its caller is ``fit`` unless a custom loop drives it.
    """
    frame = sys._getframe(1)
    for _ in range(_STACK_DEPTH):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList) and any(cb is callback for cb in owner.callbacks):
            caller = frame.f_back
            return owner, caller if caller is not None and caller.f_code.co_name == "fit" else None
        frame = frame.f_back
    return None, None


def _last_uncaught() -> BaseException | None:
    """The last exception that reached the top of the interpreter (or of IPython) uncaught."""
    return getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)


class _FitWatch:
    """Calls ``on_raised`` once Keras' ``fit`` has left the stack without ``on_train_end`` (it raised).

    A thread looks every ``period_s`` for ``fit``'s frame on the stack of the thread running it
    (``sys._current_frames``: no tracing, nothing on the training thread). It is not a daemon: when an
    uncaught exception ends the interpreter, the thread records it before the exit handlers run.
    """

    def __init__(
        self, fit_frame: FrameType, on_raised: Callable[[BaseException | None], None], period_s: float = WATCH_PERIOD_S
    ) -> None:
        self._frame: FrameType | None = fit_frame
        self._thread_id = threading.get_ident()
        self._on_raised = on_raised
        self._seen = _last_uncaught()  # an uncaught exception from before this fit is not its own
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(period_s,), name="co2cb-keras-fit-watch").start()

    def close(self) -> None:
        """``fit`` is ending normally: stop watching."""
        self._done.set()

    def _run(self, period_s: float) -> None:
        while not self._done.wait(period_s):
            if self._on_stack():
                continue
            error = self._error()
            self._frame = None
            if not self._done.is_set():
                self._on_raised(error)
            return
        self._frame = None

    def _on_stack(self) -> bool:
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            if frame is self._frame:
                return True
            frame = frame.f_back
        return False

    def _error(self) -> BaseException | None:
        """The exception that left ``fit``: the one its thread is handling now, else a new uncaught one."""
        handled = getattr(sys, "_current_exceptions", dict)().get(self._thread_id)
        if isinstance(handled, tuple):  # Python < 3.12: (type, value, traceback)
            handled = handled[1]
        if isinstance(handled, BaseException):
            return handled
        last = _last_uncaught()
        return last if last is not self._seen else None


def _final_logs(model: Any) -> dict[str, Any]:
    """The last epoch's logs as ``History`` holds them: with keys added by every callback, wherever listed."""
    history = getattr(getattr(model, "history", None), "history", None)
    if not isinstance(history, dict):
        return {}
    return {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}


class CO2Callback(keras.callbacks.Callback):
    """Energy and CO2 per epoch in Keras' ``logs``: ``History``, ``CSVLogger`` and ``TensorBoard`` get them.

    ``model.fit(..., callbacks=[CO2Callback(), keras.callbacks.TensorBoard("logs")])``. At the end of
    each epoch the logs hold, for its training part: ``co2cb/epoch_energy_kwh`` (and per measured
    component, ``co2cb/epoch_energy_cpu_kwh``...), ``co2cb/epoch_co2_kg``, ``co2cb/epoch_power_w``,
    ``co2cb/intensity_g_per_kwh`` (gCO2e/kWh); running totals ``co2cb/total_energy_kwh`` and
    ``co2cb/total_co2_kg``; from epoch ``forecast_after_epochs`` on, ``co2cb/forecast_energy_kwh`` and
    ``co2cb/forecast_co2_kg`` for the whole ``fit`` (``CSVLogger`` fixes its columns at the first
    epoch: keep the default 1 to have them there); and, where Keras validated, the same values for
    validation as ``val_co2cb/epoch_*``. Each ``fit`` writes one run folder with the run name, tags,
    the final value of the ``monitor`` metrics and every epoch; with ``verbose`` it prints the forecast
    after each epoch and the totals at the end (``CO2CB_QUIET=1`` silences them).

    Wherever it is listed, the callback runs first (behind Keras' progress bar, which is left
    without these values), so every logger and ``EarlyStopping``/``ModelCheckpoint`` see them. A
    ``fit`` that raises is recorded as failed within ``WATCH_PERIOD_S``. Nothing the callback does
    stops training, except the carbon budget: a failure gives one warning and training goes on.

    Args:
        run_name: Name of the run in the record.
        tags: Labels written into the record.
        monitor: Metrics whose final value is recorded, e.g. ``["val_accuracy"]``.
        budget_kg: Stop training (``model.stop_training``) once the CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Every ``log_steps`` training batches, put into that batch's ``logs`` the energy
            and CO2 since the previous log (``co2cb/step_energy_kwh``, ``co2cb/step_co2_kg``,
            ``co2cb/step_power_w``) and the run's CO2 so far (``co2cb/run_co2_kg``), for
            ``TensorBoard(update_freq=log_steps)`` and the ``tensorboard_dir``; the budget is then
            checked at each log too. Unlike Keras' own batch values (running averages over the epoch),
            each covers its interval alone: from the previous log to the start of the batch it is
            logged with. 0 (default): off. Cost (``benchmarks/bench_keras.py``, CPU): a log reads the
            energy curve, about 50 us in a loop and 150 us inside a fit, against about 1 us for a
            batch without one. The callback declares ``async_safe``, so Keras keeps dispatching batch
            ends on its thread pool (torch, JAX): a callback that overrides ``on_train_batch_end``
            without it makes Keras convert every batch's logs to Python floats on the training thread,
            which on a GPU waits for the device at each batch (on CPU the benchmark saw no difference).
        tensorboard_dir: Also write the co2cb values as TensorBoard event files here, laid out as
            ``keras.callbacks.TensorBoard`` does (``train``/``validation`` runs, ``epoch_``/``batch_``
            tags), with the ``tensorboard`` package and without TensorFlow: for the torch and JAX
            backends (on TensorFlow, ``keras.callbacks.TensorBoard`` already gets every value).
        **tracker_options: Options for :class:`co2cb.Tracker` (``region``, ``pue``, ``interval_s``,
            ``output_dir``, ``save``, ``scope``, ``meters``...); ``gpus`` overrides the GPUs found
            from the model's weights.

    Raises:
        ValueError: An option is invalid (:class:`co2cb.ConfigError` for a tracker option); the message
            says what to change.
    """

    # Its on_train_batch_end only moves values computed on the fit's thread (in on_train_batch_begin)
    # into the batch logs, so Keras may keep dispatching batch ends asynchronously.
    async_safe = True

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
        }
        self.co2 = TrainingMonitor(**self._options)  # checks every option now; a fresh one for each later fit
        self.log_steps = log_steps
        self.tensorboard_dir = tensorboard_dir
        self._tracker: Tracker | None = None  # set while a fit is measured (the hot path's only test)
        self._tensorboard: TensorBoardWriter | None = None
        self._watch: _FitWatch | None = None
        self._lock = threading.Lock()  # the fit watch ends a run from its own thread
        self._order_warned = False
        self._components: tuple[str, ...] = COMPONENTS
        self._reset_fit_state()

    def _reset_fit_state(self) -> None:
        self._step_open = False
        self._batches = 0  # training batch hooks this fit (one per steps_per_execution batches)
        self._per_execution = 1  # batches per training batch hook
        self._pending: dict[int, dict[str, float]] = {}  # batch -> per-step values its batch end adds to its logs
        self._epoch = 0
        self._first_epoch: int | None = None
        self._in_epoch = False
        self._in_val = False
        self._val_logs: dict[str, float] = {}

    @property
    def tracker(self) -> Tracker | None:
        """The tracker of the current (or last) fit."""
        return self.co2.tracker

    # ------------------------------------------------------------ life cycle
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start(self._arrange())

    @guarded()
    def _arrange(self) -> FrameType | None:
        """Run first in the calling ``CallbackList`` (behind the progress bar); return ``fit``'s frame, if it called."""
        owner, fit_frame = _dispatcher(self)
        if owner is None:
            if not self._order_warned:
                self._order_warned = True
                log.warning(
                    "co2cb: CO2Callback is not called through a keras.callbacks.CallbackList, so it cannot run "
                    "ahead of the other callbacks: a logger called before it does not get its values. Call it first."
                )
            return None
        progbar = keras.callbacks.ProgbarLogger
        callbacks = list(owner.callbacks)
        order = [
            *(cb for cb in callbacks if isinstance(cb, progbar)),
            self,
            *(cb for cb in callbacks if cb is not self and not isinstance(cb, progbar)),
        ]
        if any(a is not b for a, b in zip(order, callbacks)):
            mine = next(i for i, cb in enumerate(callbacks) if cb is self)
            ahead = [type(cb).__name__ for cb in callbacks[:mine] if not isinstance(cb, progbar)]
            owner.callbacks = order  # a new list: the loop now running on_train_begin goes on over the old one
            if ahead:
                log.info("co2cb: CO2Callback moved ahead of %s so that they see its values", ", ".join(ahead))
        return fit_frame

    @guarded()
    def _start(self, fit_frame: FrameType | None) -> None:
        with self._lock:
            self._end_watch()
            if self._tracker is not None:  # the last fit raised and nothing saw it end
                self._abort(FitAborted("fit ended without on_train_end"))
            if self.co2.tracker is not None:  # a later fit: totals, forecast and budget start over
                self.co2 = TrainingMonitor(**self._options)
            self._reset_fit_state()
            gpus, uses_gpu = _devices(self.model)
            if self._gpus is not None:
                gpus, uses_gpu = list(self._gpus), True
            rank = RankInfo()
            tracker = self.co2.tracker_for(rank, gpus, uses_gpu)
            params = self.params or {}
            epochs, steps = params.get("epochs"), params.get("steps")
            plan = {
                "max_epochs": epochs,
                "steps_per_epoch": steps,
                "total_steps": epochs * steps if epochs and steps else None,
                "framework": f"keras {keras.__version__}",
                "backend": keras.backend.backend(),
            }
            self.co2.start(tracker, SingleProcess(), rank, plan)
            self._components = tuple(sorted({m.info.component.value for m in tracker.meter_set.meters}))
            self._per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
            self._tracker = tracker
            if self.tensorboard_dir is not None:
                self._open_tensorboard()
            if fit_frame is not None:
                self._watch = _FitWatch(fit_frame, lambda error: self._fit_raised(tracker, error))

    @guarded()
    def _open_tensorboard(self) -> None:
        self._tensorboard = TensorBoardWriter(self.tensorboard_dir)

    @guarded()
    def _fit_raised(self, tracker: Tracker, error: BaseException | None) -> None:
        """The fit watch saw ``fit`` leave without ``on_train_end`` (on the watch's thread)."""
        with self._lock:
            if self._tracker is tracker:
                self._abort(error or FitAborted("fit raised and its caller handled the exception"))

    def _abort(self, error: BaseException) -> None:
        """Stop measuring the fit that raised; the record says why."""
        tracker, self._tracker = self._tracker, None
        self._close_tensorboard()
        if tracker is not None:
            self._close_step(tracker)
        self.co2.fail(error)

    def _end_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._finish(logs)

    @guarded()
    def _finish(self, logs: dict[str, Any] | None) -> None:
        with self._lock:
            self._end_watch()
            tracker, self._tracker = self._tracker, None
            if tracker is None:
                return
            self._close_tensorboard()
            self._close_step(tracker)
            self.co2.record_metrics(_final_logs(self.model))  # monitored keys added by callbacks after this one
            self.co2.record_metrics(logs if isinstance(logs, dict) else {})
            status = "stopped by the carbon budget" if self.co2.stop_reason else "completed"
            result = self.co2.finish(status)
        if result is not None and self._verbose:
            print(
                f"co2cb: training used {format_energy(result.kwh)} and {format_mass(result.co2_kg)} CO2e"
                + (f" (run folder {tracker.run_folder})" if tracker.run_folder else "")
            )

    def _close_tensorboard(self) -> None:
        writer, self._tensorboard = self._tensorboard, None
        if writer is not None:
            writer.close()

    @property
    def _verbose(self) -> bool:
        """Whether to print: ``fit(verbose=0)`` and ``CO2CB_QUIET`` say no."""
        return bool((self.params or {}).get("verbose", 1)) and not is_quiet()

    # ------------------------------------------------------------ steps (hot path)
    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # A step runs from one batch's start to the next's: Keras calls batch begins in order, on the
        # fit's thread; batch ends may run later, on its thread pool.
        tracker = self._tracker
        if tracker is None:
            return
        try:
            if self._step_open:
                tracker.end("step")
            if self.log_steps:
                self._batches += 1
                if self._batches % self.log_steps == 0:
                    self._log_step(batch)
            tracker.begin("step", record=False)
            self._step_open = True
        except Exception:  # noqa: BLE001 - co2cb must never stop a training run
            pass

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._pending and isinstance(logs, dict):
            values = self._pending.pop(batch, None)
            if values is not None:
                logs.update(values)

    @guarded()
    def _log_step(self, batch: int) -> None:
        values = self.co2.log_step()
        self._pending[batch + self._per_execution - 1] = values  # Keras ends the execution at its last batch
        self._apply_budget()
        if self._tensorboard is not None:
            self._to_tensorboard(self._tensorboard.batch, values, self._batches)

    def _close_step(self, tracker: Tracker) -> None:
        if self._step_open:
            tracker.end("step")
            self._step_open = False

    # ------------------------------------------------------------ epochs
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_begin(epoch)

    @guarded()
    def _epoch_begin(self, epoch: int) -> None:
        if self._tracker is None:
            return
        if self._first_epoch is None:
            self._first_epoch = epoch
        self._epoch = epoch
        self._val_logs = {}
        self.co2.epoch_begin("train")
        self._in_epoch = True

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._val_begin()

    @guarded()
    def _val_begin(self) -> None:
        tracker = self._tracker
        if tracker is None or not self._in_epoch or self._in_val:  # an evaluate() outside fit: not ours
            return
        self._close_step(tracker)
        self.co2.epoch_begin("val")
        self._in_val = True

    def on_test_end(self, logs: dict[str, Any] | None = None) -> None:
        self._val_end()

    @guarded()
    def _val_end(self) -> None:
        if self._tracker is None or not self._in_val:
            return
        self._in_val = False
        report = self.co2.epoch_end("val", self._epoch)
        self._val_logs = keras_names(report.metrics, "val", self._components)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_end(epoch, logs)

    @guarded()
    def _epoch_end(self, epoch: int, logs: dict[str, Any] | None) -> None:
        tracker = self._tracker
        if tracker is None or not self._in_epoch:
            return
        self._in_epoch = False
        self._close_step(tracker)
        self._pending.clear()  # Keras has run every batch end of the epoch (it waits for them before this hook)
        report = self.co2.epoch_end("train", epoch, self._progress(epoch))
        values = {**keras_names(report.metrics, "train", self._components), **self._val_logs}
        self._val_logs = {}
        if isinstance(logs, dict):
            logs.update(values)
            self.co2.record_metrics(logs)
        self._apply_budget()
        forecast = self.co2.forecast
        if forecast is not None and forecast.progress < 1 and self._verbose:  # after the progress bar's epoch line
            print(
                f"co2cb: after epoch {epoch + 1} ({forecast.progress:.0%} done) the run is forecast at "
                f"{format_energy(forecast.energy_kwh)} and {format_mass(forecast.co2_kg)} CO2e"
            )
        if self._tensorboard is not None:
            self._to_tensorboard(self._tensorboard.epoch, values, epoch)

    @guarded()
    def _to_tensorboard(
        self, write: Callable[[Mapping[str, float], int], None], values: dict[str, float], step: int
    ) -> None:
        write(values, step)

    def _progress(self, epoch: int) -> float | None:
        """Share of the fit done after ``epoch`` (epochs run / epochs planned)."""
        planned = (self.params or {}).get("epochs")
        first = self._first_epoch if self._first_epoch is not None else epoch
        if not planned or planned <= first:
            return None
        return min(1.0, (epoch + 1 - first) / (planned - first))

    def _apply_budget(self) -> None:
        if self.co2.stop_reason and self.model is not None and not self.model.stop_training:
            self.model.stop_training = True
