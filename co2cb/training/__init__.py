"""Framework-neutral training rules under every adapter.

* :class:`~co2cb.training.monitor.TrainingMonitor`: epochs, validations, steps, forecast, budget,
  ranks and checkpoints, the one place these rules live;
* :mod:`~co2cb.training.energy`: :class:`Energy` (summable across ranks) and :class:`Forecast`;
* :mod:`~co2cb.training.collective`: how ranks exchange numbers (:class:`RankInfo`, :class:`SingleProcess`);
* :mod:`~co2cb.training.hosts`: which ranks share a host (``CO2CB_HOST_ID``, the boot id, the host name);
* :mod:`~co2cb.training.job`: a job's figures from its ranks' (one gather per close, split per rank and host);
* :mod:`~co2cb.training.lines`: what a monitor prints (the forecast line, the run's use at its end);
* :mod:`~co2cb.training.guard`: :func:`guarded`, hooks that cannot raise;
* :mod:`~co2cb.training.tensorboard`: TensorBoard event files without TensorFlow.
"""

from co2cb.training.collective import Collective, RankInfo, SingleProcess
from co2cb.training.energy import Energy, Forecast, sum_over_ranks
from co2cb.training.guard import guarded
from co2cb.training.monitor import EpochReport, TrainingMonitor

__all__ = [
    "Collective",
    "Energy",
    "EpochReport",
    "Forecast",
    "RankInfo",
    "SingleProcess",
    "TrainingMonitor",
    "guarded",
    "sum_over_ranks",
]
