"""What recorded runs say to people: :mod:`~co2cb.report.statement` (text, Markdown, LaTeX, model card)
and :mod:`~co2cb.report.compare` (table, figure, HTML report)."""
