"""How the ranks of a job exchange numbers, and where this process sits in the job."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from co2cb.core.options import EXPORT_OPTIONS
from co2cb.core.tracker import Tracker
from co2cb.meters.base import COMPONENTS


class Collective(Protocol):
    """How the adapter exchanges numbers between the ranks of a job."""

    world_size: int
    rank: int

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (small, picklable), in rank order, on every rank."""


@dataclass
class SingleProcess:
    """The collective of a job of one process."""

    world_size: int = 1
    rank: int = 0

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``: this process's alone."""
        return [value]


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank.
        local_rank: Rank on this host.
        world_size: Number of processes in the job.
        local_pids: Process ids of every rank on this host (for the host-level meters).
        hosts: Host name of every rank, in rank order.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_pids: tuple[int, ...] = ()
    hosts: tuple[str, ...] = field(default_factory=lambda: (socket.gethostname(),))

    @classmethod
    def gathered(cls, collective: Collective, local_rank: int) -> RankInfo:
        """This process's place in the job, from every rank's host and pid (a collective: every rank calls it)."""
        me = (socket.gethostname(), os.getpid(), local_rank)
        everyone = collective.gather(me)
        return cls(
            rank=collective.rank,
            local_rank=local_rank,
            world_size=collective.world_size,
            local_pids=tuple(pid for host, pid, _ in everyone if host == me[0]),
            hosts=tuple(host for host, _, _ in everyone),
        )


def rank_tracker(
    options: Mapping[str, Any],
    rank: RankInfo,
    gpus: Sequence[int] | None,
    uses_gpu: bool,
    *,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Tracker:
    """This rank's tracker: its own GPUs; host-level meters and live export on local rank 0; only rank 0 saves.

    Args:
        options: The user's :class:`co2cb.Tracker` options.
        rank: Where this process sits in the job.
        gpus: The CUDA devices this rank trains on (None: all visible).
        uses_gpu: Whether this rank trains on a GPU at all.
        run_name: Name of the run in the record.
        tags: Labels written into the record.

    Raises:
        co2cb.ConfigError: A tracker option is invalid.
    """
    options = dict(options)
    if rank.local_rank != 0:  # one live-metrics endpoint per host: local rank 0's, which reads the host's meters
        options = {k: v for k, v in options.items() if k not in EXPORT_OPTIONS}
    components = [c for c in options.pop("components", COMPONENTS) if c != "gpu" or uses_gpu]
    if rank.local_rank != 0:
        components = [c for c in components if c == "gpu"]
    if not components:  # e.g. local rank 1 of a CPU job: its share is measured by local rank 0
        options["meters"] = []
    return Tracker(
        run_name=run_name,
        tags=tags,
        save=bool(options.pop("save", True)) and rank.rank == 0,
        components=components or ["cpu"],
        gpus=list(gpus) if gpus is not None and uses_gpu else None,
        pids=rank.local_pids or None,
        **options,
    )


def start_together(collective: Collective, start: Callable[[], Sequence[str]]) -> set[str]:
    """Run ``start`` on this rank, then learn how every rank did (a collective: every rank calls it).

    Args:
        collective: The job's collective.
        start: Starts this rank's measuring; returns the components its meters measure.

    Returns:
        Every component some rank measures.

    Raises:
        RuntimeError: Some rank could not start (every rank raises, so none measures: their later
            collectives would not match).
    """
    error, mine = None, []
    try:
        mine = list(start())
    except Exception as e:  # noqa: BLE001 - reported below, once every rank has said how it went
        error = f"{type(e).__name__}: {e}"
    everyone = collective.gather((error, mine))
    errors = [e for e, _ in everyone if e]
    if errors:
        raise RuntimeError(f"a rank could not start measuring ({errors[0]})")
    return {c for _, components in everyone for c in components}
