"""CO2Callback under real Lightning DDP on CPU (``strategy="ddp"``, gloo, 2 processes) with a fake powercap tree.

Lightning's ``ddp`` strategy starts rank 1 by running the script again, so each job is a standalone
script (``tests/scripts/ddp_train.py``) run as a subprocess, with ``CO2CB_POWERCAP_ROOT`` pointing at a
fake powercap tree whose package counter the training steps advance by known amounts (rank r adds
``(r + 1) * 7`` J per step, between two barriers, so every joule lands inside rank 0's epoch window).

The three jobs start together once per module:

* ``machine``: ``scope="machine"``: the RAPL meter takes the counter whole, so the job's CPU energy
  equals the counter's delta (not twice it, as it would be if every rank read the host's meters).
* ``process``: the default ``scope="process"``: the host meters are read once, over both ranks'
  processes, and attributed by their CPU share: more than zero, at most the counter's delta. This
  job also runs on a machine whose NVML (faked) reports two idle GPUs that the job does not use
  (``accelerator="cpu"``): none of them may be measured.
* ``rank0_fails``: co2cb's run folder cannot be made when fitting starts, which only rank 0 (the
  writer) finds out: training must still run to the end on both ranks, with a warning. A job with
  no training step 20 s after both ranks began fitting is declared hung and killed.

Each process spends about 10 s importing torch and Lightning here: one job takes about 20 s alone,
the three together 40-55 s on 2 CPUs.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import FakePowercap
from tests.ports import free_port

if importlib.util.find_spec("lightning") is None:  # not imported here: only the jobs need it (about 9 s)
    pytest.skip("the lightning package is needed", allow_module_level=True)
torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).parent / "scripts" / "ddp_train.py"
REPO = Path(__file__).resolve().parents[1]
JOULES = 7  # rank r adds (r + 1) * JOULES per step
STEPS_PER_EPOCH = 8  # 256 samples, batch 16, 2 ranks
EPOCHS = 2
KWH = 3.6e6
TIMEOUT_S = 240
HANG_S = 20  # no training step this long after both ranks began fitting: the job hung

pytestmark = [
    pytest.mark.slow,  # every test here shares DDP jobs of 2 processes (about 10 s each)
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is needed for DDP on CPU",
    ),
]

# Variables that would make Lightning think it runs under a cluster or an outer launcher.
_LAUNCHER_ENV = (
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "PL_GLOBAL_SEED",
    "CUDA_VISIBLE_DEVICES",
)


@dataclass
class Job:
    """What one DDP run left behind."""

    out: Path
    counter_delta_j: float
    ranks: dict[int, dict[str, Any]]
    run_folders: list[Path]
    lines: list[dict[str, Any]]
    csv_rows: list[dict[str, str]]

    @property
    def added_j(self) -> int:
        return sum(v for r in self.ranks.values() for v in r["added_j"].values())

    def windows(self, name: str) -> list[dict[str, Any]]:
        return [x for x in self.lines if x["type"] == "window" and x["name"] == name]

    def one(self, type_: str) -> dict[str, Any]:
        found = [x for x in self.lines if x["type"] == type_]
        assert len(found) == 1, f"{len(found)} {type_} lines"
        return found[0]

    def logged(self, key: str) -> list[float]:
        """Every value the CSVLogger wrote for ``key``, in order."""
        return [float(r[key]) for r in self.csv_rows if r.get(key)]


def _start(root: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path, FakePowercap]:
    root.mkdir()
    powercap = FakePowercap(root / "powercap")
    out = root / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_ENV and not k.startswith("SLURM_")}
    env.update(
        CO2CB_POWERCAP_ROOT=str(powercap.root),
        CO2CB_QUIET="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1",
    )
    counter = powercap.zones["package-0"] / "energy_uj"
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(out),
        "--counter",
        str(counter),
        "--joules",
        str(JOULES),
        "--epochs",
        str(EPOCHS),
        *args,
    ]
    with open(root / "output.log", "wb") as log:  # a file, not a pipe: a full pipe would block the job
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out, powercap


def _wait(proc: subprocess.Popen[bytes], out: Path) -> tuple[int | None, str]:
    """The job's exit status, or None if it hung: no training step HANG_S after both ranks began fitting."""
    deadline = time.monotonic() + TIMEOUT_S
    fitting_since: float | None = None
    while proc.poll() is None:
        now = time.monotonic()
        if fitting_since is None and all((out / f"fit_start.rank{r}").exists() for r in (0, 1)):
            fitting_since = now
        stepped = (out / "step.rank0").exists() or (out / "step.rank1").exists()
        if now > deadline or (fitting_since is not None and not stepped and now - fitting_since > HANG_S):
            os.killpg(proc.pid, signal.SIGKILL)  # rank 1 is rank 0's child, in the same session
            proc.wait()
            return None, (out.parent / "output.log").read_text(errors="replace")
        time.sleep(0.2)
    return proc.returncode, (out.parent / "output.log").read_text(errors="replace")


