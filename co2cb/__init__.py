"""co2cb: energy and CO2 of ML training, measured from inside the training loop.

The core (this package) knows no ML framework; the adapters live in
``co2cb.lightning``, ``co2cb.hf`` and ``co2cb.keras``.
"""

from co2cb._version import __version__
from co2cb.core.config import ConfigError
from co2cb.core.results import WindowResult
from co2cb.core.steps import StepStats
from co2cb.core.tracker import Tracker, WindowHandle
from co2cb.intensity.base import FixedIntensity, IntensityInfo, IntensitySource
from co2cb.meters.base import Meter, MeterError, MeterInfo
from co2cb.records.reader import read_records

__all__ = [
    "ConfigError",
    "FixedIntensity",
    "IntensityInfo",
    "IntensitySource",
    "Meter",
    "MeterError",
    "MeterInfo",
    "StepStats",
    "Tracker",
    "WindowHandle",
    "WindowResult",
    "__version__",
    "find_runs",
    "load_run",
    "read_records",
]
