"""The provenance and the run record reach the experiment trackers: real MLflow (a file store) and W&B (offline).

Lightning's ``MLFlowLogger`` and ``WandbLogger``, and the HF Trainer's ``MLflowCallback`` and ``WandbCallback``
(``report_to``), each get the provenance once per run (params, config) and ``run.jsonl`` at the end (an MLflow
artifact, a W&B file), with the final total equal to the record's. Skipped where ``mlflow`` (``pip install
mlflow-skinny`` is enough) or ``wandb`` is not installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
L = pytest.importorskip("lightning.pytorch")

from co2cb import read_records  # noqa: E402
from co2cb.lightning import CO2Callback  # noqa: E402
from tests.lightning_models import StepJoules, loaders, tiny_module  # noqa: E402


def needs(module: str) -> pytest.MarkDecorator:
    """Skip where ``module`` cannot be imported, saying what to install."""
    try:
        __import__(module)
    except ImportError:
        found = False
    else:
        found = True
    package = "mlflow-skinny" if module == "mlflow" else module
    return pytest.mark.skipif(not found, reason=f"{module} is not installed (pip install {package})")


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Each test its own MLflow file store and W&B offline folder (both libraries keep global state)."""
    monkeypatch.setenv("CO2CB_QUIET", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow 3 keeps the file store for such uses
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None:
        wandb.finish()
        wandb.teardown()


def lightning_fit(root: Path, logger: Any) -> tuple[Any, Path]:
    callback = CO2Callback(meters=[StepJoules()], region="FR", output_dir=root / "runs", interval_s=0.05)
    trainer = L.Trainer(
        max_epochs=2,
        callbacks=[callback],
        logger=logger,
        log_every_n_steps=4,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    meter = callback.co2.tracker_options["meters"][0]
    trainer.fit(tiny_module(L, meter=meter), *loaders())
    assert callback.co2.tracker is not None and callback.co2.tracker.run_folder is not None
    return trainer, callback.co2.tracker.run_folder


def check_provenance(params: dict[str, Any], header: dict[str, Any]) -> None:
    assert params["co2cb/region"] == "FR" and params["co2cb/run_id"] == header["run_id"]
    assert "given as an argument" in params["co2cb/region_reason"]
    assert float(params["co2cb/intensity_g_per_kwh"]) == header["intensity"]["g_per_kwh"]
    assert params["co2cb/intensity_source"] == header["intensity"]["source"]
    assert params["co2cb/intensity_year"] == str(header["intensity"]["year"])
    assert float(params["co2cb/pue"]) == header["pue"] and params["co2cb/pue_source"]
    assert params["co2cb/meter_gpu"] == "not measured"


# ------------------------------------------------------------------------------------------- MLflow
@needs("mlflow")
def test_lightning_mlflow_logger_gets_the_provenance_the_record_and_the_final_total(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    logger = L.loggers.MLFlowLogger(experiment_name="co2cb", tracking_uri=(tmp_path / "mlruns").as_uri())
    _, folder = lightning_fit(tmp_path, logger)
    lines = read_records(folder)
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    run = client.get_run(logger.run_id)
    check_provenance(run.data.params, lines[0])
    assert [a.path for a in client.list_artifacts(logger.run_id)] == ["run.jsonl"]
    saved = Path(client.download_artifacts(logger.run_id, "run.jsonl", str(tmp_path / "download")))
    assert saved.read_text() == (folder / "run.jsonl").read_text()  # the whole record, summary included
    history = client.get_metric_history(logger.run_id, "co2cb/total_co2_kg")
    assert history[-1].value == pytest.approx(lines[-1]["co2_kg"], rel=1e-12)


class RefusingLogger(L.loggers.CSVLogger):  # type: ignore[misc, name-defined]
    """A real Lightning logger whose tracker refuses parameters and files (a full disk, a server gone)."""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        if any(str(k).startswith("co2cb/") for k in dict(params)):
            raise OSError("simulated: the tracker refused the parameters")


@needs("mlflow")
def test_a_logger_that_refuses_the_provenance_leaves_the_next_logger_its_provenance_and_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mlflow.tracking import MlflowClient

    mlflow_logger = L.loggers.MLFlowLogger(experiment_name="co2cb", tracking_uri=(tmp_path / "mlruns").as_uri())
    trainer, folder = lightning_fit(tmp_path, [RefusingLogger(tmp_path / "csv"), mlflow_logger])
    lines = read_records(folder)
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    check_provenance(client.get_run(mlflow_logger.run_id).data.params, lines[0])
    assert [a.path for a in client.list_artifacts(mlflow_logger.run_id)] == ["run.jsonl"]
    refused = [r.getMessage() for r in caplog.records if "refused the parameters" in r.getMessage()]
    assert refused == [
        "co2cb: lightning_provenance failed for RefusingLogger (OSError: simulated: the tracker refused the "
        "parameters); training goes on"
    ]
    assert trainer.current_epoch == 2 and lines[-1]["status"] == "completed"


@needs("mlflow")
def test_hf_mlflow_integration_gets_the_provenance_and_the_record(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    _, folder = hf_train(tmp_path, "mlflow")
    lines = read_records(folder)
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    check_provenance(run.data.params, lines[0])
    assert "learning_rate" in run.data.params  # beside the Trainer's own arguments
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["run.jsonl"]
    saved = Path(client.download_artifacts(run.info.run_id, "run.jsonl", str(tmp_path / "download")))
    assert saved.read_text() == (folder / "run.jsonl").read_text()
    evals = client.get_metric_history(run.info.run_id, "eval_co2cb/epoch_co2_kg")
    assert len(evals) == 2  # MLflow keeps HF's eval_ keys as they are
    total = client.get_metric_history(run.info.run_id, "co2cb/total_co2_kg")
    # HF's MLflow integration logs asynchronously (synchronous=False), so the stored order need not be the order of
    # the calls; the run's total never falls, so its final value is its largest
    assert max(m.value for m in total) == pytest.approx(lines[-1]["co2_kg"], rel=1e-12)
    assert mlflow.active_run() is None  # the integration ended its run after co2cb attached the record


# ------------------------------------------------------------------------------------------- W&B
def wandb_files(root: Path) -> Path:
    (run,) = (root / "wandb").glob("offline-run-*")
    return run / "files"


@needs("wandb")
def test_lightning_wandb_logger_offline_gets_the_provenance_and_the_record(tmp_path: Path) -> None:
    import wandb

    logger = L.loggers.WandbLogger(project="co2cb", save_dir=str(tmp_path), offline=True)
    _, folder = lightning_fit(tmp_path, logger)
    config = dict(logger.experiment.config)
    wandb.finish()
    check_provenance(config, read_records(folder)[0])
    assert (wandb_files(tmp_path) / "run.jsonl").read_text() == (folder / "run.jsonl").read_text()


@needs("wandb")
def test_hf_wandb_integration_offline_gets_the_provenance_and_the_record(tmp_path: Path) -> None:
    import wandb

    _, folder = hf_train(tmp_path, "wandb")
    config = dict(wandb.run.config) if wandb.run is not None else {}
    wandb.finish()
    check_provenance(config, read_records(folder)[0])
    assert "learning_rate" in config  # beside the Trainer's own arguments
    assert (wandb_files(tmp_path) / "run.jsonl").read_text() == (folder / "run.jsonl").read_text()


# ------------------------------------------------------------------------------------------- HF
def hf_train(root: Path, report_to: str) -> tuple[Any, Path]:
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import Trainer, TrainingArguments

    from co2cb.hf import CO2Callback as HFCallback
    from tests.fakes.meters import ConstantPower
    from tests.test_hf import Tokens, tiny_bert

    callback = HFCallback(meters=[ConstantPower(50.0)], region="FR", output_dir=str(root / "co2"), interval_s=0.05)
    args = TrainingArguments(
        output_dir=str(root / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        logging_steps=2,
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[report_to],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=tiny_bert(), args=args, train_dataset=Tokens(32), eval_dataset=Tokens(16, seed=1), callbacks=[callback]
    )
    trainer.train()
    assert callback.co2.tracker is not None and callback.co2.tracker.run_folder is not None
    return trainer, callback.co2.tracker.run_folder
