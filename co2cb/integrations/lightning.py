"""PyTorch Lightning: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`.

:class:`CO2CallbackMixin` holds every hook; the public classes combine it with
``lightning.pytorch.Callback`` (:mod:`co2cb.lightning`) or ``pytorch_lightning.Callback``
(:mod:`co2cb.pytorch_lightning`). Metrics go through ``trainer.loggers`` (every Lightning logger:
TensorBoard, CSV, MLflow, W&B...), which write on global rank 0 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from co2cb.integrations.torch_collective import collective_for, cuda_devices
from co2cb.training.collective import RankInfo
from co2cb.training.guard import guarded
from co2cb.training.monitor import EpochReport, TrainingMonitor


def _total_steps(trainer: Any) -> int | None:
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - no dataloader yet, or an iterable of unknown length
        return None
    return int(total) if total and total != float("inf") else None


class CO2CallbackMixin:
    """Energy and CO2 per epoch and per logging step, in the trainer's own loggers.

    Add it to the trainer: ``Trainer(callbacks=[CO2Callback()])``. Per training epoch and per
    validation epoch it logs energy (total and per measured component), CO2, mean power and the
    intensity used, plus running totals; every ``log_every_n_steps`` the energy and CO2 since the
    last log. Under DDP each rank measures its own GPU, host-level meters run once per host, epoch
    values are summed over ranks and logged once. The run folder holds the run name, tags and the
    final value of the ``monitor`` metrics.

    Args:
        run_name: Name of the run in the record.
        tags: Labels written into the record.
        monitor: Metrics whose final value is recorded, e.g. ``["val_acc"]``.
        budget_kg: Stop training (``trainer.should_stop``) once the job's CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Log energy and CO2 every ``log_every_n_steps`` (default True).
        progress_bar: Show the run's CO2 so far in the progress bar.
        **tracker_options: Options for :class:`co2cb.Tracker` (``interval_s``, ``region``,
            ``pue``, ``output_dir``, ``scope``...).
    """

    framework = "lightning"  # the package the public class is built on, for the record

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
        progress_bar: bool = False,
        **tracker_options: Any,
    ) -> None:
        super().__init__()
        self.co2 = TrainingMonitor(
            run_name=run_name,
            tags=tags,
            monitor=monitor,
            budget_kg=budget_kg,
            budget_on=budget_on,
            forecast_after_epochs=forecast_after_epochs,
            tracker_options=tracker_options,
        )
        self.log_steps = log_steps
        self.progress_bar = progress_bar
        self._batches = 0  # training batches seen, for the logging cadence (cheaper than Lightning's own check)

    @property
    def state_key(self) -> str:
        """The key of this callback's state in checkpoints."""
        return "co2cb.CO2Callback"

    # ------------------------------------------------------------ life cycle
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start measuring (every rank, together)."""
        self._start(trainer)

    @guarded
    def _start(self, trainer: Any) -> None:
        collective = collective_for(trainer.world_size)
        rank = RankInfo.gathered(collective, trainer.local_rank)
        gpus, uses_gpu = cuda_devices(trainer.strategy.root_device)
        plan = {  # estimated_stepping_batches may be a collective: every rank runs it, before anything can fail
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "total_steps": _total_steps(trainer),
            "framework": self.framework,
        }
        self.co2.start(collective, rank, plan, gpus, uses_gpu)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Record the final metrics and stop measuring."""
        self._finish(trainer)

    @guarded
    def _finish(self, trainer: Any) -> None:
        self.co2.record_metrics(trainer.callback_metrics)
        self.co2.finish()

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop measuring if the fit did not end (interrupted)."""
        self._abandon()

    @guarded
    def _abandon(self) -> None:
        self.co2.abandon()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Record the failure."""
        self._fail(exception)

    @guarded
    def _fail(self, exception: BaseException) -> None:
        self.co2.fail(exception)

    # ------------------------------------------------------------ steps (hot path)
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """A step starts: a clock read."""
        self.co2.steps.begin()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """A step ends: a clock read; every ``log_every_n_steps`` a step log."""
        self.co2.steps.end()
        self._batches += 1
        if self.log_steps and self._batches % trainer.log_every_n_steps == 0 and self.co2.measuring:
            self._log_step(trainer, pl_module)

    @guarded
    def _log_step(self, trainer: Any, pl_module: Any) -> None:
        metrics = self.co2.log_step()
        self._log(trainer, metrics)
        if self.progress_bar:
            co2_g = self.co2.run_co2_kg() * 1000
            pl_module.log("co2_g", co2_g, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        self._apply_budget(trainer)

    # ------------------------------------------------------------ epochs
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Open the training epoch's window."""
        self._train_epoch_begin(trainer)

    @guarded
    def _train_epoch_begin(self, trainer: Any) -> None:
        if self.co2.measuring:
            self._emit(trainer, self.co2.train_epoch_begin(trainer.current_epoch))

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Open a validation window (not for the sanity check)."""
        if not trainer.sanity_checking:
            self._val_begin()

    @guarded
    def _val_begin(self) -> None:
        if self.co2.measuring:  # not during a later trainer.validate()
            self.co2.val_begin()

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the validation window and log it."""
        if not trainer.sanity_checking:
            self._val_end(trainer)

    @guarded
    def _val_end(self, trainer: Any) -> None:
        if self.co2.measuring:
            self._emit(trainer, self.co2.val_end())

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the training epoch and log it; the forecast and the budget are checked."""
        self._train_epoch_end(trainer)

    @guarded
    def _train_epoch_end(self, trainer: Any) -> None:
        if not self.co2.measuring:
            return
        total = _total_steps(trainer)
        self._emit(trainer, self.co2.train_epoch_end(trainer.global_step / total if total else None))

    # ------------------------------------------------------------ output
    def _emit(self, trainer: Any, reports: list[EpochReport]) -> None:
        self.co2.record_metrics(trainer.callback_metrics)
        for report in reports:
            self._log(trainer, report.metrics)
        self._apply_budget(trainer)

    def _log(self, trainer: Any, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:  # Lightning's loggers write on global rank 0 only
            self._log_to(logger, metrics, trainer.global_step)

    @guarded
    def _log_to(self, logger: Any, metrics: dict[str, float], step: int) -> None:
        logger.log_metrics(metrics, step=step)

    def _apply_budget(self, trainer: Any) -> None:
        if self.co2.stop_reason and not trainer.should_stop:
            trainer.should_stop = True

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The job's totals so far, saved in the checkpoint.

        No collective here: a user may call ``trainer.save_checkpoint`` on one rank only. Under DDP the
        state holds the job's finished epochs plus this rank's share of the open one.
        """
        return self.co2.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the totals of a checkpointed run."""
        self.co2.load_state_dict(state_dict)