def _collect(status: int | None, output: str, out: Path, powercap: FakePowercap) -> Job:
    assert status is not None, f"the DDP job hung or ran past {TIMEOUT_S} s:\n{output[-4000:]}"
    assert status == 0, f"the DDP job failed ({status}):\n{output[-4000:]}"
    ranks = {}
    for path in sorted(out.glob("rank*.json")):
        report = json.loads(path.read_text())
        ranks[report["rank"]] = report
    folders = sorted(p for p in (out / "runs").iterdir()) if (out / "runs").is_dir() else []
    lines = [json.loads(x) for f in folders for x in (f / "run.jsonl").read_text().splitlines()]
    with open(out / "csv" / "version_0" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    delta = (powercap.get_uj("package-0") - 1_000_000) * 1e-6  # FakePowercap starts every counter at 1 J
    return Job(out, delta, ranks, folders, lines, rows)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the DDP jobs at once (each is two processes) and collect what they wrote."""
    base = tmp_path_factory.mktemp("ddp")
    started = {
        "machine": _start(base / "machine", "--scope", "machine"),
        "process": _start(base / "process", "--scope", "process", "--fake-gpus", "2"),
        "rank0_fails": _start(base / "rank0_fails", "--epochs", "1", "--break-runs-dir"),
    }
    try:
        with ThreadPoolExecutor(len(started)) as pool:  # watch every job at once (the hang clock must start on time)
            waits = {name: pool.submit(_wait, proc, out) for name, (proc, out, _) in started.items()}
            done = {name: w.result() for name, w in waits.items()}
    finally:  # interrupted: leave no rank behind
        for proc, _, _ in started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    found: dict[str, Any] = {"rank0_fails": (*done["rank0_fails"], started["rank0_fails"][1])}
    for name in ("machine", "process"):
        _, out, powercap = started[name]
        found[name] = _collect(*done[name], out, powercap)
    return found


# ---------------------------------------------------------------------------------------------- the job
@pytest.mark.parametrize("name", ["machine", "process"])
def test_two_ranks_on_gloo_one_writer(jobs: dict[str, Any], name: str) -> None:
    job = jobs[name]
    assert set(job.ranks) == {0, 1}
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in job.ranks.values())
    assert job.ranks[0]["pid"] != job.ranks[1]["pid"]
    # Only global rank 0 writes: one run folder, one CSV version, one TensorBoard version.
    assert len(job.run_folders) == 1
    assert job.ranks[0]["run_folder"] == str(job.run_folders[0])
    assert job.ranks[1]["run_folder"] == "None"
    assert [p.name for p in (job.out / "csv").iterdir()] == ["version_0"]
    header = job.one("header")
    assert header["job"]["world_size"] == 2
    assert header["config"]["scope"] == name
    assert {m["name"] for m in header["meters"]} == {"rapl:package-0", "rapl:dram-0"}
    assert job.one("summary")["status"] == "completed"
    assert job.one("summary")["job"]["world_size"] == 2


def test_the_steps_moved_the_counter_by_what_they_added(jobs: dict[str, Any]) -> None:
    for job in (jobs["machine"], jobs["process"]):
        for rank, report in job.ranks.items():
            assert report["added_j"] == {str(e): (rank + 1) * JOULES * STEPS_PER_EPOCH for e in range(EPOCHS)}
        assert job.counter_delta_j == pytest.approx(job.added_j, abs=1e-9)
        assert job.added_j == 3 * JOULES * STEPS_PER_EPOCH * EPOCHS


# ------------------------------------------------------------------------------------ machine scope
def test_machine_scope_cpu_energy_is_the_counter_delta_not_twice_it(jobs: dict[str, Any]) -> None:
    job = jobs["machine"]
    delta = job.counter_delta_j
    run = job.windows("run")
    assert len(run) == 1
    assert run[0]["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)
    summary = job.one("summary")
    assert summary["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)
    assert summary["energy_kwh"]["ram"] == 0.0  # the DRAM counter never moved
    # Split: the host's meters ran on rank 0 alone.
    per_rank = summary["job"]["per_rank"]
    assert [r["energy_kwh"]["cpu"] * KWH for r in per_rank] == pytest.approx([delta, 0.0], rel=1e-9)
    (host,) = summary["job"]["per_host"].values()
    assert host["energy_kwh"]["cpu"] * KWH == pytest.approx(delta, rel=1e-9)


def test_machine_scope_each_epoch_holds_the_joules_of_its_steps(jobs: dict[str, Any]) -> None:
    job = jobs["machine"]
    epochs = job.windows("train_epoch")
    assert [e["meta"]["epoch"] for e in epochs] == list(range(EPOCHS))
    for e in epochs:
        added = sum(r["added_j"][str(e["meta"]["epoch"])] for r in job.ranks.values())
        assert e["energy_kwh"]["cpu"] * KWH == pytest.approx(added, rel=1e-9)
        assert e["meta"]["validation_excluded"]["energy_kwh"]["total"] == 0.0  # validation added nothing
    for v in job.windows("val_epoch"):
        assert v["energy_kwh"]["total"] == 0.0
    # CO2 = kWh x intensity x PUE (FR, PUE 1), from the counter alone.
    e0 = epochs[0]
    assert e0["pue"] == 1.0
    assert e0["co2_kg"] == pytest.approx(e0["energy_kwh"]["total"] * e0["intensity_g_per_kwh"] / 1000, rel=1e-9)


# ------------------------------------------------------------------------------------ process scope
def test_process_scope_reads_the_host_once_and_attributes_a_share(jobs: dict[str, Any]) -> None:
    job = jobs["process"]
    delta = job.counter_delta_j
    cpu_j = job.one("summary")["energy_kwh"]["cpu"] * KWH
    assert 0 < cpu_j <= delta * (1 + 1e-9)
    assert job.windows("run")[0]["energy_kwh"]["cpu"] * KWH == pytest.approx(cpu_j, rel=1e-9)
    per_rank = job.one("summary")["job"]["per_rank"]
    assert per_rank[1]["energy_kwh"]["cpu"] == 0.0  # rank 1 does not read the host's meters
    for e in job.windows("train_epoch"):
        added = sum(r["added_j"][str(e["meta"]["epoch"])] for r in job.ranks.values())
        assert 0 < e["energy_kwh"]["cpu"] * KWH <= added * (1 + 1e-9)


# ------------------------------------------------------------------------------------ what is logged
@pytest.mark.parametrize("name", ["machine", "process"])
def test_epoch_lines_hold_the_split_per_rank_and_per_host(jobs: dict[str, Any], name: str) -> None:
    job = jobs[name]
    for e in job.windows("train_epoch") + job.windows("val_epoch"):
        meta = e["meta"]
        assert len(meta["per_rank"]) == 2
        assert list(meta["per_host"]) == [job.ranks[0]["host"]]
        (host,) = meta["per_host"].values()
        assert host["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in meta["per_rank"]), rel=1e-12)
        # per_rank holds the whole epoch; a training epoch's line leaves its validation out.
        excluded = meta["validation_excluded"]["co2_kg"] if meta["kind"] == "train" else 0.0
        assert e["co2_kg"] == pytest.approx(sum(r["co2_kg"] for r in meta["per_rank"]) - excluded, rel=1e-9, abs=1e-18)


@pytest.mark.parametrize("name", ["machine", "process"])
def test_logged_epoch_co2_is_the_records_sum_over_ranks(jobs: dict[str, Any], name: str) -> None:
    job = jobs[name]
    for kind, prefix in (("train", "co2cb/"), ("val", "val_co2cb/")):
        lines = job.windows(f"{kind}_epoch")
        assert len(lines) == EPOCHS
        logged = job.logged(f"{prefix}epoch_co2_kg")
        assert logged == pytest.approx([x["co2_kg"] for x in lines], rel=1e-12, abs=0)
        logged_cpu = job.logged(f"{prefix}epoch_energy_cpu_kwh")
        assert logged_cpu == pytest.approx([x["energy_kwh"]["cpu"] for x in lines], rel=1e-12, abs=0)
    train = job.windows("train_epoch")
    if name == "machine":  # the job's CO2: both ranks' shares summed, and nothing twice
        sums = [sum(r["co2_kg"] for r in x["meta"]["per_rank"]) for x in train]
        assert job.logged("co2cb/epoch_co2_kg") == pytest.approx(sums, rel=1e-12)
        assert job.logged("co2cb/epoch_energy_kwh")[-1] * KWH == pytest.approx(
            sum(job.ranks[r]["added_j"][str(EPOCHS - 1)] for r in job.ranks), rel=1e-9
        )
    # The run's total: the job's run so far at each epoch's end (its epochs, validations included, and
    # whatever ran around them), then once more at fit end: the record's total.
    totals = job.logged("co2cb/total_co2_kg")
    summary = job.one("summary")
    epochs_sum = sum(r["co2_kg"] for x in train for r in x["meta"]["per_rank"])
    assert len(totals) == EPOCHS + 1 and totals == sorted(totals)
    assert totals[-2] >= epochs_sum * (1 - 1e-9)
    assert totals[-1] == pytest.approx(summary["co2_kg"], rel=1e-12)
    if name == "machine":  # the counter moved during the training steps only
        assert totals[-2] == pytest.approx(epochs_sum, rel=1e-9)
    for report in job.ranks.values():  # every rank offers the job's values to EarlyStopping and ModelCheckpoint
        assert report["co2cb_callback_metrics"]["co2cb/total_co2_kg"] == pytest.approx(summary["co2_kg"], rel=1e-12)


def _tensorboard_scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of a scalar tag in a folder's event files, read as TFRecords.

    EventAccumulator would do the same but imports TensorFlow where it is installed (about 9 s here).
    """
    event_pb2 = pytest.importorskip("tensorboard.compat.proto.event_pb2")
    found = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):  # record: length (u64), its CRC (u32), payload, payload CRC (u32)
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            found += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return found


