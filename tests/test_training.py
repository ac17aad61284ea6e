"""TrainingMonitor without any ML framework: the rules every adapter shares, driven directly.

Meters draw a constant power, so every window's energy is known exactly: watts x its seconds.
Two ranks run in two threads over a collective made of a barrier, as two processes of a job would.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from co2cb import read_records
from co2cb.training import RankInfo, SingleProcess, TrainingMonitor, names
from co2cb.training.monitor import BUDGET_STOPPED, COMPLETED
from co2cb.training.rows import PendingRows
from co2cb.training.steps import no_step
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
@pytest.mark.parametrize("path", ["with_epoch", "validation_follows"])
def test_an_epoch_and_the_validation_that_ends_it_are_written_with_one_write(
    tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = monitor(tmp_path)
    m.start(SingleProcess(), RankInfo(), {"total_steps": 4})
    m.train_epoch_begin(0)
    steps(m)
    writes: list[bytes] = []
    real_write = os.write

    def spy(fd: int, data: Any) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    if path == "with_epoch":
        m.val_begin()
        steps(m)
        monkeypatch.setattr(os, "write", spy)
        m.val_end(with_epoch=True)
        m.train_epoch_end(0.5)
    else:
        m.train_epoch_end(0.5, validation_follows=True)
        steps(m)
        monkeypatch.setattr(os, "write", spy)
        m.val_end()
    monkeypatch.undo()
    m.finish()
    (both,) = writes  # one write() for the two lines: a SIGKILL keeps both or neither
    names_written = [json.loads(x)["name"] for x in both.splitlines()]
    assert names_written == ["val_epoch", "train_epoch"]
    lines = record(m)
    assert [x["name"] for x in lines if x.get("type") == "window"] == ["val_epoch", "train_epoch", "run"]


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
    assert train.metrics[names.EPOCH_ENERGY] == pytest.approx(t["energy_kwh"]["total"], rel=REL)
    assert t["meta"]["validation_excluded"]["co2_kg"] == pytest.approx(v["co2_kg"], rel=REL)
    assert val.metrics[names.EPOCH_CO2] == pytest.approx(v["co2_kg"], rel=REL)
    # the total is the run so far: both, and what ran before the epoch (start-up)
    assert train.metrics[names.TOTAL_CO2] >= (t["co2_kg"] + v["co2_kg"]) * (1 - REL)
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
    assert train.metrics[names.TOTAL_CO2] >= spent * (1 - REL)  # counted once, with the time around them
    assert m.total_metrics()[names.TOTAL_CO2] == pytest.approx(lines[-1]["co2_kg"], rel=REL)


def test_an_epoch_whose_validation_follows_it_closes_after_that_validation(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    steps(m)
    assert m.train_epoch_end(0.5, validation_follows=True) == []
    assert m.in_validation and m.in_train_epoch
    val, train = m.val_end()
    assert (val.kind, train.kind) == ("val", "train")
    assert train.metrics[names.TOTAL_ENERGY] >= (train.energy.kwh + val.energy.kwh) * (1 - REL)
    # an epoch still waiting at the end of the run is closed by close_pending
    m.train_epoch_begin(1)
    m.train_epoch_end(1.0, validation_follows=True)
    assert [r.kind for r in m.close_pending()] == ["val", "train"]
    m.finish()


def test_a_validation_ending_its_epoch_closes_with_it_as_of_its_own_end(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    steps(m)
    m.val_begin()
    sum(range(20_000))
    assert m.val_end(with_epoch=True) == []  # read now, reported with the epoch
    assert not m.in_validation and m.in_train_epoch
    time.sleep(0.05)  # after the validation, before the epoch's end (Lightning's on_validation_end hooks)
    val, train = m.train_epoch_end(1.0)
    assert (val.kind, train.kind) == ("val", "train")
    m.finish()
    lines = record(m)
    (t,), (v,) = windows(lines, "train_epoch"), windows(lines, "val_epoch")
    assert v["end_unix_s"] <= t["end_unix_s"] - 0.05  # the validation ended at its own end, not the epoch's
    for w in (t, v):  # each its constant power over its own time: the epoch's leaves the validation out
        assert joules(w) == pytest.approx(WATTS * w["seconds"], rel=1e-6)
    assert t["seconds"] >= 0.05  # the time after the validation is the epoch's
    assert t["meta"]["validation_excluded"]["co2_kg"] == pytest.approx(v["co2_kg"], rel=REL)
    assert train.metrics[names.EPOCH_ENERGY] == pytest.approx(t["energy_kwh"]["total"], rel=REL)
    # a validation still waiting for its epoch when the fit fails is closed by the failure, as of its end
    m2 = monitor(tmp_path)
    start(m2)
    m2.train_epoch_begin(0)
    m2.val_begin()
    m2.val_end(with_epoch=True)
    ended = time.time()
    time.sleep(0.05)
    (failed_val,) = m2.fail(RuntimeError("a callback raised"))
    (v2,) = windows(record(m2), "val_epoch")
    assert failed_val.kind == "val" and v2["end_unix_s"] <= ended + 0.01  # not at the failure, 0.05 s on


def test_default_set_is_eight_tags_and_detail_adds_measured_components_only(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    steps(m)
    m.val_begin()
    (val,) = m.val_end()
    (train,) = m.train_epoch_end(0.5)
    m.finish()
    assert set(train.metrics) == {
        names.EPOCH_ENERGY,
        names.EPOCH_CO2,
        names.EPOCH_POWER,
        names.TOTAL_ENERGY,
        names.TOTAL_CO2,
        names.FORECAST_CO2,
    }
    assert set(val.metrics) == {names.EPOCH_ENERGY, names.EPOCH_CO2}
    assert len(set(train.metrics) | {"val_" + k for k in val.metrics}) == 8

    detailed = monitor(tmp_path, detail=True)
    start(detailed)
    assert detailed.components == ("cpu",)
    detailed.train_epoch_begin(0)
    detailed.val_begin()
    (val,) = detailed.val_end()
    (train,) = detailed.train_epoch_end(0.5)
    detailed.finish()
    extra = {names.component_energy("cpu"), names.INTENSITY}
    assert set(train.metrics) - set(names.totals(0, 0)) == {
        names.EPOCH_ENERGY,
        names.EPOCH_CO2,
        names.EPOCH_POWER,
        names.FORECAST_CO2,
        names.FORECAST_ENERGY,
        *extra,
    }
    assert set(val.metrics) == {names.EPOCH_ENERGY, names.EPOCH_CO2, names.EPOCH_POWER, *extra}  # no gpu, no ram
    assert train.metrics[names.INTENSITY] == pytest.approx(G_PER_KWH, rel=REL)
    assert train.metrics[names.component_energy("cpu")] == pytest.approx(train.metrics[names.EPOCH_ENERGY], rel=REL)


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
        assert report.metrics[names.FORECAST_CO2] == pytest.approx(report.metrics[names.TOTAL_CO2] / progress, rel=REL)
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
    total_before = before.metrics[names.TOTAL_CO2]
    assert state["totals"][3] >= total_before  # the state holds at least the closed epoch
    # the second segment's total goes on from the first's: its whole run so far, start-up included
    assert after.metrics[names.TOTAL_CO2] >= (state["totals"][3] + after.energy.co2_kg) * (1 - REL)
    assert "after epoch 2 (50% done)" in capsys.readouterr().out
    lines = record(second)
    assert lines[0]["resumed_from"]["run_id"] == state["run_id"]
    assert lines[-1]["resumed_total"]["co2_kg"] >= after.metrics[names.TOTAL_CO2]
    # at the end the logged total is the record's total of the whole run
    assert second.total_metrics()[names.TOTAL_CO2] == pytest.approx(lines[-1]["resumed_total"]["co2_kg"], rel=REL)
    assert second.total_metrics()[names.TOTAL_ENERGY] == pytest.approx(
        lines[-1]["resumed_total"]["energy_kwh"]["total"], rel=REL
    )


def test_a_resumed_run_forecasts_once_its_epochs_across_segments_reach_forecast_after_epochs(tmp_path: Path) -> None:
    first = monitor(tmp_path, forecast_after_epochs=2)
    start(first)
    first.train_epoch_begin(0)
    steps(first)
    (one,) = first.train_epoch_end(0.25)
    state = first.state_dict()
    first.finish()
    assert names.FORECAST_CO2 not in one.metrics  # 1 epoch measured
    second = monitor(tmp_path, forecast_after_epochs=2)
    second.load_state_dict(state)
    start(second)
    second.train_epoch_begin(1)
    steps(second)
    (two,) = second.train_epoch_end(0.5)
    second.finish()
    # 2 epochs measured, the first in the earlier segment (before: this segment's 1 alone, no forecast)
    assert two.metrics[names.FORECAST_CO2] == pytest.approx(two.metrics[names.TOTAL_CO2] / 0.5, rel=REL)


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
        assert values[names.STEP_POWER] == pytest.approx(WATTS, rel=1e-6)
    assert second[names.TOTAL_CO2] >= first[names.TOTAL_CO2] > 0
    m.finish()
    assert m.total_metrics()[names.TOTAL_CO2] == pytest.approx(record(m)[-1]["co2_kg"], rel=REL)
    assert second[names.TOTAL_CO2] <= m.total_metrics()[names.TOTAL_CO2]


def test_step_logs_a_few_milliseconds_apart_early_in_a_run_each_cover_their_own_interval(tmp_path: Path) -> None:
    """Early in a run a step log reads the meters; one reading serves boundaries 5 ms apart, not two step logs."""
    options = {"meters": None, "components": ("cpu", "ram"), "powercap_root": tmp_path / "none", "interval_s": 5.0}
    m = monitor(tmp_path, tracker_options=options)  # co2cb's estimates; the curve spans less than an interval
    start(m)
    logs = [m.log_step() for _ in range(5)]
    m.finish()
    for values in logs:  # before: a log within 5 ms of the last reading covered nothing (0 J, 0 W)
        assert values[names.STEP_ENERGY] > 0 and values[names.STEP_POWER] > 0  # the RAM's at least


def test_step_clock_keeps_each_threads_steps_apart_and_follows_a_new_tracker(tmp_path: Path) -> None:
    first, second = monitor(tmp_path), monitor(tmp_path)
    start(first)
    start(second)
    clock = first.steps
    steps(first, 3)

    def other_thread() -> None:
        for _ in range(2):
            clock.begin()
            clock.end()

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    clock.marker()(time.perf_counter_ns())  # back on this thread: opens a step (this thread's again), closed below
    clock.close()
    clock.tracker = second.tracker  # a new tracker: its stamps, not the old one's
    steps(first, 2)
    first.finish()
    second.finish()
    assert record(first)[-1]["steps"]["step"]["count"] == 6  # 3 + the other thread's 2 (its own series) + 1
    assert record(second)[-1]["steps"]["step"]["count"] == 2


def test_a_step_marker_pairs_steps_from_batch_start_to_batch_start(tmp_path: Path) -> None:
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    mark = m.steps.marker()
    for _ in range(5):
        mark(time.perf_counter_ns())
    m.train_epoch_end(1.0)  # closes the last step
    m.finish()
    assert record(m)[-1]["steps"]["step"]["count"] == 5


def test_step_markers_share_the_open_step_and_are_a_no_op_without_a_tracker(tmp_path: Path) -> None:
    idle = monitor(tmp_path)
    assert idle.steps.marker() is no_step  # before start: nothing to mark on
    m = monitor(tmp_path)
    start(m)
    m.train_epoch_begin(0)
    mark = m.steps.marker()
    for _ in range(3):
        mark(time.perf_counter_ns())
    m.steps.marker()(time.perf_counter_ns())  # a second marker shares the open step: 4 boundaries, 4 steps
    m.val_begin()  # closes the open step
    m.val_end()
    mark(time.perf_counter_ns())
    m.train_epoch_end(1.0)
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


class CountingCollective(RankCollective):
    """A rank's collective that counts its gathers."""

    def __init__(self, shared: ThreadCollective, rank: int) -> None:
        super().__init__(shared, rank)
        self.gathers = 0

    def gather(self, value: Any) -> list[Any]:
        self.gathers += 1
        return super().gather(value)


