"""The Keras callback's per-step part: a clock read per step (the hot path) and, with ``log_steps``, step logs.

:class:`StepHooks` is a base of :class:`co2cb.keras.CO2Callback`, which sets the attributes it reads.
A step runs from one batch's start to the next's: Keras calls batch begins in order, on the fit's
thread, so the clock is read there. With ``log_steps``, every ``log_steps`` batch hooks the values since
the last log are computed at a batch's start and put into that batch's ``logs`` at its end (Keras may
call batch ends on its thread pool: the callback declares ``async_safe``).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from co2cb.training.guard import guarded
from co2cb.training.monitor import TrainingMonitor
from co2cb.training.tensorboard import TensorBoardOutput


class StepHooks:
    """``on_train_batch_begin`` and, with ``log_steps``, the step logs of the Keras callback."""

    co2: TrainingMonitor
    _measuring: bool
    _mark_step: Callable[[int], None]  # marks a step boundary while a fit is measured
    _batches: int  # training batch hooks this fit (one per steps_per_execution batches)
    _per_execution: int  # batches per training batch hook
    _pending: dict[int, dict[str, float]]  # batch -> per-step values its batch end adds to its logs
    _tensorboard: TensorBoardOutput
    _apply_budget: Callable[[], None]

    @property
    def log_steps(self) -> int:
        """Batches between step logs (0: none; see the class's arguments)."""
        return self._log_steps

    @log_steps.setter
    def log_steps(self, every: int) -> None:
        self._log_steps = every
        self.__dict__.pop("on_train_batch_end", None)  # a batch-end hook only for step logs (else the base's empty one)
        if every:
            self.on_train_batch_end = self._batch_end

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """A step ends and the next starts (Keras calls batch begins in order, on the fit's thread)."""
        if self._log_steps and self._measuring:
            self._batches += 1
            if self._batches % self._log_steps == 0:
                self._log_step(batch)
        self._mark_step(perf_counter_ns())

    def _batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """``on_train_batch_end`` with ``log_steps``: put the values computed at this batch's start into its logs."""
        if self._pending and isinstance(logs, dict):
            values = self._pending.pop(batch, None)
            if values is not None:
                logs.update(values)

    @guarded
    def _log_step(self, batch: int) -> None:
        values = self.co2.log_step()
        self._pending[batch + self._per_execution - 1] = values  # Keras ends the execution at its last batch
        self._apply_budget()
        self._tensorboard.hold(values, self._batches)  # written with the epoch's values: no I/O on a step
