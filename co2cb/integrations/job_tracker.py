"""A :class:`co2cb.Tracker` for one rank of a distributed job, whose windows and totals are the job's.

Public as :mod:`co2cb.distributed`; ``torch`` is imported only when :func:`job_tracker` is called.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from co2cb.core.config import ConfigError
from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.integrations.launchers import where_to_write
from co2cb.integrations.torch_collective import TorchCollective, cuda_devices
from co2cb.training.collective import Collective, RankInfo, SingleProcess, measured, rank_options, start_together
from co2cb.training.job import Job, meter_components

log = logging.getLogger(__name__)


class JobTracker(Tracker):
    """A :class:`co2cb.Tracker` for one rank of a job: its windows and totals are the job's, summed over ranks.

    Build it with :func:`job_tracker`. Each rank measures its own GPU; the host-level meters (RAPL,
    CPU and RAM estimates) run on one rank per host; only global rank 0 writes the run folder.
    :meth:`start`, the close of every recorded window and :meth:`stop` are collectives: every rank
    calls them, in the same order (as a training loop's ``with tracker.window("epoch"):`` does). Each
    then returns the job's figures on every rank, and the record splits them per rank and per host.

    Step windows (``record=False``) stay each rank's own: no collective on the hot path.

    If a block raises on one rank, its ``with`` exit stops that rank's measuring alone, without a
    collective (the other ranks may never get there). At interpreter exit the same.
    """

    def __init__(
        self,
        collective: Collective,
        rank: RankInfo,
        gpus: list[int] | None = None,
        uses_gpu: bool = False,
        **options: Any,
    ) -> None:
        """Build this rank's tracker.

        Args:
            collective: How the ranks exchange numbers.
            rank: Where this process sits in the job.
            gpus: The CUDA devices this rank trains on (None: all visible).
            uses_gpu: Whether this rank trains on a GPU at all.
            **options: :class:`co2cb.Tracker` options (the same on every rank).

        Raises:
            ConfigError: An option is invalid.
        """
        super().__init__(**rank_options(options, rank, gpus, uses_gpu))
        self.collective, self.rank = collective, rank
        self.job = Job(collective, rank)
        self._together = collective.world_size > 1  # windows and totals are gathered
        self._step_names: set[str] = set()
        self._recorded_names: dict[str, None] = {}  # names of recorded windows opened, first first

    def start(self, header: Mapping[str, Any] | None = None) -> JobTracker:
        """Start measuring on every rank (a collective); if a rank cannot, none measures, with a warning."""
        if self.running or self.result is not None:
            return self
        job = {"world_size": self.rank.world_size, "hosts": dict(self.rank.about_hosts)}
        header = {"job": job, **dict(header or {})}
        try:
            per_rank = start_together(self.collective, lambda: measured(super(JobTracker, self).start(header)))
        except RuntimeError as e:
            log.warning("co2cb: %s; the job is not measured, training goes on", e)
            self._together = False
            if self.running:
                super().stop({"status": f"not measured: {e}"})
            return self
        self.job = Job(self.collective, self.rank, per_rank, meter_components(self))
        return self

    def begin(self, name: str, record: bool = True) -> None:
        """Open a window (see :meth:`co2cb.Tracker.begin`); no collective."""
        if not record:
            self._step_names.add(name)
        elif name not in self._step_names:
            self._recorded_names[name] = None
        super().begin(name, record)

    def end(
        self, name: str, meta: Mapping[str, Any] | None = None, write: bool = True, at_ns: int | None = None
    ) -> WindowResult | None:
        """Close a window (as of ``at_ns``); a recorded one is summed over ranks (a collective) and written by rank 0.

        Returns:
            The job's figures for the window, on every rank (None for a step window, or a window not
            open on this rank).
        """
        if not self._together or not self.running or name in self._step_names:
            return super().end(name, meta, write, at_ns)
        local = super().end(name, meta, write=False, at_ns=at_ns) if self.open_windows(name) else None
        shares = self.job.shares(local)
        if local is None:
            return None
        split = self.job.split(shares.per_rank, shares.lost)
        result = self.job.result(local, shares.total, {**local.meta, **split}, shares)
        if write:
            self.write_result(result)
        return result

    def stop(self, summary: Mapping[str, Any] | None = None, write_run: bool = True) -> WindowResult | None:
        """Stop measuring: the job's run window and summary, written by rank 0 (a collective).

        Windows still open on some rank are closed first, the same on every rank.

        Returns:
            The job's run window, on every rank (also kept as :attr:`result`).
        """
        if not self.running or not self._together:
            return super().stop(summary, write_run)
        try:
            open_now = [(n, len(self.open_windows(n))) for n in self._recorded_names if self.open_windows(n)]
            counts: dict[str, int] = {}
            for mine in self.collective.gather(open_now):
                for name, n in mine:
                    counts[name] = max(counts.get(name, 0), n)
            for name, n in counts.items():
                for _ in range(n):
                    self.end(name, {"closed_by": "stop"})
            run = self.totals(read=True)
            shares = self.job.shares(run, self.meter_losses())
        except Exception as e:  # noqa: BLE001 - a torn-down process group: this rank's own figures, as a Tracker's
            log.warning("co2cb: could not sum the job's totals over its ranks (%s); this rank's are recorded", e)
            self._together = False
            return super().stop(summary, write_run)
        energy, split = shares.total, self.job.split(shares.per_rank, shares.lost)
        line = self.job.result(run, energy, {"kind": "run", **split}, shares)
        self.write_result(line)
        super().stop({**self.job.summary(line, shares), **dict(summary or {})}, write_run=False)
        self.result = self.job.result(run, energy, {"kind": "run"}, shares)
        return self.result

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:  # the other ranks may never reach a collective
            self._together = False
        super().__exit__(exc_type, exc, tb)

    def _stop_at_exit(self) -> None:
        self._together = False
        super()._stop_at_exit()


def job_tracker(*, device: Any = None, **options: Any) -> JobTracker:
    """A :class:`co2cb.Tracker` for this rank of a ``torch.distributed`` job (call it on every rank).

    Call it after ``torch.distributed.init_process_group`` (``Accelerator()`` and Ray Train's
    ``train_func`` have done so), with the same options on every rank; it gathers every rank's host
    and process id (a collective). Use it as a Tracker::

        tracker = co2cb.distributed.job_tracker(run_name="pretrain", device=accelerator.device)
        with tracker:
            for epoch in range(3):
                with tracker.window("epoch", meta={"epoch": epoch}):
                    train_one_epoch()
        print(tracker.result.co2_kg)  # the job's, on every rank

    Without an initialised process group (or with one process) it is a plain Tracker.

    Args:
        device: The device this rank trains on (``accelerator.device``, ``"cuda:1"``, a ``torch.device``);
            default: the current CUDA device where CUDA is initialised, else the CPU.
        **options: :class:`co2cb.Tracker` options. Under Ray Train a relative ``output_dir`` (or none) is
            taken under the run's storage folder (see :mod:`co2cb.integrations.launchers`).

    Raises:
        ConfigError: An option is invalid, or ``gpus``/``pids`` given (each rank's come from ``device``).
    """
    import torch
    import torch.distributed as dist

    wrong = sorted({"gpus", "pids"} & set(options))
    if wrong:
        raise ConfigError(
            f"{', '.join(wrong)} cannot be given to job_tracker: each rank measures the GPU of its device= and "
            "the host-level meters cover every rank of a host"
        )
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    collective: Collective = TorchCollective(dist) if distributed else SingleProcess()
    rank = RankInfo.gathered(collective, int(os.environ.get("LOCAL_RANK", "0")))
    if device is None:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    gpus, uses_gpu = cuda_devices(torch.device(device))
    return JobTracker(collective, rank, gpus, uses_gpu, **where_to_write(options))
