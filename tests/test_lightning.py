"""CO2Callback against the real Lightning: real CPU training, real loggers, TensorBoard's event files and server.

Most runs measure :class:`tests.lightning_models.StepJoules`, an energy counter the model advances by
a fixed amount per batch: recorded windows read the meters at their boundaries, so every epoch's
energy and CO2 is known exactly whatever the machine's speed. The import-path runs measure with the
meters co2cb discovers on this machine. Every value the loggers received is read back (TensorBoard's
``EventAccumulator``, the CSV file, the ``tensorboard`` server's HTTP API) and checked against the run
record. The DDP test is in ``test_lightning_ddp.py``.

"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")
try:  # the standalone package is not in co2cb's `lightning` extra: only its own tests skip without it
    import pytorch_lightning as pl_package

    from co2cb.pytorch_lightning import CO2Callback as PLCO2Callback
except ImportError:  # pragma: no cover - depends on what is installed
    pl_package = PLCO2Callback = None

import co2cb  # noqa: E402
from co2cb.lightning import CO2Callback  # noqa: E402
from tests.fakes.meters import ConstantPower, RaisingMeter  # noqa: E402
from tests.lightning_models import J_TRAIN, J_VAL, TRAIN_BATCHES, VAL_BATCHES, StepJoules, loaders, tiny_module  # noqa: E402

KWH = 3.6e6  # joules per kWh
EPOCHS = 3
LOG_EVERY = 4
E_TRAIN = TRAIN_BATCHES * J_TRAIN  # joules of one training epoch (validation apart)
E_VAL = VAL_BATCHES * J_VAL  # joules of one validation epoch
E_EPOCH = E_TRAIN + E_VAL
COMPONENTS = ("gpu", "cpu", "ram")
EPOCH_FIELDS = ("co2_kg", "energy_kwh", "power_w", *(f"energy_{c}_kwh" for c in COMPONENTS))
TB_REL = 1e-6  # TensorBoard stores float32
CSV_REL = 1e-12
COUNTER = "counter"
needs_pytorch_lightning = pytest.mark.skipif(
    pl_package is None, reason="the pytorch_lightning package is not installed"
)


# ---------------------------------------------------------------------------- running a fit
@dataclass
class Run:
    """A finished (or failed) fit and what it left behind."""

    trainer: Any
    callback: Any
    counter: StepJoules | None
    stdout: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        folder = self.callback.co2.tracker.run_folder
        assert folder is not None
        return folder

    @property
    def records(self) -> list[dict[str, Any]]:
        return co2cb.read_records(self.folder)

    @property
    def header(self) -> dict[str, Any]:
        header = self.records[0]
        assert header["type"] == "header"
        return header

    @property
    def summary(self) -> dict[str, Any]:
        (summary,) = [r for r in self.records if r["type"] == "summary"]
        return summary

    def windows(self, name: str) -> list[dict[str, Any]]:
        found = [r for r in self.records if r["type"] == "window" and r["name"] == name]
        return sorted(found, key=lambda r: r["meta"].get("epoch", -1))

    def co2(self, joules: float) -> float:
        """The CO2 of ``joules`` at this run's intensity and PUE, kg."""
        return joules / KWH * self.header["intensity"]["g_per_kwh"] / 1000 * self.header["pue"]

    def logger_of(self, kind: type) -> Any:
        (logger,) = [lg for lg in self.trainer.loggers if isinstance(lg, kind)]
        return logger


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def co2cb_warnings() -> Iterator[list[str]]:
    """The warnings co2cb logs inside the block (works in module-scoped fixtures, unlike caplog)."""
    handler = _Collect()
    logger = logging.getLogger("co2cb")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def make(
    root: Path,
    *,
    pl: Any = L,
    callback_class: Any = CO2Callback,
    meters: Any = COUNTER,
    loggers: Any = (),
    max_epochs: int = EPOCHS,
    module_options: dict[str, Any] | None = None,
    extra_callbacks: Any = (),
    trainer_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Any, Any, Any, StepJoules | None]:
    """A trainer with a CO2Callback (Tracker options in ``options``), its module and the energy counter.

    ``meters``: ``"counter"`` (a fresh :class:`StepJoules`), a list of meters (a StepJoules among them
    is advanced by the model), or None for the meters co2cb discovers.
    """
    if meters == COUNTER:
        meters = [StepJoules()]
    counter = next((m for m in meters or () if isinstance(m, StepJoules)), None)
    if meters is not None:
        options["meters"] = meters
    options.setdefault("output_dir", root / "runs")
    options.setdefault("interval_s", 0.05)
    if "intensity" not in options:
        options.setdefault("region", "FR")
    callback = callback_class(**options)
    kwargs: dict[str, Any] = {
        "max_epochs": max_epochs,
        "callbacks": [callback, *extra_callbacks],
        "logger": list(loggers) or False,
        "log_every_n_steps": LOG_EVERY,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": root,
        "accelerator": "cpu",
        "devices": 1,
    }
    kwargs.update(trainer_options or {})
    trainer = pl.Trainer(**kwargs)
    module = tiny_module(pl, meter=counter, **(module_options or {}))
    return trainer, callback, module, counter


