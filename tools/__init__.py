"""Build-time tools, not shipped in the wheel.

They regenerate the embedded data tables from the raw files in ``shared/data``.
"""
