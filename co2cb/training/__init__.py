"""Framework-neutral training rules under every adapter: :class:`~co2cb.training.monitor.TrainingMonitor`."""

from co2cb.training.monitor import TrainingMonitor

__all__ = ["TrainingMonitor"]
