"""Planning without measuring: estimates of runs not yet made, and recorded runs on other grids.

:mod:`~co2cb.planning.estimate` (a run not yet made, from published board
power in :mod:`~co2cb.planning.accelerators`, with the inputs read by :mod:`~co2cb.planning.inputs`) and
:mod:`~co2cb.planning.whatif` (a recorded run's energy on other grids).
"""
