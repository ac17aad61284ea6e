"""TrainingMonitor without any ML framework: the rules every adapter shares, driven directly.

Meters draw a constant power, so every window's energy is known exactly: watts x its seconds.
Two ranks run in two threads over a collective made of a barrier, as two processes of a job would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from co2cb import read_records
from co2cb.training import RankInfo, SingleProcess, TrainingMonitor
from co2cb.training.monitor import BUDGET_STOPPED, COMPLETED, PREFIX
from co2cb.units import JOULES_PER_KWH
from tests.fakes.meters import ConstantPower

WATTS = 50.0
G_PER_KWH = 100.0
REL = 1e-9


class ThreadCollective:
    """A collective between threads: every rank's value, in rank order, once all have given theirs."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self._values: list[Any] = [None] * world_size
        self._barrier = threading.Barrier(world_size, timeout=30)

    def rank(self, rank: int) -> RankCollective:
        return RankCollective(self, rank)

    def gather(self, rank: int, value: Any) -> list[Any]:
        self._values[rank] = value
        self._barrier.wait()
        out = list(self._values)
        self._barrier.wait()  # nobody overwrites a value before everyone has read them all
        return out


class RankCollective:
    def __init__(self, shared: ThreadCollective, rank: int) -> None:
        self.shared, self.rank, self.world_size = shared, rank, shared.world_size

    def gather(self, value: Any) -> list[Any]:
        return self.shared.gather(self.rank, value)


def monitor(tmp_path: Path, **options: Any) -> TrainingMonitor:
    tracker_options = {
        "meters": [ConstantPower(WATTS)],
        "intensity": G_PER_KWH,
        "pue": 1.0,
        "interval_s": 0.05,
        "output_dir": tmp_path / "runs",
        **options.pop("tracker_options", {}),
    }
    return TrainingMonitor(tracker_options=tracker_options, **options)


def co2_of(joules: float) -> float:
    return joules / JOULES_PER_KWH * G_PER_KWH / 1000


def start(m: TrainingMonitor, plan: dict[str, Any] | None = None) -> None:
    m.start(SingleProcess(), RankInfo(), plan or {"total_steps": 4})


def record(m: TrainingMonitor) -> list[dict[str, Any]]:
    assert m.tracker is not None and m.tracker.run_folder is not None
    return read_records(m.tracker.run_folder)


def windows(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("type") == "window" and x.get("name") == name]


def joules(window: dict[str, Any]) -> float:
    return float(window["energy_kwh"]["total"]) * JOULES_PER_KWH


def steps(m: TrainingMonitor, n: int = 3) -> None:
    for _ in range(n):
        m.steps.begin()
        sum(range(2000))
        m.steps.end()


