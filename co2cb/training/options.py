"""A training monitor's options, checked at construction: a wrong one fails before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from co2cb.core.options import check_options

RESERVED = ("run_name", "tags", "gpus", "pids")
"""Tracker options an adapter sets itself (the callback's own arguments, or found from the framework)."""


def check_monitor_options(forecast_after_epochs: Any, tracker_options: Mapping[str, Any]) -> None:
    """Check the options of :class:`co2cb.training.monitor.TrainingMonitor` other than the budget.

    Raises:
        ValueError: An option is invalid (:class:`co2cb.ConfigError` for a tracker option); the message
            says what to change.
    """
    valid = isinstance(forecast_after_epochs, int) and not isinstance(forecast_after_epochs, bool)
    if not valid or forecast_after_epochs < 1:
        raise ValueError(f"forecast_after_epochs={forecast_after_epochs!r} is not valid: give an integer >= 1")
    reserved = sorted(set(RESERVED) & set(tracker_options))
    if reserved:
        raise ValueError(
            f"{', '.join(reserved)} cannot be passed as tracker options here: run_name and tags are the "
            "callback's own arguments, and each rank's GPUs and processes are found from the framework"
        )
    check_options(**{k: v for k, v in tracker_options.items() if k != "components"})
