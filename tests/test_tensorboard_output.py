"""The adapters' own TensorBoard output: step logs are held in memory and written with the next epoch."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("tensorboard", reason="the tensorboard package writes and reads the event files")

from co2cb.training.tensorboard import TensorBoardOutput


def _scalars(run: Path) -> dict[str, list[int]]:
    """Tag -> steps of a run folder's event files, read with TensorBoard's own accumulator (no TensorFlow)."""
    if "tensorflow" not in sys.modules:
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run), size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}
    return {**steps, **{tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}}


def _bytes(logdir: Path) -> int:
    return sum(f.stat().st_size for f in logdir.rglob("events.out.tfevents.*"))


def test_step_logs_touch_no_file_until_the_epoch_is_written(tmp_path: Path) -> None:
    out = TensorBoardOutput()
    out.open(tmp_path / "tb", {"co2cb/region": "FR"})
    opened = _bytes(tmp_path / "tb")  # the provenance
    out.hold({"co2cb/step_co2_kg": 1e-9}, 2)
    out.hold({"co2cb/step_co2_kg": 2e-9}, 4)
    assert _bytes(tmp_path / "tb") == opened  # a step log is no file write (before: one per step log)
    out.write({"co2cb/epoch_co2_kg": 3e-9}, 0)
    out.hold({"co2cb/step_co2_kg": 4e-9}, 6)  # after the last epoch: written at the close
    out.close()
    steps = _scalars(tmp_path / "tb" / "train")
    assert steps["batch_co2cb/step_co2_kg"] == [2, 4, 6] and steps["epoch_co2cb/epoch_co2_kg"] == [0]
