"""The Hugging Face Trainer callback against the real Trainer, real TensorBoard event files and real checkpoints.

A tiny BERT built from a config trains on generated token ids (no download). The meters are test
meters with a known power (``tests/fakes/meters.py``) or a fake powercap tree, so every figure can
be checked against the run record.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import TensorBoardCallback  # noqa: E402

from co2cb import read_records  # noqa: E402
from co2cb.hf import CO2Callback  # noqa: E402
from co2cb.integrations import hf_binding  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """No region lines on the console in these tests (set per test, so other test files still see them)."""
    monkeypatch.setenv("CO2CB_QUIET", "1")


from co2cb.integrations import hf as hf_adapter  # noqa: E402
from co2cb.training.monitor import TrainingMonitor  # noqa: E402
from tests.fakes.meters import ConstantPower, RaisingMeter  # noqa: E402
from tests.fakes.powercap import FakePowercap, TickingCounter  # noqa: E402
from tests.known_truth import (  # noqa: E402
    DEFAULT_INTERVAL_S,
    TICK_S,
    check_sine_gpu,
    check_ticking_counter,
    sine_gpu,
    spy_step_logs,
)

ROOT = Path(__file__).resolve().parent.parent
KWH = 3.6e6
WATTS = 50.0
STEPS_PER_EPOCH = 4  # 32 samples, batch 8
EPOCH_KEYS = {  # the default set's training values
    "co2cb/epoch_energy_kwh",
    "co2cb/epoch_co2_kg",
    "co2cb/epoch_power_w",
    "co2cb/total_energy_kwh",
    "co2cb/total_co2_kg",
}
EVAL_KEYS = {"eval_co2cb/epoch_energy_kwh", "eval_co2cb/epoch_co2_kg"}  # HF's integrations: eval/co2cb/...
DETAIL_KEYS = {"co2cb/epoch_energy_cpu_kwh", "co2cb/intensity_g_per_kwh", "co2cb/forecast_energy_kwh"}
STEP_KEYS = {"co2cb/step_energy_kwh", "co2cb/step_co2_kg", "co2cb/step_power_w", "co2cb/total_co2_kg"}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """One torch thread: the tiny model runs faster so on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Tokens(torch.utils.data.Dataset):
    """Random token ids; the label is whether the first token is above 50."""

    def __init__(self, n: int, seed: int = 0, seq: int = 16) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(1, 100, (n, seq), generator=g)
        self.y = (self.x[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def tiny_bert() -> Any:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100
    )
    return BertForSequenceClassification(config)


def co2(out: Path, **options: Any) -> CO2Callback:
    """A callback with a known power (50 W) and intensity (100 g/kWh), writing under ``out/co2``, step logs on."""
    options = {"meters": [ConstantPower(WATTS)], "intensity": 100, "interval_s": 0.05, "log_steps": True, **options}
    return CO2Callback(output_dir=str(out / "co2"), **options)


def trainer_for(out: Path, callbacks: list[Any] | None = None, **overrides: Any) -> Trainer:
    settings: dict[str, Any] = {
        "output_dir": str(out / "hf"),
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "logging_steps": 2,
        "save_strategy": "no",
        "report_to": ["tensorboard"],
        "use_cpu": True,
        "disable_tqdm": True,
        "seed": 0,
    }
    settings.update(overrides)
    return Trainer(
        model=tiny_bert(),
        args=TrainingArguments(**settings),
        train_dataset=Tokens(32),
        eval_dataset=Tokens(16, seed=1),
        callbacks=callbacks,
    )


def run_folder(out: Path) -> Path:
    folders = sorted((out / "co2").iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def records(out: Path) -> list[dict[str, Any]]:
    return read_records(run_folder(out))


def windows(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["type"] == "window" and line["name"] == name]


def summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return next(line for line in lines if line["type"] == "summary")


def tensorboard(out: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the TensorBoard event files under the Trainer's output folder, read back with tensorboard."""
    files = list((out / "hf").rglob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file"
    scalars: dict[str, list[tuple[int, float]]] = {}
    for folder in {f.parent for f in files}:
        acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return scalars


def entries(trainer: Trainer, key: str) -> list[dict[str, Any]]:
    return [e for e in trainer.state.log_history if key in e]


# ---------------------------------------------------------------------------------------------- the plain set-up
def test_plain_callback_reaches_tensorboard_log_history_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CO2CB_QUIET")  # the forecast line is checked below
    callback = co2(
        tmp_path,
        run_name="bert-tiny",
        tags={"model": "bert", "data": "tokens"},
        monitor=["eval_loss", "train_loss"],
        log_detail=True,
    )
    trainer = trainer_for(tmp_path, [callback], eval_strategy="epoch")
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names.index("DefaultFlowCallback") < names.index("CO2Callback") < names.index("TensorBoardCallback")
    trainer.train()

    # per logging step: the Trainer's own entries carry the energy since the last log
    steps = entries(trainer, "loss")
    assert [e["step"] for e in steps] == [2, 4, 6, 8]
    for e in steps:
        assert e.keys() >= STEP_KEYS
        assert e["co2cb/step_power_w"] == pytest.approx(WATTS, rel=1e-6)
        assert e["co2cb/step_co2_kg"] == pytest.approx(e["co2cb/step_energy_kwh"] * 0.1, rel=1e-9)
    run_co2 = [e["co2cb/total_co2_kg"] for e in steps]
    assert run_co2 == sorted(run_co2) and run_co2[0] > 0

    # per epoch and per evaluation: entries of their own, after the Trainer's eval entry
    epochs = entries(trainer, "co2cb/epoch_co2_kg")
    evals = entries(trainer, "eval_co2cb/epoch_co2_kg")
    assert [e["step"] for e in epochs] == [4, 8] and [e["step"] for e in evals] == [4, 8]
    assert all(EPOCH_KEYS | DETAIL_KEYS | {"co2cb/forecast_co2_kg", "epoch"} <= e.keys() for e in epochs)
    for e in epochs:
        assert e["co2cb/epoch_power_w"] == pytest.approx(WATTS, rel=1e-6)
        assert e["co2cb/epoch_energy_cpu_kwh"] == pytest.approx(e["co2cb/epoch_energy_kwh"])
        assert "co2cb/epoch_energy_gpu_kwh" not in e  # no GPU meter: no zero column for it
        assert e["co2cb/intensity_g_per_kwh"] == pytest.approx(100)
    assert all(EVAL_KEYS | {"eval_co2cb/epoch_power_w"} <= e.keys() for e in evals)
    history = trainer.state.log_history
    assert history.index(evals[0]) > history.index(entries(trainer, "eval_loss")[0])
    # totals: the run so far, every training epoch and every evaluation once (and the time around them)
    spent = sum(e["co2cb/epoch_energy_kwh"] for e in epochs) + sum(e["eval_co2cb/epoch_energy_kwh"] for e in evals)
    assert epochs[-1]["co2cb/total_energy_kwh"] >= spent * (1 - 1e-9)
    # forecast after the first epoch: the whole run (2 epochs) from half of it
    assert epochs[0]["co2cb/forecast_energy_kwh"] == pytest.approx(2 * epochs[0]["co2cb/total_energy_kwh"])
    assert "the run is forecast at" in capsys.readouterr().out
    # at train end, the run's total once more: the record's
    (final,) = [e for e in history if set(e) == {"co2cb/total_energy_kwh", "co2cb/total_co2_kg", "epoch", "step"}]
    assert history[-1] is final and final["step"] == 8

    # the run record says the same, with the run's name, tags and final metrics
    lines = records(tmp_path)
    header, end = lines[0], summary(lines)
    assert header["run_name"] == "bert-tiny" and header["tags"] == {"model": "bert", "data": "tokens"}
    assert header["job"]["framework_plan"]["max_steps"] == 2 * STEPS_PER_EPOCH
    assert [w["co2_kg"] for w in windows(lines, "train_epoch")] == [e["co2cb/epoch_co2_kg"] for e in epochs]
    assert [w["co2_kg"] for w in windows(lines, "val_epoch")] == [e["eval_co2cb/epoch_co2_kg"] for e in evals]
    for w, v in zip(windows(lines, "train_epoch"), evals):
        assert w["meta"]["validation_excluded"]["co2_kg"] == pytest.approx(v["eval_co2cb/epoch_co2_kg"])
    assert end["status"] == "completed"
    assert end["final_metrics"] == {
        "eval_loss": pytest.approx(entries(trainer, "eval_loss")[-1]["eval_loss"]),
        "train_loss": pytest.approx(entries(trainer, "train_loss")[-1]["train_loss"]),
    }
    assert end["co2_kg"] >= epochs[-1]["co2cb/total_co2_kg"] > 0
    assert final["co2cb/total_co2_kg"] == pytest.approx(end["co2_kg"], rel=1e-12)
    assert final["co2cb/total_energy_kwh"] == pytest.approx(end["energy_kwh"]["total"], rel=1e-12)
    assert end["steps"]["step"]["count"] == 2 * STEPS_PER_EPOCH

    # TensorBoard got every value, at the Trainer's global step (as float32); evaluation under eval/
    tb = tensorboard(tmp_path)
    assert tb["train/co2cb/epoch_co2_kg"] == [
        (e["step"], pytest.approx(e["co2cb/epoch_co2_kg"], rel=1e-6)) for e in epochs
    ]
    assert tb["eval/co2cb/epoch_energy_kwh"] == [
        (e["step"], pytest.approx(e["eval_co2cb/epoch_energy_kwh"], rel=1e-6)) for e in evals
    ]
    assert tb["train/co2cb/step_co2_kg"] == [
        (e["step"], pytest.approx(e["co2cb/step_co2_kg"], rel=1e-6)) for e in steps
    ]
    assert tb["train/co2cb/total_co2_kg"][-1] == (8, pytest.approx(end["co2_kg"], rel=1e-6))
    assert {
        "train/co2cb/forecast_co2_kg",
        "train/co2cb/epoch_energy_cpu_kwh",
        "train/co2cb/intensity_g_per_kwh",
        "train/loss",
        "eval/loss",
    } <= tb.keys()
    assert not [tag for tag in tb if tag.startswith("train/") and "eval" in tag]  # no train/co2cb/val_...
    assert not [tag for tag in tb if "_ram_" in tag or "_gpu_" in tag]  # nobody measured them


def test_trainer_epoch_loss_is_still_logged(tmp_path: Path) -> None:
    """With logging_strategy="epoch" the Trainer logs its loss after on_epoch_end, where co2cb logs too."""
    trainer = trainer_for(tmp_path, [co2(tmp_path)], logging_strategy="epoch", num_train_epochs=3)
    trainer.train()
    losses = entries(trainer, "loss")
    assert [e["step"] for e in losses] == [4, 8, 12]
    assert all(e.keys() >= STEP_KEYS for e in losses)
    assert len(entries(trainer, "co2cb/epoch_co2_kg")) == 3
    tb = tensorboard(tmp_path)
    assert [s for s, _ in tb["train/loss"]] == [4, 8, 12]
    assert [s for s, _ in tb["train/co2cb/epoch_co2_kg"]] == [4, 8, 12]


def test_evaluation_inside_an_epoch_is_reported_apart(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, [co2(tmp_path)], eval_strategy="steps", eval_steps=3, num_train_epochs=2)
    trainer.train()
    evals = entries(trainer, "eval_co2cb/epoch_co2_kg")
    # steps 3 and 6 (and 8: recent transformers evaluate at the last step too), one window each
    assert [e["step"] for e in evals] == [e["step"] for e in entries(trainer, "eval_loss")][:3]
    assert [e["step"] for e in evals][:2] == [3, 6]
    lines = records(tmp_path)
    train = windows(lines, "train_epoch")
    excluded = [w["meta"]["validation_excluded"]["energy_kwh"]["total"] for w in train]
    for epoch, held in enumerate(excluded):  # each epoch leaves out exactly the evaluations inside it
        inside = [
            e["eval_co2cb/epoch_energy_kwh"]
            for e in evals
            if epoch * STEPS_PER_EPOCH < e["step"] <= (epoch + 1) * STEPS_PER_EPOCH
        ]
        assert held == pytest.approx(sum(inside)) and inside
    epochs = entries(trainer, "co2cb/epoch_energy_kwh")
    spent = sum(e["co2cb/epoch_energy_kwh"] for e in epochs) + sum(excluded)
    assert epochs[-1]["co2cb/total_energy_kwh"] >= spent * (1 - 1e-9)
    assert not any("co2cb/step_co2_kg" in e for e in entries(trainer, "eval_loss"))
    losses = entries(trainer, "loss")  # steps 6 and 8 log and evaluate: the log comes first, with its values
    assert [e["step"] for e in losses] == [2, 4, 6, 8] and all(e.keys() >= STEP_KEYS for e in losses)


# ---------------------------------------------------------------------------------------------- attach
def test_attach_binds_a_callback_added_after_the_trainer_was_built(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path)
    callback = CO2Callback.attach(
        trainer,
        intensity=100,
        interval_s=0.05,
        output_dir=str(tmp_path / "co2"),
        meters=[ConstantPower(WATTS)],
        log_steps=True,
    )
    assert CO2Callback.attach(trainer) is callback
    with pytest.raises(ValueError, match="already has a CO2Callback"):
        CO2Callback.attach(trainer, region="FR")
    names = [type(cb).__name__ for cb in trainer.callback_handler.callbacks]
    assert names.index("CO2Callback") < names.index("TensorBoardCallback")
    assert isinstance(trainer.__dict__["train"], hf_binding.TrainGuard)
    trainer.train()
    tb = tensorboard(tmp_path)
    assert len(tb["train/co2cb/step_co2_kg"]) == 4 and len(tb["train/co2cb/epoch_co2_kg"]) == 2


def test_without_the_handler_values_stay_in_log_history_and_attach_fixes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """If the handler cannot be found on the stack, TensorBoard misses the values: that is what attach() is for."""
    monkeypatch.setattr(hf_binding, "from_stack", lambda callback: (None, None))
    blind = tmp_path / "blind"
    trainer = trainer_for(blind, [co2(blind)])
    with caplog.at_level(logging.WARNING, logger="co2cb.integrations.hf"):
        trainer.train()
    assert any("CO2Callback.attach(trainer)" in r.getMessage() for r in caplog.records)
    assert len(entries(trainer, "co2cb/epoch_co2_kg")) == 2 and len(entries(trainer, "co2cb/step_co2_kg")) == 4
    assert not any(tag.startswith("train/co2cb/") for tag in tensorboard(blind))

    bound = tmp_path / "bound"
    trainer = trainer_for(bound, [co2(bound)])
    CO2Callback.attach(trainer)
    trainer.train()
    tb = tensorboard(bound)
    assert len(tb["train/co2cb/step_co2_kg"]) == 4 and len(tb["train/co2cb/epoch_co2_kg"]) == 2


# ---------------------------------------------------------------------------------------------- budget, failures
def test_carbon_budget_stops_training(tmp_path: Path) -> None:
    callback = co2(tmp_path, budget_kg=1e-9)
    trainer = trainer_for(tmp_path, [callback], num_train_epochs=3)
    trainer.train()
    assert trainer.state.global_step == 2  # the first logging step was over the budget
    end = summary(records(tmp_path))
    assert end["status"] == "stopped by the carbon budget"
    assert "carbon budget reached" in end["stop_reason"]
    assert callback.co2.stop_reason == end["stop_reason"]


class Explode(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == 3:
            raise RuntimeError("boom")


def test_exception_in_training_stops_measurement(tmp_path: Path) -> None:
    callback = co2(tmp_path)
    trainer = trainer_for(tmp_path, [callback, Explode()])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert callback.co2.tracker is not None and not callback.co2.tracker.running
    end = summary(records(tmp_path))
    assert end["status"] == "failed: RuntimeError: boom"
    assert end["energy_kwh"]["total"] > 0


def _broken_epoch_end(self: TrainingMonitor, *args: Any, **kwargs: Any) -> Any:
    raise ZeroDivisionError("broken")


@pytest.mark.parametrize("case", ["raising meter", "raising monitor", "unwritable output"])
def test_nothing_the_callback_does_stops_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    if case == "raising meter":
        callback = co2(tmp_path, meters=[ConstantPower(WATTS), RaisingMeter(good_reads=2)])
    elif case == "raising monitor":
        monkeypatch.setattr(TrainingMonitor, "_report", _broken_epoch_end)
        callback = co2(tmp_path)
    else:
        callback = co2(tmp_path)  # checked writable here; made unwritable before training starts
        (tmp_path / "co2").write_text("a file where the run folders should go")
    trainer = trainer_for(tmp_path, [callback], eval_strategy="epoch")
    with caplog.at_level(logging.WARNING):
        trainer.train()
    assert trainer.state.global_step == 2 * STEPS_PER_EPOCH
    assert len(entries(trainer, "loss")) == 4 and len(entries(trainer, "eval_loss")) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "co2cb" in r.getMessage()]
    assert warnings
    if case == "raising meter":
        lines = records(tmp_path)
        assert summary(lines)["status"] == "completed"
        assert "test:raising" in summary(lines)["unavailable"]
        assert len(entries(trainer, "co2cb/epoch_co2_kg")) == 2
    elif case == "raising monitor":
        assert sum("epoch_end" in w or "_epoch_end" in w for w in warnings) <= 3  # once per hook, not per call
        assert summary(records(tmp_path))["status"] == "completed"
    else:
        assert (tmp_path / "co2").is_file()
        assert len(entries(trainer, "co2cb/step_co2_kg")) == 0


# ---------------------------------------------------------------------------------------------- resume
def _checkpoint_totals(checkpoint: Path) -> list[float]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return state["stateful_callbacks"]["CO2Callback"]["attributes"]["co2cb_state"]["totals"]


@pytest.mark.parametrize("restore", [False, True], ids=["state-file", "restore_callback_states"])
def test_resume_from_checkpoint_keeps_totals(tmp_path: Path, restore: bool) -> None:
    first = co2(tmp_path, run_name="resumable", tags={"try": 1})
    settings = {"save_strategy": "steps", "save_steps": 3, "restore_callback_states_from_checkpoint": restore}
    trainer_for(tmp_path, [first], **settings).train()
    first_folder = run_folder(tmp_path)
    first_id = read_records(first_folder)[0]["run_id"]
    checkpoints = tmp_path / "hf"
    # a mid-epoch checkpoint holds the energy spent so far, not only closed epochs (none at step 3)
    assert _checkpoint_totals(checkpoints / "checkpoint-3")[1] > 0  # cpu joules
    at_six = _checkpoint_totals(checkpoints / "checkpoint-6")
    assert sum(at_six[:3]) > sum(_checkpoint_totals(checkpoints / "checkpoint-3")[:3])

    second = co2(tmp_path, run_name="resumable", tags={"try": 2})
    trainer = trainer_for(tmp_path, [second], **settings)
    trainer.train(resume_from_checkpoint=str(checkpoints / "checkpoint-6"))
    assert any(cb is second for cb in trainer.callback_handler.callbacks)  # the user's instance, bound
    assert second.co2.tracker is not None and not second.co2.tracker.running
    epochs = entries(trainer, "co2cb/epoch_energy_kwh")
    assert [e["step"] for e in epochs] == [4, 8]  # epoch 0 from the checkpoint's log history, then this one
    resumed = epochs[-1]
    # the total goes on from the checkpoint's: this segment so far (its start-up and the epoch's rest) on top
    assert resumed["co2cb/total_energy_kwh"] >= (sum(at_six[:3]) / KWH + resumed["co2cb/epoch_energy_kwh"]) * (1 - 1e-9)
    assert resumed["co2cb/total_co2_kg"] >= (at_six[3] + resumed["co2cb/epoch_co2_kg"]) * (1 - 1e-9)
    folder = next(f for f in (tmp_path / "co2").iterdir() if f != first_folder)
    lines = read_records(folder)
    assert lines[0]["resumed_from"]["run_id"] == first_id and lines[0]["tags"] == {"try": 2}
    end = summary(lines)
    # the whole run: the checkpoint's totals and this segment's own final figure, exactly (also under load)
    assert end["resumed_total"]["energy_kwh"]["total"] == pytest.approx(
        sum(at_six[:3]) / KWH + end["energy_kwh"]["total"], rel=1e-9
    )
    final = trainer.state.log_history[-1]  # the whole run's total, as the record has it
    assert final["co2cb/total_energy_kwh"] == pytest.approx(end["resumed_total"]["energy_kwh"]["total"], rel=1e-12)
    assert final["co2cb/total_co2_kg"] == pytest.approx(end["resumed_total"]["co2_kg"], rel=1e-12)


def test_state_is_json_and_rebuilds_the_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default output folder is checked (and made) at construction
    callback = CO2Callback(
        run_name="r",
        tags={"a": 1},
        monitor="eval_loss",
        budget_kg=2.0,
        region="FR",
        meters=[ConstantPower()],
        log_steps=False,
    )
    state = json.loads(json.dumps(callback.state()))
    assert "meters" not in state["args"] and state["args"]["region"] == "FR"
    copy = CO2Callback(**state["args"])
    assert copy.co2.run_name == "r" and copy.co2.monitor == ("eval_loss",) and copy.co2.budget.kg == 2.0
    assert copy.log_steps is False
    with pytest.raises(ValueError, match="budget_kg"):
        CO2Callback(budget_kg=-1)
    with pytest.raises(ValueError, match="interval_s"):  # tracker options are checked at construction too
        CO2Callback(interval_s=0.001)


# ---------------------------------------------------------------------------------------------- distributed
@pytest.mark.slow
def test_two_processes_sum_ranks_count_host_meters_once_and_write_once(tmp_path: Path) -> None:
    powercap = FakePowercap(tmp_path / "powercap")
    out = tmp_path / "job"
    out.mkdir()
    start_uj = powercap.get_uj("package-0")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CO2CB_QUIET": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(ROOT / "tests" / "scripts" / "hf_ddp.py"),
            "--out",
            str(out),
            "--powercap",
            str(powercap.root),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    added = {int(k): sum(r["added"].get(k, 0) for r in ranks) for k in ranks[0]["added"]}  # joules per epoch
    delta = (powercap.get_uj("package-0") - start_uj) / 1e6
    assert sum(added.values()) == pytest.approx(delta)

    folders = list((out / "runs").iterdir())
    assert len(folders) == 1  # one writer
    lines = read_records(folders[0])
    assert lines[0]["job"]["world_size"] == 2
    end = summary(lines)
    assert end["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, abs=1e-6)  # the counter once, not twice
    assert [r["energy_kwh"]["cpu"] * KWH for r in end["job"]["per_rank"]] == [pytest.approx(delta, abs=1e-6), 0]
    train = windows(lines, "train_epoch")
    assert [w["energy_kwh"]["cpu"] * KWH for w in train] == [pytest.approx(added[e], abs=1e-6) for e in (0, 1)]
    for w in train:  # the job's figure is the sum of the ranks'
        assert w["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in w["meta"]["per_rank"]))
    assert len(windows(lines, "val_epoch")) == 2

    # every rank logs the job's (summed) epoch values; only rank 0 writes TensorBoard
    for r in ranks:
        epochs = [e for e in r["log_history"] if "co2cb/epoch_co2_kg" in e]
        assert [e["co2cb/epoch_co2_kg"] for e in epochs] == [w["co2_kg"] for w in train]
        assert [e["co2cb/epoch_energy_cpu_kwh"] * KWH for e in epochs] == [
            pytest.approx(added[e], abs=1e-6) for e in (0, 1)
        ]
        assert r["callbacks"].index("CO2Callback") < r["callbacks"].index("TensorBoardCallback")
    assert [r["world_process_zero"] for r in ranks] == [True, False]
    events = list((out / "hf").rglob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = event_accumulator.EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.value * KWH for e in acc.Scalars("train/co2cb/epoch_energy_cpu_kwh")] == [
        pytest.approx(added[e], rel=1e-5) for e in (0, 1)
    ]


# ---------------------------------------------------------------------------------------------- import path
def test_import_is_lazy_and_says_what_to_install() -> None:
    code = "import sys, co2cb, co2cb.hf; print('transformers' in sys.modules)"
    lazy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert lazy.returncode == 0 and lazy.stdout.strip() == "False", lazy.stderr
    code = "import sys; sys.modules['transformers'] = None; import co2cb.hf"
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode != 0
    assert "ImportError" in missing.stderr and "pip install 'co2cb[hf]'" in missing.stderr
    assert TensorBoardCallback in hf_binding.reporting_types()


def test_eval_on_start_counts_in_the_totals_once(tmp_path: Path) -> None:
    """An evaluation before the first epoch is in the logged totals once (it was added twice), and the final
    logged total is the record's."""
    trainer = trainer_for(tmp_path, [co2(tmp_path)], eval_strategy="epoch", eval_on_start=True)
    trainer.train()
    lines = records(tmp_path)
    evals, train = windows(lines, "val_epoch"), windows(lines, "train_epoch")
    assert len(evals) == 3 and len(train) == 2  # on start, then after each epoch
    end = summary(lines)
    spent = sum(w["co2_kg"] for w in evals + train)
    logged = [e["co2cb/total_co2_kg"] for e in entries(trainer, "co2cb/total_co2_kg")]
    assert logged == sorted(logged) and logged[-1] == pytest.approx(end["co2_kg"], rel=1e-12)
    assert end["co2_kg"] >= spent * (1 - 1e-9)
    epoch_totals = [e["co2cb/total_co2_kg"] for e in entries(trainer, "co2cb/epoch_co2_kg")]
    assert spent * (1 - 1e-9) <= epoch_totals[-1] <= end["co2_kg"]  # counted once, not 3.4x or a third
    assert len(entries(trainer, "eval_co2cb/epoch_co2_kg")) == 3


def test_quiet_silences_the_forecast_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trainer_for(tmp_path, [co2(tmp_path)]).train()
    assert "the run is forecast at" not in capsys.readouterr().out  # CO2CB_QUIET=1 is set for every test here


# ---------------------------------------------------------------------------------------------- defaults, trackers
def test_default_set_and_the_provenance_in_tensorboard(tmp_path: Path) -> None:
    """By default: 8 tags (training epoch, evaluation under eval/, the total, the forecast), no per-step values;
    TensorBoard gets the provenance as text, as the Trainer writes its own arguments."""
    callback = CO2Callback(
        output_dir=str(tmp_path / "co2"), meters=[ConstantPower(WATTS)], region="FR", interval_s=0.05
    )
    trainer = trainer_for(tmp_path, [callback], eval_strategy="epoch")
    trainer.train()
    tb = tensorboard(tmp_path)
    mine = {tag for tag in tb if "co2cb/" in tag}
    assert mine == {
        "train/co2cb/epoch_energy_kwh",
        "train/co2cb/epoch_co2_kg",
        "train/co2cb/epoch_power_w",
        "train/co2cb/total_energy_kwh",
        "train/co2cb/total_co2_kg",
        "train/co2cb/forecast_co2_kg",
        "eval/co2cb/epoch_energy_kwh",
        "eval/co2cb/epoch_co2_kg",
    }
    assert not any("co2cb/step_" in k for e in trainer.state.log_history for k in e)
    end = summary(records(tmp_path))
    assert tb["train/co2cb/total_co2_kg"][-1] == (8, pytest.approx(end["co2_kg"], rel=1e-6))
    files = list((tmp_path / "hf").rglob("events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(files[0].parent), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    (text,) = acc.Tensors("co2cb/provenance/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert "| co2cb/region | FR |" in table and "| co2cb/meter_cpu | test:constant (estimate) |" in table
    assert f"| co2cb/run_id | {records(tmp_path)[0]['run_id']} |" in table


class Slow(TrainerCallback):
    """Slower steps and evaluation batches (for counters that move in ticks)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        time.sleep(0.08)

    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        time.sleep(0.15)


def known_truth_run(tmp_path: Path, **options: Any) -> Trainer:
    callback = CO2Callback(
        output_dir=str(tmp_path / "co2"), intensity=100, interval_s=DEFAULT_INTERVAL_S, log_steps=True, **options
    )
    trainer = Trainer(
        model=tiny_bert(),
        args=TrainingArguments(
            output_dir=str(tmp_path / "hf"),
            num_train_epochs=2,
            per_device_train_batch_size=8,
            per_device_eval_batch_size=8,
            logging_steps=4,
            eval_strategy="epoch",
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        ),
        train_dataset=Tokens(64),
        eval_dataset=Tokens(16, seed=1),
        callbacks=[callback, Slow()],
    )
    trainer.train()
    return trainer


def check_final_total(trainer: Trainer, out: Path) -> None:
    end = summary(records(out))
    final = trainer.state.log_history[-1]
    assert final["co2cb/total_co2_kg"] == pytest.approx(end["co2_kg"], rel=1e-12)
    assert final["co2cb/total_energy_kwh"] == pytest.approx(end["energy_kwh"]["total"], rel=1e-12)
    assert all(e["co2cb/total_co2_kg"] <= end["co2_kg"] for e in entries(trainer, "co2cb/total_co2_kg"))


def test_known_truth_a_ticking_rapl_counter_at_60_w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    powercap = FakePowercap(tmp_path / "powercap")
    logs = spy_step_logs(monkeypatch)
    with TickingCounter(powercap, watts=60.0, tick_s=TICK_S) as counter:
        trainer = known_truth_run(tmp_path, scope="machine", powercap_root=str(powercap.root), components=("cpu",))
    check_ticking_counter(logs, counter, min_logs=4)
    logged = [e["co2cb/step_power_w"] for e in entries(trainer, "co2cb/step_power_w")]
    assert logged == [log.values["co2cb/step_power_w"] for log in logs]
    lines = records(tmp_path)
    for w in windows(lines, "train_epoch") + windows(lines, "val_epoch"):
        assert w["mean_power_w"] == pytest.approx(60.0, rel=0.1 + 2 * counter.max_lag_s / 0.3), w["name"]
    check_final_total(trainer, tmp_path)


def test_known_truth_the_fake_gpu_at_a_varying_power(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nvml: Any
) -> None:
    gpu = sine_gpu()
    nvml(gpu)
    monkeypatch.setattr(hf_adapter, "cuda_devices", lambda device, many=False: ([0], True))  # as on a CUDA device
    logs = spy_step_logs(monkeypatch)
    trainer = known_truth_run(tmp_path, components=("gpu",))
    assert records(tmp_path)[0]["meters"][0]["provenance"] == "measured-counter"
    check_sine_gpu(logs, gpu)
    assert [e["co2cb/step_energy_kwh"] for e in entries(trainer, "co2cb/step_energy_kwh")] == [
        log.values["co2cb/step_energy_kwh"] for log in logs
    ]
    check_final_total(trainer, tmp_path)
