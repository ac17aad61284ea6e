"""What Lightning's trainer and loops say about where a fit stands, read without failing.

Read from Lightning 2.x's fit and training-epoch loops: the training epoch's loop counts the batches
that stepped the optimizer (``_batches_that_stepped``, the step Lightning logs at), marks the epoch's
last batch (``batch_progress.is_last_batch``), and validates after that batch, before the count goes up
and before ``on_train_epoch_end``.
"""

from __future__ import annotations

from typing import Any


def total_steps(trainer: Any) -> int | None:
    """The optimizer steps the fit plans (``estimated_stepping_batches``), or None when unknown."""
    try:
        total = trainer.estimated_stepping_batches
    except Exception:  # noqa: BLE001 - no dataloader yet, or an iterable of unknown length
        return None
    return int(total) if total and total != float("inf") else None


def log_step(trainer: Any) -> int:
    """The step Lightning logs its own metrics at now (batches that stepped the optimizer; else ``global_step``)."""
    step = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "_batches_that_stepped", None)
    return int(step) if isinstance(step, int) else int(trainer.global_step)


def at_last_batch(trainer: Any) -> bool:
    """Whether the training epoch's last batch has run (a validation now is the epoch's last act)."""
    progress = getattr(getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "batch_progress", None)
    return getattr(progress, "is_last_batch", False) is True
