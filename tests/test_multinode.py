"""Two "nodes" on one machine: two ``torchrun`` groups over a TCP rendezvous on 127.0.0.1, one job.

Each group is a host of its own for co2cb: its own ``CO2CB_HOST_ID`` (``node-a`` with 2 ranks,
``node-b`` with 1) and its own fake powercap tree (``CO2CB_POWERCAP_ROOT``), whose package counter
its ranks advance by known joules (``tests/scripts/plain_job.py``, a plain loop measured with
``co2cb.distributed.job_tracker`` in machine scope). After the first epoch node-b's DRAM counter
becomes unreadable. Both groups run under a fake SLURM job.

Checked: one run folder; the job's CPU energy is both counters' deltas added (each host's meters
read once, not once per rank); the split per rank and per host sums to the total; node-b's RAM is
marked unavailable in the job's record from the epoch its meter was lost; the header names the hosts
and the SLURM job. The two groups take about 15 s on 2 CPUs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is needed",
    ),
]

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "scripts" / "plain_job.py"
KWH = 3.6e6
TIMEOUT_S = 300
HOSTS = {"node-a": 2, "node-b": 1}  # host id -> ranks on it
LAUNCHER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("two-hosts")
    out = base / "out"
    out.mkdir()
    port = free_port()
    powercaps = {h: FakePowercap(base / h / "powercap") for h in HOSTS}
    procs = []
    for host, nproc in HOSTS.items():
        env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV and not k.startswith("SLURM_")}
        env.update(
            CO2CB_HOST_ID=host,
            CO2CB_POWERCAP_ROOT=str(powercaps[host].root),
            CO2CB_QUIET="1",
            OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            SLURM_JOB_ID="4242",
            SLURM_STEP_ID="0",
            SLURM_JOB_NAME="two-hosts",
        )
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc-per-node",
            str(nproc),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            f"127.0.0.1:{port}",
            "--rdzv-id",
            "two-hosts",
            "--rdzv-conf",
            "join_timeout=240",
            str(SCRIPT),
            "--out",
            str(out),
            "--break-host",
            "node-b",
        ]
        with open(base / f"{host}.log", "wb") as log:
            procs.append(
                subprocess.Popen(cmd, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    except subprocess.TimeoutExpired:
        codes = [None] * len(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    logs = "\n".join(f"--- {h}\n" + (base / f"{h}.log").read_text(errors="replace")[-3000:] for h in HOSTS)
    assert codes == [0, 0], f"the torchrun groups ended with {codes}:\n{logs}"
    ranks = {r["rank"]: r for r in (json.loads(p.read_text()) for p in out.glob("rank*.json"))}
    folders = sorted((out / "runs").iterdir())
    lines = [json.loads(x) for f in folders for x in (f / "run.jsonl").read_text().splitlines()]
    deltas = {h: (p.get_uj("package-0") - 1_000_000) * 1e-6 for h, p in powercaps.items()}
    return {"ranks": ranks, "folders": folders, "lines": lines, "deltas": deltas}


def _windows(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in lines if x["type"] == "window" and x["name"] == name]


def test_one_job_of_three_ranks_on_two_hosts_writes_one_run_folder(job: dict[str, Any]) -> None:
    assert sorted(job["ranks"]) == [0, 1, 2]
    assert [job["ranks"][r]["host"] for r in range(3)] == ["node-a", "node-a", "node-b"]
    assert all(r["hosts"] == ["node-a", "node-a", "node-b"] and r["backend"] == "gloo" for r in job["ranks"].values())
    assert len(job["folders"]) == 1
    assert job["ranks"][0]["run_folder"] == str(job["folders"][0])
    assert job["ranks"][1]["run_folder"] is None and job["ranks"][2]["run_folder"] is None
    header = job["lines"][0]
    assert header["job"]["world_size"] == 3
    assert {h: v["ranks"] for h, v in header["job"]["hosts"].items()} == {"node-a": [0, 1], "node-b": [2]}
    assert {v["identity"] for v in header["job"]["hosts"].values()} == {"CO2CB_HOST_ID"}
    assert header["scheduler"]["slurm"] == {"job_id": "4242", "step_id": "0", "job_name": "two-hosts"}


def test_job_cpu_energy_is_both_counters_once_each(job: dict[str, Any]) -> None:
    deltas, ranks = job["deltas"], job["ranks"]
    added = {h: sum(sum(r["added"].values()) for r in ranks.values() if r["host"] == h) for h in HOSTS}
    assert deltas == pytest.approx(added, abs=1e-9)  # the counters moved by what the steps added
    truth = sum(deltas.values())
    summary = job["lines"][-1]
    assert summary["status"] == "completed"
    assert summary["energy_kwh"]["cpu"] * KWH == pytest.approx(truth, rel=1e-9)  # not 3x, not 2x
    (run,) = _windows(job["lines"], "run")
    assert run["energy_kwh"]["cpu"] * KWH == pytest.approx(truth, rel=1e-9)
    per_host = summary["job"]["per_host"]
    assert {h: v["energy_kwh"]["cpu"] * KWH for h, v in per_host.items()} == pytest.approx(deltas, rel=1e-9)
    assert {h: v["ranks"] for h, v in per_host.items()} == {"node-a": [0, 1], "node-b": [2]}
    per_rank = [r["energy_kwh"]["cpu"] * KWH for r in summary["job"]["per_rank"]]
    assert per_rank == pytest.approx([deltas["node-a"], 0.0, deltas["node-b"]], rel=1e-9)  # the first rank per host
    for part in (per_rank, [v["energy_kwh"]["cpu"] * KWH for v in per_host.values()]):
        assert sum(part) == pytest.approx(truth, rel=1e-9)
    assert summary["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in summary["job"]["per_rank"]), rel=1e-12)
    for r in ranks.values():  # every rank got the job's figures back
        assert r["result"]["energy_kwh"]["cpu"] * KWH == pytest.approx(truth, rel=1e-9)


def test_each_epoch_holds_its_steps_joules_split_per_rank_and_host(job: dict[str, Any]) -> None:
    epochs = _windows(job["lines"], "epoch")
    assert [e["meta"]["epoch"] for e in epochs] == [0, 1]
    for e in epochs:
        epoch = str(e["meta"]["epoch"])
        added = sum(r["added"][epoch] for r in job["ranks"].values())
        assert e["energy_kwh"]["cpu"] * KWH == pytest.approx(added, rel=1e-9)
        assert sum(r["energy_kwh"]["cpu"] for r in e["meta"]["per_rank"]) * KWH == pytest.approx(added, rel=1e-9)
        assert sum(h["energy_kwh"]["cpu"] for h in e["meta"]["per_host"].values()) * KWH == pytest.approx(added)
        assert [r["host"] for r in e["meta"]["per_rank"]] == ["node-a", "node-a", "node-b"]
        assert all(r["windows"][int(epoch)]["co2_kg"] == e["co2_kg"] for r in job["ranks"].values())


def test_a_host_whose_dram_meter_fails_has_its_ram_marked_unavailable(job: dict[str, Any]) -> None:
    first, second = _windows(job["lines"], "epoch")
    assert first["unavailable"] == [] and "unavailable" not in first["meta"]["per_host"]["node-b"]
    assert second["unavailable"] == ["node-b/rapl:dram-0"]
    assert second["meta"]["per_host"]["node-b"]["unavailable"] == ["ram"]
    assert "unavailable" not in second["meta"]["per_host"]["node-a"]
    summary = job["lines"][-1]
    assert summary["unavailable"] == ["node-b/rapl:dram-0"]
    assert summary["job"]["per_host"]["node-b"]["unavailable"] == ["ram"]
    (loss,) = summary["meter_losses"]
    assert (loss["meter"], loss["host"], loss["rank"]) == ("node-b/rapl:dram-0", "node-b", 2)
    assert "not a number" in loss["error"]
    assert summary["job"]["hosts"]["node-b"]["provenance"] == {"cpu": "measured-counter", "ram": "measured-counter"}