def test_tensorboard_holds_the_same_epoch_co2(jobs: dict[str, Any]) -> None:
    job = jobs["machine"]
    versions = list((job.out / "tb").iterdir())
    assert [p.name for p in versions] == ["version_0"]
    scalars = _tensorboard_scalars(versions[0], "co2cb/epoch_co2_kg")
    epochs = job.windows("train_epoch")
    assert [step for step, _ in scalars] == [STEPS_PER_EPOCH * (e["meta"]["epoch"] + 1) - 1 for e in epochs]
    assert [v for _, v in scalars] == pytest.approx([e["co2_kg"] for e in epochs], rel=1e-6)  # float32


@pytest.mark.parametrize("name", ["machine", "process"])
def test_no_sync_dist_and_no_co2cb_metric_through_self_log(jobs: dict[str, Any], name: str) -> None:
    for report in jobs[name].ranks.values():
        # The callback's only self.log is the progress-bar value, never synced (a mean would average energy).
        assert {c["name"] for c in report["log_calls"]} <= {"co2_g"}
        assert not any(c["sync_dist"] for c in report["log_calls"])
        assert set(report["co2cb_callback_metrics"]) <= set(report["callback_metric_keys"])  # offered, not logged


# ------------------------------------------------------------------------------------ unused GPUs
def test_cpu_job_on_a_gpu_machine_measures_no_gpu(jobs: dict[str, Any]) -> None:
    summary = jobs["process"].one("summary")
    assert [r["energy_kwh"]["gpu"] for r in summary["job"]["per_rank"]] == [0.0, 0.0]
    assert summary["energy_kwh"].get("gpu", 0.0) == 0.0


# ------------------------------------------------------------------------------------ a rank that cannot start
def test_a_start_failure_on_rank_0_alone_does_not_hang_the_job(jobs: dict[str, Any]) -> None:
    # Ranks that disagree on whether they measure run different collectives (estimated_stepping_batches
    # is one under DDP, and every epoch end gathers): the job would hang.
    status, output, out = jobs["rank0_fails"]
    assert status is not None, f"the job hung: no training step {HANG_S} s after both ranks began fitting"
    assert status == 0, output[-4000:]
    ranks = {json.loads(p.read_text())["rank"]: json.loads(p.read_text()) for p in out.glob("rank*.json")}
    assert sorted(ranks) == [0, 1]
    assert all(sum(r["added_j"].values()) == (r["rank"] + 1) * JOULES * STEPS_PER_EPOCH for r in ranks.values())
    assert all(r["run_folder"] in (None, "None") for r in ranks.values())  # nobody writes a record
    assert "cannot write run records" in output  # the warning says why
