"""Checks shared by tests/test_keras_tf.py and tests/test_keras_torch.py.

Each test module runs tests/scripts/keras_train.py once in a process of its own (Keras chooses its
backend at import; the rest of the suite imports torch), then the tests of :class:`KerasChecks`
compare what real Keras callbacks recorded (History, CSVLogger, TensorBoard event files, the
progress bar) with the run records. Each module subclasses it as ``Test...`` and gets its
``trained`` fixture from :func:`trained_on`.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

import co2cb
from co2cb.core.config import DEFAULT_INTERVAL_S
from tests.known_truth import StepLog, TickingRecord, check_sine_gpu, check_ticking_counter, sine_gpu

SCRIPT = Path(__file__).with_name("keras_train.py")
ROOT = SCRIPT.parents[2]
SCENARIOS = ("loggers", "budget", "failures", "hooks", "backup", "settings", "truth", "crash")
WATTS, INTENSITY, EPOCHS, BATCHES, LOG_STEPS, SCORE_STEP = 50.0, 100.0, 3, 12, 4, 1.5  # as in keras_train.py
KG_PER_KWH = INTENSITY / 1000

TRAIN_KEYS = {  # the default set's training values
    "co2cb/epoch_energy_kwh",
    "co2cb/epoch_co2_kg",
    "co2cb/epoch_power_w",
    "co2cb/total_energy_kwh",
    "co2cb/total_co2_kg",
    "co2cb/forecast_co2_kg",
}
VAL_KEYS = {"val_co2cb/epoch_energy_kwh", "val_co2cb/epoch_co2_kg"}
DETAIL_KEYS = {  # what log_detail=True adds (no GPU, no RAM meter: none of theirs)
    "co2cb/epoch_energy_cpu_kwh",
    "co2cb/intensity_g_per_kwh",
    "co2cb/forecast_energy_kwh",
    "val_co2cb/epoch_energy_cpu_kwh",
    "val_co2cb/epoch_power_w",
    "val_co2cb/intensity_g_per_kwh",
}
STEP_KEYS = (
    "co2cb/step_energy_kwh",
    "co2cb/step_co2_kg",
    "co2cb/step_power_w",
    "co2cb/total_energy_kwh",
    "co2cb/total_co2_kg",
)


@dataclass
class Trained:
    """What one run of keras_train.py left: a folder per scenario, its output and exit status."""

    out: Path
    output: str
    returncode: int

    def result(self, scenario: str) -> dict[str, Any]:
        return json.loads((self.out / scenario / "result.json").read_text())

    def runs(self, scenario: str) -> list[list[dict[str, Any]]]:
        """The scenario's run records, in the order the runs started."""
        folders = sorted((self.out / scenario / "runs").iterdir())
        return sorted((co2cb.read_records(f) for f in folders), key=lambda r: r[0]["start_unix_s"])

    def count(self, text: str) -> int:
        """How many times ``text`` was printed or logged."""
        return self.output.count(text)


def interpreter(backend: str) -> str:
    """The Python that trains on ``backend``: ``CO2CB_KERAS_<BACKEND>_PYTHON`` (e.g. a virtual environment
    that has TensorFlow, kept apart from the suite's), else this one."""
    return os.environ.get(f"CO2CB_KERAS_{backend.upper()}_PYTHON") or sys.executable


def can_train(backend: str, *modules: str) -> bool:
    """Whether ``backend`` can train here: its interpreter exists, or this one has ``modules``."""
    python = interpreter(backend)
    if python != sys.executable:
        return Path(python).is_file()
    return all(find_spec(m) is not None for m in ("keras", "tensorboard", *modules))


def needs(backend: str, *modules: str) -> pytest.MarkDecorator:
    """Skip a test module where ``backend`` cannot train (see :func:`can_train`), saying what to install."""
    return pytest.mark.skipif(
        not can_train(backend, *modules),
        reason=f"needs keras, tensorboard and {', '.join(modules)} (pip install -e '.[keras]' tensorboard "
        f"{' '.join(modules)}), or CO2CB_KERAS_{backend.upper()}_PYTHON naming a Python that has them",
    )


