"""PyTorch Lightning: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`.

:class:`CO2CallbackMixin` holds every hook; the public classes combine it with
``lightning.pytorch.Callback`` (:mod:`co2cb.lightning`) or ``pytorch_lightning.Callback``
(:mod:`co2cb.pytorch_lightning`). Metrics go through ``trainer.loggers`` (every Lightning logger:
TensorBoard, CSV, MLflow, W&B...), which write on global rank 0 only.

Read from Lightning 2.x's logger connector and loops: Lightning logs a step's metrics at
``fit_loop.epoch_loop._batches_that_stepped`` as it stands in ``on_train_batch_end``, a validation's
at that count, and a training epoch's at that count minus one (the loop has counted the epoch's last
batch by then), with ``epoch`` beside them; co2cb logs at the same steps, ``epoch`` included. Its
epoch values also go into ``trainer.callback_metrics`` (which no logger reads), so ``EarlyStopping``
and ``ModelCheckpoint`` can monitor them: Lightning calls those after the other callbacks' epoch-end
hooks. A validation's values go there at once, and to the loggers in its training epoch's row
(:class:`~co2cb.integrations.lightning_output.LightningOutput`). A validation after an epoch's last batch
ends the epoch: its meters are read at its end, and its window closes with the epoch's, as of that reading,
its values coming with the epoch's, unless a callback's ``monitor`` names a co2cb value (it may look at the
validation's end). A step runs from one training batch's start to the next's (one clock read per batch, as
in Keras); the batch-end hook is bound only for step logs or the progress bar, so by default Lightning calls
its own empty one. Each fit is a run of its own: a callback used again starts afresh (:meth:`setup`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import Any

from co2cb.integrations.launchers import where_to_write
from co2cb.integrations.lightning_loop import at_last_batch, log_step, total_steps
from co2cb.integrations.lightning_output import LightningOutput
from co2cb.integrations.torch_collective import collective_for, cuda_devices
from co2cb.integrations.trackers import hand_to_each, lightning_attach, lightning_provenance
from co2cb.records.writer import RECORD_FILE
from co2cb.training import names
from co2cb.training.collective import RankInfo
from co2cb.training.guard import guarded
from co2cb.training.monitor import EpochReport, TrainingMonitor
from co2cb.training.steps import no_step

VAL_PREFIX = "val_"  # Lightning's convention for validation metrics (``val_loss``)


class CO2CallbackMixin:
    """Energy and CO2 per epoch and per logging step, in the trainer's own loggers.

    Add it to the trainer: ``Trainer(callbacks=[CO2Callback()])``. Per training epoch (validation
    left out) it logs ``co2cb/epoch_energy_kwh``, ``co2cb/epoch_co2_kg``, ``co2cb/epoch_power_w``, the
    run's total so far ``co2cb/total_energy_kwh`` and ``co2cb/total_co2_kg`` and the forecast
    ``co2cb/forecast_co2_kg``; per validation ``val_co2cb/epoch_energy_kwh`` and ``val_co2cb/epoch_co2_kg``;
    at fit end the run's final total, equal to the record's. Each value is logged at the step Lightning
    logs its own metrics at, and is in ``trainer.callback_metrics`` for ``EarlyStopping`` and
    ``ModelCheckpoint``. Every logger gets the provenance (region and why, intensity, PUE, meters) through
    ``log_hyperparams``, and MLflow and W&B loggers the run record at the end. Under DDP each rank
    measures its own GPU, host-level meters run once per host, epoch values are summed over ranks and
    logged once. The run folder holds the run name, tags and the final value of the ``monitor`` metrics.

    Args:
        run_name: Name of the run in the record.
        tags: Labels written into the record.
        monitor: Metrics whose final value is recorded, e.g. ``["val_acc"]``.
        budget_kg: Stop training (``trainer.should_stop``) once the job's CO2 passes it, kg CO2e.
        budget_on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run).
        forecast_after_epochs: Epochs to measure before forecasting the whole run.
        log_steps: Also log the energy, CO2 and power since the last log (``co2cb/step_*``) and the run's
            total every ``log_every_n_steps``; the budget is then checked there too.
        log_detail: Also log the energy per measured component, the validation's power, the intensity
            and the forecast's energy.
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
        log_steps: bool = False,
        log_detail: bool = False,
        progress_bar: bool = False,
        **tracker_options: Any,
    ) -> None:
        super().__init__()
        self._options: dict[str, Any] = {  # each fit's monitor is built from them
            "run_name": run_name,
            "tags": tags,
            "monitor": monitor,
            "budget_kg": budget_kg,
            "budget_on": budget_on,
            "forecast_after_epochs": forecast_after_epochs,
            "tracker_options": tracker_options,
            "detail": log_detail,
        }
        self.co2 = TrainingMonitor(**self._options)
        self.log_steps = log_steps
        self.progress_bar = progress_bar
        self._logged_step = -1  # the last step a step log was made at (one per step under gradient accumulation)
        self._mark_step: Callable[[int], None] = no_step  # marks a step boundary while a fit is measured (hot path)
        self.out = LightningOutput()  # the trainer's loggers and callback_metrics
        self._val_waits = True  # a validation at an epoch's end may close with the epoch (no callback monitors co2cb)
        self._total_steps: int | None = None  # the fit's planned optimizer steps, as at its start
        self._first_step = 0  # where the fit's progress counts from: its first step, or 0 for a resumed run

    state_key = "co2cb.CO2Callback"  # the key of this callback's state in checkpoints

    # ------------------------------------------------------------ life cycle
    @guarded
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """A fit after an earlier one is a new run: nothing of the last carries over (budget, epochs, resume).

        Lightning calls this before it restores a checkpoint's state into the callback (``fit(ckpt_path=)``).
        """
        if stage == "fit" and self.co2.tracker is not None:
            self.co2 = TrainingMonitor(**self._options, check=False)  # checked when the callback was built
            self.out, self._logged_step = LightningOutput(), -1

    @guarded
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start measuring (every rank, together)."""
        collective = collective_for(trainer.world_size)
        rank = RankInfo.gathered(collective, trainer.local_rank)
        gpus, uses_gpu = cuda_devices(trainer.strategy.root_device)
        plan = {  # estimated_stepping_batches may be a collective: every rank runs it, before anything can fail
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "total_steps": total_steps(trainer),
            "framework": self.framework,
        }
        self._total_steps = plan["total_steps"]
        self._first_step = 0 if self.co2.resume.saved else trainer.global_step  # a refit of a trainer: from here
        self.co2.tracker_options = where_to_write(self.co2.tracker_options)  # Ray Train workers change directory
        self.co2.start(collective, rank, plan, gpus, uses_gpu)
        self._mark_step = self.co2.steps.marker()  # on the fit's thread, where Lightning calls every hook
        self._val_waits = not any(names.PREFIX in str(getattr(cb, "monitor", "") or "") for cb in trainer.callbacks)
        if self.co2.writer and trainer.loggers:
            hand_to_each(lightning_provenance, trainer.loggers, self.co2.provenance())

    @guarded
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Record the final metrics and stop measuring."""
        self._mark_step = no_step
        self.out.log_held(trainer)
        self.co2.record_metrics(trainer.callback_metrics)
        if self.co2.finish() is None:
            return
        totals = self.co2.total_metrics()  # the record's final figure
        self.out.log(trainer, totals, max(0, log_step(trainer) - 1))
        self.out.offer(trainer, totals)
        folder = self.co2.tracker.run_folder if self.co2.writer and self.co2.tracker is not None else None
        if folder is not None and (folder / RECORD_FILE).is_file():
            hand_to_each(lightning_attach, trainer.loggers, folder / RECORD_FILE)

    @guarded
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop measuring if the fit did not end (interrupted)."""
        self._mark_step = no_step
        self.co2.abandon()

    @guarded
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Record the failure (the loggers get what waits: Lightning finalizes them next)."""
        self._mark_step = no_step
        self._emit(trainer, self.co2.fail(exception))

    # ------------------------------------------------------------ steps (hot path)
    @property
    def log_steps(self) -> bool:
        """Whether step logs are made (see the class's arguments)."""
        return self._log_steps

    @log_steps.setter
    def log_steps(self, on: bool) -> None:
        self._log_steps = bool(on)
        self._bind_batch_end()

    @property
    def progress_bar(self) -> bool:
        """Whether the run's CO2 is shown in the progress bar."""
        return self._progress_bar

    @progress_bar.setter
    def progress_bar(self, on: bool) -> None:
        self._progress_bar = bool(on)
        self._bind_batch_end()

    def _bind_batch_end(self) -> None:
        """A batch-end hook only where a step log or the progress bar needs one (else Lightning's empty hook)."""
        if getattr(self, "_log_steps", False) or getattr(self, "_progress_bar", False):
            self.on_train_batch_end = self._log_step
        else:
            vars(self).pop("on_train_batch_end", None)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        """A step ends and the next starts: a clock read (a step runs from one batch's start to the next's)."""
        self._mark_step(perf_counter_ns())

    @guarded
    def _log_step(self, trainer: Any, pl_module: Any, *_batch: Any) -> None:
        """``on_train_batch_end`` with ``log_steps`` or ``progress_bar``: a step log where Lightning logs its own."""
        every, step = trainer.log_every_n_steps, log_step(trainer)
        if not every or (step + 1) % every or step == self._logged_step or not self.co2.measuring:
            return
        self._logged_step = step
        metrics = self.co2.log_step()
        if self.log_steps:
            self.out.log(trainer, metrics, step)
            self.out.offer(trainer, {k: v for k, v in metrics.items() if k in (names.TOTAL_CO2, names.TOTAL_ENERGY)})
        if self.progress_bar:
            co2_g = self.co2.total.this_process(self.co2.tracker).co2_kg * 1000
            pl_module.log("co2_g", co2_g, prog_bar=True, logger=False, on_step=True, on_epoch=False)
        self._apply_budget(trainer)

    # ------------------------------------------------------------ epochs
    @guarded
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Open the training epoch's window."""
        if self.co2.measuring:
            self._emit(trainer, self.co2.train_epoch_begin(trainer.current_epoch))

    @guarded
    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        """Open a validation window (not for the sanity check, nor during a later ``trainer.validate()``)."""
        if self.co2.measuring and not trainer.sanity_checking:
            self.out.log_held(trainer)  # an earlier validation of this epoch (``val_check_interval`` < 1)
            self.co2.val_begin()

    @guarded
    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """End the validation; close its window now, or with its epoch's after the epoch's last batch."""
        if self.co2.measuring and not trainer.sanity_checking:
            with_epoch = self._val_waits and at_last_batch(trainer)
            self._emit(trainer, self.co2.val_end(with_epoch), hold=True)

    @guarded
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the training epoch and log it; the forecast and the budget are checked."""
        if not self.co2.measuring:
            return
        # the plan changes only where the dataloaders are loaded again (their length may change)
        total = total_steps(trainer) if trainer.reload_dataloaders_every_n_epochs else self._total_steps
        first = self._first_step
        progress = (trainer.global_step - first) / (total - first) if total and total > first else None
        self._emit(trainer, self.co2.train_epoch_end(progress), max(0, log_step(trainer) - 1))

    # ------------------------------------------------------------ output
    def _emit(self, trainer: Any, reports: list[EpochReport], step: int | None = None, hold: bool = False) -> None:
        """Offer closed epochs to ``callback_metrics``; log them at ``step`` (default: now), or with the next (hold)."""
        if reports:
            if self.co2.monitor:  # reading callback_metrics makes Lightning compute its metrics
                self.co2.record_metrics(trainer.callback_metrics)
            at = log_step(trainer) if step is None else step
            offered: dict[str, float] = {}
            for report in reports:
                metrics = names.for_framework(report.metrics, report.kind, VAL_PREFIX)
                self.out.hold(at, trainer.current_epoch, metrics)
                offered.update(metrics)
                offered.update(report.totals)
            self.out.offer(trainer, offered)
        if not hold:
            self.out.log_held(trainer)
        self._apply_budget(trainer)

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
