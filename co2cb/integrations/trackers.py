"""The run's provenance and record, handed to the experiment trackers the adapters log to.

Once per run each tracker gets the provenance (:mod:`co2cb.training.provenance`) where it keeps a run's
settings, and at the end, where it stores files, the run record ``run.jsonl``:

======================  ===============================================  ================================
tracker                 provenance                                       ``run.jsonl``
======================  ===============================================  ================================
Lightning, any logger   ``logger.log_hyperparams``                       MLflow: an artifact; W&B: a file
Lightning TensorBoard   ``hparams.yaml`` and a text summary              (no files)
HF TensorBoard          a text summary (as HF writes ``args``)           (no files)
HF MLflow               ``mlflow.log_params`` on the active run          ``mlflow.log_artifact``
HF W&B                  ``wandb.config.update``                          ``wandb.save``
======================  ===============================================  ================================

Loggers and integrations are recognised by class name, so nothing here imports them. Each function
may raise what the tracker raises: the adapters call them through :func:`hand_to_each`, one tracker
at a time.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from co2cb.training.provenance import as_markdown

log = logging.getLogger("co2cb.training")

TEXT_TAG = "co2cb/provenance"

Facts = Mapping[str, "str | float"]
T = TypeVar("T")


def hand_to_each(give: Callable[[Any, T], object], trackers: Iterable[Any], what: T) -> None:
    """Call ``give(tracker, what)`` for every tracker; one that raises gets a warning and the others go on."""
    for tracker in trackers:
        try:
            give(tracker, what)
        except Exception as e:  # noqa: BLE001 - co2cb must never stop a training run
            log.warning(
                "co2cb: %s failed for %s (%s: %s); training goes on", give.__name__, _kind(tracker), type(e).__name__, e
            )


def _kind(obj: Any) -> str:
    return type(obj).__name__


def lightning_provenance(logger: Any, facts: Facts) -> None:
    """Give a Lightning logger the provenance through ``log_hyperparams`` (and TensorBoard's text dashboard).

    TensorBoard's logger gets them without its placeholder ``hp_metric`` (it would log a scalar of its own).
    """
    params = dict(facts)
    if "metrics" in inspect.signature(logger.log_hyperparams).parameters:
        logger.log_hyperparams(params, metrics={})
    else:
        logger.log_hyperparams(params)
    if _kind(logger) == "TensorBoardLogger":
        logger.experiment.add_text(TEXT_TAG, as_markdown(facts), 0)


def lightning_attach(logger: Any, record: Path) -> bool:
    """Store the run record with a Lightning logger that keeps files (MLflow, W&B); False for the others."""
    if _kind(logger) == "MLFlowLogger":
        logger.experiment.log_artifact(logger.run_id, str(record))
        return True
    if _kind(logger) == "WandbLogger":
        logger.experiment.save(str(record), base_path=str(record.parent), policy="now")
        return True
    return False


def hf_provenance(callback: Any, facts: Facts) -> bool:
    """Give a Hugging Face integration the provenance where it keeps the run's settings; False if it has none.

    Call it after the integration's own ``on_train_begin`` (where it opens its run or writer).
    """
    if _kind(callback) == "TensorBoardCallback" and getattr(callback, "tb_writer", None) is not None:
        callback.tb_writer.add_text(TEXT_TAG, as_markdown(facts), 0)
        return True
    if _kind(callback) == "MLflowCallback" and _mlflow_run(callback):
        callback._ml_flow.log_params(dict(facts))
        return True
    if _kind(callback) == "WandbCallback" and getattr(getattr(callback, "_wandb", None), "run", None) is not None:
        callback._wandb.config.update(dict(facts), allow_val_change=True)
        return True
    return False


def hf_attach(callback: Any, record: Path) -> bool:
    """Store the run record with a Hugging Face integration that keeps files (MLflow, W&B); False otherwise.

    Call it before the integration's ``on_train_end`` (MLflow's ends its run there).
    """
    if _kind(callback) == "MLflowCallback" and _mlflow_run(callback):
        callback._ml_flow.log_artifact(str(record))
        return True
    if _kind(callback) == "WandbCallback" and getattr(getattr(callback, "_wandb", None), "run", None) is not None:
        callback._wandb.save(str(record), base_path=str(record.parent), policy="now")
        return True
    return False


def _mlflow_run(callback: Any) -> bool:
    mlflow = getattr(callback, "_ml_flow", None)
    return bool(getattr(callback, "_initialized", False) and mlflow is not None and mlflow.active_run() is not None)
