"""Host identity, the rank that reads a host's meters, scheduler context and a job's record, without a framework.

Ranks are threads exchanging values through ``tests.test_training.ThreadCollective``; the multi-process
launchers (torchrun on two "hosts", Accelerate, Ray Train) are in test_multinode, test_accelerate and
test_ray_train.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest

from co2cb import Tracker, read_records
from co2cb.cli.main import main
from co2cb.core.scheduler import job_key, scheduler_context
from co2cb.distributed import JobTracker
from co2cb.integrations.launchers import where_to_write
from co2cb.training import hosts
from co2cb.training.collective import RankInfo, rank_options
from co2cb.training.energy import Energy
from co2cb.training.hosts import Host, labels, this_host
from co2cb.training.job import split
from co2cb.units import JOULES_PER_KWH
from tests.fakes.meters import ConstantPower, RaisingMeter
from tests.test_training import ThreadCollective, run_ranks


# ---------------------------------------------------------------------------------------------- identity
def test_host_id_variable_overrides_the_kernel_and_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    given = this_host({"CO2CB_HOST_ID": " node-7 "})
    assert (given.key, given.source, given.label) == ("node-7", "CO2CB_HOST_ID", "node-7")
    assert this_host({"CO2CB_HOST_ID": "  "}).source != "CO2CB_HOST_ID"  # blank: unset


def test_boot_id_keys_the_host_and_the_name_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("6c1f0b1e-aaaa-bbbb-cccc-0123456789ab\n")
    monkeypatch.setattr(hosts, "BOOT_ID", boot)
    monkeypatch.setattr(hosts.socket, "gethostname", lambda: "trainer")
    h = this_host({})
    assert (h.key, h.name, h.source, h.label) == (
        "boot:6c1f0b1e-aaaa-bbbb-cccc-0123456789ab",
        "trainer",
        "boot_id",
        "trainer",
    )
    monkeypatch.setattr(hosts, "BOOT_ID", tmp_path / "absent")
    assert (this_host({}).key, this_host({}).source) == ("name:trainer", "hostname")


def test_labels_one_per_host_and_twins_told_apart() -> None:
    # two containers of one node under different names; another node whose container has the first's name
    a1, a2 = Host("boot:a", "pod-1", "boot_id"), Host("boot:a", "pod-2", "boot_id")
    b = Host("boot:b", "pod-1", "boot_id")
    named = labels([a1, a2, b, Host("n3", "x", "CO2CB_HOST_ID")])
    assert named[0] == named[1]  # one kernel, one host, whatever the containers are called
    assert named[0] != named[2] and named[0].startswith("pod-1#") and named[2].startswith("pod-1#")
    assert named[3] == "n3"
    assert labels([a1, a2]) == ["pod-1", "pod-1"]


def test_the_first_rank_of_each_host_reads_its_meters_per_pid_namespace_in_process_scope() -> None:
    def info(r: int) -> RankInfo:
        return RankInfo(rank=r, world_size=4, hosts=("a", "a", "a", "b"), pid_spaces=("p1", "p1", "p2", "p9"))

    assert [info(r).reads_host("machine") for r in range(4)] == [True, False, False, True]
    # rank 2 is in another PID namespace of host a: rank 0 cannot see its processes, so it reads its own share
    assert [info(r).reads_host("process") for r in range(4)] == [True, False, True, True]
    assert RankInfo(rank=1, local_rank=0, world_size=2, hosts=("a",)).reads_host()  # hand-made: local rank 0
    options = rank_options({"scope": "machine", "prometheus_port": 0}, info(1), None, False)
    assert options["meters"] == [] and "prometheus_port" not in options and options["save"] is False
    options = rank_options({"scope": "machine", "prometheus_port": 0}, info(3), None, False)
    assert "meters" not in options and options["prometheus_port"] == 0 and options["components"] == ["cpu", "ram"]


def test_gathered_groups_ranks_by_host_id_not_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    shared = ThreadCollective(3)
    ids = ["node-a", "node-a", "node-b"]
    mine: dict[int, str] = {}  # the threads share one environment: each gets its CO2CB_HOST_ID through this_host
    real = hosts.this_host
    monkeypatch.setattr(
        "co2cb.training.collective.this_host", lambda: real({"CO2CB_HOST_ID": mine[threading.get_ident()]})
    )

    def body(r: int) -> RankInfo:
        mine[threading.get_ident()] = ids[r]
        return RankInfo.gathered(shared.rank(r), local_rank=r if r < 2 else 0)

    infos = run_ranks(3, body)
    assert all(i.hosts == ("node-a", "node-a", "node-b") for i in infos)
    assert [i.reads_host("machine") for i in infos] == [True, False, True]
    assert infos[0].about_hosts["node-a"]["ranks"] == [0, 1] and infos[0].about_hosts["node-b"]["ranks"] == [2]
    assert infos[0].about_hosts["node-b"]["identity"] == "CO2CB_HOST_ID"
    assert len(infos[0].local_pids) == 2 and len(infos[2].local_pids) == 1  # threads: one pid, seen per rank


# ---------------------------------------------------------------------------------------------- scheduler
SLURM_ENV = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_JOB_NAME": "pretrain", "SLURMD_NODENAME": "gpu07"}


def test_scheduler_context_slurm_kubernetes_ray() -> None:
    context = scheduler_context(
        {
            **SLURM_ENV,
            "SLURM_ARRAY_JOB_ID": "4240",
            "SLURM_ARRAY_TASK_ID": "2",
            "POD_NAME": "train-0",
            "POD_NAMESPACE": "ml",
            "MY_NODE_NAME": "node-1",
            "RAY_JOB_ID": "02000000",
        }
    )
    assert context["slurm"] == {
        "job_id": "4242",
        "step_id": "0",
        "array_job_id": "4240",
        "array_task_id": "2",
        "job_name": "pretrain",
        "node": "gpu07",
    }
    assert context["kubernetes"] == {"pod": "train-0", "namespace": "ml", "node": "node-1"}
    assert context["ray"] == {"job_id": "02000000"}
    assert job_key(context) == "slurm:4240_2"  # an array task is a job of its own
    assert scheduler_context({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "job-x-abcde"}) == {
        "kubernetes": {"pod": "job-x-abcde"}
    }
    assert scheduler_context({"HOSTNAME": "laptop"}) == {}
    assert job_key({"ray": {"job_id": "01000000", "session": "session_1"}}) == "ray:session_1/01000000"
    assert job_key({"job_id": "exp-3", **context}) == "exp-3"  # CO2CB_JOB_ID first
    assert job_key({"kubernetes": {"pod": "p"}}) is None and job_key(None) is None


def test_the_header_records_the_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in SLURM_ENV.items():
        monkeypatch.setenv(k, v)
    with Tracker(output_dir=tmp_path, meters=[ConstantPower()], intensity=100) as t:
        pass
    assert t.run_folder is not None
    assert read_records(t.run_folder)[0]["scheduler"]["slurm"]["job_id"] == "4242"


def test_compare_by_job_sums_the_runs_of_one_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(name: str, job: str | None) -> None:
        if job is None:
            monkeypatch.delenv("SLURM_JOB_ID", raising=False)
        else:
            monkeypatch.setenv("SLURM_JOB_ID", job)
        with Tracker(run_name=name, output_dir=tmp_path, meters=[ConstantPower(100.0)], intensity=100, interval_s=0.05):
            pass

    run("pretrain", "7")
    run("finetune", "7")
    run("other", None)
    assert main(["compare", str(tmp_path), "--by-job", "--format", "json"]) == 0
    jobs = json.loads(capsys.readouterr().out)["jobs"]
    assert [(j["job"], j["runs"]) for j in jobs] == [("slurm:7", ["pretrain", "finetune"]), ("run other", ["other"])]
    assert main(["compare", str(tmp_path), "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert jobs[0]["co2_kg"] == pytest.approx(rows["pretrain"]["co2_kg"] + rows["finetune"]["co2_kg"], rel=1e-12)
    assert jobs[0]["energy_kwh"]["cpu"] == pytest.approx(
        rows["pretrain"]["energy_kwh"]["cpu"] + rows["finetune"]["energy_kwh"]["cpu"], rel=1e-12
    )
    for fmt in ("table", "csv", "markdown"):
        assert main(["compare", str(tmp_path), "--by-job", "--format", fmt]) == 0
        assert "slurm:7" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- a job's record
def test_split_sums_per_host_and_marks_what_a_host_lost() -> None:
    e = [
        Energy({"gpu": 1.0, "cpu": 2.0, "ram": 0.0}, 1e-6, 3.0),
        Energy({"gpu": 1.0, "cpu": 0.0, "ram": 0.0}, 1e-7, 4.0),
    ]
    out = split(["a", "b"], e, [[], [("rapl:dram-0", "ram")]])
    assert out["per_host"]["a"]["ranks"] == [0] and "unavailable" not in out["per_host"]["a"]
    assert out["per_host"]["b"]["unavailable"] == ["ram"]
    assert out["per_rank"][1]["unavailable"] == ["rapl:dram-0"] and out["per_rank"][1]["host"] == "b"
    total = sum(h["energy_kwh"]["total"] for h in out["per_host"].values())
    assert total * JOULES_PER_KWH == pytest.approx(4.0)


def _job(tmp_path: Path, meters: list[Any]) -> list[Any]:
    shared = ThreadCollective(2)
    host_of = ("node-a", "node-b")

    def rank(r: int) -> Any:
        info = RankInfo(
            rank=r, world_size=2, hosts=host_of, about_hosts={h: {"ranks": [i]} for i, h in enumerate(host_of)}
        )
        tracker = JobTracker(
            shared.rank(r), info, output_dir=tmp_path / f"rank{r}", meters=[meters[r]], intensity=100, interval_s=0.05
        )
        epochs = []
        with tracker:
            for epoch in range(2):
                with tracker.window("epoch", meta={"epoch": epoch}) as w:
                    tracker.begin("step", record=False)
                    time.sleep(0.15)
                    tracker.end("step")
                epochs.append(w.result)
        return tracker, epochs

    return run_ranks(2, rank)


def test_job_tracker_sums_ranks_and_rank_0_alone_writes(tmp_path: Path) -> None:
    (t0, epochs0), (t1, epochs1) = _job(tmp_path, [ConstantPower(50.0, "w50"), ConstantPower(20.0, "w20")])
    assert t0.run_folder is not None and t1.run_folder is None
    assert not (tmp_path / "rank1").exists()
    lines = read_records(t0.run_folder)
    assert lines[0]["job"] == {"world_size": 2, "hosts": {"node-a": {"ranks": [0]}, "node-b": {"ranks": [1]}}}
    epochs = [x for x in lines if x["type"] == "window" and x["name"] == "epoch"]
    assert [e["meta"]["epoch"] for e in epochs] == [0, 1]
    for line, a, b in zip(epochs, epochs0, epochs1):
        assert a.co2_kg == b.co2_kg == line["co2_kg"]  # every rank gets the job's figure
        shares = [r["energy_kwh"]["cpu"] * JOULES_PER_KWH for r in line["meta"]["per_rank"]]
        assert line["energy_kwh"]["cpu"] * JOULES_PER_KWH == pytest.approx(sum(shares), rel=1e-9)
        seconds = [r["seconds"] for r in line["meta"]["per_rank"]]
        assert shares == pytest.approx([50.0 * seconds[0], 20.0 * seconds[1]], rel=1e-6)
        assert set(line["meta"]["per_host"]) == {"node-a", "node-b"}
    summary = lines[-1]
    assert summary["job"]["world_size"] == 2 and summary["unavailable"] == [] and summary["meter_losses"] == []
    per_host = summary["job"]["per_host"]
    assert summary["co2_kg"] == pytest.approx(sum(h["co2_kg"] for h in per_host.values()), rel=1e-12)
    assert summary["job"]["hosts"]["node-b"]["provenance"] == {"cpu": "estimate"}
    assert t0.result is not None and t1.result is not None and t0.result.co2_kg == t1.result.co2_kg
    (run,) = [x for x in lines if x["type"] == "window" and x["name"] == "run"]
    assert run["co2_kg"] == summary["co2_kg"]


def test_a_host_whose_meter_fails_is_marked_unavailable_in_the_job_record(tmp_path: Path) -> None:
    (t0, epochs0), _ = _job(tmp_path, [ConstantPower(50.0, "w50"), RaisingMeter(good_reads=3, name="rapl:package-0")])
    lines = read_records(t0.run_folder)
    _, last = [x for x in lines if x["type"] == "window" and x["name"] == "epoch"]
    assert last["unavailable"] == ["node-b/rapl:package-0"]
    assert last["meta"]["per_host"]["node-b"]["unavailable"] == ["cpu"]
    assert "unavailable" not in last["meta"]["per_host"]["node-a"]
    summary = lines[-1]
    assert summary["unavailable"] == ["node-b/rapl:package-0"]
    assert summary["job"]["per_host"]["node-b"]["unavailable"] == ["cpu"]
    (loss,) = summary["meter_losses"]
    assert (loss["meter"], loss["host"], loss["rank"]) == ("node-b/rapl:package-0", "node-b", 1)
    assert "simulated failure" in loss["error"]
    assert epochs0[1].unavailable == ("node-b/rapl:package-0",)  # every rank's result says so too


# ---------------------------------------------------------------------------------------------- Ray Train's folder
class _Storage:
    def __init__(self, path: str, filesystem: str) -> None:
        self.experiment_fs_path = path
        self.storage_filesystem = type(filesystem, (), {})()


def _fake_ray_train(monkeypatch: pytest.MonkeyPatch, storage: _Storage) -> None:
    """A ``ray.train`` module whose context is a Ray Train worker's (only what launchers.py asks)."""
    module = types.ModuleType("ray.train")
    module.get_context = lambda: types.SimpleNamespace(get_storage=lambda: storage)  # type: ignore[attr-defined]
    package = types.ModuleType("ray")
    package.train = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ray", package)
    monkeypatch.setitem(sys.modules, "ray.train", module)


