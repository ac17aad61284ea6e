"""Live export under real Lightning DDP on CPU (``strategy="ddp"``, gloo, 2 processes on one host).

Both ranks are given the same ``prometheus_port`` and ``pushgateway`` (``tests/scripts/export_ddp.py``):
local rank 0 serves and pushes for the host and says where; local rank 1 exports nothing, so the port is
bound once (no "cannot serve" warning) and a refused gateway is tried, and warned about, by one process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

if importlib.util.find_spec("lightning") is None:
    pytest.skip("the lightning package is needed", allow_module_level=True)
torch = pytest.importorskip("torch")
pytest.importorskip("prometheus_client", reason="the prometheus extra (pip install 'co2cb[prometheus]') is needed")

SCRIPT = Path(__file__).parent / "scripts" / "export_ddp.py"
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240
HOST = socket.gethostname()

pytestmark = [
    pytest.mark.slow,  # one DDP job of 2 processes (about 25 s)
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is needed for DDP on CPU",
    ),
]

# Variables that would make Lightning think it runs under a cluster or an outer launcher.
_LAUNCHER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")
_LAUNCHER_ENV += ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED", "CUDA_VISIBLE_DEVICES")


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the DDP job once; its ranks' reports and its output."""
    root = tmp_path_factory.mktemp("export-ddp")
    powercap = FakePowercap(root / "powercap")
    out = root / "out"
    out.mkdir()
    port, refused = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV and not k.startswith("SLURM_")}
    env.pop("CO2CB_QUIET", None)  # the serving rank's "where" line is part of what is checked
    env.update(
        CO2CB_POWERCAP_ROOT=str(powercap.root),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1",
    )
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--port", str(port)]
    cmd += ["--pushgateway", f"http://127.0.0.1:{refused}"]
    with open(root / "output.log", "wb") as log:  # a file, not a pipe: a full pipe would block the job
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        status = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        status = None
    finally:
        if proc.poll() is None:  # rank 1 is rank 0's child, in the same session
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = (root / "output.log").read_text(errors="replace")
    assert status == 0, f"the DDP job failed or hung ({status}):\n{output[-4000:]}"
    ranks = {r["rank"]: r for r in (json.loads(p.read_text()) for p in out.glob("rank*.json"))}
    return {"port": port, "ranks": ranks, "output": output}


def test_only_local_rank_0_serves_and_says_where(job: dict[str, Any]) -> None:
    ranks, url = job["ranks"], f"http://127.0.0.1:{job['port']}/metrics"
    assert sorted(ranks) == [0, 1] and ranks[0]["pid"] != ranks[1]["pid"]
    assert (ranks[0]["local_rank"], ranks[0]["prometheus_url"], ranks[0]["exports"]) == (0, url, True)
    assert (ranks[1]["local_rank"], ranks[1]["prometheus_url"], ranks[1]["exports"]) == (1, None, False)
    lines = job["output"].splitlines()
    assert [x for x in lines if x.startswith("co2cb: Prometheus metrics at")] == [f"co2cb: Prometheus metrics at {url}"]
    assert "cannot serve Prometheus metrics" not in job["output"]  # nobody else tried the port


def test_one_process_pushes_for_the_host(job: dict[str, Any]) -> None:
    assert job["output"].count("co2cb: pushing metrics to the Pushgateway") == 1
    assert job["output"].count("could not push metrics to the Pushgateway") == 1  # refused, warned once, by one rank


def test_the_endpoint_served_the_host_meters_during_training(job: dict[str, Any]) -> None:
    samples = job["ranks"][0]["scraped"]
    assert samples, "rank 0 read nothing from its endpoint"
    energy = [s for s in samples if s["name"] == "co2cb_energy_joules_total"]
    assert {(s["labels"]["component"], s["labels"]["device"], s["labels"]["run"]) for s in energy} == {
        ("cpu", HOST, "ddp-export"),
        ("ram", HOST, "ddp-export"),
    }
    meters = {s["labels"]["meter"] for s in samples if s["name"] == "co2cb_provenance_info"}
    assert meters == {"rapl:package-0", "rapl:dram-0"}  # the host's meters, read by local rank 0
