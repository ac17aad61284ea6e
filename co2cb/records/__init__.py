"""Run folders: the writer of a run's record and the one loader of recorded runs.

:mod:`~co2cb.records.writer` appends a run's JSON Lines record; :mod:`~co2cb.records.reader`
is the one loader every reading command uses (:func:`~co2cb.records.reader.find_runs`), built on the
line helpers of :mod:`~co2cb.records.lines` and on :mod:`~co2cb.records.provenance` (where a run's figures
come from).
"""
