"""Real recorded runs of every kind, for the compare and report tests (made once per session).

* two Lightning runs (1 and 3 epochs) measuring :class:`tests.lightning_models.StepJoules`, so every
  epoch's energy is known exactly: 16 x 2 J of training plus 4 x 0.5 J of validation = 34 J;
* a Hugging Face Trainer run (tiny BERT, 2 epochs, evaluation each epoch) at a constant 50 W;
* a ``co2cb run`` of a small Python command, measured by the machine's own meters, region FR;
* a :class:`co2cb.Tracker` run in a cloud region (aws:eu-west-3) with ``epoch`` windows, step windows and
  a ``samples`` tag;
* a copy of the 3-epoch Lightning run cut as if it had been killed (no summary, no run window),
  in a parent folder of its own.

All intensities are fixed (100 gCO2e/kWh, or the region's table value), so each figure can be
checked against the records.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from co2cb.records.writer import RECORD_FILE

ROOT = Path(__file__).resolve().parent.parent
G_PER_KWH = 100.0
E_EPOCH_J = 34.0  # one Lightning epoch: 16 training batches x 2 J + 4 validation batches x 0.5 J
KWH = 3.6e6
HF_WATTS = 50.0


@dataclass(frozen=True)
class Runs:
    """Where the runs are. ``parent`` holds every run folder but ``crashed``, which has a parent of its own."""

    parent: Path
    lightning_short: Path
    lightning_long: Path
    hf: Path
    cli: Path
    tracker: Path
    crashed: Path

    @property
    def all_in_parent(self) -> list[Path]:
        """The run folders under ``parent``, in the order they were made (oldest first)."""
        return [self.lightning_short, self.lightning_long, self.hf, self.cli, self.tracker]


def lines(folder: Path) -> list[dict]:
    """The record's lines, parsed independently of co2cb."""
    return [json.loads(x) for x in (folder / RECORD_FILE).read_text().splitlines() if x.strip()]


def _only_new(parent: Path, before: set[Path]) -> Path:
    (new,) = set(parent.iterdir()) - before
    return new


def _lightning(parent: Path, epochs: int, name: str) -> Path:
    import lightning.pytorch as pl

    from co2cb.lightning import CO2Callback
    from tests.lightning_models import StepJoules, loaders, tiny_module

    counter = StepJoules()
    callback = CO2Callback(
        run_name=name,
        monitor=["val_acc"],
        meters=[counter],
        intensity=G_PER_KWH,
        interval_s=0.05,
        output_dir=str(parent),
        tags={"model": "mlp"},
    )
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    train, val = loaders()
    trainer.fit(tiny_module(pl, meter=counter), train, val)
    return Path(callback.co2.tracker.run_folder)


def _hf(parent: Path, work: Path) -> Path:
    import torch
    from transformers import Trainer, TrainingArguments

    from co2cb.hf import CO2Callback
    from tests.fakes.meters import ConstantPower
    from tests.test_hf import Tokens, tiny_bert

    callback = CO2Callback(
        run_name="tiny-bert",
        monitor=["eval_loss"],
        meters=[ConstantPower(HF_WATTS)],
        intensity=G_PER_KWH,
        interval_s=0.05,
        output_dir=str(parent),
    )
    args = TrainingArguments(
        output_dir=str(work),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        logging_steps=2,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(
            model=tiny_bert(),
            args=args,
            train_dataset=Tokens(32),
            eval_dataset=Tokens(16, seed=1),
            callbacks=[callback],
        ).train()
    finally:
        torch.set_num_threads(threads)
    return Path(callback.co2.tracker.run_folder)


def _cli(parent: Path) -> Path:
    before = set(parent.iterdir())
    env = {**os.environ, "CO2CB_QUIET": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "co2cb",
            "run",
            "--output-dir",
            str(parent),
            "--region",
            "FR",
            "--interval",
            "0.1",
            "--",
            sys.executable,
            "-c",
            "sum(range(3 * 10**6))",
        ],
        check=True,
        env=env,
        capture_output=True,
        cwd=ROOT,
    )
    return _only_new(parent, before)


def _tracker(parent: Path) -> Path:
    import co2cb
    from tests.fakes.meters import ConstantPower

    with co2cb.Tracker(
        run_name="cloud-epochs",
        output_dir=parent,
        meters=[ConstantPower(20.0)],
        region="aws:eu-west-3",
        interval_s=0.05,
        tags={"samples": 600},
    ) as tracker:
        for epoch in range(3):
            with tracker.window("epoch", meta={"epoch": epoch}):
                for _ in range(10):
                    tracker.begin("step", record=False)
                    time.sleep(0.004)
                    tracker.end("step")
    return Path(tracker.run_folder)


def _killed_copy(run: Path, parent: Path) -> Path:
    """A copy of ``run`` as a killed run leaves it: no summary, no run window."""
    copy = parent / (run.name + "-killed")
    shutil.copytree(run, copy)
    kept = [x for x in lines(copy) if x["type"] != "summary" and x.get("name") != "run"]
    (copy / RECORD_FILE).write_text("".join(json.dumps(x) + "\n" for x in kept))
    return copy


def make_runs(base: Path) -> Runs:
    """Make every run under ``base`` (about 15 s, most of it importing torch, Lightning and transformers)."""
    pytest.importorskip("lightning.pytorch")
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parent = base / "runs"
    parent.mkdir()
    quiet = os.environ.get("CO2CB_QUIET")
    os.environ["CO2CB_QUIET"] = "1"
    try:
        short = _lightning(parent, 1, "mlp-1-epoch")
        long = _lightning(parent, 3, "mlp-3-epochs")
        hf = _hf(parent, base / "hf")
        cli = _cli(parent)
        tracker = _tracker(parent)
    finally:
        if quiet is None:
            os.environ.pop("CO2CB_QUIET", None)
        else:
            os.environ["CO2CB_QUIET"] = quiet
    crashed_parent = base / "crashed"
    crashed_parent.mkdir()
    return Runs(parent, short, long, hf, cli, tracker, _killed_copy(long, crashed_parent))