def trained_on(backend: str) -> Any:
    """The ``trained`` fixture of a test module: every scenario run once on ``backend``."""

    @pytest.fixture(scope="module")
    def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
        return train(backend, Path(tmp_path_factory.mktemp(f"keras_{backend}")))

    return trained


def train(backend: str, out: Path) -> Trained:
    """Run every scenario on one Keras backend, in a fresh process (co2cb and the tests from this checkout).

    The last scenario ends the process with an uncaught exception: exit status 1 and its traceback.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    env.pop("CO2CB_QUIET", None)
    done = subprocess.run(
        [interpreter(backend), str(SCRIPT), str(out), *SCENARIOS],
        env=env,
        cwd=out,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = done.stdout + done.stderr
    for name in SCENARIOS[:-1]:
        assert f"=== scenario {name} done" in output, output[-6000:]
    return Trained(out, output, done.returncode)


def windows(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The epoch windows the monitor wrote (not those the tracker closed at stop), by epoch."""
    found = [r for r in records if r["type"] == "window" and r["name"] == name and "epoch" in r["meta"]]
    return sorted(found, key=lambda r: r["meta"]["epoch"])


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    return next(r for r in records if r["type"] == "summary")


def approx(value: float, rel: float = 1e-9) -> Any:
    return pytest.approx(value, rel=rel, abs=1e-15)


def expected_epoch_logs(records: list[dict[str, Any]], history: dict[str, list[float]]) -> list[dict[str, float]]:
    """The co2cb keys each epoch's logs must hold, from the run record (the running totals from History).

    The total is the run so far: every epoch and validation, and the time around them (start-up, the
    gaps between epochs), so at least the epochs' sum; at the end, the record's total.
    """
    out, epochs_kwh, epochs_co2 = [], 0.0, 0.0
    vals = {w["meta"]["epoch"]: w for w in windows(records, "val_epoch")}
    for i, train in enumerate(windows(records, "train_epoch")):
        epoch = train["meta"]["epoch"]
        excluded = train["meta"]["validation_excluded"]
        epochs_kwh += train["energy_kwh"]["total"] + excluded["energy_kwh"]["total"]
        epochs_co2 += train["co2_kg"] + excluded["co2_kg"]
        total_co2 = history["co2cb/total_co2_kg"][i]
        assert epochs_co2 * (1 - 1e-9) <= total_co2 <= summary(records)["co2_kg"] * (1 + 1e-9)
        assert history["co2cb/total_energy_kwh"][i] >= epochs_kwh * (1 - 1e-9)
        logs = {
            "co2cb/epoch_energy_kwh": train["energy_kwh"]["total"],
            "co2cb/epoch_co2_kg": train["co2_kg"],
            "co2cb/epoch_power_w": train["mean_power_w"],
            "co2cb/total_co2_kg": total_co2,
            "co2cb/total_energy_kwh": history["co2cb/total_energy_kwh"][i],
        }
        if i < EPOCHS - 1:  # at the last epoch History holds the final total; the forecast is this epoch's
            logs["co2cb/forecast_co2_kg"] = total_co2 / ((epoch + 1) / EPOCHS)
        if epoch in vals:
            val = vals[epoch]
            assert val["co2_kg"] == approx(excluded["co2_kg"])  # validation is what the train value excludes
            logs.update(
                {"val_co2cb/epoch_energy_kwh": val["energy_kwh"]["total"], "val_co2cb/epoch_co2_kg": val["co2_kg"]}
            )
        out.append(logs)
    return out


