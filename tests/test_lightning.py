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
import math
import os
import shutil
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
from co2cb.core import config as config_defaults  # noqa: E402
from co2cb.integrations import lightning as lightning_adapter  # noqa: E402
from co2cb.lightning import CO2Callback  # noqa: E402
from co2cb.records.reader import load_run  # noqa: E402
from co2cb.training import names  # noqa: E402
from tests.fakes import edge_readings  # noqa: E402
from tests.fakes.meters import ConstantPower, RaisingMeter  # noqa: E402
from tests.fakes.powercap import FakePowercap, TickingCounter  # noqa: E402
from tests.known_truth import (  # noqa: E402
    DEFAULT_INTERVAL_S,
    TICK_S,
    WATTS,
    check_sine_gpu,
    check_ticking_counter,
    sine_gpu,
    spy_step_logs,
)
from tests.lightning_models import J_TRAIN, J_VAL, TRAIN_BATCHES, VAL_BATCHES, StepJoules, loaders, tiny_module  # noqa: E402
from tests.ports import free_port  # noqa: E402

KWH = 3.6e6  # joules per kWh
EPOCHS = 3
LOG_EVERY = 4
E_TRAIN = TRAIN_BATCHES * J_TRAIN  # joules of one training epoch (validation apart)
E_VAL = VAL_BATCHES * J_VAL  # joules of one validation epoch
E_EPOCH = E_TRAIN + E_VAL
COMPONENTS = ("gpu", "cpu", "ram")
TOTALS = ("co2cb/total_co2_kg", "co2cb/total_energy_kwh")
STEP_TAGS = ("co2cb/step_co2_kg", "co2cb/step_energy_kwh", "co2cb/step_power_w")
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


