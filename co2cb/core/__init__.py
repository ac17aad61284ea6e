"""The measurement core: :class:`~co2cb.core.tracker.Tracker`, its sampler and curve, windows, steps and results.

Knows no ML framework. Reads hardware only through :mod:`co2cb.meters`, carbon intensity only
through :mod:`co2cb.intensity`, and writes run folders only through :mod:`co2cb.records`.
"""
