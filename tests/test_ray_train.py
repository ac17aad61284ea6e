"""Ray Train's ``TorchTrainer`` with 2 CPU workers on a local Ray cluster (``ray.init(num_cpus=2)``).

``tests/scripts/ray_job.py`` runs, one after the other on one cluster: Lightning with ``RayDDPStrategy`` and
``RayLightningEnvironment``; the HF Trainer inside ``train_func``; the README's Ray Train snippet as written.
The first two move a fake powercap counter by known joules each step (machine scope), and each worker
reports its working directory (Ray moves it to a temporary folder of the session).

Checked: one run folder per job, in the run's storage (``co2cb-runs`` there by default; the relative
``output_dir`` given, there too), none in the workers' folders; job CPU energy equal to the counter's
delta (the host's meters read once, not once per worker); a split per rank and per host that sums to it;
the Ray job id and session in the header.

About 80 s on 2 CPUs (a Ray cluster, then two workers importing Lightning or transformers per job).
``import ray`` fails where an ``amdsmi`` package is installed without ROCm (Ray's own AMD GPU probe lets
its ``KeyError`` through; the dev extra installs one for co2cb's own AMD tests), so the job runs with a
stand-in ``amdsmi`` that raises ``ImportError``, which Ray takes for "no AMD GPU".
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import FakePowercap

for _needed, _extra in (
    ("ray", "ray[train]"),
    ("pyarrow", "ray[train]"),
    ("lightning", "lightning"),
    ("transformers", "hf"),
):
    if importlib.util.find_spec(_needed) is None:
        pytest.skip(f"the {_needed} package is needed: pip install '{_extra}'", allow_module_level=True)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KWH = 3.6e6
TIMEOUT_S = 480
LAUNCHER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CO2CB_HOST_ID")


@pytest.fixture(scope="module")
def ray_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("ray")
    out = base / "out"
    out.mkdir()
    powercap = FakePowercap(base / "powercap")
    shim = base / "shim"
    shim.mkdir()
    (shim / "amdsmi.py").write_text('raise ImportError("no ROCm in this test: Ray sees no AMD GPU")\n')
    ray_temp = tempfile.mkdtemp(prefix="co2cb-ray-", dir="/tmp")  # short: Ray's Unix sockets live under it
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV and not k.startswith(("RAY_", "SLURM_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(shim), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS="0",
        CO2CB_QUIET="1",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    env.pop("CO2CB_OUTPUT_DIR", None)
    cmd = [sys.executable, str(REPO / "tests" / "scripts" / "ray_job.py"), "--out", str(out), "--powercap"]
    cmd += [str(powercap.root), "--ray-temp", ray_temp, "lightning", "hf", "readme"]
    log = base / "output.log"
    try:
        with open(log, "wb") as f:
            proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        text = log.read_text(errors="replace")
        assert code == 0, f"the Ray job ended with {code}:\n{text[-5000:]}"
        ranks: dict[str, dict[int, dict[str, Any]]] = {}
        for path in out.glob("*.rank*.json"):
            report = json.loads(path.read_text())
            ranks.setdefault(path.name.split(".")[0], {})[report["rank"]] = report
        in_workdirs = {
            name: [p for r in rs.values() for p in Path(r["cwd"]).glob("*runs*")] for name, rs in ranks.items()
        }
        yield {"out": out, "ranks": ranks, "in_workdirs": in_workdirs, "powercap": powercap}
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)


def _records(folder: Path) -> list[list[dict[str, Any]]]:
    return [[json.loads(x) for x in (f / "run.jsonl").read_text().splitlines()] for f in sorted(folder.iterdir())]


@pytest.mark.parametrize(("name", "folder"), [("lightning", "co2cb-runs"), ("hf", "hf-runs")])
def test_one_run_folder_in_the_runs_storage(ray_job: dict[str, Any], name: str, folder: str) -> None:
    ranks = ray_job["ranks"][name]
    assert sorted(ranks) == [0, 1]
    where = ray_job["out"] / "storage" / name / folder
    (record,) = _records(where)  # one run folder per job
    assert ranks[0]["run_folder"].startswith(str(where)) and ranks[1]["run_folder"] == "None"
    assert not ray_job["in_workdirs"][name]  # nothing under the workers' working directory
    assert all(not r["cwd"].startswith(str(ray_job["out"])) for r in ranks.values())  # Ray moved them
    header = record[0]
    assert header["job"]["world_size"] == 2
    assert set(header["scheduler"]["ray"]) == {"job_id", "session"}


@pytest.mark.parametrize(("name", "folder"), [("lightning", "co2cb-runs"), ("hf", "hf-runs")])
def test_job_cpu_energy_is_the_counters_truth_split_per_rank_and_host(
    ray_job: dict[str, Any], name: str, folder: str
) -> None:
    ranks = ray_job["ranks"][name]
    truth = sum(sum(r["added"].values()) for r in ranks.values())  # joules this job's steps added
    assert truth > 0
    (record,) = _records(ray_job["out"] / "storage" / name / folder)
    summary = record[-1]
    assert summary["status"] == "completed"
    assert summary["energy_kwh"]["cpu"] * KWH == pytest.approx(truth, rel=1e-9)  # once, not once per worker
    per_rank = [r["energy_kwh"]["cpu"] * KWH for r in summary["job"]["per_rank"]]
    assert per_rank == pytest.approx([truth, 0.0], rel=1e-9, abs=1e-9)
    (host,) = summary["job"]["per_host"].values()
    assert host["ranks"] == [0, 1] and host["energy_kwh"]["cpu"] * KWH == pytest.approx(truth, rel=1e-9)
    assert summary["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in summary["job"]["per_rank"]), rel=1e-12)
    epochs = [x for x in record if x["type"] == "window" and x["name"] == "train_epoch"]
    assert len(epochs) == 2
    for e in epochs:
        assert e["energy_kwh"]["cpu"] * KWH == pytest.approx(
            sum(r["energy_kwh"]["cpu"] for r in e["meta"]["per_rank"]) * KWH, rel=1e-9
        )


def test_the_readme_snippet_writes_one_run_folder_in_its_storage(ray_job: dict[str, Any]) -> None:
    (record,) = _records(ray_job["out"] / "readme" / "ray_results" / "ray-lightning" / "co2cb-runs")
    assert record[0]["run_name"] == "ray-lightning" and record[0]["job"]["world_size"] == 2
    assert record[-1]["status"] == "completed" and len(record[-1]["job"]["per_rank"]) == 2