def csv_rows(log_dir: str | Path) -> list[dict[str, str]]:
    """The rows of a CSVLogger's ``metrics.csv``."""
    with open(Path(log_dir) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def csv_series(log_dir: str | Path) -> Series:
    """Every metric in a CSVLogger's ``metrics.csv``, in row order."""
    out: Series = {}
    for row in csv_rows(log_dir):
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


def epoch_expectations(run: Run, detail: bool = True) -> dict[str, list[float]]:
    """What every per-epoch tag must hold, from the run record alone (in epoch order); totals apart."""
    train, val = run.windows("train_epoch"), run.windows("val_epoch")
    expected: dict[str, list[float]] = {}
    for prefix, ws in (("co2cb/", train), ("val_co2cb/", val)):
        expected[prefix + "epoch_co2_kg"] = [w["co2_kg"] for w in ws]
        expected[prefix + "epoch_energy_kwh"] = [w["energy_kwh"]["total"] for w in ws]
        if prefix == "co2cb/" or detail:
            expected[prefix + "epoch_power_w"] = [w["mean_power_w"] for w in ws]
        if detail:
            for c in measured_components(run):
                expected[prefix + f"epoch_energy_{c}_kwh"] = [w["energy_kwh"].get(c, 0.0) for w in ws]
            expected[prefix + "intensity_g_per_kwh"] = [w["intensity_g_per_kwh"] for w in ws]
    expected["co2cb/forecast_co2_kg"] = [t["meta"]["forecast"]["co2_kg"] for t in train]
    if detail:
        expected["co2cb/forecast_energy_kwh"] = [t["meta"]["forecast"]["energy_kwh"] for t in train]
    return expected


def epoch_totals(run: Run) -> list[float]:
    """The run's CO2 at each training epoch's end: with the step counter, the epochs and their validations."""
    train, val = run.windows("train_epoch"), run.windows("val_epoch")
    return list(accumulate(t["co2_kg"] + v["co2_kg"] for t, v in zip(train, val)))


def check_against_record(
    run: Run,
    series: Series,
    rel: float,
    epochs: int = EPOCHS,
    detail: bool = True,
    steps_logged: bool = True,
    counter: bool = True,
) -> None:
    """Every value the logger holds agrees with the run record, at the steps Lightning logs its own metrics.

    ``counter``: the run measures :class:`StepJoules` alone, which moves during steps only, so the run's
    total at an epoch's end is exactly its epochs and validations so far.
    """
    train, val = run.windows("train_epoch"), run.windows("val_epoch")
    assert [w["meta"]["epoch"] for w in train] == list(range(epochs))
    assert [w["meta"]["epoch"] for w in val] == list(range(epochs))  # the sanity check is no epoch
    # Lightning logs an epoch's values (train_loss_epoch, val_acc) at its last batch's step
    epoch_steps = [TRAIN_BATCHES * (e + 1) - 1 for e in range(epochs)]

    expected = epoch_expectations(run, detail)
    for tag, want in expected.items():
        assert steps(series, tag) == epoch_steps, tag
        assert values(series, tag) == approx(want, rel), tag
    logged = {tag for tag in series if "co2cb/" in tag}
    assert logged == set(expected) | set(TOTALS) | (set(STEP_TAGS) if steps_logged else set())
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

    # the run's total: at every epoch's end the run so far, and at the end the record's own figure
    summary = run.summary
    final = {"co2cb/total_co2_kg": summary["co2_kg"], "co2cb/total_energy_kwh": summary["energy_kwh"]["total"]}
    for tag in TOTALS:
        points = series[tag]
        assert points[-1] == (epoch_steps[-1], approx(final[tag], rel)), tag  # logged once more at fit end
        assert [v for _, v in points] == sorted(v for _, v in points), tag  # never falls
        assert all(v <= final[tag] * (1 + rel) for _, v in points), tag  # never above the final figure
    at_step = [[v for s, v in series["co2cb/total_co2_kg"] if s == step] for step in epoch_steps]
    logged_totals = [at_step[e][-2 if e == epochs - 1 else -1] for e in range(epochs)]  # the last is then final
    for e, (logged_total, epochs_so_far) in enumerate(zip(logged_totals, epoch_totals(run))):
        if counter:  # the counter moves during steps only: the run so far is its epochs and validations
            assert logged_total == approx(epochs_so_far, rel), e
        assert logged_total >= epochs_so_far * (1 - rel), e  # and anything else the run measured

    # the forecast: the total over the share of the run done
    total_steps = run.header["job"]["framework_plan"]["total_steps"]
    for e, t in enumerate(train):
        forecast = t["meta"]["forecast"]
        assert forecast["progress"] == approx((epoch_steps[e] + 1) / total_steps, 1e-12)
        assert forecast["co2_kg"] == approx(logged_totals[e] / forecast["progress"], rel), e
    assert run.summary["forecast"] == train[-1]["meta"]["forecast"]

    # per step: every log_every_n_steps, at the step Lightning logs train_loss at (its count before the batch)
    if steps_logged:
        log_steps = list(range(LOG_EVERY - 1, epochs * TRAIN_BATCHES, LOG_EVERY))
        for tag in STEP_TAGS:
            assert steps(series, tag) == log_steps, tag
            assert all(v >= 0 for v in values(series, tag)), tag
        intensity = run.header["intensity"]["g_per_kwh"]
        co2_per_kwh = intensity / 1000 * run.header["pue"]
        step_co2 = [kwh * co2_per_kwh for kwh in values(series, "co2cb/step_energy_kwh")]
        assert values(series, "co2cb/step_co2_kg") == approx(step_co2, max(rel, 1e-9))
        assert {s for s, _ in series["co2cb/total_co2_kg"]} == set(log_steps) | set(epoch_steps)
    assert "co2_g" not in series  # progress-bar value only when asked, and never in the loggers


# ---------------------------------------------------------------------------- the main run
@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """3 epochs, TensorBoard and CSV loggers, counter meter, run name, tags, a monitored metric, every value."""
    root = tmp_path_factory.mktemp("main")
    return fit(
        root,
        loggers=[L.loggers.TensorBoardLogger(root / "tb"), L.loggers.CSVLogger(root / "csv")],
        run_name="tiny-mlp",
        tags={"model": "mlp", "data": "generated"},
        monitor=["val_acc"],
        log_steps=True,
        log_detail=True,
        module_options={"log_epoch": True},
    )


def test_tensorboard_event_files_hold_every_value_of_the_record(main_run: Run) -> None:
    series = tb_series(main_run.logger_of(L.loggers.TensorBoardLogger).log_dir)
    check_against_record(main_run, series, TB_REL)
    assert "train_loss_step" in series and "val_acc" in series  # the user's own metrics are untouched


def test_csv_holds_every_value_of_the_record(main_run: Run) -> None:
    series = csv_series(main_run.logger_of(L.loggers.CSVLogger).log_dir)
    check_against_record(main_run, series, CSV_REL)


def test_epoch_energy_is_exactly_what_the_steps_drew(main_run: Run) -> None:
    run = main_run
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/epoch_energy_kwh") == approx([E_TRAIN / KWH] * EPOCHS, 1e-9)
    assert values(series, "co2cb/epoch_energy_cpu_kwh") == approx([E_TRAIN / KWH] * EPOCHS, 1e-9)
    assert "co2cb/epoch_energy_gpu_kwh" not in series  # no GPU meter: no zero column for it
    assert values(series, "val_co2cb/epoch_energy_kwh") == approx([E_VAL / KWH] * EPOCHS, 1e-9)
    assert values(series, "co2cb/epoch_co2_kg") == approx([run.co2(E_TRAIN)] * EPOCHS, 1e-9)
    assert values(series, "val_co2cb/epoch_co2_kg") == approx([run.co2(E_VAL)] * EPOCHS, 1e-9)
    assert epoch_totals(run) == approx([run.co2(E_EPOCH * (e + 1)) for e in range(EPOCHS)], 1e-9)
    assert values(series, "co2cb/total_co2_kg")[-1] == approx(run.co2(E_EPOCH * EPOCHS), 1e-9)
    # every epoch is 1/EPOCHS of the run and draws the same: the forecast is the whole run from the start
    assert values(series, "co2cb/forecast_co2_kg") == approx([run.co2(E_EPOCH * EPOCHS)] * EPOCHS, 1e-9)
    assert values(series, "co2cb/forecast_energy_kwh") == approx([E_EPOCH * EPOCHS / KWH] * EPOCHS, 1e-9)
    assert run.summary["energy_kwh"]["total"] == approx(E_EPOCH * EPOCHS / KWH, 1e-9)
    assert run.summary["co2_kg"] == approx(run.co2(E_EPOCH * EPOCHS), 1e-9)
    assert run.summary["status"] == "completed" and run.summary["epochs"] == EPOCHS
    assert run.summary["steps"]["step"]["count"] == EPOCHS * TRAIN_BATCHES
    assert run.warnings == []


def test_the_forecast_follows_a_plan_that_changes_where_dataloaders_reload(tmp_path: Path) -> None:
    class Growing(L.LightningDataModule):
        """4 training batches in the first epoch, 8 after: Lightning's estimate of the fit's steps grows."""

        def train_dataloader(self) -> Any:
            return loaders(4 if self.trainer.current_epoch == 0 else 8)[0]

        def val_dataloader(self) -> Any:
            return loaders()[1]

    trainer, callback, module, _ = make(tmp_path, trainer_options={"reload_dataloaders_every_n_epochs": 1})
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(module, datamodule=Growing())
    run = Run(trainer, callback, None)
    assert run.header["job"]["framework_plan"]["total_steps"] == 4 * EPOCHS  # as estimated at the fit's start
    progress = [t["meta"]["forecast"]["progress"] for t in run.windows("train_epoch")]
    assert progress == approx([4 / 12, 12 / 24, 20 / 24], 1e-12)  # each epoch's steps over that epoch's estimate


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
    port = free_port()
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
                if any("co2cb/epoch_co2_kg" in run_tags for run_tags in tags.values()):
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
    runs = [run for run, run_tags in tags.items() if "co2cb/epoch_co2_kg" in run_tags]
    assert runs == ["lightning_logs/version_0"]
    (run,) = runs
    expected = epoch_expectations(main_run)
    for tag in (*expected, *TOTALS, *STEP_TAGS):
        assert tag in tags[run], tag
    epoch_steps = [TRAIN_BATCHES * (e + 1) - 1 for e in range(EPOCHS)]
    for tag in ("co2cb/epoch_co2_kg", "val_co2cb/epoch_co2_kg", "co2cb/forecast_co2_kg", "co2cb/epoch_energy_kwh"):
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        points = _get_json(f"{tensorboard_url}/data/plugin/scalars/scalars?{query}")  # [wall_time, step, value]
        assert [p[1] for p in points] == epoch_steps, tag
        assert [p[2] for p in points] == approx(expected[tag], TB_REL), tag
    query = urllib.parse.urlencode({"run": run, "tag": "co2cb/step_co2_kg"})
    points = _get_json(f"{tensorboard_url}/data/plugin/scalars/scalars?{query}")
    assert [p[1] for p in points] == list(range(LOG_EVERY - 1, EPOCHS * TRAIN_BATCHES, LOG_EVERY))


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
    for series, rel in (
        (tb_series(run.logger_of(pl.loggers.TensorBoardLogger).log_dir), TB_REL),
        (csv_series(run.logger_of(pl.loggers.CSVLogger).log_dir), CSV_REL),
    ):  # the default set: no per-step series, no per-component split
        check_against_record(run, series, rel, epochs, detail=False, steps_logged=False, counter=False)
    assert run.summary["status"] == "completed" and run.summary["meter_losses"] == []
    assert run.summary["energy_kwh"]["total"] > 0 and run.summary["co2_kg"] > 0


# ---------------------------------------------------------------------------- forecast
def test_forecast_waits_for_forecast_after_epochs(tmp_path: Path) -> None:
    run = fit(tmp_path, forecast_after_epochs=2, loggers=[L.loggers.CSVLogger(tmp_path / "csv")])
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert steps(series, "co2cb/forecast_co2_kg") == [2 * TRAIN_BATCHES - 1, 3 * TRAIN_BATCHES - 1]
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
    assert ends == [TRAIN_BATCHES - 1, 2 * TRAIN_BATCHES - 1, max_steps - 1]
    totals = values(series, "co2cb/total_co2_kg")[:-1]  # at each epoch's end (then once more at fit end)
    done = [s + 1 for s in ends]
    assert values(series, "co2cb/forecast_co2_kg") == approx([t * max_steps / s for t, s in zip(totals, done)], 1e-9)
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
    totals = values(series, "co2cb/total_co2_kg")  # the step logs' (with log_steps), the epoch's, the final one
    assert len(totals) == (3 if log_steps else 2) and totals[-2] > budget
    assert totals[-1] == approx(summary["co2_kg"], 1e-9)


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
    assert len(series["co2cb/epoch_co2_kg"]) == EPOCHS


class RowLogger(L.loggers.Logger):
    """A real Lightning logger that keeps every ``log_metrics`` call as ``(step, metrics)``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "rows"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.calls.append((step, dict(metrics)))

    def co2cb_rows(self) -> list[tuple[int | None, dict[str, float]]]:
        return [(step, m) for step, m in self.calls if any("co2cb/" in k for k in m)]


class FailingLogger(RowLogger):
    """A real Lightning logger whose ``log_metrics`` raises on co2cb's metrics (and takes the others)."""

    def __init__(self) -> None:
        super().__init__()
        self.co2_calls = 0

    @property
    def name(self) -> str:
        return "failing"

    @property
    def other(self) -> list[dict[str, float]]:
        """The metrics it took (Lightning's own)."""
        return [metrics for _, metrics in self.calls]

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if any("co2cb/" in k for k in metrics):
            self.co2_calls += 1
            raise OSError("simulated: disk full")
        super().log_metrics(metrics, step)


@pytest.mark.parametrize("budget_kg", [None, 1e-12])
def test_a_logger_that_raises_gives_one_warning_and_training_goes_on(tmp_path: Path, budget_kg: float | None) -> None:
    failing = FailingLogger()
    meters = [StepJoules()] if budget_kg is None else [ConstantPower(50.0)]  # see the tiny budget test
    run = fit(tmp_path, meters=meters, loggers=[failing], budget_kg=budget_kg, log_steps=budget_kg is not None)
    failed = [w for w in run.warnings if "disk full" in w]
    assert len(failed) == 1 and "training goes on" in failed[0]
    assert failing.other  # Lightning's own metrics still reach it
    if budget_kg is None:
        assert run.trainer.current_epoch == EPOCHS and run.summary["status"] == "completed"
        assert run.warnings == failed
        assert failing.co2_calls == EPOCHS + 1  # co2cb kept logging every epoch (validation in its row), and the total
        assert run.summary["co2_kg"] == approx(run.co2(EPOCHS * E_EPOCH), 1e-9)  # and kept measuring
    else:  # the budget still stops training though the logger fails
        assert run.trainer.should_stop and run.trainer.global_step == LOG_EVERY
        assert run.summary["status"] == "stopped by the carbon budget"


def test_a_validation_is_logged_in_its_training_epochs_row(tmp_path: Path) -> None:
    """One ``log_metrics`` call per epoch: the validation's values join the epoch's, at the same step."""
    rows = RowLogger()
    run = fit(tmp_path, loggers=[rows])
    mine = rows.co2cb_rows()
    assert len(mine) == EPOCHS + 1  # one row per epoch, and the final total
    vals, trains = run.windows("val_epoch"), run.windows("train_epoch")
    for epoch, (step, metrics) in enumerate(mine[:-1]):
        assert step == (epoch + 1) * TRAIN_BATCHES - 1 and metrics["epoch"] == epoch
        assert metrics["val_co2cb/epoch_co2_kg"] == approx(vals[epoch]["co2_kg"], 1e-12)
        assert metrics["co2cb/epoch_co2_kg"] == approx(trains[epoch]["co2_kg"], 1e-12)


class SeenAtValidationEnd(L.Callback):
    """What ``trainer.callback_metrics`` holds of a co2cb value when a validation ends (where EarlyStopping looks
    with ``check_on_train_epoch_end=False``)."""

    def __init__(self, name: str) -> None:
        self.name, self.seen = name, []

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.seen.append(float(trainer.callback_metrics.get(self.name, float("nan"))))


def test_a_co2cb_value_monitored_at_validation_end_is_there_at_validation_end(tmp_path: Path) -> None:
    """By default a validation after an epoch's last batch is reported with its epoch; a callback whose
    ``monitor`` names a co2cb value gets it at the validation's end (else EarlyStopping would raise there)."""
    name = "val_co2cb/epoch_co2_kg"
    stop = L.callbacks.EarlyStopping(monitor=name, check_on_train_epoch_end=False, patience=100)
    seen = SeenAtValidationEnd(name)
    run = fit(tmp_path, extra_callbacks=[stop, seen])
    assert run.summary["status"] == "completed"
    assert seen.seen == approx([w["co2_kg"] for w in run.windows("val_epoch")], 1e-12)
    plain = SeenAtValidationEnd(name)  # no callback monitors it: at validation end, the last epoch's value
    fit(tmp_path / "plain", extra_callbacks=[plain])
    assert math.isnan(plain.seen[0]) and len(plain.seen) == EPOCHS  # not there yet in the first epoch


def test_validations_inside_an_epoch_are_logged_at_their_own_steps(tmp_path: Path) -> None:
    """``val_check_interval=0.5``: the first validation of an epoch is logged at its step (by the time the next
    opens), the second in the epoch's row; each at the step of Lightning's own ``val_acc``, in step order."""
    rows = RowLogger()
    run = fit(tmp_path, loggers=[rows], trainer_options={"val_check_interval": 0.5})
    val_steps = [step for step, m in rows.co2cb_rows() if "val_co2cb/epoch_co2_kg" in m]
    assert val_steps == [step for step, m in rows.calls if "val_acc" in m]
    assert len(val_steps) == 2 * EPOCHS and val_steps == sorted(val_steps)
    logged = [m["val_co2cb/epoch_co2_kg"] for _, m in rows.co2cb_rows() if "val_co2cb/epoch_co2_kg" in m]
    assert logged == approx([w["co2_kg"] for w in run.windows("val_epoch")], 1e-12)
    assert run.warnings == []


def test_a_logger_that_raises_does_not_hide_the_metrics_from_the_others(tmp_path: Path) -> None:
    run = fit(tmp_path, loggers=[FailingLogger(), L.loggers.CSVLogger(tmp_path / "csv")])
    assert run.summary["status"] == "completed"
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/epoch_co2_kg") == approx([run.co2(E_TRAIN)] * EPOCHS, 1e-9)


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
    recorded = load_run(run.folder)  # the epoch cut short is no epoch for the reports (before: a spike)
    assert recorded.epochs == [] and recorded.total_kwh == approx(5 * J_TRAIN / KWH, 1e-9)
    assert warnings == []


class FailAfterValidation(L.Callback):
    """Raises in ``on_validation_end`` of the second epoch: after co2cb's validation close, before its epoch's."""

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.current_epoch == 1:
            raise RuntimeError("boom after validation")


def test_a_validation_waiting_for_its_epochs_row_is_logged_when_the_fit_fails(tmp_path: Path) -> None:
    rows = RowLogger()
    trainer, callback, module, _ = make(tmp_path, loggers=[rows], extra_callbacks=[FailAfterValidation()])
    with co2cb_warnings() as warnings, pytest.raises(RuntimeError, match="boom after validation"):
        trainer.fit(module, *loaders())
    run = Run(trainer, callback, None, warnings=warnings)
    logged = [(step, m["val_co2cb/epoch_co2_kg"]) for step, m in rows.co2cb_rows() if "val_co2cb/epoch_co2_kg" in m]
    vals = run.windows("val_epoch")
    assert [step for step, _ in logged] == [TRAIN_BATCHES - 1, 2 * TRAIN_BATCHES - 1]  # the second in no epoch row
    assert [v for _, v in logged] == approx([w["co2_kg"] for w in vals], 1e-12)
    assert run.summary["status"] == "failed: RuntimeError: boom after validation" and warnings == []


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
    # the second run's totals go on from the first's, and end at the record's total of the whole run
    totals = values(after, "co2cb/total_co2_kg")
    assert totals[0] > values(before, "co2cb/total_co2_kg")[-1]
    assert totals == approx([second.co2(3 * E_EPOCH), second.co2(4 * E_EPOCH), second.co2(4 * E_EPOCH)], 1e-9)
    assert totals[-1] == approx(second.summary["resumed_total"]["co2_kg"], 1e-12)
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
    assert values(series, "val_co2cb/epoch_co2_kg") == approx([run.co2(E_VAL)], 1e-9)


# ---------------------------------------------------------------------------- a callback used again
def _refit(root: Path, callback: Any, counter: StepJoules | None, max_epochs: int, **fit_options: Any) -> Run:
    """Another trainer's fit with the same callback (no validation)."""
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=[callback],
        logger=[L.loggers.CSVLogger(root / "csv-again")],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=root,
        accelerator="cpu",
    )
    with co2cb_warnings() as warnings, contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(tiny_module(L, meter=counter), loaders()[0], **fit_options)
    return Run(trainer, callback, counter, warnings=warnings)


