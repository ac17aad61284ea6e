"""A tiny LightningModule, generated data and test meters for the Lightning tests (nothing is downloaded).

:class:`StepJoules` is an energy counter that the model itself advances: ``J_TRAIN`` joules per
training batch and ``J_VAL`` per validation batch (not during the sanity check). Recorded windows
read the meters at their boundaries, so with it every epoch's energy and CO2 is known exactly
(``n batches x joules``), whatever the machine's speed.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from types import ModuleType
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from co2cb import Meter, MeterInfo
from co2cb.meters.base import Component, Provenance, ReadingKind

J_TRAIN = 2.0  # joules per training batch
J_VAL = 0.5  # joules per validation batch
TRAIN_BATCHES = 16
VAL_BATCHES = 4
BATCH = 16
FEATURES = 8


class StepJoules(Meter):
    """A CPU energy counter advanced by the model's own steps (exact, machine-independent energy)."""

    reading = ReadingKind.COUNTER

    def __init__(self) -> None:
        self.joules = 0.0
        self._lock = threading.Lock()

    @property
    def info(self) -> MeterInfo:
        return MeterInfo("test:step-joules", Component.CPU, Provenance.MEASURED_COUNTER)

    def add(self, joules: float) -> None:
        with self._lock:
            self.joules += joules

    def read(self) -> float:
        with self._lock:
            return self.joules


def loaders(train_batches: int = TRAIN_BATCHES, val_batches: int = VAL_BATCHES) -> tuple[DataLoader, DataLoader]:
    """Generated, linearly separable data: a training and a validation loader (no shuffling, no workers)."""
    g = torch.Generator().manual_seed(0)
    n = (train_batches + val_batches) * BATCH
    x = torch.randn(n, FEATURES, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    cut = train_batches * BATCH
    train = DataLoader(TensorDataset(x[:cut], y[:cut]), batch_size=BATCH)
    val = DataLoader(TensorDataset(x[cut:], y[cut:]), batch_size=BATCH)
    return train, val


@cache
def module_class(pl: ModuleType) -> type:
    """The tiny MLP as a LightningModule of ``pl`` (``lightning.pytorch`` or ``pytorch_lightning``)."""

    class TinyMLP(pl.LightningModule):  # type: ignore[misc, name-defined]
        def __init__(
            self,
            meter: StepJoules | None = None,
            fail_at_step: int | None = None,
            log_epoch: bool = False,
            sleep_s: float = 0.0,
        ) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
            self.meter = meter
            self.fail_at_step = fail_at_step
            self.log_epoch = log_epoch  # train_loss also per epoch: Lightning logs train_loss_step and _epoch
            self.sleep_s = sleep_s  # a slower step (and validation step), for counters that move in ticks

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            if self.fail_at_step is not None and self.global_step >= self.fail_at_step:
                raise RuntimeError("boom in training_step")
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=self.log_epoch)
            if self.meter is not None:
                self.meter.add(J_TRAIN)
            if self.sleep_s:
                time.sleep(self.sleep_s)
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            acc = (self.net(x).argmax(1) == y).float().mean()
            self.log("val_acc", acc)
            if self.sleep_s:
                time.sleep(self.sleep_s)
            if self.meter is not None and not self.trainer.sanity_checking:
                self.meter.add(J_VAL)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.5)

    return TinyMLP


def tiny_module(pl: ModuleType, **kwargs: Any) -> Any:
    """A fresh TinyMLP for ``pl`` (seeded, so every run learns the same)."""
    torch.manual_seed(0)
    return module_class(pl)(**kwargs)
