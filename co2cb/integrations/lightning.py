"""PyTorch Lightning: a thin callback over :class:`co2cb.training.monitor.TrainingMonitor`.

One implementation serves both import paths: :func:`build_callback` makes the class on top of
``lightning.pytorch.Callback`` (:mod:`co2cb.lightning`) or ``pytorch_lightning.Callback``
(:mod:`co2cb.pytorch_lightning`). Metrics go through ``trainer.loggers`` (every Lightning logger:
TensorBoard, CSV, MLflow, W&B...), which write on global rank 0 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from co2cb.integrations.torch_collective import TorchCollective
from co2cb.intensity.choice import is_quiet
from co2cb.training.monitor import RankInfo, SingleProcess, TrainingMonitor, guarded
from co2cb.units import format_energy, format_mass


def _collective(trainer: Any) -> TorchCollective | SingleProcess:
    import torch.distributed as dist

    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        return TorchCollective(dist)
    return SingleProcess()


def _devices(trainer: Any) -> tuple[list[int] | None, bool]:
    """The CUDA devices this rank trains on, and whether it uses a GPU at all."""
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return None, False
    return [device.index or 0], True


def build_callback(pl: ModuleType) -> type:
    """The CO2 callback class for one Lightning package (``lightning.pytorch`` or ``pytorch_lightning``)."""

    class CO2Callback(pl.Callback):  # type: ignore[misc, name-defined]
        """Energy and CO2 per epoch and per logging step, in the trainer's own loggers.

        Add it to the trainer: ``Trainer(callbacks=[CO2Callback()])``. Per training epoch and per
        validation epoch it logs energy (total and per component), CO2, mean power and the
        intensity used, plus running totals; every ``log_every_n_steps`` the energy and CO2 since
        the last log. Under DDP each rank measures its own GPU, host-level meters run once per
        host, epoch values are summed over ranks and logged once. The run folder holds the run
        name, tags and the final value of the ``monitor`` metrics.

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
            return "co2cb.CO2Callback"

        # ------------------------------------------------------------ life cycle
        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self._start(trainer)

        @guarded()
        def _start(self, trainer: Any) -> None:
            collective = _collective(trainer)
            rank = RankInfo.gathered(collective, trainer.local_rank)
            gpus, uses_gpu = _devices(trainer)
            plan = {  # estimated_stepping_batches may be a collective: every rank runs it, before anything can fail
                "max_epochs": trainer.max_epochs,
                "max_steps": trainer.max_steps,
                "total_steps": _total_steps(trainer),
                "framework": pl.__name__,
            }
            error = None
            try:
                self.co2.start(self.co2.tracker_for(rank, gpus, uses_gpu), collective, rank, plan)
            except Exception as e:  # noqa: BLE001 - reported below, after every rank has said how it went
                error = f"{type(e).__name__}: {e}"
            errors = [x for x in collective.gather(error) if x]
            if errors:  # one rank could not start: none measures, or their collectives would not match
                tracker, self.co2.tracker = self.co2.tracker, None
                if tracker is not None and tracker.running:
                    tracker.stop({"status": f"not measured: a rank could not start ({errors[0]})"})
                raise RuntimeError(f"a rank could not start measuring ({errors[0]})")

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            self._finish(trainer)

        @guarded()
        def _finish(self, trainer: Any) -> None:
            self.co2.record_metrics(trainer.callback_metrics)
            status = "stopped by the carbon budget" if self.co2.stop_reason else "completed"
            self.co2.finish(status)

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self._fail_safe_stop()

        @guarded()
        def _fail_safe_stop(self) -> None:
            tracker = self.co2.tracker
            if tracker is not None and tracker.running:  # on_fit_end did not run (e.g. interrupted)
                tracker.stop({"status": "stopped without fit end"})

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            self._fail(exception)

        @guarded()
        def _fail(self, exception: BaseException) -> None:
            self.co2.fail(exception)

        # ------------------------------------------------------------ steps (hot path)
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            tracker = self.co2.tracker
            if tracker is not None:
                tracker.begin("step", record=False)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            tracker = self.co2.tracker
            if tracker is None:
                return
            tracker.end("step")
            self._batches += 1
            if self.log_steps and self._batches % trainer.log_every_n_steps == 0:
                self._log_step(trainer, pl_module)

        @guarded()
        def _log_step(self, trainer: Any, pl_module: Any) -> None:
            metrics = self.co2.log_step()
            self._log(trainer, metrics, step=trainer.global_step)
            if self.progress_bar:
                run = self.co2.totals_before_run.co2_kg + self.co2.tracker.totals().co2_kg
                pl_module.log("co2_g", run * 1000, prog_bar=True, logger=False, on_step=True, on_epoch=False)
            self._apply_budget(trainer)

        # ------------------------------------------------------------ epochs
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._epoch_begin("train")

        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._epoch_begin("val")

        @guarded()
        def _epoch_begin(self, kind: str) -> None:
            if self._measuring:
                self.co2.epoch_begin(kind)

        @property
        def _measuring(self) -> bool:
            """Between fit start and fit end (not during a later ``trainer.validate()``)."""
            return self.co2.tracker is not None and self.co2.tracker.running

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                self._epoch_end(trainer, "val")

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self._epoch_end(trainer, "train")

        @guarded()
        def _epoch_end(self, trainer: Any, kind: str) -> None:
            if not self._measuring:
                return
            total = _total_steps(trainer)
            progress = trainer.global_step / total if total else None
            report = self.co2.epoch_end(kind, trainer.current_epoch, progress)
            self.co2.record_metrics(trainer.callback_metrics)
            self._log(trainer, report.metrics, step=trainer.global_step)
            if kind == "train" and self.co2.forecast is not None and self.co2.writer and not is_quiet():
                f = self.co2.forecast
                print(
                    f"co2cb: after epoch {trainer.current_epoch} ({f.progress:.0%} done) the run is forecast at "
                    f"{format_energy(f.energy_kwh)} and {format_mass(f.co2_kg)} CO2e"
                )
            self._apply_budget(trainer)

        # ------------------------------------------------------------ output
        def _log(self, trainer: Any, metrics: dict[str, float], step: int) -> None:
            for logger in trainer.loggers:  # Lightning's loggers write on global rank 0 only
                self._log_to(logger, metrics, step)

        @guarded()
        def _log_to(self, logger: Any, metrics: dict[str, float], step: int) -> None:
            logger.log_metrics(metrics, step=step)

        def _apply_budget(self, trainer: Any) -> None:
            if self.co2.stop_reason and not trainer.should_stop:
                trainer.should_stop = True

        # ------------------------------------------------------------ resume
        def state_dict(self) -> dict[str, Any]:
            return self.co2.state_dict()

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            self.co2.load_state_dict(state_dict)

    CO2Callback.__module__ = f"co2cb.{'lightning' if pl.__name__.startswith('lightning') else 'pytorch_lightning'}"
    return CO2Callback


def _total_steps(trainer: Any) -> int | None:
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - no dataloader yet, or an iterable of unknown length
        return None
    return int(total) if total and total != float("inf") else None
