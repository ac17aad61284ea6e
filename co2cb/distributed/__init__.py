"""One record for a job of many processes, from a plain PyTorch loop: :func:`job_tracker`.

Under ``torchrun``, ``accelerate launch``, Ray Train or ``srun``, call it on every rank once
``torch.distributed`` is initialised; it returns a :class:`co2cb.Tracker` whose windows and totals are
the job's (every rank's energy summed, host-level meters read once per host) and whose record global
rank 0 alone writes. The Lightning and Hugging Face callbacks do the same by themselves.

Importing this package imports no framework: ``torch`` is imported when :func:`job_tracker` is called.
"""

from co2cb.integrations.job_tracker import JobTracker, job_tracker

__all__ = ["JobTracker", "job_tracker"]
