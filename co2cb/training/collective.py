"""How the ranks of a job exchange numbers, and where this process sits in the job."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from co2cb.core.options import EXPORT_OPTIONS
from co2cb.core.tracker import Tracker
from co2cb.meters.accelerators import FrameworkGpus
from co2cb.meters.base import COMPONENTS
from co2cb.training.hosts import Host, labels, this_host


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
        local_rank: Rank on this host, as the launcher numbers it.
        world_size: Number of processes in the job.
        local_pids: Process ids of the ranks whose processes this rank's host-level meters cover in
            process scope (same host, same PID namespace).
        hosts: Host label of every rank, in rank order (see :mod:`co2cb.training.hosts`).
        pid_spaces: PID namespace of every rank, in rank order (empty: one per host).
        about_hosts: Per host label: its ranks, host name and where its identity comes from, for the record.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_pids: tuple[int, ...] = ()
    hosts: tuple[str, ...] = field(default_factory=lambda: (this_host().label,))
    pid_spaces: tuple[str, ...] = ()
    about_hosts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def host(self) -> str:
        """This rank's host label."""
        return self.hosts[self.rank] if self.rank < len(self.hosts) else self.hosts[0]

    def reads_host(self, scope: str = "process") -> bool:
        """Whether this rank runs the host-level meters (RAPL, CPU, RAM) for its host.

        In machine scope, the first rank of each host; in process scope, the first rank of each PID
        namespace of a host. Without every rank's host (a hand-made :class:`RankInfo`), local rank 0.
        """
        if len(self.hosts) != self.world_size:
            return self.local_rank == 0
        spaces = self.pid_spaces if scope == "process" and len(self.pid_spaces) == self.world_size else ()

        def group(r: int) -> tuple[str, str]:
            return self.hosts[r], spaces[r] if spaces else ""

        mine = group(self.rank)
        return next(r for r in range(self.world_size) if group(r) == mine) == self.rank

    @classmethod
    def gathered(cls, collective: Collective, local_rank: int) -> RankInfo:
        """This process's place in the job, from every rank's host and pid (a collective: every rank calls it)."""
        me = this_host()
        everyone: list[tuple[Host, int]] = collective.gather((me, os.getpid()))
        named = labels([h for h, _ in everyone])
        about: dict[str, dict[str, Any]] = {}
        for r, (label, (h, _)) in enumerate(zip(named, everyone)):
            entry = about.setdefault(label, {"hostname": h.name, "identity": h.source, "ranks": []})
            entry["ranks"].append(r)
        return cls(
            rank=collective.rank,
            local_rank=local_rank,
            world_size=collective.world_size,
            local_pids=tuple(pid for h, pid in everyone if h.key == me.key and h.pid_space == me.pid_space),
            hosts=tuple(named),
            pid_spaces=tuple(h.pid_space for h, _ in everyone),
            about_hosts=about,
        )


def rank_options(
    options: Mapping[str, Any],
    rank: RankInfo,
    gpus: Sequence[int] | None,
    uses_gpu: bool,
) -> dict[str, Any]:
    """This rank's :class:`co2cb.Tracker` options: its GPUs; host meters on one rank per host; rank 0 saves.

    The host-level meters and the live export run on one rank per host (see :meth:`RankInfo.reads_host`).

    Args:
        options: The user's :class:`co2cb.Tracker` options.
        rank: Where this process sits in the job.
        gpus: The CUDA devices this rank trains on (None: all visible).
        uses_gpu: Whether this rank trains on a GPU at all.
    """
    options = dict(options)
    if not rank.reads_host("machine"):  # one live-metrics endpoint per host, on the rank that reads its meters
        options = {k: v for k, v in options.items() if k not in EXPORT_OPTIONS}
    components = [c for c in options.pop("components", COMPONENTS) if c != "gpu" or uses_gpu]
    if not rank.reads_host(str(options.get("scope", "process"))):
        components = [c for c in components if c == "gpu"]
    if not components:  # e.g. the second rank of a CPU job on a host: its share is measured by the first
        options["meters"] = []
    return {
        **options,
        "save": bool(options.pop("save", True)) and rank.rank == 0,
        "components": components or ["cpu"],
        "gpus": FrameworkGpus(gpus) if gpus is not None and uses_gpu else None,  # unmeasurable: left out, said
        "pids": rank.local_pids or None,
    }


def rank_tracker(
    options: Mapping[str, Any],
    rank: RankInfo,
    gpus: Sequence[int] | None,
    uses_gpu: bool,
    *,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Tracker:
    """This rank's tracker, with the options of :func:`rank_options`.

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
    return Tracker(run_name=run_name, tags=tags, **rank_options(options, rank, gpus, uses_gpu))


def start_together(collective: Collective, start: Callable[[], Mapping[str, str]]) -> list[dict[str, str]]:
    """Run ``start`` on this rank, then learn how every rank did (a collective: every rank calls it).

    Args:
        collective: The job's collective.
        start: Starts this rank's measuring; returns how its meters measure each component
            (component -> provenance, see :func:`measured`).

    Returns:
        Every rank's component -> provenance, in rank order.

    Raises:
        RuntimeError: Some rank could not start (every rank raises, so none measures: their later
            collectives would not match).
    """
    error, mine = None, {}
    try:
        mine = dict(start())
    except Exception as e:  # noqa: BLE001 - reported below, once every rank has said how it went
        error = f"{type(e).__name__}: {e}"
    everyone = collective.gather((error, mine))
    errors = [e for e, _ in everyone if e]
    if errors:
        raise RuntimeError(f"a rank could not start measuring ({errors[0]})")
    return [m for _, m in everyone]


def measured(tracker: Tracker) -> dict[str, str]:
    """How ``tracker``'s meters measure each component: component -> provenance (several joined by ``+``)."""
    found: dict[str, set[str]] = {}
    for m in tracker.meter_set.meters:
        found.setdefault(m.info.component.value, set()).add(m.info.provenance.value)
    return {c: "+".join(sorted(p)) for c, p in found.items()}