@pytest.mark.parametrize("path", ["with_epoch", "validation_follows"])
def test_an_epoch_and_the_validation_that_ends_it_take_one_gather(tmp_path: Path, path: str) -> None:
    shared = ThreadCollective(2)

    def rank(r: int) -> tuple[TrainingMonitor, list[Any], int]:
        m = monitor(tmp_path / f"rank{r}")
        collective = CountingCollective(shared, r)
        m.start(collective, RankInfo(rank=r, world_size=2, hosts=("node-a", "node-b")), {"total_steps": 4})
        m.train_epoch_begin(0)
        steps(m)
        before = collective.gathers
        if path == "with_epoch":  # Lightning: the validation after the epoch's last batch, then the epoch's end
            m.val_begin()
            steps(m)
            reports = m.val_end(with_epoch=True)
            time.sleep(0.02)  # the framework's work between the two: the epoch's
            reports += m.train_epoch_end(0.5)
        else:  # HF's eval_strategy="epoch": the epoch ends, then the validation that follows it
            assert m.train_epoch_end(0.5, validation_follows=True) == []
            steps(m)
            reports = m.val_end()
        gathers = collective.gathers - before
        m.finish()
        return m, reports, gathers

    (m0, reports0, gathers0), (_, reports1, gathers1) = run_ranks(2, rank)
    assert (gathers0, gathers1) == (1, 1)  # not one for each window
    assert [r.kind for r in reports0] == ["val", "train"]
    for a, b in zip(reports0, reports1, strict=True):  # every rank logs the job's values
        assert a.metrics == pytest.approx(b.metrics, rel=1e-9)
    lines = record(m0)
    (t,), (v,) = windows(lines, "train_epoch"), windows(lines, "val_epoch")
    for w in (t, v):  # each rank's share its constant power over its own time; the job's their sum
        per_rank = w["meta"]["per_rank"]
        assert len(per_rank) == 2
        for share in per_rank:
            assert share["energy_kwh"]["total"] * JOULES_PER_KWH == pytest.approx(WATTS * share["seconds"], rel=1e-6)
        assert w["energy_kwh"]["total"] == pytest.approx(sum(s["energy_kwh"]["total"] for s in per_rank), rel=REL)
    assert t["meta"]["validation_excluded"]["co2_kg"] == pytest.approx(v["co2_kg"], rel=REL)
    assert reports0[1].metrics[names.TOTAL_CO2] >= (t["co2_kg"] + v["co2_kg"]) * (1 - REL)


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


