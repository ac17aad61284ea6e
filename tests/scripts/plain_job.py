"""A plain PyTorch loop under torch.distributed (gloo, CPU) measured with ``co2cb.distributed.job_tracker``.

Run by ``tests/test_multinode.py`` (two ``torchrun`` groups, each a "host" with its own
``CO2CB_HOST_ID`` and fake powercap tree in ``CO2CB_POWERCAP_ROOT``) and ``tests/test_accelerate.py``
(``accelerate launch``, with ``--accelerate``: the loop is prepared by an ``Accelerator``).

Every training step, on every rank: a barrier, then the rank adds ``(rank + 1) * --joules`` joules to
its host's package counter (under a file lock, written atomically), then a second barrier: every joule
of a step is added while every rank is inside that step's epoch window.

``--break-host H``: after the first epoch, the first rank on host H makes that host's DRAM counter
unreadable, and waits until its sampler has lost that meter before the second epoch starts.

Writes ``--out/rank<N>.json``: the rank's host id, joules added per epoch, what ``job_tracker`` returned
(the job's figures) and where the run folder is.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from co2cb.distributed import job_tracker


def add_energy(counter: Path, joules: int) -> None:
    """Advance a fake ``energy_uj`` counter by whole joules (exact in microjoules)."""
    with open(counter.parent.parent / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        try:
            value = int(counter.read_text()) + joules * 1_000_000
            tmp = counter.with_name(f".energy_uj.{os.getpid()}")
            tmp.write_text(f"{value}\n")
            os.replace(tmp, counter)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--joules", type=int, default=5)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--accelerate", action="store_true", help="prepare the loop with accelerate.Accelerator")
    p.add_argument("--break-host", help="this host's DRAM counter becomes unreadable after the first epoch")
    opts = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    device = None
    if opts.accelerate:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=True)
        model, optimizer = accelerator.prepare(model, optimizer)
        device = accelerator.device
    else:
        dist.init_process_group("gloo")
    rank, host = dist.get_rank(), os.environ.get("CO2CB_HOST_ID", "")
    counter = Path(os.environ["CO2CB_POWERCAP_ROOT"]) / "intel-rapl:0" / "energy_uj"
    tracker = job_tracker(
        run_name="plain-job",
        output_dir=str(opts.out / "runs"),
        scope="machine",
        region="FR",
        interval_s=0.05,
        device=device,
    )
    added: dict[int, int] = {}
    windows = []
    with tracker:
        for epoch in range(opts.epochs):
            with tracker.window("epoch", meta={"epoch": epoch}) as window:
                for _ in range(opts.steps):
                    tracker.begin("step", record=False)
                    loss = model(torch.randn(4, 8)).pow(2).mean()
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                    dist.barrier()
                    add_energy(counter, (rank + 1) * opts.joules)
                    added[epoch] = added.get(epoch, 0) + (rank + 1) * opts.joules
                    dist.barrier()
                    tracker.end("step")
            windows.append(window.result.as_record() if window.result else None)
            if epoch == 0 and opts.break_host:
                if opts.break_host == host and tracker.rank.reads_host("machine"):
                    (counter.parent.parent / "intel-rapl:0:1" / "energy_uj").write_text("not a number\n")
                    deadline = time.monotonic() + 60  # the sampler notices it (a loaded machine may delay it)
                    while "rapl:dram-0" not in tracker.totals(read=True).unavailable and time.monotonic() < deadline:
                        time.sleep(0.05)
                dist.barrier()
    result = tracker.result
    (opts.out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "host": host,
                "hosts": list(tracker.rank.hosts),
                "pid": os.getpid(),
                "added": {str(k): v for k, v in added.items()},
                "windows": windows,
                "result": result.as_record() if result is not None else None,
                "run_folder": str(tracker.run_folder) if tracker.run_folder else None,
                "backend": dist.get_backend(),
            }
        )
    )
    dist.barrier()
    if opts.accelerate:
        # the DDP wrapper goes before its process group: CI once saw a rank hang for good in a thread join of
        # torch's as main's objects went, after destroy_process_group
        accelerator.free_memory()
        del model, optimizer
        gc.collect()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