def test_a_callback_used_for_a_second_fit_starts_a_new_run(tmp_path: Path) -> None:
    """Nothing of the first fit carries over: not its budget's stop, its epochs, its monitored metric."""
    budget = 1.5 * E_EPOCH / KWH * 100 / 1000  # at 100 g/kWh: passed at the end of the second epoch
    first = fit(tmp_path, intensity=100, pue=1.0, budget_kg=budget, monitor=["val_acc"])
    assert first.summary["status"] == "stopped by the carbon budget" and first.summary["epochs"] == 2
    first_folder = first.folder
    second = _refit(tmp_path, first.callback, first.counter, max_epochs=1)
    assert second.folder != first_folder
    assert second.trainer.global_step == TRAIN_BATCHES  # trained: before, the first fit's stop held
    summary = second.summary
    assert summary["status"] == "completed" and summary["stop_reason"] is None and summary["epochs"] == 1
    assert summary["final_metrics"] == {}  # no validation in this fit: the first fit's val_acc is not this run's
    assert "resumed_from" not in second.header and second.warnings == []
    assert summary["energy_kwh"]["total"] == approx(E_TRAIN / KWH, 1e-9)


def test_a_fresh_fit_after_a_resumed_one_is_not_resumed(tmp_path: Path) -> None:
    _fit_with_checkpoints(tmp_path, max_epochs=1)
    resumed = _fit_with_checkpoints(tmp_path, max_epochs=2, ckpt=tmp_path / "ckpt" / "last.ckpt")
    assert "resumed_from" in resumed.header
    fresh = _refit(tmp_path, resumed.callback, resumed.counter, max_epochs=1)
    assert "resumed_from" not in fresh.header and "resumed_total" not in fresh.summary
    # the logged total is this run's alone, as its record says (before: the earlier segments were added)
    assert fresh.callback.co2.total_metrics()["co2cb/total_co2_kg"] == approx(fresh.summary["co2_kg"], 1e-12)