def check_tensorboard(
    runs: dict[str, dict[str, list[list[float]]]], history: dict[str, list[float]], final: bool
) -> None:
    """Keras' TensorBoard layout: train keys in ``train``, ``val_`` keys unprefixed in ``validation``.

    ``final``: the callback's own writer, which also gets the run's final total at the last epoch's step;
    Keras' own writer keeps the total at the last epoch's end (History then holds the final one).
    """
    for key in TRAIN_KEYS | VAL_KEYS:
        run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
        points = runs[run][f"epoch_{name}"]
        if "total" in key and final:
            assert points[-1] == [EPOCHS - 1, approx(history[key][-1], rel=1e-6)], key
            points = points[:-1]
        assert [step for step, _ in points] == list(range(EPOCHS)), key
        for epoch, ((_, value), logged) in enumerate(zip(points, history[key])):
            if "total" in key and epoch == EPOCHS - 1:  # the last epoch's end, before the final figure
                assert value <= logged * (1 + 1e-6), key
                continue
            assert value == approx(logged, rel=1e-6), key  # float32 in the event file
    steps = list(range(LOG_STEPS, EPOCHS * BATCHES + 1, LOG_STEPS))
    batch = {key: runs["train"][f"batch_{key}"] for key in STEP_KEYS}
    for key, points in batch.items():
        assert [step for step, _ in points] == steps, key
    for (_, kwh), (_, co2), (_, watts) in zip(*(batch[k] for k in STEP_KEYS[:3])):
        assert kwh > 0
        assert co2 == approx(kwh * KG_PER_KWH, rel=1e-6)
        assert watts == approx(WATTS, rel=1e-3)
    run_co2 = [v for _, v in batch["co2cb/total_co2_kg"]]
    assert run_co2 == sorted(run_co2) and run_co2[0] > 0


