"""Runnable training jobs that show co2cb at work (``co2cb demo``, the notebooks).

Unlike the core, these import torch and Lightning: only the ``demo`` command (after checking they
are installed) and the notebooks import this package.
"""
