"""What recorded runs say to people: statements, model cards and comparisons.

:mod:`~co2cb.report.statement` (its figures; as text, Markdown or LaTeX in
:mod:`~co2cb.report.statement_text`, as a model card in :mod:`~co2cb.report.model_card`)
and :mod:`~co2cb.report.compare` (table, figure, HTML report).
"""