def fit(root: Path, *, ckpt_path: str | None = None, **kwargs: Any) -> Run:
    """Train the tiny model (see :func:`make`); the run's stdout and co2cb warnings are kept."""
    trainer, callback, module, counter = make(root, **kwargs)
    train, val = loaders()
    out = io.StringIO()
    with co2cb_warnings() as warnings, contextlib.redirect_stdout(out), mock.patch.dict(os.environ):
        os.environ.pop("CO2CB_QUIET", None)  # the forecast lines are part of what is checked
        trainer.fit(module, train, val, ckpt_path=ckpt_path)
    return Run(trainer, callback, counter, out.getvalue(), warnings)


# ---------------------------------------------------------------------------- reading the loggers back
Series = dict[str, list[tuple[int, float]]]


def tb_series(log_dir: str | Path) -> Series:
    """Every scalar in a TensorBoard log folder, read with TensorBoard's own EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def csv_series(log_dir: str | Path) -> Series:
    """Every metric in a CSVLogger's ``metrics.csv``, in row order."""
    out: Series = {}
    with open(Path(log_dir) / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    out.setdefault(key, []).append((int(row["step"]), float(value)))
    return out


def steps(series: Series, tag: str) -> list[int]:
    return [s for s, _ in series[tag]]


def values(series: Series, tag: str) -> list[float]:
    return [v for _, v in series[tag]]


def approx(expected: Any, rel: float) -> Any:
    return pytest.approx(expected, rel=rel, abs=0)


def measured_components(run: Run) -> list[str]:
    """The components some meter of the run measures (only those are logged)."""
    return [c for c in COMPONENTS if c in {m["component"] for m in run.header["meters"]}]


def epoch_expectations(run: Run) -> dict[str, list[float]]:
    """What every per-epoch tag must hold, from the run record alone (in epoch order)."""
    train, val = run.windows("train_epoch"), run.windows("val_epoch")
    expected: dict[str, list[float]] = {}
    for kind, ws in (("train", train), ("val", val)):
        p = f"co2cb/{kind}_epoch_"
        expected[p + "co2_kg"] = [w["co2_kg"] for w in ws]
        expected[p + "energy_kwh"] = [w["energy_kwh"]["total"] for w in ws]
        expected[p + "power_w"] = [w["mean_power_w"] for w in ws]
        for c in measured_components(run):
            expected[p + f"energy_{c}_kwh"] = [w["energy_kwh"].get(c, 0.0) for w in ws]
    # running totals: the whole epoch, training and its validation together
    expected["co2cb/total_co2_kg"] = list(accumulate(t["co2_kg"] + v["co2_kg"] for t, v in zip(train, val)))
    expected["co2cb/total_energy_kwh"] = list(
        accumulate(t["energy_kwh"]["total"] + v["energy_kwh"]["total"] for t, v in zip(train, val))
    )
    expected["co2cb/forecast_co2_kg"] = [t["meta"]["forecast"]["co2_kg"] for t in train]
    expected["co2cb/forecast_energy_kwh"] = [t["meta"]["forecast"]["energy_kwh"] for t in train]
    return expected


def check_against_record(run: Run, series: Series, rel: float, epochs: int = EPOCHS) -> None:
    """Every per-epoch and per-step value the logger holds agrees with the run record."""
    train, val = run.windows("train_epoch"), run.windows("val_epoch")
    assert [w["meta"]["epoch"] for w in train] == list(range(epochs))
    assert [w["meta"]["epoch"] for w in val] == list(range(epochs))  # the sanity check is no epoch
    epoch_steps = [TRAIN_BATCHES * (e + 1) for e in range(epochs)]  # global_step at each epoch's end

    expected = epoch_expectations(run)
    for tag, want in expected.items():
        assert steps(series, tag) == epoch_steps, tag
        assert values(series, tag) == approx(want, rel), tag
    unmeasured = [c for c in COMPONENTS if c not in measured_components(run)]
    assert unmeasured and not [tag for tag in series for c in unmeasured if f"_energy_{c}_" in tag]

    # training + validation add up to the epoch: the train window says which validation it left out
    for t, v in zip(train, val):
        excluded = t["meta"]["validation_excluded"]
        assert excluded["co2_kg"] == approx(v["co2_kg"], 1e-12)
        assert excluded["energy_kwh"]["total"] == approx(v["energy_kwh"]["total"], 1e-12)
        assert t["seconds"] > 0 and v["seconds"] > 0
        for w in (t, v):
            assert w["mean_power_w"] == approx(w["energy_kwh"]["total"] * KWH / w["seconds"], 1e-9)
            assert w["energy_kwh"]["total"] == approx(sum(w["energy_kwh"].get(c, 0.0) for c in COMPONENTS), 1e-9)
    # the summary's run window holds the epochs (and what fell between them)
    assert run.summary["co2_kg"] >= expected["co2cb/total_co2_kg"][-1] * (1 - 1e-9)

    # the forecast: the totals over the share of the run done
    total_steps = run.header["job"]["framework_plan"]["total_steps"]
    for e, t in enumerate(train):
        forecast = t["meta"]["forecast"]
        assert forecast["progress"] == approx(epoch_steps[e] / total_steps, 1e-12)
        assert forecast["co2_kg"] == approx(expected["co2cb/total_co2_kg"][e] / forecast["progress"], 1e-9)
    assert run.summary["forecast"] == train[-1]["meta"]["forecast"]

    # the intensity used, logged with every epoch (validation and training)
    intensity = run.header["intensity"]["g_per_kwh"]
    assert steps(series, "co2cb/intensity_g_per_kwh") == [s for s in epoch_steps for _ in (0, 1)]
    assert values(series, "co2cb/intensity_g_per_kwh") == approx([intensity] * 2 * epochs, rel)

    # per step: every log_every_n_steps, at global_step
    log_steps = list(range(LOG_EVERY, epochs * TRAIN_BATCHES + 1, LOG_EVERY))
    for tag in ("co2cb/step_co2_kg", "co2cb/step_energy_kwh", "co2cb/step_power_w", "co2cb/run_co2_kg"):
        assert steps(series, tag) == log_steps, tag
        assert all(v >= 0 for v in values(series, tag)), tag
    co2_per_kwh = intensity / 1000 * run.header["pue"]
    step_co2 = [kwh * co2_per_kwh for kwh in values(series, "co2cb/step_energy_kwh")]
    assert values(series, "co2cb/step_co2_kg") == approx(step_co2, max(rel, 1e-9))
    assert "co2_g" not in series  # progress-bar value only when asked, and never in the loggers


# ---------------------------------------------------------------------------- the main run
@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """3 epochs, TensorBoard and CSV loggers, counter meter, run name, tags and a monitored metric."""
    root = tmp_path_factory.mktemp("main")
    return fit(
        root,
        loggers=[L.loggers.TensorBoardLogger(root / "tb"), L.loggers.CSVLogger(root / "csv")],
        run_name="tiny-mlp",
        tags={"model": "mlp", "data": "generated"},
        monitor=["val_acc"],
    )


def test_tensorboard_event_files_hold_every_value_of_the_record(main_run: Run) -> None:
    series = tb_series(main_run.logger_of(L.loggers.TensorBoardLogger).log_dir)
    check_against_record(main_run, series, TB_REL)
    assert "train_loss" in series and "val_acc" in series  # the user's own metrics are untouched


def test_csv_holds_every_value_of_the_record(main_run: Run) -> None:
    series = csv_series(main_run.logger_of(L.loggers.CSVLogger).log_dir)
    check_against_record(main_run, series, CSV_REL)


def test_epoch_energy_is_exactly_what_the_steps_drew(main_run: Run) -> None:
    run = main_run
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/train_epoch_energy_kwh") == approx([E_TRAIN / KWH] * EPOCHS, 1e-9)
    assert values(series, "co2cb/train_epoch_energy_cpu_kwh") == approx([E_TRAIN / KWH] * EPOCHS, 1e-9)
    assert "co2cb/train_epoch_energy_gpu_kwh" not in series  # no GPU meter: no zero column for it
    assert values(series, "co2cb/val_epoch_energy_kwh") == approx([E_VAL / KWH] * EPOCHS, 1e-9)
    assert values(series, "co2cb/train_epoch_co2_kg") == approx([run.co2(E_TRAIN)] * EPOCHS, 1e-9)
    assert values(series, "co2cb/val_epoch_co2_kg") == approx([run.co2(E_VAL)] * EPOCHS, 1e-9)
    assert values(series, "co2cb/total_co2_kg") == approx([run.co2(E_EPOCH * (e + 1)) for e in range(EPOCHS)], 1e-9)
    # every epoch is 1/EPOCHS of the run and draws the same: the forecast is the whole run from the start
    assert values(series, "co2cb/forecast_co2_kg") == approx([run.co2(E_EPOCH * EPOCHS)] * EPOCHS, 1e-9)
    assert values(series, "co2cb/forecast_energy_kwh") == approx([E_EPOCH * EPOCHS / KWH] * EPOCHS, 1e-9)
    assert run.summary["energy_kwh"]["total"] == approx(E_EPOCH * EPOCHS / KWH, 1e-9)
    assert run.summary["co2_kg"] == approx(run.co2(E_EPOCH * EPOCHS), 1e-9)
    assert run.summary["status"] == "completed" and run.summary["epochs"] == EPOCHS
    assert run.summary["steps"]["step"]["count"] == EPOCHS * TRAIN_BATCHES
    assert run.warnings == []


def test_forecast_is_printed_after_every_epoch_but_the_last(main_run: Run) -> None:
    lines = [line for line in main_run.stdout.splitlines() if "forecast" in line]
    assert len(lines) == EPOCHS - 1  # at 100 % the run is done: nothing left to forecast
    for e, (line, done) in enumerate(zip(lines, ("33%", "67%"))):
        assert line.startswith(f"co2cb: after epoch {e + 1} ({done} done) the run is forecast at 102 J and "), line
        assert line.endswith("CO2e")


def test_run_name_tags_and_monitored_metric_are_recorded(main_run: Run) -> None:
    header, summary = main_run.header, main_run.summary
    assert header["run_name"] == "tiny-mlp"
    assert header["tags"] == {"model": "mlp", "data": "generated"}
    assert header["monitor"] == ["val_acc"]
    assert header["job"]["framework_plan"] == {
        "max_epochs": EPOCHS,
        "max_steps": -1,
        "total_steps": EPOCHS * TRAIN_BATCHES,
        "framework": "lightning.pytorch",
    }
    final = float(main_run.trainer.callback_metrics["val_acc"])
    assert summary["final_metrics"] == {"val_acc": final}
    assert 0.5 < final <= 1.0  # the model did learn: the metric is the real one


def test_no_progress_bar_value_unless_asked(main_run: Run) -> None:
    assert "co2_g" not in main_run.trainer.progress_bar_metrics


# ---------------------------------------------------------------------------- the tensorboard server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def tensorboard_url(main_run: Run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``tensorboard`` server on 127.0.0.1 over the main run's log folder; killed afterwards."""
    beside = Path(sys.executable).parent / "tensorboard"
    exe = str(beside) if beside.exists() else shutil.which("tensorboard")
    if exe is None:
        pytest.skip("the tensorboard executable is not installed")
    logdir = Path(main_run.logger_of(L.loggers.TensorBoardLogger).save_dir)
    port = _free_port()
    log_file = tmp_path_factory.mktemp("tensorboard") / "server.log"
    with open(log_file, "wb") as log:
        server = subprocess.Popen(
            [
                exe,
                "--logdir",
                str(logdir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--load_fast=false",
                "--reload_interval",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"tensorboard exited with {server.returncode}: {log_file.read_text()[-2000:]}")
            with contextlib.suppress(OSError, ValueError):
                tags = _get_json(url + "/data/plugin/scalars/tags")
                if any("co2cb/train_epoch_co2_kg" in run_tags for run_tags in tags.values()):
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"tensorboard did not serve the CO2 tags in 90 s: {log_file.read_text()[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


def test_tensorboard_server_serves_the_co2_tags(main_run: Run, tensorboard_url: str) -> None:
    tags = _get_json(tensorboard_url + "/data/plugin/scalars/tags")
    runs = [run for run, run_tags in tags.items() if "co2cb/train_epoch_co2_kg" in run_tags]
    assert runs == ["lightning_logs/version_0"]
    (run,) = runs
    expected = epoch_expectations(main_run)
    for tag in (*expected, "co2cb/intensity_g_per_kwh", "co2cb/step_co2_kg", "co2cb/run_co2_kg"):
        assert tag in tags[run], tag
    epoch_steps = [TRAIN_BATCHES * (e + 1) for e in range(EPOCHS)]
    for tag in (
        "co2cb/train_epoch_co2_kg",
        "co2cb/val_epoch_co2_kg",
        "co2cb/total_co2_kg",
        "co2cb/forecast_co2_kg",
        "co2cb/train_epoch_energy_kwh",
    ):
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        points = _get_json(f"{tensorboard_url}/data/plugin/scalars/scalars?{query}")  # [wall_time, step, value]
        assert [p[1] for p in points] == epoch_steps, tag
        assert [p[2] for p in points] == approx(expected[tag], TB_REL), tag
    query = urllib.parse.urlencode({"run": run, "tag": "co2cb/step_co2_kg"})
    points = _get_json(f"{tensorboard_url}/data/plugin/scalars/scalars?{query}")
    assert [p[1] for p in points] == list(range(LOG_EVERY, EPOCHS * TRAIN_BATCHES + 1, LOG_EVERY))


# ---------------------------------------------------------------------------- import paths, default meters
@needs_pytorch_lightning
def test_import_paths_build_callbacks_for_their_own_package() -> None:
    assert issubclass(CO2Callback, L.Callback) and not issubclass(CO2Callback, pl_package.Callback)
    assert issubclass(PLCO2Callback, pl_package.Callback) and not issubclass(PLCO2Callback, L.Callback)
    assert CO2Callback.__module__ == "co2cb.lightning" and PLCO2Callback.__module__ == "co2cb.pytorch_lightning"


@pytest.mark.parametrize(
    "package", ["lightning.pytorch", pytest.param("pytorch_lightning", marks=needs_pytorch_lightning)]
)
def test_each_import_path_with_the_meters_co2cb_finds(tmp_path: Path, package: str) -> None:
    """``co2cb.lightning`` with ``lightning.pytorch.Trainer`` and ``co2cb.pytorch_lightning`` with
    ``pytorch_lightning.Trainer``, measuring with the meters co2cb discovers on this machine."""
    pl, callback_class = (L, CO2Callback) if package == "lightning.pytorch" else (pl_package, PLCO2Callback)
    epochs = 2
    run = fit(
        tmp_path,
        pl=pl,
        callback_class=callback_class,
        meters=None,
        max_epochs=epochs,
        loggers=[pl.loggers.TensorBoardLogger(tmp_path / "tb"), pl.loggers.CSVLogger(tmp_path / "csv")],
    )
    assert run.header["job"]["framework_plan"]["framework"] == package
    assert {m["component"] for m in run.header["meters"]} >= {"cpu", "ram"}  # discovered, not given
    check_against_record(run, tb_series(run.logger_of(pl.loggers.TensorBoardLogger).log_dir), TB_REL, epochs)
    check_against_record(run, csv_series(run.logger_of(pl.loggers.CSVLogger).log_dir), CSV_REL, epochs)
    assert run.summary["status"] == "completed" and run.summary["meter_losses"] == []
    assert run.summary["energy_kwh"]["total"] > 0 and run.summary["co2_kg"] > 0


# ---------------------------------------------------------------------------- forecast
def test_forecast_waits_for_forecast_after_epochs(tmp_path: Path) -> None:
    run = fit(tmp_path, forecast_after_epochs=2, loggers=[L.loggers.CSVLogger(tmp_path / "csv")])
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert steps(series, "co2cb/forecast_co2_kg") == [2 * TRAIN_BATCHES, 3 * TRAIN_BATCHES]
    assert values(series, "co2cb/forecast_co2_kg") == approx([run.co2(E_EPOCH * EPOCHS)] * 2, 1e-9)
    train = run.windows("train_epoch")
    assert "forecast" not in train[0]["meta"] and train[1]["meta"]["forecast"]["progress"] == approx(2 / 3, 1e-12)
    lines = [line for line in run.stdout.splitlines() if "forecast" in line]
    assert [line.split(" (")[0] for line in lines] == ["co2cb: after epoch 2"]  # and none at 100 %


def test_forecast_follows_max_steps(tmp_path: Path) -> None:
    max_steps = 40  # 2.5 epochs
    run = fit(
        tmp_path,
        max_epochs=10,
        trainer_options={"max_steps": max_steps},
        loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
    )
    assert run.trainer.global_step == max_steps
    assert run.header["job"]["framework_plan"]["total_steps"] == max_steps
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    ends = steps(series, "co2cb/forecast_co2_kg")
    assert ends == [TRAIN_BATCHES, 2 * TRAIN_BATCHES, max_steps]
    totals = values(series, "co2cb/total_co2_kg")
    assert values(series, "co2cb/forecast_co2_kg") == approx([t * max_steps / s for t, s in zip(totals, ends)], 1e-9)
    assert totals[0] == approx(run.co2(E_EPOCH), 1e-9)
    assert values(series, "co2cb/forecast_co2_kg")[-1] == approx(totals[-1], 1e-9)  # 100% done


# ---------------------------------------------------------------------------- carbon budget
@pytest.mark.parametrize(("log_steps", "stop_step"), [(True, LOG_EVERY), (False, TRAIN_BATCHES)])
def test_a_tiny_budget_stops_training_in_the_first_epoch(tmp_path: Path, log_steps: bool, stop_step: int) -> None:
    """With step logging the budget is checked every log_every_n_steps, else at the end of each epoch."""
    budget = 1e-12
    # constant power: the run's CO2 read off the curve is above zero at the first logging step, whenever the
    # sampler last ticked (a counter still flat since the epoch started would read zero there)
    run = fit(
        tmp_path,
        meters=[ConstantPower(50.0)],
        budget_kg=budget,
        log_steps=log_steps,
        loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
    )
    trainer = run.trainer
    assert trainer.should_stop
    assert trainer.global_step == stop_step and trainer.current_epoch < EPOCHS
    assert [w["meta"]["epoch"] for w in run.windows("train_epoch")] == [0]
    summary = run.summary
    assert summary["status"] == "stopped by the carbon budget"
    reason = summary["stop_reason"]
    assert reason.startswith("co2cb: carbon budget reached: ") and reason.endswith("; stopping training")
    assert run.warnings == [reason]  # said once, in words
    assert run.header["budget"] == {"kg": budget, "on": "total"}
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert len(series["co2cb/total_co2_kg"]) == 1 and values(series, "co2cb/total_co2_kg")[0] > budget


@pytest.mark.parametrize(("budget_on", "epochs_run"), [("forecast", 1), ("total", EPOCHS)])
def test_budget_on_forecast_stops_before_the_total_passes(tmp_path: Path, budget_on: str, epochs_run: int) -> None:
    """Budget 2.5 epochs' CO2: the forecast (3 epochs) passes it after epoch 0; the total only after the last."""
    epoch_co2 = E_EPOCH / KWH * 100.0 / 1000  # 100 gCO2e/kWh, PUE 1
    budget = 2.5 * epoch_co2
    run = fit(tmp_path, intensity=100.0, pue=1.0, budget_kg=budget, budget_on=budget_on, log_steps=False)
    assert run.trainer.global_step == epochs_run * TRAIN_BATCHES
    assert len(run.windows("train_epoch")) == epochs_run
    summary = run.summary
    assert summary["status"] == "stopped by the carbon budget"
    assert run.warnings == [summary["stop_reason"]]
    if budget_on == "forecast":
        assert summary["co2_kg"] == approx(epoch_co2, 1e-9) and summary["co2_kg"] < budget  # the total did not pass
        assert summary["forecast"]["co2_kg"] == approx(3 * epoch_co2, 1e-9)
        assert summary["stop_reason"].startswith("co2cb: carbon budget would be passed: the whole run is forecast at")
    else:
        assert summary["co2_kg"] == approx(3 * epoch_co2, 1e-9)
        assert summary["stop_reason"].startswith("co2cb: carbon budget reached")


# ---------------------------------------------------------------------------- progress bar
def test_progress_bar_shows_the_co2_so_far(tmp_path: Path) -> None:
    run = fit(
        tmp_path,
        meters=[ConstantPower(50.0)],
        progress_bar=True,
        max_epochs=1,
        loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
    )
    shown = run.trainer.progress_bar_metrics["co2_g"]  # at the last logging step (the epoch's last batch)
    train = run.windows("train_epoch")[0]
    assert 0.5 * train["co2_kg"] * 1000 < shown <= run.summary["co2_kg"] * 1000
    assert "co2_g" not in csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)  # logger=False


# ---------------------------------------------------------------------------- nothing stops training
def test_a_meter_that_raises_gives_one_warning_and_training_goes_on(tmp_path: Path) -> None:
    counter, broken = StepJoules(), RaisingMeter(good_reads=2)
    run = fit(tmp_path, meters=[counter, broken], loggers=[L.loggers.CSVLogger(tmp_path / "csv")])
    assert run.trainer.current_epoch == EPOCHS and run.trainer.global_step == EPOCHS * TRAIN_BATCHES
    summary = run.summary
    assert summary["status"] == "completed"
    losses = [(x["meter"], x["error"]) for x in summary["meter_losses"]]
    assert losses == [("test:raising", "MeterError: simulated failure")]
    assert broken.reads == broken.good_reads + 1  # dropped at its first failure, never read again
    assert len(run.warnings) == 1 and "test:raising" in run.warnings[0]
    # the other meter goes on: every joule of the run is there, and every epoch was logged
    assert summary["meter_energy_kwh"]["test:step-joules"] == approx(EPOCHS * E_EPOCH / KWH, 1e-9)
    assert all(w["unavailable"] == ["test:raising"] for w in run.windows("train_epoch"))
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert len(series["co2cb/train_epoch_co2_kg"]) == EPOCHS


class FailingLogger(L.loggers.Logger):
    """A real Lightning logger whose ``log_metrics`` raises on co2cb's metrics (and takes the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.co2_calls = 0
        self.other: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "failing"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if any(k.startswith("co2cb/") for k in metrics):
            self.co2_calls += 1
            raise OSError("simulated: disk full")
        self.other.append(dict(metrics))


@pytest.mark.parametrize("budget_kg", [None, 1e-12])
def test_a_logger_that_raises_gives_one_warning_and_training_goes_on(tmp_path: Path, budget_kg: float | None) -> None:
    failing = FailingLogger()
    meters = [StepJoules()] if budget_kg is None else [ConstantPower(50.0)]  # see the tiny budget test
    run = fit(tmp_path, meters=meters, loggers=[failing], budget_kg=budget_kg)
    failed = [w for w in run.warnings if "disk full" in w]
    assert len(failed) == 1 and "training goes on" in failed[0]
    assert failing.other  # Lightning's own metrics still reach it
    if budget_kg is None:
        assert run.trainer.current_epoch == EPOCHS and run.summary["status"] == "completed"
        assert run.warnings == failed
        assert failing.co2_calls >= EPOCHS * 2  # co2cb kept logging every epoch
        assert run.summary["co2_kg"] == approx(run.co2(EPOCHS * E_EPOCH), 1e-9)  # and kept measuring
    else:  # the budget still stops training though the logger fails
        assert run.trainer.should_stop and run.trainer.global_step == LOG_EVERY
        assert run.summary["status"] == "stopped by the carbon budget"


def test_a_logger_that_raises_does_not_hide_the_metrics_from_the_others(tmp_path: Path) -> None:
    run = fit(tmp_path, loggers=[FailingLogger(), L.loggers.CSVLogger(tmp_path / "csv")])
    assert run.summary["status"] == "completed"
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/train_epoch_co2_kg") == approx([run.co2(E_TRAIN)] * EPOCHS, 1e-9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget_kg": -1}, "budget_kg=-1 is not valid"),
        ({"budget_kg": 0}, "budget_kg=0 is not valid"),
        ({"budget_kg": True}, "budget_kg=True is not valid"),
        ({"budget_on": "max"}, "budget_on='max' is not valid"),
        ({"forecast_after_epochs": 0}, "forecast_after_epochs=0 is not valid"),
    ],
)
def test_invalid_callback_options_fail_at_construction(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CO2Callback(output_dir=tmp_path, **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"interval_s": 0}, co2cb.ConfigError, "interval_s"),
        ({"pue": 0.1}, co2cb.ConfigError, "pue"),
        ({"scope": "cluster"}, co2cb.ConfigError, "scope"),
        ({"region": "ZZ-NOWHERE"}, co2cb.ConfigError, "ZZ-NOWHERE"),
        ({"intervall_s": 1}, co2cb.ConfigError, "did you mean 'interval_s'"),
    ],
)
def test_invalid_tracker_options_fail_at_construction(
    tmp_path: Path, options: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        CO2Callback(output_dir=tmp_path, **options)


def test_an_exception_in_training_step_stops_the_measurement(tmp_path: Path) -> None:
    trainer, callback, module, _ = make(tmp_path, module_options={"fail_at_step": 5})
    with co2cb_warnings() as warnings, pytest.raises(RuntimeError, match="boom in training_step"):
        trainer.fit(module, *loaders())
    run = Run(trainer, callback, None, warnings=warnings)
    tracker = callback.co2.tracker
    assert tracker is not None and not tracker.running
    summary = run.summary
    assert summary["status"].startswith("failed")
    assert summary["status"] == "failed: RuntimeError: boom in training_step"
    assert not any(t.name == "co2cb-sampler" and t.is_alive() for t in threading.enumerate())
    (open_epoch,) = run.windows("train_epoch")  # the open epoch window was closed by the stop
    assert open_epoch["meta"] == {"closed_by": "stop"}
    assert summary["energy_kwh"]["total"] == approx(5 * J_TRAIN / KWH, 1e-9)  # the 5 steps that ran
    assert warnings == []


# ---------------------------------------------------------------------------- resume
def _fit_with_checkpoints(root: Path, max_epochs: int, ckpt: Path | None = None, **ckpt_options: Any) -> Run:
    checkpoints = L.callbacks.ModelCheckpoint(dirpath=root / "ckpt", save_last=True, **ckpt_options)
    return fit(
        root,
        max_epochs=max_epochs,
        loggers=[L.loggers.CSVLogger(root / "csv")],
        extra_callbacks=[checkpoints],
        trainer_options={"enable_checkpointing": True},
        ckpt_path=str(ckpt) if ckpt else None,
    )


def test_a_resumed_run_continues_the_totals_and_links_the_first_run(tmp_path: Path) -> None:
    first = _fit_with_checkpoints(tmp_path, max_epochs=2)
    second = _fit_with_checkpoints(tmp_path, max_epochs=4, ckpt=tmp_path / "ckpt" / "last.ckpt")
    assert second.folder != first.folder
    before = csv_series(first.logger_of(L.loggers.CSVLogger).log_dir)
    after = csv_series(second.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(before, "co2cb/total_co2_kg")[-1] == approx(first.co2(2 * E_EPOCH), 1e-9)
    # the second run's totals go on from the first's
    totals = values(after, "co2cb/total_co2_kg")
    assert totals[0] > values(before, "co2cb/total_co2_kg")[-1]
    assert totals == approx([second.co2(3 * E_EPOCH), second.co2(4 * E_EPOCH)], 1e-9)
    assert values(after, "co2cb/forecast_co2_kg") == approx([second.co2(4 * E_EPOCH)] * 2, 1e-9)
    assert [w["meta"]["epoch"] for w in second.windows("train_epoch")] == [2, 3]
    assert second.header["resumed_from"] == {
        "run_id": first.header["run_id"],
        "run_folder": str(first.folder),
        "epochs_done": 2,
    }
    summary = second.summary
    assert summary["energy_kwh"]["total"] == approx(2 * E_EPOCH / KWH, 1e-9)  # this segment
    assert summary["resumed_total"]["energy_kwh"]["total"] == approx(4 * E_EPOCH / KWH, 1e-9)  # the whole run
    assert summary["resumed_total"]["co2_kg"] == approx(second.co2(4 * E_EPOCH), 1e-9)
    assert first.warnings == [] and second.warnings == []


def test_a_run_resumed_from_a_validation_end_checkpoint_loses_no_energy(tmp_path: Path) -> None:
    first = _fit_with_checkpoints(tmp_path, max_epochs=2, save_on_train_epoch_end=False)
    second = _fit_with_checkpoints(
        tmp_path, max_epochs=4, ckpt=tmp_path / "ckpt" / "last.ckpt", save_on_train_epoch_end=False
    )
    assert first.summary["energy_kwh"]["total"] == approx(2 * E_EPOCH / KWH, 1e-9)
    assert second.summary["resumed_total"]["energy_kwh"]["total"] == approx(4 * E_EPOCH / KWH, 1e-9)
    assert second.warnings == []


# ---------------------------------------------------------------------------- after fit
def test_validate_after_fit_leaves_the_fit_values_alone(tmp_path: Path) -> None:
    run = fit(tmp_path, max_epochs=1, loggers=[L.loggers.CSVLogger(tmp_path / "csv")])
    with co2cb_warnings() as warnings, contextlib.redirect_stdout(io.StringIO()):
        run.trainer.validate(run.trainer.lightning_module, loaders()[1], verbose=False)
    assert warnings == []
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/val_epoch_co2_kg") == approx([run.co2(E_VAL)], 1e-9)