class KerasChecks:
    """Every check that holds on each backend (a test module subclasses it as ``Test...``)."""

    def test_history_holds_every_epoch_value_of_the_run_record(self, trained: Trained) -> None:
        result = trained.result("loggers")
        history = result["history"]
        (records,) = trained.runs("loggers")
        assert result["epochs"] == list(range(EPOCHS))
        # exactly the default set: per-step values only in batch logs
        assert {k for k in history if "co2cb/" in k} == TRAIN_KEYS | VAL_KEYS
        expected = expected_epoch_logs(records, history)
        assert len(expected) == EPOCHS
        for epoch, logs in enumerate(expected):
            for key, value in logs.items():
                assert history[key][epoch] == approx(value), (key, epoch)
        # at train end History's last total is the record's (CSVLogger kept the last epoch's end)
        assert history["co2cb/total_co2_kg"][-1] == approx(summary(records)["co2_kg"], rel=1e-12)
        assert history["co2cb/total_energy_kwh"][-1] == approx(summary(records)["energy_kwh"]["total"], rel=1e-12)
        assert history["co2cb/forecast_co2_kg"][-1] == approx(summary(records)["forecast"]["co2_kg"])

    def test_known_power_and_intensity_give_the_logged_values(self, trained: Trained) -> None:
        history = trained.result("loggers")["history"]
        for prefix in ("co2cb/", "val_co2cb/"):
            for epoch in range(EPOCHS):
                kwh = history[prefix + "epoch_energy_kwh"][epoch]
                assert kwh > 0
                assert history[prefix + "epoch_co2_kg"][epoch] == approx(kwh * KG_PER_KWH)
        assert history["co2cb/epoch_power_w"] == [approx(WATTS, rel=1e-3)] * EPOCHS
        detail = trained.result("settings")["detail_history"]  # log_detail=True: the per-component split and more
        assert {k for k in detail if "co2cb/" in k} == TRAIN_KEYS | VAL_KEYS | DETAIL_KEYS
        for prefix in ("co2cb/", "val_co2cb/"):
            assert detail[prefix + "intensity_g_per_kwh"] == [approx(INTENSITY)]
            assert detail[prefix + "epoch_energy_cpu_kwh"] == [approx(detail[prefix + "epoch_energy_kwh"][0])]
        assert detail["val_co2cb/epoch_power_w"] == [approx(WATTS, rel=1e-3)]

    def test_validation_is_kept_apart_from_training(self, trained: Trained) -> None:
        (records,) = trained.runs("loggers")
        trains, vals = windows(records, "train_epoch"), windows(records, "val_epoch")
        assert [w["meta"]["epoch"] for w in vals] == list(range(EPOCHS))
        for train, val in zip(trains, vals):
            assert train["meta"]["validation_excluded"]["seconds"] == approx(val["seconds"])
            assert train["start_unix_s"] < val["start_unix_s"] < val["end_unix_s"] <= train["end_unix_s"]

    def test_csv_logger_gets_the_columns_and_values(self, trained: Trained) -> None:
        history = trained.result("loggers")["history"]
        with open(trained.out / "loggers" / "log.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == EPOCHS
        assert set(rows[0]) >= TRAIN_KEYS | VAL_KEYS
        for epoch, row in enumerate(rows):
            assert int(row["epoch"]) == epoch
            for key in TRAIN_KEYS | VAL_KEYS:
                if epoch < EPOCHS - 1 or "total" not in key:  # History's last total became the final one
                    assert float(row[key]) == approx(history[key][epoch]), key

    def test_callback_tensorboard_dir_writes_the_same_scalars_as_keras(self, trained: Trained) -> None:
        result = trained.result("loggers")
        check_tensorboard(result["own_tb"], result["history"], final=True)

    def test_per_step_values_reach_the_logs_of_their_batch(self, trained: Trained) -> None:
        result = trained.result("loggers")
        logged = result["batch_logs"]  # [epoch, batch, values] where a later callback saw co2cb values
        expected = [(e, b) for e in range(EPOCHS) for b in range(BATCHES) if (e * BATCHES + b + 1) % LOG_STEPS == 0]
        assert [(e, b) for e, b, _ in logged] == expected
        own = {k: dict(map(tuple, result["own_tb"]["train"][f"batch_{k}"])) for k in STEP_KEYS}
        for epoch, batch, values in logged:
            assert set(values) == set(STEP_KEYS)
            for key in STEP_KEYS:  # the same value as the callback's event file at the same global batch
                assert own[key][epoch * BATCHES + batch + 1] == approx(values[key], rel=1e-6), key

    def test_callback_listed_after_the_loggers_still_reaches_them(self, trained: Trained) -> None:
        result = trained.result("loggers")
        before, after = result["seen_before"], result["seen_after"]
        assert before["train_begins"] == after["train_begins"] == 1  # reordering skipped and repeated no one
        for keys in before["epoch_keys"]:  # a plain callback listed before CO2Callback saw its values
            assert set(keys) >= TRAIN_KEYS | VAL_KEYS
        ahead = ("TensorBoard, " if result["backend"] == "tensorflow" else "") + "CSVLogger, Seen, AddScore"
        assert trained.count(f"CO2Callback moved ahead of {ahead} so that they see its values") == 1

    def test_progress_bar_keeps_its_line_and_the_forecast_follows_it(self, trained: Trained) -> None:
        lines = trained.output.splitlines()
        bars = [i for i, line in enumerate(lines) if line.startswith(f"{BATCHES}/{BATCHES} ")]
        assert len(bars) == EPOCHS
        for epoch, i in enumerate(bars[:-1]):
            assert "co2cb" not in lines[i]
            assert lines[i + 1].startswith(f"co2cb: after epoch {epoch + 1} ({(epoch + 1) / EPOCHS:.0%} done)")
        assert lines[bars[-1] + 1].startswith("co2cb: training used ")  # no forecast at 100 %

    def test_per_step_values_keep_keras_async_batch_dispatch(self, trained: Trained) -> None:
        # async_safe: where the backend allows it (torch, JAX), Keras keeps batch ends on its thread pool
        result = trained.result("loggers")
        assert result["async_train_with_callback"] is (result["backend"] != "tensorflow")

    def test_forecast_after_the_first_epoch_and_run_record(self, trained: Trained) -> None:
        result = trained.result("loggers")
        (records,) = trained.runs("loggers")
        header, end = records[0], summary(records)
        assert header["run_name"] == "keras-loggers"
        assert header["tags"] == {"model": "dense", "backend": result["backend"]}
        plan = header["job"]["framework_plan"]
        assert (plan["max_epochs"], plan["steps_per_epoch"], plan["backend"]) == (EPOCHS, BATCHES, result["backend"])
        assert end["status"] == "completed"
        assert end["epochs"] == EPOCHS
        assert end["final_metrics"] == {
            "val_loss": approx(result["history"]["val_loss"][-1]),
            "loss": approx(result["history"]["loss"][-1]),
            "val_score": SCORE_STEP * (EPOCHS - 1),  # added by a callback that now runs after this one
        }
        assert end["forecast"]["progress"] == approx(1.0)
        assert end["co2_kg"] >= result["history"]["co2cb/total_co2_kg"][-1]  # the run holds its epochs
        assert result["record_lines_unchanged_by_evaluate"]

    def test_carbon_budget_stops_training(self, trained: Trained) -> None:
        result = trained.result("budget")
        at_epoch, at_step = trained.runs("budget")
        assert result["epochs"] == [0]  # fit(epochs=5) stopped by model.stop_training after the first
        assert summary(at_epoch)["status"] == "stopped by the carbon budget"
        assert "carbon budget reached" in summary(at_epoch)["stop_reason"]
        assert summary(at_epoch)["steps"]["step"]["count"] == BATCHES * 4 // 3  # no validation split here
        assert result["step_epochs"] == [0]  # the first step log (batch 2) passed it: the epoch ended there
        assert summary(at_step)["status"] == "stopped by the carbon budget"
        assert summary(at_step)["steps"]["step"]["count"] == 2

    def test_a_failing_meter_or_writer_gives_one_warning_and_training_goes_on(self, trained: Trained) -> None:
        result = trained.result("failures")
        meter, writes, _, _ = trained.runs("failures")
        assert result["epochs"] == list(range(EPOCHS))
        assert {k for k in result["history"] if "co2cb/" in k} == TRAIN_KEYS  # measured on with the meter left
        assert trained.count("meter test:raising is unavailable from now on") == 1
        assert [x["meter"] for x in summary(meter)["meter_losses"]] == ["test:raising"]
        assert trained.count("co2cb: TensorBoardOutput.open failed (NotADirectoryError") == 1
        assert trained.count("co2cb: TensorBoardOutput.write failed (OSError: [Errno 28] No space left on device)") == 1
        assert len(result["writes_history"]["co2cb/epoch_co2_kg"]) == EPOCHS
        assert summary(meter)["status"] == summary(writes)["status"] == "completed"

    def test_a_fit_that_raises_is_recorded_as_failed_at_once(self, trained: Trained) -> None:
        result = trained.result("failures")
        _, _, failed, again = trained.runs("failures")
        assert result["raised"] == "user callback failed"
        assert result["stopped_after_s"] < 3  # by the fit watch, while the caller handles the error
        assert summary(failed)["status"] == "failed: RuntimeError: user callback failed"
        assert [w["meta"]["epoch"] for w in windows(failed, "train_epoch")] == [0, 1]
        assert summary(again)["status"] == "completed"  # the same callback measures the next fit
        assert len(result["history_after_error"]["co2cb/epoch_co2_kg"]) == 2

    def test_an_uncaught_exception_is_recorded_before_the_interpreter_ends(self, trained: Trained) -> None:
        assert trained.returncode == 1
        assert trained.output.rstrip().endswith("RuntimeError: user callback failed")
        (records,) = trained.runs("crash")
        assert summary(records)["status"] == "failed: RuntimeError: user callback failed"
        assert [w["meta"]["epoch"] for w in windows(records, "train_epoch")] == [0, 1]

    def test_a_fit_that_backup_and_restore_resumes_continues_the_run(self, trained: Trained) -> None:
        result = trained.result("backup")
        first, second = trained.runs("backup")
        # the failed fit closed epochs 0-2; BackupAndRestore saved after epoch 1: the state of 2 epochs is taken
        assert [s["epochs_done"] for s in result["saved"]] == [2, 3]
        assert second[0]["resumed_from"] == {
            "run_id": first[0]["run_id"],
            "run_folder": result["saved"][0]["run_folder"],
            "epochs_done": 2,
        }
        assert [w["meta"]["epoch"] for w in windows(second, "train_epoch")] == [2, 3]
        whole = summary(second)["resumed_total"]
        assert whole["co2_kg"] == approx(result["saved"][0]["totals"][3] + summary(second)["co2_kg"])
        assert result["history"]["co2cb/total_co2_kg"][-1] == approx(whole["co2_kg"])  # the whole run's
        assert not result["backup_left"]  # Keras removed the folder, co2cb's state with it

    def test_hooks_called_without_a_callback_list_warn_once_and_close_an_open_run(self, trained: Trained) -> None:
        open_run, closed = trained.runs("hooks")
        assert trained.count("CO2Callback is not called through a keras.callbacks.CallbackList") == 1
        assert summary(open_run)["status"] == "failed: FitAborted: fit ended without on_train_end"
        assert summary(closed)["status"] == "completed"
        assert set(trained.result("hooks")["epoch_logs"]) == TRAIN_KEYS

    def test_invalid_options_are_refused_with_the_fix_and_save_false_writes_nothing(self, trained: Trained) -> None:
        result = trained.result("settings")
        errors = result["errors"]
        assert errors["log_steps"].startswith("ValueError: log_steps=-1 is not valid: give an integer >= 0")
        assert errors["budget_kg"].startswith("ConfigError: budget_kg=0 is not valid")
        assert errors["budget_on"] == "ConfigError: budget_on='epoch' is not valid: use 'total' or 'forecast'"
        assert errors["pids"].startswith("ConfigError: pids cannot be passed")
        assert errors["interval_s"].startswith("ConfigError: ")
        assert result["run_folder"] is None and result["runs"] == []
        assert len(result["history"]["co2cb/epoch_co2_kg"]) == 1

    def test_the_callback_tensorboard_dir_gets_the_provenance(self, trained: Trained) -> None:
        text = trained.result("loggers")["own_tb_text"]["co2cb/provenance"]
        (records,) = trained.runs("loggers")
        assert f"| co2cb/run_id | {records[0]['run_id']} |" in text
        assert (
            "| co2cb/intensity_g_per_kwh | 100.0 |" in text and "| co2cb/intensity_source | given by the user |" in text
        )
        assert "| co2cb/meter_cpu | test:constant (estimate) |" in text and "| co2cb/meter_gpu | not measured |" in text

    def test_known_truth_a_ticking_rapl_counter_at_60_w(self, trained: Trained) -> None:
        """A RAPL counter at 60 W moving every 10 ms, machine scope, default interval: every step log reads 60 W,
        every step energy is 60 W over its interval, each epoch's power too, and History ends at the record's total."""
        found = trained.result("truth")["rapl"]
        assert found["interval_s"] == DEFAULT_INTERVAL_S
        counter = TickingRecord(found["t0"], found["max_lag_s"])
        check_ticking_counter([StepLog(*log) for log in found["logs"]], counter, min_logs=2 * BATCHES // 2)
        history = found["history"]
        lag = 3 * counter.max_lag_s / 0.3
        assert history["co2cb/epoch_power_w"] == [approx(60.0, rel=0.1 + lag)] * 2
        rapl_run = trained.runs("truth")[0]
        for w in windows(rapl_run, "train_epoch") + windows(rapl_run, "val_epoch"):
            assert w["mean_power_w"] == approx(60.0, rel=0.1 + lag), w["name"]
        assert history["co2cb/total_co2_kg"][-1] == approx(summary(rapl_run)["co2_kg"], rel=1e-12)

    def test_known_truth_the_fake_gpu_at_a_varying_power(self, trained: Trained) -> None:
        found = trained.result("truth")["nvml"]
        assert found["provenance"] == "measured-counter"
        check_sine_gpu([StepLog(*log) for log in found["logs"]], sine_gpu(found["t0"]))
        nvml_run = trained.runs("truth")[1]
        assert found["history"]["co2cb/total_co2_kg"][-1] == approx(summary(nvml_run)["co2_kg"], rel=1e-12)
