"""Framework adapters: each a thin translation of one framework's hooks into :mod:`co2cb.training.monitor` calls.

They import their framework; the core never imports them. Users import the public shims
(``co2cb.lightning``, ``co2cb.pytorch_lightning``, ``co2cb.hf``, ``co2cb.keras``).
"""