# --------------------------------------------------------------------------------- known truth
def test_step_logs_of_a_ticking_counter_read_its_power_at_the_default_interval(tmp_path: Path) -> None:
    """A RAPL counter at 60 W that moves every 10 ms, read through the real powercap files, default interval.

    Step logs come right after boundary reads (a few ms apart, where the counter moved zero or one
    tick), early in the run (before the curve spans one interval) and later: every logged power and
    step energy is 60 W over its interval within 10 % (plus what the fake counter's own lateness on a
    loaded machine explains). Every interval lasts at least 0.3 s: a counter that moves every 10 ms
    cannot tell shorter ones to 10 % (one tick is 0.6 J).
    """
    from tests.fakes.powercap import FakePowercap, TickingCounter

    powercap = FakePowercap(tmp_path / "powercap")
    options = {"scope": "machine", "powercap_root": powercap.root, "components": ("cpu",), "region": "FR"}
    with TickingCounter(powercap, watts=60.0, tick_s=0.01) as counter:
        m = TrainingMonitor(tracker_options={"output_dir": tmp_path / "runs", **options})
        start(m)
        assert m.tracker is not None and m.tracker.config.interval_s == 1.0  # the default
        logged: list[tuple[float, float, dict[str, float]]] = []
        last = time.perf_counter()
        for epoch in range(3):
            m.train_epoch_begin(epoch)  # a boundary read just before the first log of the epoch
            for _ in range(3):
                time.sleep(0.3)
                values = m.log_step()
                now = time.perf_counter()
                logged.append((last, now, values))
                last = now
            m.val_begin()
            time.sleep(0.3)
            (val,) = m.val_end()
            (train,) = m.train_epoch_end((epoch + 1) / 3)
            for report in (val, train):
                assert report.energy.mean_watts == pytest.approx(60.0, rel=0.1 + 2 * counter.max_lag_s / 0.3)
        m.finish()
    for a, b, values in logged:
        tolerance = 0.1 + 3 * counter.max_lag_s / (b - a)
        assert values[names.STEP_POWER] == pytest.approx(60.0, rel=tolerance), (b - a, values)
        joules = values[names.STEP_ENERGY] * JOULES_PER_KWH
        assert joules == pytest.approx(counter.energy_between(a, b), rel=tolerance + 0.01), (b - a, values)
    final = m.total_metrics()
    assert final[names.TOTAL_ENERGY] == pytest.approx(record(m)[-1]["energy_kwh"]["total"], rel=REL)
    assert all(values[names.TOTAL_ENERGY] <= final[names.TOTAL_ENERGY] for _, _, values in logged)