def test_a_second_fit_of_one_trainer_forecasts_from_its_own_steps(tmp_path: Path) -> None:
    trainer, callback, module, counter = make(tmp_path, max_epochs=2, loggers=[L.loggers.CSVLogger(tmp_path / "csv")])
    train, val = loaders()
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.fit(module, train, val)
        trainer.fit_loop.max_epochs = 4  # two more epochs: steps 2N to 4N of the trainer's count
        trainer.fit(module, train, val)
    run = Run(trainer, callback, counter)
    (forecast, last) = [t["meta"]["forecast"] for t in run.windows("train_epoch")]
    assert last["progress"] == approx(1.0, 1e-12)
    # after the first of its two epochs, half of this fit is done (before: 3N / 4N, a forecast a third too low)
    assert forecast["progress"] == approx(0.5, 1e-12) and forecast["co2_kg"] == approx(run.co2(2 * E_EPOCH), 1e-9)
    assert run.summary["co2_kg"] == approx(run.co2(2 * E_EPOCH), 1e-9)


# ---------------------------------------------------------------------------- where Lightning logs its own
def test_values_are_at_the_steps_lightning_logs_its_own_metrics_with_the_epoch(main_run: Run) -> None:
    """TensorBoard: co2cb's step values next to ``train_loss_step``, epoch values next to ``train_loss_epoch``,
    validation values next to ``val_acc``; CSV rows carry ``epoch`` as Lightning's own rows do."""
    series = tb_series(main_run.logger_of(L.loggers.TensorBoardLogger).log_dir)
    assert steps(series, "train_loss_step")  # the module logs train_loss on step and on epoch
    for tag in STEP_TAGS:
        assert steps(series, tag) == steps(series, "train_loss_step"), tag
    for tag in ("co2cb/epoch_co2_kg", "co2cb/epoch_energy_kwh", "co2cb/epoch_power_w", "co2cb/forecast_co2_kg"):
        assert steps(series, tag) == steps(series, "train_loss_epoch"), tag
    for tag in ("val_co2cb/epoch_co2_kg", "val_co2cb/epoch_energy_kwh"):
        assert steps(series, tag) == steps(series, "val_acc"), tag
    rows = csv_rows(main_run.logger_of(L.loggers.CSVLogger).log_dir)
    own = {int(r["step"]): r["epoch"] for r in rows if r.get("train_loss_step")}
    mine = [r for r in rows if any(r.get(tag) for tag in (*STEP_TAGS, "co2cb/epoch_co2_kg", "val_co2cb/epoch_co2_kg"))]
    assert mine and all(r["epoch"] != "" for r in mine)
    for r in mine:
        if int(r["step"]) in own:  # the same epoch as Lightning's own row at that step
            assert float(r["epoch"]) == float(own[int(r["step"])]), r
        assert int(float(r["epoch"])) == int(r["step"]) // TRAIN_BATCHES, r


