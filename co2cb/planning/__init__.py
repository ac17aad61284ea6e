"""Planning without measuring: :mod:`~co2cb.planning.estimate` (a run not yet made, from published board
power) and :mod:`~co2cb.planning.whatif` (a recorded run's energy on other grids)."""