class FallingPower(ConstantPower):
    """A power meter at 1 kW that falls to 1 W when the test says so."""

    def fall(self) -> None:
        self.watts = 1.0


def test_the_logged_total_never_exceeds_the_final_figure_and_ends_equal_to_the_record(tmp_path: Path) -> None:
    """Power falls from 1 kW to 1 W just before a step log and the end: extended past the last reading at
    1 kW, that log's total would pass the final one; taken up to the last reading, it never does."""
    meter = FallingPower(1000.0)
    m = monitor(tmp_path, tracker_options={"meters": [meter], "interval_s": 0.5})
    start(m)
    m.train_epoch_begin(0)
    time.sleep(0.6)
    meter.fall()
    time.sleep(0.2)
    during = [m.log_step()]
    (train,) = m.train_epoch_end(1.0)
    m.finish()
    end = record(m)[-1]
    final = m.total_metrics()
    assert final[names.TOTAL_CO2] == pytest.approx(end["co2_kg"], rel=REL)
    assert final[names.TOTAL_ENERGY] == pytest.approx(end["energy_kwh"]["total"], rel=REL)
    for values in [*during, train.metrics]:
        assert values[names.TOTAL_CO2] <= final[names.TOTAL_CO2]


def test_provenance_says_region_intensity_pue_and_each_components_meters(tmp_path: Path) -> None:
    m = TrainingMonitor(tracker_options={"meters": [ConstantPower(WATTS)], "region": "FR", "output_dir": tmp_path})
    assert m.provenance() == {}
    start(m)
    facts = m.provenance()
    m.finish()
    header = record(m)[0]
    assert facts["co2cb/run_id"] == header["run_id"]
    assert facts["co2cb/region"] == "FR" and "region 'FR' given as an argument" in str(facts["co2cb/region_reason"])
    assert facts["co2cb/intensity_g_per_kwh"] == header["intensity"]["g_per_kwh"]
    assert facts["co2cb/intensity_source"] == header["intensity"]["source"]
    assert facts["co2cb/intensity_year"] == str(header["intensity"]["year"])
    assert facts["co2cb/intensity_kind"] == "average"
    assert facts["co2cb/pue"] == 1.0 and facts["co2cb/pue_source"] == header["pue_info"]["source"]
    assert facts["co2cb/meter_cpu"] == "test:constant (estimate)"
    assert facts["co2cb/meter_gpu"] == facts["co2cb/meter_ram"] == "not measured"
    assert all(isinstance(v, (str, float)) for v in facts.values())  # what MLflow, W&B and TensorBoard take


