"""The carbon budget: when training must stop, and why (the one thing co2cb may stop training for)."""

from __future__ import annotations

import logging

from co2cb.core.config import ConfigError
from co2cb.training.energy import Forecast
from co2cb.units import format_mass

log = logging.getLogger("co2cb.training")

BUDGET_MODES = ("total", "forecast")


class Budget:
    """A limit on the job's CO2, checked against the CO2 so far or the forecast of the whole run.

    Args:
        kg: The limit, kg CO2e; None for no budget.
        on: ``"total"`` (CO2 so far) or ``"forecast"`` (predicted CO2 of the whole run, checked at epoch ends).

    Raises:
        co2cb.ConfigError: An option is invalid; the message says what to change.
    """

    def __init__(self, kg: float | None, on: str = "total") -> None:
        if kg is not None and (isinstance(kg, bool) or not isinstance(kg, (int, float)) or not kg > 0):
            raise ConfigError(
                f"budget_kg={kg!r} is not valid: give a number of kg CO2e greater than 0 (e.g. 1.5, not '1.5'), "
                "or leave it out for no budget"
            )
        if on not in BUDGET_MODES:
            raise ConfigError(f"budget_on={on!r} is not valid: use 'total' or 'forecast'")
        self.kg, self.on = kg, on
        self.stop_reason: str | None = None

    def check(self, co2_so_far: float, forecast: Forecast | None, during_epoch: bool) -> None:
        """Set :attr:`stop_reason` (and warn once) when the budget is passed, or would be by the forecast."""
        if self.kg is None or self.stop_reason is not None:
            return
        if co2_so_far > self.kg:
            self.stop_reason = (
                f"co2cb: carbon budget reached: {format_mass(co2_so_far)} CO2e so far, budget "
                f"{format_mass(self.kg)}; stopping training"
            )
        elif self.on == "forecast" and not during_epoch and forecast is not None and forecast.co2_kg > self.kg:
            self.stop_reason = (
                f"co2cb: carbon budget would be passed: the whole run is forecast at "
                f"{format_mass(forecast.co2_kg)} CO2e ({forecast.progress:.0%} done), budget "
                f"{format_mass(self.kg)}; stopping training"
            )
        if self.stop_reason:
            log.warning(self.stop_reason)