# --------------------------------------------------------------------------------- one process
def test_validation_inside_an_epoch_is_reported_apart_and_counted_once(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    assert m.train_epoch_begin(0) == []
    steps(m)
    m.val_begin()
    (val,) = m.val_end()
    (train,) = m.train_epoch_end(0.5)
    lines = record(m)
    (t,), (v,) = windows(lines, "train_epoch"), windows(lines, "val_epoch")
    # every window's energy is the constant power over its duration
    for w in (t, v):
        assert joules(w) == pytest.approx(WATTS * w["seconds"], rel=1e-6)
    # the training value leaves the validation out; the totals hold both, once
    assert train.metrics[PREFIX + "train_epoch_energy_kwh"] == pytest.approx(t["energy_kwh"]["total"], rel=REL)
    assert t["meta"]["validation_excluded"]["co2_kg"] == pytest.approx(v["co2_kg"], rel=REL)
    assert val.metrics[PREFIX + "val_epoch_co2_kg"] == pytest.approx(v["co2_kg"], rel=REL)
    assert train.metrics[PREFIX + "total_co2_kg"] == pytest.approx(t["co2_kg"] + v["co2_kg"], rel=REL)
    m.finish()


def test_an_evaluation_outside_any_epoch_counts_in_the_totals_once(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.val_begin()  # eval_on_start
    m.val_end()
    m.train_epoch_begin(0)
    steps(m)
    (train,) = m.train_epoch_end(1.0)
    m.finish()
    lines = record(m)
    spent = sum(w["co2_kg"] for w in windows(lines, "train_epoch") + windows(lines, "val_epoch"))
    assert train.metrics[PREFIX + "total_co2_kg"] == pytest.approx(spent, rel=REL)


def test_an_epoch_whose_validation_follows_it_closes_after_that_validation(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    steps(m)
    assert m.train_epoch_end(0.5, validation_follows=True) == []
    assert m.in_validation and m.in_train_epoch
    val, train = m.val_end()
    assert (val.kind, train.kind) == ("val", "train")
    assert train.metrics[PREFIX + "total_energy_kwh"] == pytest.approx(train.energy.kwh + val.energy.kwh, rel=REL)
    # an epoch still waiting at the end of the run is closed by close_pending
    m.train_epoch_begin(1)
    m.train_epoch_end(1.0, validation_follows=True)
    assert [r.kind for r in m.close_pending()] == ["val", "train"]
    m.finish()


def test_only_measured_components_are_logged(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    assert m.components == ("cpu",)
    m.train_epoch_begin(0)
    (train,) = m.train_epoch_end(0.5)
    energy_keys = {k for k in train.metrics if "_energy_" in k and k.count("_") > 3}
    assert energy_keys == {PREFIX + "train_epoch_energy_cpu_kwh"}
    m.finish()


def test_forecast_is_printed_once_per_epoch_from_1_never_at_100_percent_and_obeys_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CO2CB_QUIET", raising=False)
    m = monitor(tmp_path)
    start(m)
    for epoch, progress in ((0, 0.5), (1, 1.0)):
        m.train_epoch_begin(epoch)
        steps(m)
        (report,) = m.train_epoch_end(progress)
        assert report.metrics[PREFIX + "forecast_co2_kg"] == pytest.approx(
            report.metrics[PREFIX + "total_co2_kg"] / progress, rel=REL
        )
    m.finish()
    lines = [x for x in capsys.readouterr().out.splitlines() if "forecast" in x]
    assert len(lines) == 1 and lines[0].startswith("co2cb: after epoch 1 (50% done) the run is forecast at ")

    for silence in ("quiet", "not verbose"):
        m = monitor(tmp_path)
        if silence == "quiet":
            monkeypatch.setenv("CO2CB_QUIET", "1")
        else:
            monkeypatch.delenv("CO2CB_QUIET")
            m.verbose = False
        start(m)
        m.train_epoch_begin(0)
        m.train_epoch_end(0.5)
        m.finish()
        assert "forecast" not in capsys.readouterr().out, silence


def test_budget_on_the_total_stops_and_says_so_in_the_status(tmp_path: Path) -> None:
    m = monitor(tmp_path, budget_kg=1e-15)
    start(m)
    m.train_epoch_begin(0)
    steps(m)
    m.train_epoch_end(0.5)
    assert m.stop_reason is not None and "carbon budget reached" in m.stop_reason
    m.finish()
    summary = record(m)[-1]
    assert summary["status"] == BUDGET_STOPPED and summary["stop_reason"] == m.stop_reason


def test_budget_on_the_forecast_waits_for_a_forecast(tmp_path: Path) -> None:
    m = monitor(tmp_path, budget_kg=1.0, budget_on="forecast", forecast_after_epochs=2)
    start(m)
    m.train_epoch_begin(0)
    m.train_epoch_end(1e-15)  # a forecast would pass the budget, but none is made before 2 epochs
    assert m.stop_reason is None
    m.train_epoch_begin(1)
    m.train_epoch_end(1e-15)
    assert m.stop_reason is not None and "would be passed" in m.stop_reason
    m.finish()


def test_a_resumed_run_continues_the_totals_and_the_epoch_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CO2CB_QUIET", raising=False)
    first = monitor(tmp_path)
    start(first)
    first.train_epoch_begin(0)
    steps(first)
    (before,) = first.train_epoch_end(0.25)
    state = first.state_dict()
    first.finish()
    assert state["epochs_done"] == 1

    second = monitor(tmp_path)
    second.load_state_dict(state)
    start(second)
    second.train_epoch_begin(1)
    steps(second)
    (after,) = second.train_epoch_end(0.5)
    second.finish()
    total_before = before.metrics[PREFIX + "total_co2_kg"]
    assert state["totals"][3] >= total_before  # the state holds at least the closed epoch
    assert after.metrics[PREFIX + "total_co2_kg"] == pytest.approx(state["totals"][3] + after.energy.co2_kg, rel=REL)
    assert "after epoch 2 (50% done)" in capsys.readouterr().out
    lines = record(second)
    assert lines[0]["resumed_from"]["run_id"] == state["run_id"]
    assert lines[-1]["resumed_total"]["co2_kg"] >= after.metrics[PREFIX + "total_co2_kg"]


def test_failures_and_teardown_are_recorded_with_their_status(tmp_path: Path) -> None:
    failed = monitor(tmp_path)
    start(failed)
    failed.fail(ValueError("boom"))
    assert record(failed)[-1]["status"] == "failed: ValueError: boom"
    abandoned = monitor(tmp_path)
    start(abandoned)
    abandoned.abandon()
    assert record(abandoned)[-1]["status"] == "stopped without fit end"
    done = monitor(tmp_path)
    start(done)
    done.finish()
    assert record(done)[-1]["status"] == COMPLETED


def test_log_step_reads_the_curve_since_the_last_log(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    steps(m)
    first = m.log_step()
    steps(m)
    second = m.log_step()
    for values in (first, second):
        assert values[PREFIX + "step_power_w"] == pytest.approx(WATTS, rel=1e-6)
    assert second[PREFIX + "run_co2_kg"] > first[PREFIX + "run_co2_kg"] > 0
    m.finish()


def test_step_next_pairs_steps_from_batch_start_to_batch_start(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    for _ in range(5):
        m.steps.next()
    m.train_epoch_end(1.0)  # closes the last step
    m.finish()
    assert record(m)[-1]["steps"]["step"]["count"] == 5


# --------------------------------------------------------------------------------- two ranks
def run_ranks(world: int, body: Callable[[int], Any]) -> list[Any]:
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def run(rank: int) -> None:
        try:
            results[rank] = body(rank)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a rank hung"
    if errors:
        raise errors[0]
    return results


def test_two_ranks_sum_their_energy_and_rank_0_alone_writes(tmp_path: Path) -> None:
    shared = ThreadCollective(2)
    hosts = ("node-a", "node-b")

    def rank(r: int) -> tuple[TrainingMonitor, list[Any]]:
        m = monitor(tmp_path / f"rank{r}")
        info = RankInfo(rank=r, local_rank=0, world_size=2, local_pids=(), hosts=hosts)
        m.start(shared.rank(r), info, {"total_steps": 4})
        reports = m.train_epoch_begin(0)
        steps(m)
        m.val_begin()
        reports += m.val_end()
        reports += m.train_epoch_end(0.5)
        m.finish()
        return m, reports

    (m0, reports0), (m1, reports1) = run_ranks(2, rank)
    assert m0.tracker is not None and m0.tracker.run_folder is not None
    assert m1.tracker is not None and m1.tracker.run_folder is None  # rank 1 writes nothing
    for a, b in zip(reports0, reports1, strict=True):  # every rank logs the job's values
        assert a.metrics == pytest.approx(b.metrics, rel=1e-9)
    lines = record(m0)
    (train,) = windows(lines, "train_epoch")
    per_rank = train["meta"]["per_rank"]
    assert len(per_rank) == 2
    # each rank drew the constant power over its own epoch; the job's energy is their sum, not an average
    for share in per_rank:
        assert share["energy_kwh"]["total"] * JOULES_PER_KWH == pytest.approx(WATTS * share["seconds"], rel=1e-6)
    assert train["energy_kwh"]["total"] == pytest.approx(sum(s["energy_kwh"]["total"] for s in per_rank), rel=REL)
    assert set(train["meta"]["per_host"]) == set(hosts)
    summary = lines[-1]
    assert summary["job"]["world_size"] == 2 and summary["status"] == COMPLETED
    assert summary["co2_kg"] == pytest.approx(sum(s["co2_kg"] for s in summary["job"]["per_rank"]), rel=REL)


def test_a_rank_that_cannot_start_stops_every_rank_without_a_hang(tmp_path: Path) -> None:
    shared = ThreadCollective(2)

    def rank(r: int) -> str:
        m = monitor(tmp_path / f"rank{r}")
        if r == 1:
            m.tracker_options["interval_s"] = -1  # invalid here only: this rank's tracker cannot be built
        try:
            m.start(shared.rank(r), RankInfo(rank=r, world_size=2, hosts=("a", "a")), {})
        except RuntimeError as e:
            assert m.tracker is None and not m.measuring
            return str(e)
        return "started"

    messages = run_ranks(2, rank)
    assert all("a rank could not start measuring" in x and "interval_s" in x for x in messages)
    (folder,) = (tmp_path / "rank0" / "runs").iterdir()
    assert read_records(folder)[-1]["status"].startswith("not measured: a rank could not start")
