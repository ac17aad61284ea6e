"""A training monitor's options, checked at construction: a wrong one fails before training starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from co2cb.core.config import ConfigError
from co2cb.core.options import check_options

RESERVED = ("run_name", "tags", "gpus", "pids")
"""Tracker options an adapter sets itself (the callback's own arguments, or found from the framework)."""


def check_monitor_options(forecast_after_epochs: Any, tracker_options: Mapping[str, Any]) -> None:
    """Check the options of :class:`co2cb.training.monitor.TrainingMonitor` other than the budget.

    Raises:
        co2cb.ConfigError: An option is invalid; the message says what to change.
    """
    valid = isinstance(forecast_after_epochs, int) and not isinstance(forecast_after_epochs, bool)
    if not valid or forecast_after_epochs < 1:
        raise ConfigError(f"forecast_after_epochs={forecast_after_epochs!r} is not valid: give an integer >= 1")
    if not isinstance(tracker_options, Mapping):
        raise ConfigError(f"tracker_options={tracker_options!r} is not valid: give a dict of co2cb.Tracker options")
    reserved = sorted(set(RESERVED) & set(tracker_options))
    if reserved:
        raise ConfigError(
            f"{', '.join(reserved)} cannot be passed as tracker options here: run_name and tags are the "
            "callback's own arguments, and each rank's GPUs and processes are found from the framework"
        )
    check_options(**{k: v for k, v in tracker_options.items() if k != "components"})


def monitored(monitor: Any) -> tuple[str, ...]:
    """The ``monitor`` option as a tuple of metric names.

    Raises:
        co2cb.ConfigError: Neither a name nor a list of names (``monitor=5``).
    """
    names = [monitor] if isinstance(monitor, str) else monitor
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(
            f"monitor={monitor!r} is not valid: give the name of a logged metric or a list of names, "
            "e.g. monitor=['val_acc']"
        )
    return tuple(names)
