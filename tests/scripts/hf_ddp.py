"""A tiny Hugging Face Trainer job on 2 CPU processes (gloo) that moves a fake RAPL counter by known amounts.

Run by ``tests/test_hf.py`` with ``python -m torch.distributed.run --nproc_per_node 2 tests/scripts/hf_ddp.py
--out OUT --powercap ROOT``. ``ROOT`` is a fake powercap tree (``tests/fakes/powercap.py``). Both ranks
use the same callback options (machine scope, RAPL from ``ROOT``), as a user would.

At the start of every training step, on every rank: a barrier, then the rank adds ``(rank + 1) * --joules``
joules to the package counter (under a file lock, written atomically), then a second barrier. So every
joule of a step is added while every rank is inside that step's training epoch.

Writes under ``OUT``: ``hf/`` (the Trainer's output, TensorBoard under ``hf/runs``), ``runs/`` (co2cb run
folders) and ``rank<N>.json``: the joules this rank added per epoch and the Trainer's log history.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CO2CB_QUIET", "1")

import torch
import torch.distributed as dist
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from co2cb.hf import CO2Callback


class Tokens(torch.utils.data.Dataset):
    """Random token ids; the label is whether the first token is above 50."""

    def __init__(self, n: int, seed: int = 0, seq: int = 16) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(1, 100, (n, seq), generator=g)
        self.y = (self.x[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def add_energy(counter: Path, lock: Path, joules: int) -> None:
    """Advance the fake ``energy_uj`` counter by whole joules (exact in microjoules)."""
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            value = int(counter.read_text()) + joules * 1_000_000
            tmp = counter.with_name(f".energy_uj.{os.getpid()}")
            tmp.write_text(f"{value}\n")
            os.replace(tmp, counter)  # a reader sees the old file or the new one, never half of one
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


class Burner(TrainerCallback):
    """Moves the fake counter at the start of every training step, on every rank."""

    def __init__(self, counter: Path, joules: int) -> None:
        self.counter, self.lock, self.joules = counter, counter.parent.parent / "lock", joules
        self.added: dict[int, int] = {}

    def on_step_begin(self, args, state, control, **kwargs):
        dist.barrier()
        joules = (dist.get_rank() + 1) * self.joules
        add_energy(self.counter, self.lock, joules)
        epoch = int(state.epoch or 0)
        self.added[epoch] = self.added.get(epoch, 0) + joules
        dist.barrier()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--powercap", type=Path, required=True)
    parser.add_argument("--joules", type=int, default=7)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100)
    )
    args = TrainingArguments(
        output_dir=str(opts.out / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        logging_steps=2,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=["tensorboard"],
        use_cpu=True,
        ddp_backend="gloo",
        disable_tqdm=True,
    )
    co2 = CO2Callback(
        run_name="hf-ddp",
        scope="machine",
        powercap_root=str(opts.powercap),
        components=("cpu", "ram"),
        intensity=100,
        interval_s=0.05,
        output_dir=str(opts.out / "runs"),
        log_detail=True,
    )
    burner = Burner(opts.powercap / "intel-rapl:0" / "energy_uj", opts.joules)
    trainer = Trainer(
        model=model, args=args, train_dataset=Tokens(32), eval_dataset=Tokens(16, seed=1), callbacks=[co2, burner]
    )
    trainer.train()
    rank = dist.get_rank()
    (opts.out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "world_process_zero": trainer.state.is_world_process_zero,
                "added": burner.added,
                "log_history": trainer.state.log_history,
                "callbacks": [type(cb).__name__ for cb in trainer.callback_handler.callbacks],
            }
        )
    )
    # a clean end of the job: the DDP wrapper goes before its process group, and the group before exit. Left to
    # the interpreter's teardown, a rank of a loaded CI machine once aborted in torch's C++ ("terminate called
    # without an active exception") after the training had ended.
    dist.barrier()
    trainer.accelerator.free_memory()
    del trainer, model
    gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
