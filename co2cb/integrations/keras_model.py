"""What a Keras model and its fit tell the callback: the plan, the GPUs its weights live on, its ``History``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import keras


def fit_plan(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ``fit`` was asked to run (its ``params``: epochs, steps per epoch), for the forecast and the record."""
    epochs, steps = (params or {}).get("epochs"), (params or {}).get("steps")
    return {
        "max_epochs": epochs,
        "steps_per_epoch": steps,
        "total_steps": epochs * steps if epochs and steps else None,
        "framework": f"keras {keras.__version__}",
        "backend": keras.backend.backend(),
    }


def model_devices(model: Any) -> tuple[list[int] | None, bool]:
    """The GPUs the model's weights live on (CUDA ordinals), and whether it uses a GPU at all."""
    weights = getattr(model, "weights", None) or []
    if not weights:
        return None, False
    value = weights[0].value
    devices = value.devices() if callable(getattr(value, "devices", None)) else {getattr(value, "device", "")}
    gpus: list[int] = []
    for device in devices:
        text = str(device).lower()
        if not any(kind in text for kind in ("cuda", "gpu")):
            continue
        found = re.search(r"(?:cuda|gpu)[^0-9]*(\d+)", text)
        gpus.append(int(found.group(1)) if found else 0)
    if not gpus:
        return None, False
    replicas = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1)
    return (None if replicas and replicas > 1 else sorted(set(gpus))), True  # a TF strategy: every visible GPU


def final_logs(model: Any) -> dict[str, Any]:
    """The last epoch's logs as ``History`` holds them: with keys added by every callback, wherever listed."""
    history = getattr(getattr(model, "history", None), "history", None)
    if not isinstance(history, dict):
        return {}
    return {k: v[-1] for k, v in history.items() if isinstance(v, list) and v}


def set_final_values(model: Any, values: Mapping[str, float]) -> None:
    """Replace the last epoch's entry of each of ``values`` in the model's ``History`` (what ``fit`` returns)."""
    history = getattr(getattr(model, "history", None), "history", None)
    if isinstance(history, dict):
        for name, value in values.items():
            if isinstance(history.get(name), list) and history[name]:
                history[name][-1] = value


def fit_progress(params: Mapping[str, Any] | None, first_epoch: int | None, epoch: int) -> float | None:
    """Share of the fit done after ``epoch``: epochs run / epochs planned (``params["epochs"]``), or None."""
    planned = (params or {}).get("epochs")
    first = first_epoch if first_epoch is not None else epoch
    if not planned or planned <= first:
        return None
    return min(1.0, (epoch + 1 - first) / (planned - first))
