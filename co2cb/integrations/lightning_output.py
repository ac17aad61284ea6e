"""Where co2cb's values go in a Lightning fit: every logger of the trainer, and ``trainer.callback_metrics``.

Rows go to ``trainer.loggers`` (TensorBoard, CSV, MLflow, W&B...; they write on global rank 0 only) at the
step given, with ``epoch`` beside the values as Lightning's own rows have it; a logger that fails is warned
about once and the others still get the row. A validation's values wait for its training epoch's row
(:meth:`LightningOutput.hold`). ``callback_metrics`` gets values unlogged, where ``EarlyStopping`` and
``ModelCheckpoint`` look.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from co2cb.training.guard import guarded
from co2cb.training.rows import PendingRows


class LightningOutput:
    """co2cb's rows for a trainer's loggers, and its values in ``trainer.callback_metrics``."""

    def __init__(self) -> None:
        self._held = PendingRows()  # a validation's values, logged in its training epoch's row

    def hold(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """Keep values for the row of ``step`` and ``epoch``, logged by the next :meth:`log_held`."""
        self._held.add(step, epoch, metrics)

    def log_held(self, trainer: Any) -> None:
        """Log every held row, in order."""
        for step, epoch, metrics in self._held.take():
            self.log(trainer, metrics, step, epoch)

    def log(self, trainer: Any, metrics: dict[str, float], step: int, epoch: int | None = None) -> None:
        """One row for every logger, at ``step`` (``epoch`` default: the trainer's current epoch)."""
        values = {**metrics, "epoch": trainer.current_epoch if epoch is None else epoch}
        for logger in trainer.loggers:
            self._log_to(logger, values, step)

    @guarded
    def _log_to(self, logger: Any, metrics: dict[str, float], step: int) -> None:
        logger.log_metrics(metrics, step=step)

    @guarded
    def offer(self, trainer: Any, values: Mapping[str, float]) -> None:
        """Put values where ``EarlyStopping`` and ``ModelCheckpoint`` look (``trainer.callback_metrics``), unlogged."""
        import torch

        # Lightning's own dict (what is put there stays until the next fit); its public property first
        # recomputes every logged metric, which costs more than the rest of the close together
        connector = getattr(trainer, "_logger_connector", None)
        metrics = getattr(connector, "_callback_metrics", None)
        if not isinstance(metrics, dict):
            metrics = trainer.callback_metrics
        for name, value in values.items():  # scalar_tensor: half the time of torch.tensor after a training step
            metrics[name] = torch.scalar_tensor(value, dtype=torch.float64)