def test_epoch_values_are_in_callback_metrics_and_the_final_total_too(main_run: Run) -> None:
    metrics = main_run.trainer.callback_metrics
    summary = main_run.summary
    assert float(metrics["co2cb/total_co2_kg"]) == approx(summary["co2_kg"], 1e-12)
    assert float(metrics["co2cb/total_energy_kwh"]) == approx(summary["energy_kwh"]["total"], 1e-12)
    last_train, last_val = main_run.windows("train_epoch")[-1], main_run.windows("val_epoch")[-1]
    assert float(metrics["co2cb/epoch_co2_kg"]) == approx(last_train["co2_kg"], 1e-12)
    assert float(metrics["val_co2cb/epoch_energy_kwh"]) == approx(last_val["energy_kwh"]["total"], 1e-12)
    assert "co2cb/total_co2_kg" not in main_run.trainer.logged_metrics  # offered to callbacks, not logged twice


def test_early_stopping_and_model_checkpoint_monitor_co2cb_values(tmp_path: Path) -> None:
    """``EarlyStopping`` on the run's total stops once it passes 1.5 epochs' CO2 (after the second epoch);
    ``ModelCheckpoint`` on the epoch's energy keeps the epochs it saw."""
    threshold = 1.5 * E_EPOCH / KWH * 100.0 / 1000  # kg at 100 gCO2e/kWh, PUE 1
    stop = L.callbacks.EarlyStopping(monitor="co2cb/total_co2_kg", mode="min", divergence_threshold=threshold)
    keep = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="co2cb/epoch_energy_kwh", save_top_k=5)
    run = fit(
        tmp_path,
        max_epochs=5,
        intensity=100.0,
        pue=1.0,
        loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
        extra_callbacks=[stop, keep],
        trainer_options={"enable_checkpointing": True},
    )
    assert run.trainer.current_epoch == 2 and stop.stopped_epoch == 1  # epoch 0 at 1 epoch's CO2, 1 at 2
    assert "co2cb/total_co2_kg" in (stop.stopping_reason_message or "")
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 2
    assert float(keep.best_model_score) == approx(E_TRAIN / KWH, 1e-6)  # float32 in the checkpoint callback
    assert run.warnings == []


