"""A job's figures from its ranks': one gather per window, then the sum and its split per rank and per host.

What crosses the network at a window's close is each rank's energy vector (a few floats: joules per
component, CO2, seconds) and the meters it has lost, usually none. Host-level meters run on one rank per
host (see :meth:`co2cb.training.collective.RankInfo.reads_host`), so the sum counts each host once.

A meter a rank lost (a host's RAPL counter that stopped reading, a GPU that fell off the bus) leaves
its energy after the loss out of that rank's share: the job's record names it, host first
(``node-b/rapl:package-0``), in the window's ``unavailable`` list, and marks the component unavailable
in that host's entry of the split. The totals are then a lower bound, and the record says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.training.collective import Collective, RankInfo, SingleProcess
from co2cb.training.energy import Energy, SummedRanks, job_result, sum_over_ranks, weighted_intensity


@dataclass
class Shares:
    """Every rank's share of one window, in rank order.

    Attributes:
        per_rank: Each rank's energy.
        lost: Each rank's lost meters by the window's end, as ``(meter, component)``.
        losses: Each rank's meter losses as its summary would list them (``meter``, ``at``, ``error``);
            gathered at the run's end only.
        also: Each rank's other energy sent in the same gather (its run so far), if any.
        earlier: Every rank's share of a window closed with this one as of an earlier moment (a validation
            that ended its training epoch), from the same gather; None if none was sent.
        notes: Each rank's intensity notes on its window (parts outside a series, gaps, live fallbacks).
    """

    per_rank: list[Energy]
    lost: list[list[tuple[str, str]]]
    losses: list[list[dict[str, Any]]] = field(default_factory=list)
    also: list[Energy] = field(default_factory=list)
    earlier: Shares | None = None
    notes: list[list[str]] = field(default_factory=list)

    @property
    def total(self) -> Energy:
        """The job's energy: every rank's added (the duration is the longest rank's)."""
        return sum_over_ranks(self.per_rank)


def meter_components(tracker: Tracker) -> dict[str, str]:
    """Meter name -> component of ``tracker``'s meters."""
    return {m.info.name: m.info.component.value for m in tracker.meter_set.meters}


def gather_shares(
    collective: Collective,
    local: WindowResult | None,
    components: Mapping[str, str],
    losses: Sequence[Mapping[str, Any]] | None = None,
    also: Energy | None = None,
    earlier: WindowResult | None = None,
) -> Shares:
    """Every rank's share of a window (a collective: every rank calls it, in the same order).

    Args:
        collective: The job's collective.
        local: This rank's window (None: this rank has none open; it counts as zero).
        components: Meter name -> component, for this rank's lost meters.
        losses: This rank's meter losses in full (at the run's end), or None.
        also: Another energy of this rank's to send in the same gather (its run so far), or None.
        earlier: Another window of this rank's, closed with ``local`` as of an earlier moment (a validation
            that ended its training epoch), sent in the same gather: its shares are ``Shares.earlier``.
    """
    energy = Energy.of(local) if local is not None else Energy()
    lost = _lost(local, components)
    notes = _notes(local)
    if collective.world_size == 1:  # nothing to exchange: this process's share as it is
        before = (
            Shares([Energy.of(earlier)], [_lost(earlier, components)], notes=[_notes(earlier)])
            if earlier is not None
            else None
        )
        also_ = [also] if also is not None else []
        return Shares([energy], [lost], [[dict(x) for x in losses or ()]], also_, before, [notes])
    extra = also.vector() if also is not None else []
    sent_earlier = (
        (Energy.of(earlier).vector(), _lost(earlier, components), _notes(earlier))
        if earlier is not None
        else ([], [], [])
    )
    everyone = collective.gather((energy.vector(), lost, list(losses or []), extra, notes, *sent_earlier))
    before = None
    if earlier is not None:  # a rank that had no such window sends none: it counts as zero
        before = Shares(
            [Energy.from_vector(x[5]) if x[5] else Energy() for x in everyone],
            [[(m, c) for m, c in x[6]] for x in everyone],
            notes=[list(x[7]) for x in everyone],
        )
    return Shares(
        [Energy.from_vector(x[0]) for x in everyone],
        [[(m, c) for m, c in x[1]] for x in everyone],
        [list(x[2]) for x in everyone],
        [Energy.from_vector(x[3]) for x in everyone if x[3]],
        before,
        [list(x[4]) for x in everyone],
    )


def _lost(window: WindowResult | None, components: Mapping[str, str]) -> list[tuple[str, str]]:
    """A window's lost meters as ``(meter, component)``."""
    return [(m, components.get(m, "")) for m in (window.unavailable if window is not None else ())]


def _notes(window: WindowResult | None) -> list[str]:
    """A window's intensity notes."""
    return list(window.intensity_notes) if window is not None else []


def split(hosts: Sequence[str], per_rank: Sequence[Energy], lost: Sequence[Sequence[tuple[str, str]]] = ()) -> dict:
    """The job's energy per rank and per host, for the record.

    Args:
        hosts: Each rank's host label, in rank order.
        per_rank: Each rank's energy.
        lost: Each rank's lost meters as ``(meter, component)`` (default: none).

    Returns:
        ``per_rank``: each rank's energy and host (and lost meters, if any); ``per_host``: each host's
        energy, ranks and the components it could not measure to the end (``unavailable``), if any.
    """
    lost = list(lost) or [[] for _ in per_rank]
    ranks: list[dict[str, Any]] = []
    by_host: dict[str, Energy] = {}
    members: dict[str, list[int]] = {}
    gone: dict[str, set[str]] = {}
    for r, (host, e, meters) in enumerate(zip(hosts, per_rank, lost)):
        by_host[host] = sum_over_ranks([by_host.get(host, Energy()), e])
        members.setdefault(host, []).append(r)
        gone.setdefault(host, set()).update(c for _, c in meters)
        ranks.append(
            {**e.as_record(), "host": host, **({"unavailable": sorted(m for m, _ in meters)} if meters else {})}
        )
    per_host = {
        h: {**e.as_record(), "ranks": members[h], **({"unavailable": sorted(gone[h])} if gone[h] else {})}
        for h, e in by_host.items()
    }
    return {"per_rank": ranks, "per_host": per_host}


def unavailable(hosts: Sequence[str], lost: Sequence[Sequence[tuple[str, str]]]) -> tuple[str, ...]:
    """Every rank's lost meters, host first (``node-b/rapl:package-0``), once each, sorted."""
    return tuple(sorted({f"{host}/{m}" for host, meters in zip(hosts, lost) for m, _ in meters}))


def merged_provenance(per_rank: Sequence[Mapping[str, str]], ranks: Sequence[int] | None = None) -> dict[str, str]:
    """Component -> every provenance the ranks (all, or ``ranks``) report for it, joined by ``+``."""
    found: dict[str, set[str]] = {}
    for r, provenance in enumerate(per_rank):
        if ranks is None or r in ranks:
            for component, kinds in provenance.items():
                found.setdefault(component, set()).update(kinds.split("+"))
    return {c: "+".join(sorted(k)) for c, k in found.items()}


def merged_notes(hosts: Sequence[str], per_rank: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """Every rank's intensity notes once each, in order; a note some ranks lack names the hosts that have it."""
    holders: dict[str, dict[str, None]] = {}
    ranks_with: dict[str, set[int]] = {}
    for r, (host, notes) in enumerate(zip(hosts, per_rank)):
        for note in notes:
            holders.setdefault(note, {})[host] = None
            ranks_with.setdefault(note, set()).add(r)
    everyone = len(per_rank)
    return tuple(
        note if len(ranks_with[note]) == everyone else f"{', '.join(h)}: {note}" for note, h in holders.items()
    )


SUMMARY_FIELDS = (
    "seconds",
    "energy_kwh",
    "meter_energy_kwh",
    "mean_power_w",
    "co2_kg",
    "intensity_g_per_kwh",
    "co2_kg_marginal",
    "intensity_g_per_kwh_marginal",
    "intensity_notes",
    "provenance",
    "unavailable",
)
"""The summary's fields a job of several ranks takes from its run line (the job's), over rank 0's own."""


@dataclass
class Job:
    """The ranks of a job, as the process that gathers and writes their figures sees them.

    Attributes:
        collective: How the ranks exchange numbers.
        rank: Where this process sits in the job.
        provenance: Each rank's component -> provenance (from :func:`co2cb.training.collective.start_together`).
        components: This rank's meter name -> component.
    """

    collective: Collective = field(default_factory=SingleProcess)
    rank: RankInfo = field(default_factory=RankInfo)
    provenance: list[dict[str, str]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)

    @property
    def several(self) -> bool:
        """Whether the job has more than one rank."""
        return self.collective.world_size > 1

    def shares(
        self,
        local: WindowResult | None,
        losses: Sequence[Mapping[str, Any]] | None = None,
        also: Energy | None = None,
        earlier: WindowResult | None = None,
    ) -> Shares:
        """Every rank's share of a window (a collective; see :func:`gather_shares`)."""
        return gather_shares(self.collective, local, self.components, losses, also, earlier)

    def split(self, per_rank: Sequence[Energy], lost: Sequence[Sequence[tuple[str, str]]]) -> dict[str, Any]:
        """:func:`split` for this job's hosts; nothing for a job of one process."""
        return split(self.rank.hosts, per_rank, lost) if self.several else {}

    def result(self, local: WindowResult, energy: Energy, meta: dict[str, Any], shares: Shares) -> WindowResult:
        """The job's window line: ``energy`` with every rank's provenance, lost meters and intensity notes."""
        if not self.several:
            return job_result(local, energy, meta)
        hosts = self.rank.hosts
        summed = SummedRanks(
            merged_provenance(self.provenance), unavailable(hosts, shares.lost), merged_notes(hosts, shares.notes)
        )
        return job_result(local, energy, meta, summed)

    def intensity(self, local: WindowResult, energy: Energy) -> float:
        """The intensity behind ``energy``'s CO2, gCO2e/kWh: this rank's window's, or the job's energy-weighted one."""
        return (
            weighted_intensity(energy.co2_kg, energy, local.pue, local.g_per_kwh) if self.several else local.g_per_kwh
        )

    def hosts(self) -> dict[str, dict[str, Any]]:
        """Per host: its ranks, host name, where its identity comes from and how it measures each component."""
        table: dict[str, dict[str, Any]] = {}
        for host in dict.fromkeys(self.rank.hosts):
            ranks = [r for r, h in enumerate(self.rank.hosts) if h == host]
            about = dict(self.rank.about_hosts.get(host, {"ranks": ranks}))
            table[host] = {**about, "provenance": merged_provenance(self.provenance, ranks)}
        return table

    def summary(self, run: WindowResult, shares: Shares) -> dict[str, Any]:
        """The summary fields of a job of several ranks: its run line's (:meth:`result`), split, hosts, meter losses."""
        hosts = self.rank.hosts
        losses = [
            {**x, "meter": f"{hosts[r]}/{x.get('meter')}", "host": hosts[r], "rank": r}
            for r, mine in enumerate(shares.losses)
            for x in mine
        ]
        line = run.as_record()
        split_ = {"hosts": self.hosts(), **self.split(shares.per_rank, shares.lost)}
        return {
            **{k: line[k] for k in SUMMARY_FIELDS},
            "job": {"world_size": self.rank.world_size, **split_},
            "meter_losses": losses,
        }
