"""``accelerate launch --multi_gpu --num_processes 2`` on CPU (gloo): the HF callback and a plain loop, one record each.

On a machine without GPUs ``--multi_gpu`` starts two processes (``--cpu --num_processes 2`` would start
one); ``use_cpu=True`` (HF) and ``Accelerator(cpu=True)`` (the plain loop) keep them on the CPU.

* ``hf``: ``tests/scripts/hf_ddp.py``, the Trainer with ``CO2Callback`` in machine scope;
* ``plain``: ``tests/scripts/plain_job.py --accelerate``, a loop prepared by an ``Accelerator`` and
  measured with ``co2cb.distributed.job_tracker(device=accelerator.device)``.

Each rank adds ``(rank + 1) * joules`` to a fake powercap counter every step, between barriers. Checked:
one run folder, job CPU energy equal to the counter's delta (read once per host, not twice), a split
per rank and per host that sums to it. The two jobs run side by side in about 15 s on 2 CPUs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

for _needed in ("accelerate", "transformers", "torch"):
    if importlib.util.find_spec(_needed) is None:  # not imported here: only the jobs need them
        pytest.skip(f"the {_needed} package is needed (pip install 'co2cb[hf]')", allow_module_level=True)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KWH = 3.6e6
TIMEOUT_S = 300
LAUNCHER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "CO2CB_HOST_ID")


def _launch(base: Path, name: str, script: str, *args: str) -> tuple[subprocess.Popen[bytes], Path, FakePowercap]:
    root = base / name
    out = root / "out"
    out.mkdir(parents=True)
    powercap = FakePowercap(root / "powercap")
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_ENV and not k.startswith(("ACCELERATE_", "SLURM_"))}
    env.update(
        HF_HOME=str(root / "hf-home"),  # no accelerate config file of the user's
        HF_HUB_OFFLINE="1",
        CO2CB_QUIET="1",
        CO2CB_POWERCAP_ROOT=str(powercap.root),
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        str(REPO / "tests" / "scripts" / script),
        "--out",
        str(out),
        *args,
    ]
    with open(root / "output.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out, powercap


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("accelerate")
    started = {
        "hf": _launch(base, "hf", "hf_ddp.py", "--powercap", str(base / "hf" / "powercap")),
        "plain": _launch(base, "plain", "plain_job.py", "--accelerate"),
    }
    found: dict[str, dict[str, Any]] = {}
    try:
        for name, (proc, out, powercap) in started.items():
            try:
                code: int | None = proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                code = None
            log = (out.parent / "output.log").read_text(errors="replace")
            assert code == 0, f"accelerate launch ({name}) ended with {code}:\n{log[-4000:]}"
            folders = sorted((out / "runs").iterdir())
            found[name] = {
                "ranks": {r["rank"]: r for r in (json.loads(p.read_text()) for p in out.glob("rank*.json"))},
                "folders": folders,
                "lines": [json.loads(x) for f in folders for x in (f / "run.jsonl").read_text().splitlines()],
                "delta_j": (powercap.get_uj("package-0") - 1_000_000) * 1e-6,
            }
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                try:
                    ranks = psutil.Process(proc.pid).children(recursive=True)  # each in a session of its own
                except psutil.Error:  # the launcher ended meanwhile
                    ranks = []
                os.killpg(proc.pid, signal.SIGKILL)
                for rank in ranks:
                    with contextlib.suppress(psutil.Error):
                        rank.kill()
                proc.wait()
    return found


def _added(job: dict[str, Any]) -> float:
    return sum(sum(r["added"].values()) for r in job["ranks"].values())


@pytest.mark.parametrize("name", ["hf", "plain"])
def test_two_processes_one_run_folder_and_the_counter_once(jobs: dict[str, dict[str, Any]], name: str) -> None:
    job = jobs[name]
    assert sorted(job["ranks"]) == [0, 1]
    assert len(job["folders"]) == 1
    lines = job["lines"]
    assert lines[0]["job"]["world_size"] == 2
    delta = job["delta_j"]
    assert delta == pytest.approx(_added(job), abs=1e-9) and delta > 0
    summary = lines[-1]
    assert summary["status"] == "completed"
    assert summary["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)  # not 2 x the counter
    per_rank = summary["job"]["per_rank"]
    assert [r["energy_kwh"]["cpu"] * KWH for r in per_rank] == pytest.approx([delta, 0.0], rel=1e-9, abs=1e-9)
    (host,) = summary["job"]["per_host"].values()
    assert host["ranks"] == [0, 1]
    assert host["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)
    assert summary["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in per_rank), rel=1e-12)
    assert host["co2_kg"] == pytest.approx(summary["co2_kg"], rel=1e-12)


def test_hf_epochs_sum_the_ranks(jobs: dict[str, dict[str, Any]]) -> None:
    job = jobs["hf"]
    epochs = [x for x in job["lines"] if x["type"] == "window" and x["name"] == "train_epoch"]
    assert len(epochs) == 2
    for e in epochs:
        added = sum(r["added"].get(str(e["meta"]["epoch"]), 0) for r in job["ranks"].values())
        assert e["energy_kwh"]["cpu"] * KWH == pytest.approx(added, rel=1e-9)
        assert e["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in e["meta"]["per_rank"]), rel=1e-9)
    assert [r["world_process_zero"] for r in sorted(job["ranks"].values(), key=lambda r: r["rank"])] == [True, False]


def test_plain_loop_ranks_get_the_jobs_figures(jobs: dict[str, dict[str, Any]]) -> None:
    job = jobs["plain"]
    delta = job["delta_j"]
    for r in job["ranks"].values():
        assert r["backend"] == "gloo"
        assert r["result"]["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)
    assert job["ranks"][0]["run_folder"] == str(job["folders"][0]) and job["ranks"][1]["run_folder"] is None
    epochs = [x for x in job["lines"] if x["type"] == "window" and x["name"] == "epoch"]
    for e in epochs:
        added = sum(r["added"][str(e["meta"]["epoch"])] for r in job["ranks"].values())
        assert e["energy_kwh"]["cpu"] * KWH == pytest.approx(added, rel=1e-9)
