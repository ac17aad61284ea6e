"""What co2cb's cross-rank traffic costs: the one gather per epoch on gloo with N CPU ranks, and the record's size.

    python benchmarks/gather_cost.py                  # 2, 4 and 8 ranks, 300 gathers each
    python benchmarks/gather_cost.py --ranks 2 4 --rounds 100

For each N, N processes join a gloo group on 127.0.0.1 and time, on every rank, exactly what the training
monitor sends when a training epoch closes with the validation that ended it
(``co2cb.training.job.Job.shares``: this rank's two window vectors, their lost meters and its run so far,
through ``all_gather_object``), after a barrier so that every rank enters together. Printed per N: the median
and 90th percentile over all ranks and rounds, and a straight line fitted through the medians (a ring
all-gather takes N - 1 steps), extrapolated to 1,000 ranks. Then the size of a job's window line in the record
for N ranks (its split per rank and per host grows with N), and of the whole record of a 10,000 GPU-hour job.

On a machine with fewer cores than ranks the ranks share cores, so the larger N are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import time
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from co2cb.core.results import WindowResult
from co2cb.integrations.torch_collective import TorchCollective
from co2cb.training.collective import RankInfo
from co2cb.training.energy import Energy
from co2cb.training.job import Job

WARMUP = 20


def window(seconds: float = 600.0) -> WindowResult:
    """A closed epoch window as a rank holds it (three components measured)."""
    joules = {"gpu": 250.0 * seconds, "cpu": 40.0 * seconds, "ram": 8.0 * seconds}
    provenance = {"gpu": "measured-counter", "cpu": "measured-counter", "ram": "measured-counter"}
    return WindowResult(
        "train_epoch", 1.7e9, 1.7e9 + seconds, seconds, joules, {}, 0.05, 56.0, 1.2, provenance, meta={"epoch": 3}
    )


def job_for(world: int, rank: int, per_host: int = 8) -> Job:
    """The job as rank ``rank`` sees it: ``per_host`` ranks per host."""
    hosts = tuple(f"node-{r // per_host:04d}" for r in range(world))
    info = RankInfo(rank=rank, world_size=world, hosts=hosts)
    provenance = [dict(window().provenance)] * world
    return Job(_Fixed(world, rank), info, provenance, {})


class _Fixed:
    """A collective that answers every rank's value as this rank's (for the record's size only)."""

    def __init__(self, world: int, rank: int) -> None:
        self.world_size, self.rank = world, rank

    def gather(self, value: object) -> list[object]:
        return [value] * self.world_size


def _rank(rank: int, world: int, port: int, rounds: int, out: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    job = job_for(world, rank)
    job.collective = TorchCollective(dist)
    local, val, run = window(), window(60.0), Energy.of(window(3600.0))
    times = []
    for i in range(WARMUP + rounds):
        dist.barrier()
        t0 = time.perf_counter_ns()
        shares = job.shares(local, also=run, earlier=val)
        dt = time.perf_counter_ns() - t0
        if i >= WARMUP:
            times.append(dt / 1e3)
    assert len(shares.per_rank) == world
    gathered: list[object] = [None] * world
    dist.all_gather_object(gathered, times)
    if rank == 0:
        Path(out).write_text(json.dumps([t for ts in gathered for t in ts]))  # type: ignore[union-attr]
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, rounds: int) -> list[float]:
    """Every rank's time of every gather, microseconds."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"co2cb-gather-{os.getpid()}-{world}.json"
    mp.spawn(_rank, args=(world, _free_port(), rounds, str(out)), nprocs=world, join=True)
    times = json.loads(out.read_text())
    out.unlink()
    return times


def line_bytes(world: int) -> int:
    """Bytes of one job window line in the record (a training epoch with its split) for ``world`` ranks."""
    job = job_for(world, 0)
    shares = job.shares(window())
    meta = {"epoch": 3, "kind": "train", **job.split(shares.per_rank, shares.lost)}
    return len(json.dumps(job.result(window(), shares.total, meta, shares.lost).as_record())) + 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--rounds", type=int, default=300)
    opts = p.parse_args()
    cpus = os.cpu_count() or 1
    print(f"co2cb gather cost on gloo, {cpus} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'ranks':>6}  {'median us':>10}  {'p90 us':>10}  {'min us':>10}")
    medians = {}
    for world in opts.ranks:
        times = measure(world, opts.rounds)
        medians[world] = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        shared = f"  ({world} ranks on {cpus} CPUs: they wait for a core)" if world > cpus else ""
        print(f"{world:>6}  {medians[world]:>10.0f}  {p90:>10.0f}  {min(times):>10.0f}{shared}")
    if len(medians) >= 2:
        xs, ys = list(medians), list(medians.values())
        slope, intercept = statistics.linear_regression(xs, ys)
        bound = " (an upper bound: some ranks shared CPUs)" if max(xs) > cpus else ""
        print(
            f"straight line through the medians: {intercept:.0f} us + {slope:.0f} us per rank; "
            f"at 1,000 ranks about {(intercept + 1000 * slope) / 1e6:.2f} s per gather{bound}"
        )
    print()
    print(f"{'ranks':>6}  {'bytes per window line':>22}  {'rank 0 builds it, ms':>21}")
    for world in (2, 8, 64, 1000):
        t0 = time.perf_counter()
        size = line_bytes(world)
        print(f"{world:>6}  {size:>22,}  {(time.perf_counter() - t0) * 1e3:>21.1f}")
    gpus, hours, epoch_min = 1000, 10, 30
    lines = 2 * hours * 60 // epoch_min + 1  # a training epoch and a validation per epoch, and the run window
    size = lines * line_bytes(gpus) + 2 * line_bytes(gpus)  # the summary holds the run's split too
    print(
        f"10,000 GPU-hours ({gpus:,} GPUs x {hours} h, one epoch every {epoch_min} min): {lines} window lines, "
        f"about {size / 1e6:.1f} MB of record"
    )


if __name__ == "__main__":
    main()