def test_pending_rows_merge_values_at_one_step_and_epoch_and_keep_their_order() -> None:
    rows = PendingRows()
    assert rows.take() == []
    rows.add(7, 0, {"val_co2cb/epoch_co2_kg": 1.0})  # a validation inside epoch 0
    rows.add(15, 0, {"val_co2cb/epoch_co2_kg": 2.0})  # the one that ends it...
    rows.add(15, 0, {"co2cb/epoch_co2_kg": 3.0})  # ...shares the epoch's row
    rows.add(15, 1, {"co2cb/total_co2_kg": 4.0})  # another epoch at that step: a row of its own
    assert rows.take() == [
        (7, 0, {"val_co2cb/epoch_co2_kg": 1.0}),
        (15, 0, {"val_co2cb/epoch_co2_kg": 2.0, "co2cb/epoch_co2_kg": 3.0}),
        (15, 1, {"co2cb/total_co2_kg": 4.0}),
    ]
    assert rows.take() == []  # taken: none left


# --------------------------------------------------------------------------------- a marginal intensity
MARGINAL = 300.0  # gCO2e/kWh, recorded next to the average G_PER_KWH: every marginal figure is 3x the average's


def _one_epoch(m: TrainingMonitor) -> None:
    """One training epoch whose last act is a validation (Lightning's order), then the run's end."""
    m.train_epoch_begin(0)
    steps(m)
    m.val_begin()
    steps(m)
    m.val_end(with_epoch=True)
    m.train_epoch_end(0.5)
    m.finish()


