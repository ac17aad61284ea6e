"""A tiny Lightning DDP job on CPU that moves a fake RAPL counter by known amounts.

Run by ``tests/test_lightning_ddp.py`` as a subprocess (Lightning's ``ddp`` strategy starts rank 1
by running this script again, with the same arguments). ``CO2CB_POWERCAP_ROOT`` must point at a
fake powercap tree (``tests/fakes/powercap.py``); ``--counter`` is the ``energy_uj`` file of its
package zone.

Every training step, on every rank: a barrier, then the rank adds ``(rank + 1) * --joules`` joules to
the counter (under a file lock, written atomically so that a reader never sees a half-written
file), then a second barrier. So every joule of step ``k`` is added while rank 0 is inside step
``k``: inside rank 0's training-epoch window and its run window, never between two windows.

Writes under ``--out``: ``runs/`` (co2cb run folders), ``csv/`` and ``tb/`` (the Lightning loggers),
and ``rank<N>.json`` per rank: joules added per epoch, the pid and host, and every ``self.log`` call
the callback made (to check that no co2cb value goes through ``sync_dist``). Progress markers, so that a
test can tell a hung job from a slow one: ``fit_start.rank<N>`` (written by a callback that runs before
CO2Callback's ``on_fit_start``) and ``step.rank<N>`` (after the first training step).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from co2cb.lightning import CO2Callback


def add_energy(counter: Path, lock: Path, joules: int) -> None:
    """Advance the fake ``energy_uj`` counter by ``joules`` (whole joules: exact in microjoules)."""
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            value = int(counter.read_text()) + joules * 1_000_000
            tmp = counter.with_name(f".energy_uj.{os.getpid()}")
            tmp.write_text(f"{value}\n")
            os.replace(tmp, counter)  # readers see the old file or the new one, never a partial one
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


class Burner(pl.LightningModule):
    """A small classifier whose training steps move the fake counter."""

    def __init__(self, counter: Path, lock: Path, joules: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
        self.counter, self.lock, self.joules = counter, lock, joules
        self.added: dict[int, int] = {}
        self.log_calls: list[dict[str, object]] = []

    def _rank(self) -> int:
        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        distributed = dist.is_available() and dist.is_initialized()
        if distributed:
            dist.barrier()
        joules = (self._rank() + 1) * self.joules
        add_energy(self.counter, self.lock, joules)
        self.added[self.current_epoch] = self.added.get(self.current_epoch, 0) + joules
        if distributed:
            dist.barrier()
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def log(self, name, value, *args, **kwargs):  # record what the callback logs through self.log
        if not name.startswith(("train_loss", "val_acc")):
            self.log_calls.append({"name": name, "sync_dist": bool(kwargs.get("sync_dist", False))})
        return super().log(name, value, *args, **kwargs)


class Markers(pl.Callback):
    """Touch a file when fitting starts and after the first training step, per rank.

    With ``break_dir``, rank 0 also turns that folder into a file when fitting starts (before
    CO2Callback's ``on_fit_start``): co2cb's run folder can no longer be made, which only rank 0,
    the writer, finds out, after every rank checked the folder when its callback was made.
    """

    def __init__(self, out: Path, break_dir: Path | None = None) -> None:
        self.out = out
        self.break_dir = break_dir

    def on_fit_start(self, trainer, pl_module):
        if self.break_dir is not None and trainer.global_rank == 0:
            shutil.rmtree(self.break_dir, ignore_errors=True)
            self.break_dir.write_text("")
        (self.out / f"fit_start.rank{trainer.global_rank}").touch()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        marker = self.out / f"step.rank{trainer.global_rank}"
        if not marker.exists():
            marker.touch()


def install_fake_gpus(count: int) -> None:
    """Make NVML report ``count`` GPUs drawing 50 W each (the job still trains on the CPU)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.fakes.fake_pynvml import Constant, FakeGpu, FakePynvml

    gpus = [FakeGpu(uuid=f"GPU-00000000-0000-0000-0000-{i:012d}", power=Constant(50.0)) for i in range(count)]
    sys.modules["pynvml"] = FakePynvml(gpus)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--counter", type=Path, required=True, help="energy_uj file of the fake package zone")
    p.add_argument("--joules", type=int, default=7, help="joules rank r adds per step, times (r + 1)")
    p.add_argument("--scope", default="machine", choices=["machine", "process"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--runs-dir", type=Path, help="co2cb's output_dir (default: OUT/runs)")
    p.add_argument("--break-runs-dir", action="store_true", help="rank 0 makes the runs dir a file at fit start")
    p.add_argument("--fake-gpus", type=int, default=0, help="pretend the machine has this many idle NVIDIA GPUs")
    args = p.parse_args(argv)
    if args.fake_gpus:
        install_fake_gpus(args.fake_gpus)

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16)  # 8 steps per epoch per rank with 2 ranks
    val = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16)

    runs_dir = args.runs_dir or args.out / "runs"
    model = Burner(args.counter, args.out / "counter.lock", args.joules)
    callback = CO2Callback(
        run_name="ddp-test",
        monitor=["val_acc"],
        output_dir=str(runs_dir),
        interval_s=0.05,
        region="FR",
        scope=args.scope,
        progress_bar=True,
        log_detail=True,
    )
    loggers = [
        pl.loggers.CSVLogger(str(args.out / "csv"), name="", version=0),
        pl.loggers.TensorBoardLogger(str(args.out / "tb"), name="", version=0),
    ]
    trainer = pl.Trainer(
        accelerator="cpu",
        strategy="ddp" if args.devices > 1 else "auto",
        devices=args.devices,
        max_epochs=args.epochs,
        callbacks=[Markers(args.out, runs_dir if args.break_runs_dir else None), callback],
        logger=loggers,
        log_every_n_steps=2,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, train, val)

    report = {
        "rank": trainer.global_rank,
        "local_rank": trainer.local_rank,
        "world_size": trainer.world_size,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "added_j": {str(k): v for k, v in sorted(model.added.items())},
        "log_calls": model.log_calls,
        "callback_metric_keys": sorted(trainer.callback_metrics),
        "co2cb_callback_metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if "co2cb/" in k},
        "run_folder": str(callback.co2.tracker.run_folder) if callback.co2.tracker else None,
        "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
    }
    (args.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
