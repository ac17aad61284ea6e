"""What a training monitor prints: the forecast after each epoch and what the run used at its end.

Only the process that writes the record prints, unless ``CO2CB_QUIET`` is set (read when the run starts) or the
adapter is not verbose (Keras ``verbose=0``); a line is only formatted where it is printed.
"""

from __future__ import annotations

from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.intensity.choice import is_quiet
from co2cb.training.collective import RankInfo
from co2cb.training.energy import Forecast
from co2cb.units import format_energy, format_mass


class RunLines:
    """Which process prints, and what, for :class:`co2cb.training.monitor.TrainingMonitor` (a base class of it)."""

    rank: RankInfo
    tracker: Tracker | None
    verbose: bool
    quiet = False  # ``CO2CB_QUIET`` as the run started (see :meth:`hush`)

    @property
    def writer(self) -> bool:
        """Whether this process writes the run record (global rank 0), and prints."""
        return self.rank.rank == 0

    def hush(self) -> None:
        """Read ``CO2CB_QUIET`` for the run that starts (not at each epoch: a read of the environment each time)."""
        self.quiet = is_quiet()

    @property
    def saying(self) -> bool:
        """Whether this process prints: it writes the record, is verbose, and ``CO2CB_QUIET`` was not set."""
        return self.writer and self.verbose and not self.quiet

    def say_forecast(self, forecast: Forecast, epoch: int) -> None:
        """Print the forecast made after ``epoch`` (counted from 1), unless the run is done."""
        if forecast.progress < 1 and self.saying:
            print(
                f"co2cb: after epoch {epoch} ({forecast.progress:.0%} done) the run is forecast at "
                f"{format_energy(forecast.energy_kwh)} and {format_mass(forecast.co2_kg)} CO2e"
            )

    def say_totals(self, result: WindowResult) -> None:
        """Print what the run used and where its record is."""
        if self.saying:
            folder = self.tracker.run_folder if self.tracker is not None else None
            where = f" (run folder {folder})" if folder else ""
            print(f"co2cb: training used {format_energy(result.kwh)} and {format_mass(result.co2_kg)} CO2e{where}")