def _assert_marginal(line: dict[str, Any]) -> None:
    assert line["co2_kg_marginal"] == pytest.approx(line["co2_kg"] * MARGINAL / G_PER_KWH, rel=REL)
    assert line["intensity_g_per_kwh_marginal"] == pytest.approx(MARGINAL)


def test_a_marginal_intensity_gives_the_epochs_lines_their_marginal_co2(tmp_path: Path) -> None:
    m = monitor(tmp_path, tracker_options={"marginal_intensity": MARGINAL})
    start(m)
    _one_epoch(m)
    lines = record(m)
    (val,), (train,) = windows(lines, "val_epoch"), windows(lines, "train_epoch")
    for line in (val, train, lines[-1]):
        _assert_marginal(line)
    excluded = train["meta"]["validation_excluded"]  # train = epoch - validation, for the marginal CO2 too
    assert excluded["co2_kg_marginal"] == pytest.approx(val["co2_kg_marginal"], rel=REL)


def test_a_marginal_intensity_is_summed_over_ranks_in_the_jobs_lines_and_summary(tmp_path: Path) -> None:
    shared = ThreadCollective(2)

    def rank(r: int) -> TrainingMonitor:
        m = monitor(tmp_path / f"rank{r}", tracker_options={"marginal_intensity": MARGINAL})
        info = RankInfo(rank=r, local_rank=0, world_size=2, local_pids=(), hosts=("node-a", "node-b"))
        m.start(shared.rank(r), info, {"total_steps": 4})
        _one_epoch(m)
        return m

    m0, _ = run_ranks(2, rank)
    lines = record(m0)
    summary = lines[-1]
    assert summary["job"]["world_size"] == 2
    for line in (*windows(lines, "val_epoch"), *windows(lines, "train_epoch"), summary):
        _assert_marginal(line)  # the job's: before, the summary held rank 0's marginal CO2 beside the job's CO2
    per_rank = summary["job"]["per_rank"]
    assert summary["co2_kg_marginal"] == pytest.approx(sum(r["co2_kg_marginal"] for r in per_rank), rel=REL)


