"""The adapters' own TensorBoard output: step logs are held in memory and written with the next epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard", reason="the tensorboard package writes the event files")

from co2cb.training.tensorboard import TensorBoardOutput


def test_step_logs_touch_no_file_until_the_epoch_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = TensorBoardOutput()
    out.open(tmp_path / "tb", {"co2cb/region": "FR"})
    writer: Any = out._writer
    written: list[tuple[str, int]] = []
    monkeypatch.setattr(writer, "batch", lambda values, step: written.append(("batch", step)))
    monkeypatch.setattr(writer, "epoch", lambda values, step: written.append(("epoch", step)))
    out.hold({"co2cb/step_co2_kg": 1e-9}, 2)
    out.hold({"co2cb/step_co2_kg": 2e-9}, 4)
    assert written == []  # a step log is no file write (before: one per step log, on the training thread)
    out.write({"co2cb/epoch_co2_kg": 3e-9}, 0)
    assert written == [("batch", 2), ("batch", 4), ("epoch", 0)]
    out.hold({"co2cb/step_co2_kg": 4e-9}, 6)  # after the last epoch: written at the close
    out.close()
    assert written[-1] == ("batch", 6)