def test_every_logger_gets_the_provenance_once(main_run: Run) -> None:
    header = main_run.header
    for logger in (main_run.logger_of(L.loggers.CSVLogger).experiment, main_run.logger_of(L.loggers.TensorBoardLogger)):
        hparams = logger.hparams
        assert hparams["co2cb/region"] == "FR" and hparams["co2cb/run_id"] == header["run_id"]
        assert hparams["co2cb/intensity_g_per_kwh"] == header["intensity"]["g_per_kwh"]
        assert hparams["co2cb/intensity_source"] == header["intensity"]["source"]
        assert (
            hparams["co2cb/pue"] == header["pue"]
            and hparams["co2cb/meter_cpu"] == "test:step-joules (measured-counter)"
        )
    saved = (Path(main_run.logger_of(L.loggers.CSVLogger).log_dir) / "hparams.yaml").read_text()
    assert "co2cb/region_reason: region 'FR' given as an argument" in saved
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(main_run.logger_of(L.loggers.TensorBoardLogger).log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    (text,) = acc.Tensors("co2cb/provenance/text_summary")
    assert b"| co2cb/region | FR |" in text.tensor_proto.string_val[0]
    assert "hp_metric" not in acc.Tags()["scalars"]  # no placeholder metric from TensorBoard's logger


# ---------------------------------------------------------------------------- known truth, default interval
SLOW = {"sleep_s": 0.08}  # 4 steps a log: each step log spans about 0.32 s, each validation about 0.32 s


def test_known_truth_a_ticking_rapl_counter_at_60_w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RAPL counter at 60 W moving every 10 ms, machine scope, default interval: every logged power reads
    60 W (step logs, epochs and validations), every step energy is 60 W over its interval, and the final
    logged total is the record's."""
    powercap = FakePowercap(tmp_path / "powercap")
    logs = spy_step_logs(monkeypatch)
    with TickingCounter(powercap, watts=WATTS, tick_s=TICK_S) as counter:
        run = fit(
            tmp_path,
            meters=None,
            scope="machine",
            powercap_root=powercap.root,
            components=("cpu",),
            interval_s=DEFAULT_INTERVAL_S,
            log_steps=True,
            module_options=SLOW,
            loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
        )
    assert run.callback.co2.tracker.config.interval_s == config_defaults.DEFAULT_INTERVAL_S  # the default
    check_ticking_counter(logs, counter, min_logs=EPOCHS * TRAIN_BATCHES // LOG_EVERY)
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/step_power_w") == approx([log.values[names.STEP_POWER] for log in logs], CSV_REL)
    lag = 3 * counter.max_lag_s / 0.3
    for tag in ("co2cb/epoch_power_w",):
        assert values(series, tag) == approx([WATTS] * EPOCHS, 0.1 + lag), tag
    for w in run.windows("val_epoch") + run.windows("train_epoch"):
        assert w["mean_power_w"] == approx(WATTS, 0.1 + lag)
    for tag in TOTALS:
        final = run.summary["co2_kg"] if tag == "co2cb/total_co2_kg" else run.summary["energy_kwh"]["total"]
        assert values(series, tag)[-1] == approx(final, CSV_REL)
        assert max(values(series, tag)) <= final * (1 + CSV_REL)


def test_known_truth_the_fake_gpu_at_a_varying_power(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nvml: Any
) -> None:
    gpu = sine_gpu()
    nvml(gpu)
    monkeypatch.setattr(lightning_adapter, "cuda_devices", lambda device: ([0], True))  # as on a CUDA device
    logs = spy_step_logs(monkeypatch)
    run = fit(
        tmp_path,
        meters=None,
        components=("gpu",),
        interval_s=DEFAULT_INTERVAL_S,
        log_steps=True,
        module_options=SLOW,
        loggers=[L.loggers.CSVLogger(tmp_path / "csv")],
    )
    assert run.header["meters"][0]["provenance"] == "measured-counter"
    check_sine_gpu(logs, gpu)
    series = csv_series(run.logger_of(L.loggers.CSVLogger).log_dir)
    assert values(series, "co2cb/step_energy_kwh") == approx([log.values[names.STEP_ENERGY] for log in logs], 1e-12)
    # read at their edges: each window (a training epoch with its validations) is the difference of two of the
    # counter's reads, the truth between their moments (not between the windows' time stamps, the middle of a read,
    # which a read preempted on a busy machine moves by milliseconds)
    readings = [(c.t, c.value / 1000) for c in gpu.returned("nvmlDeviceGetTotalEnergyConsumption")]
    for w in run.windows("train_epoch") + run.windows("val_epoch"):
        excluded = w["meta"].get("validation_excluded", {"energy_kwh": {"total": 0.0}})["energy_kwh"]["total"]
        window_j = (w["energy_kwh"]["gpu"] + excluded) * KWH
        a, b = edge_readings(window_j, readings)
        assert window_j == pytest.approx(gpu.energy_between(a, b), abs=0.002), w["name"]  # whole mJ counts
    assert values(series, "co2cb/total_co2_kg")[-1] == approx(run.summary["co2_kg"], CSV_REL)
    assert values(series, "co2cb/total_energy_kwh")[-1] == approx(run.summary["energy_kwh"]["total"], CSV_REL)