def test_ray_train_workers_write_under_the_runs_storage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CO2CB_OUTPUT_DIR", raising=False)
    monkeypatch.delitem(sys.modules, "ray.train", raising=False)
    assert where_to_write({"region": "FR"}) == {"region": "FR"}  # not under Ray Train: nothing changes
    _fake_ray_train(monkeypatch, _Storage(str(tmp_path / "exp"), "LocalFileSystem"))
    assert where_to_write({})["output_dir"] == str(tmp_path / "exp" / "co2cb-runs")
    assert where_to_write({"output_dir": "runs"})["output_dir"] == str(tmp_path / "exp" / "runs")
    assert where_to_write({"output_dir": "/abs/runs"})["output_dir"] == "/abs/runs"
    assert "output_dir" not in where_to_write({"save": False})
    monkeypatch.setenv("CO2CB_OUTPUT_DIR", "shared")
    assert where_to_write({})["output_dir"] == str(tmp_path / "exp" / "shared")
    monkeypatch.setenv("CO2CB_OUTPUT_DIR", str(tmp_path / "given"))
    assert "output_dir" not in where_to_write({})  # an absolute CO2CB_OUTPUT_DIR is used as it is
    monkeypatch.delenv("CO2CB_OUTPUT_DIR")
    _fake_ray_train(monkeypatch, _Storage("bucket/exp", "S3FileSystem"))
    assert "output_dir" not in where_to_write({})
    assert "S3FileSystem" in caplog.text and "working directory" in caplog.text
