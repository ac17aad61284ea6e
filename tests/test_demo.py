"""``co2cb demo``: pretraining, fine-tuning and training from scratch under the Lightning callback, then compare,
plot and report.

One ``co2cb demo --quick`` runs in a subprocess, as a user runs it; what it left behind is read back:
the three run folders (:func:`co2cb.records.reader.find_runs`), the TensorBoard event files (TensorBoard's own
``EventAccumulator``), the figure and the report, and the paths it printed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from co2cb.cli import demo
from co2cb.cli.main import main
from co2cb.records.reader import RecordedRun, find_runs

for _module in demo.NEEDS:
    pytest.importorskip(_module)

CO2_TAGS = (
    "co2cb/epoch_co2_kg",
    "co2cb/epoch_energy_kwh",
    "val_co2cb/epoch_co2_kg",
    "co2cb/total_co2_kg",
    "co2cb/forecast_co2_kg",
    "co2cb/intensity_g_per_kwh",
    "co2cb/step_co2_kg",
)
QUICK_EPOCHS = 2
STAGES = {"pretrain": "val_masked_acc", "finetune": "val_acc", "scratch": "val_acc"}  # run name -> its metric


pytestmark = pytest.mark.slow  # the demo trains three small models (about 20 s)


@dataclass
class Demo:
    """A finished ``co2cb demo --quick`` and where it wrote."""

    out: Path
    stdout: str
    stderr: str

    def printed(self, label: str) -> list[str]:
        """The path(s) printed after ``label:`` (a run-folder line is followed by an indented one)."""
        lines = self.stdout.splitlines()
        (i,) = [n for n, line in enumerate(lines) if line.startswith(f"{label}:")]
        found = [lines[i].split(":", 1)[1].strip().split("  (")[0]]
        found += [line.strip() for line in lines[i + 1 :] if line.startswith(" ") and line.strip()]
        return found


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo") / "out"
    env = {**os.environ, "CO2CB_REGION": "FR"}
    env.pop("CO2CB_OUTPUT_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "co2cb", "demo", "--quick", "--output-dir", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return Demo(out, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def runs(quick_demo: Demo) -> dict[str, RecordedRun]:
    return {run.name: run for run in find_runs([quick_demo.out / "runs"])}


def tb_scalars(log_dir: Path) -> dict[str, list[float]]:
    """Every scalar series in a TensorBoard log folder, read with TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_each_stage_leaves_a_completed_run_with_its_quality_metric(runs: dict[str, RecordedRun]) -> None:
    assert set(runs) == set(STAGES)
    for name, metric in STAGES.items():
        run = runs[name]
        assert run.status == "completed"
        assert list(run.final_metrics) == [metric] and 0 <= run.final_metrics[metric] <= 1
        assert run.header["tags"]["stage"] == name
        assert len(run.epochs) == QUICK_EPOCHS
        assert run.total_kwh > 0 and run.co2_kg > 0  # the meters found on this machine, never 0 J
    assert runs["finetune"].header["tags"]["init"] == "pretrain"
    assert runs["scratch"].header["tags"]["init"] == "random"
    assert runs["scratch"].header["tags"]["sequences"] == runs["finetune"].header["tags"]["sequences"]


def test_tensorboard_logs_hold_co2cb_values_next_to_the_loss(quick_demo: Demo, runs: dict[str, RecordedRun]) -> None:
    for name in STAGES:
        (log_dir,) = (quick_demo.out / "tensorboard" / name).iterdir()
        assert list(log_dir.glob("events.out.tfevents.*"))
        series = tb_scalars(log_dir)
        assert set(CO2_TAGS) <= set(series), name
        assert "train_loss" in series and STAGES[name] in series
        assert len(series["co2cb/epoch_co2_kg"]) == QUICK_EPOCHS
        assert all(v > 0 for v in series["co2cb/epoch_co2_kg"])
        epochs_co2 = sum(e.co2_kg for e in runs[name].epochs)
        summary = runs[name].summary
        assert summary is not None and summary["co2_kg"] >= epochs_co2
        assert series["co2cb/total_co2_kg"][-1] == pytest.approx(summary["co2_kg"], rel=1e-5)  # float32 in TensorBoard


def test_it_prints_the_comparison_and_where_everything_is(quick_demo: Demo, runs: dict[str, RecordedRun]) -> None:
    out = quick_demo.out
    table = quick_demo.stdout.split("\nrun ", 1)[1]
    assert "val_acc" in table and "val_masked_acc" in table and "CO2e x first" in table
    assert "Pretraining emitted" in quick_demo.stdout
    acc = {name: f"val_acc {runs[name].final_metrics['val_acc']:.3f}" for name in ("finetune", "scratch")}
    (summary,) = [line for line in quick_demo.stdout.splitlines() if line.startswith("Fine-tuned from the pretrained")]
    assert summary.index(acc["finetune"]) < summary.index("from scratch") < summary.index(acc["scratch"])
    assert quick_demo.printed("Run folders") == [str(runs[name].path) for name in STAGES]  # in training order
    assert quick_demo.printed("TensorBoard logs") == [str(out / "tensorboard")]
    assert quick_demo.printed("Plot") == [str(out / "comparison.png")]
    assert quick_demo.printed("Report") == [str(out / "report.html")]
    assert quick_demo.stdout.rstrip().splitlines()[-1] == f"Report:           {out / 'report.html'}"
    assert "Traceback" not in quick_demo.stderr and "Warning" not in quick_demo.stderr


def test_the_plot_and_the_report_cover_every_run(quick_demo: Demo, runs: dict[str, RecordedRun]) -> None:
    assert (quick_demo.out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (quick_demo.out / "report.html").read_text()
    assert "data:image/png;base64," in report
    for run in runs.values():
        assert run.run_id in report


def test_without_torch_or_lightning_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name in ("torch", "lightning") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert main(["demo", "--quick", "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "missing: torch, lightning" in err and demo.INSTALL in err
    assert not (tmp_path / "out").exists()


def test_a_bad_epoch_count_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["demo", "--epochs", "0"])
    assert stop.value.code == 2 and "'0' is not a whole number of epochs >= 1" in capsys.readouterr().err


def test_the_help_gives_the_plans_epochs(capsys: pytest.CaptureFixture[str]) -> None:
    from co2cb.examples.pretrain_finetune import QUICK, Plan

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert f"(default: {Plan().epochs}, or {QUICK.epochs} with --quick)" in " ".join(capsys.readouterr().out.split())