def test_a_marginal_co2_crosses_a_checkpoint_and_older_states_still_load(tmp_path: Path) -> None:
    from co2cb.training.energy import Energy

    older = Energy.from_vector([1.0, 2.0, 3.0, 0.5, 10.0])  # a state saved before the marginal CO2 was kept
    assert older.co2_kg_marginal is None and older.co2_kg == 0.5 and older.seconds == 10.0
    first = monitor(tmp_path, tracker_options={"marginal_intensity": MARGINAL})
    start(first)
    first.train_epoch_begin(0)
    steps(first)
    first.train_epoch_end(0.25)
    state = first.state_dict()
    first.finish()
    second = monitor(tmp_path, tracker_options={"marginal_intensity": MARGINAL})
    second.load_state_dict(state)
    start(second)
    _one_epoch(second)
    whole = record(second)[-1]["resumed_total"]  # both segments
    assert whole["co2_kg_marginal"] == pytest.approx(whole["co2_kg"] * MARGINAL / G_PER_KWH, rel=REL)


def test_a_jobs_lines_and_summary_say_what_its_ranks_measured_and_under_which_intensity(tmp_path: Path) -> None:
    """Rank 0 samples power at 100 g/kWh; rank 1 estimates, past the end of its series (a note): the world's value."""
    from co2cb import MeterInfo
    from co2cb.cli.statement import render
    from co2cb.meters.base import Component, Provenance
    from co2cb.records.reader import load_run

    series = tmp_path / "series.csv"
    series.write_text("timestamp,g_per_kwh\n2020-01-01T00:00:00Z,300\n2020-01-01T01:00:00Z,300\n")
    shared = ThreadCollective(2)

    def rank(r: int) -> TrainingMonitor:
        meter = ConstantPower(WATTS * (1 + 2 * r))
        if r == 0:
            meter._info = MeterInfo("test:sampled", Component.CPU, Provenance.SAMPLED_POWER)
        options = {"meters": [meter], "intensity": G_PER_KWH if r == 0 else str(series)}
        m = monitor(tmp_path / f"rank{r}", tracker_options=options)
        info = RankInfo(rank=r, local_rank=0, world_size=2, local_pids=(), hosts=("node-a", "node-b"))
        m.start(shared.rank(r), info, {"total_steps": 4})
        _one_epoch(m)
        return m

    m0, m1 = run_ranks(2, rank)
    assert m1.tracker is not None and m1.tracker.result is not None
    rank_1_g = m1.tracker.result.g_per_kwh  # the table's world average, held for every window
    lines = record(m0)
    job_lines = (*windows(lines, "val_epoch"), *windows(lines, "train_epoch"), *windows(lines, "run"), lines[-1])
    assert len(job_lines) == 4 and lines[-1]["type"] == "summary"
    for line in job_lines:  # before: rank 0's intensity, provenance and notes, and a GPU and RAM that nobody measured
        kwh = line["energy_kwh"]["total"]
        assert line["intensity_g_per_kwh"] == pytest.approx(line["co2_kg"] * 1000 / kwh, rel=REL)
        assert G_PER_KWH < line["intensity_g_per_kwh"] < rank_1_g
        assert line["provenance"] == {"cpu": "estimate+sampled-power"}
        assert set(line["energy_kwh"]) == {"cpu", "total"}
        assert line["intensity_notes"] and all(n.startswith("node-b: ") for n in line["intensity_notes"])
    assert m0.tracker is not None and m0.tracker.run_folder is not None
    text = " ".join(render([load_run(m0.tracker.run_folder)], "text").split())
    assert "(partly estimated: meter test:sampled (sampled-power) on rank 0's host node-a; node-b: estimate)" in text
    assert "Estimated, not measured: CPU" in text and "Note on the intensity: node-b: " in text


def test_merged_notes_keep_a_note_every_rank_has_once_and_name_the_hosts_of_the_others() -> None:
    from co2cb.training.job import merged_notes

    hosts = ("node-a", "node-a", "node-b")
    per_rank = [["gap"], ["gap", "held"], ["gap", "held"]]
    assert merged_notes(hosts, per_rank) == ("gap", "node-a, node-b: held")
    assert merged_notes(hosts, [["x"], [], []]) == ("node-a: x",)
    assert merged_notes(hosts, [[], [], []]) == ()
