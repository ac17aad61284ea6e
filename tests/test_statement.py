"""`co2cb statement`: figures equal to the record's, estimates always named, a model card the Hub reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from co2cb import Tracker
from co2cb.cli.statement import FORMATS, render
from co2cb.intensity.region import CLOUD_ENV_VARS
from co2cb.records.reader import RecordedRun, find_runs, load_run
from co2cb.report.model_card import yaml_number
from co2cb.report.statement import statement
from co2cb.report.statement_text import latex_escape
from co2cb.units import format_energy, format_mass

from .fakes import Constant, FakeGpu, install_fake_pynvml
from .fakes.meters import ConstantPower, RaisingMeter
from .fakes.powercap import FakePowercap

CLI = [sys.executable, "-m", "co2cb"]
HUB_FIELDS = {"emissions", "source", "training_type", "geographical_location", "hardware_used"}


def lines_of(folder: Path) -> list[dict[str, Any]]:
    """The record as written, read here without co2cb."""
    return [json.loads(x) for x in (folder / "run.jsonl").read_text().splitlines() if x.strip()]


@pytest.fixture
def measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, powercap: FakePowercap) -> RecordedRun:
    """A run whose every component is measured: an NVML energy counter and RAPL package and DRAM zones."""
    install_fake_pynvml(monkeypatch, [FakeGpu(power=Constant(250.0))])
    tracker = Tracker(
        output_dir=tmp_path / "runs",
        run_name="pretrain",
        scope="machine",
        region="aws:eu-west-3",
        powercap_root=powercap.root,
        interval_s=0.05,
        tags={"training_type": "pre-training"},
    )
    with tracker, tracker.window("epoch", meta={"epoch": 0}):
        powercap.add_j("package-0", 30.0)
        powercap.add_j("dram-0", 4.0)
        time.sleep(0.3)
    assert tracker.run_folder is not None
    return load_run(tracker.run_folder)


@pytest.fixture
def estimated(tmp_path: Path) -> RecordedRun:
    """A run whose CPU and RAM are estimated (no RAPL), with a marginal intensity next to the average one."""
    tracker = Tracker(
        output_dir=tmp_path / "runs",
        run_name="finetune",
        components=("cpu", "ram"),
        cpu_tdp_w=65,
        powercap_root=tmp_path / "no-powercap",
        region="FR",
        marginal_intensity="table",
        interval_s=0.05,
        tags={"training_type": "fine-tuning"},
    )
    with tracker:
        sum(range(3_000_000))
    assert tracker.run_folder is not None
    return load_run(tracker.run_folder)


def component_phrase(text: str, label: str) -> str:
    """The parenthesis that follows a component's figure in the text (``CPU 2.6 J (estimated: ...)``)."""
    found = re.search(rf"\b{label} [\d.]+ (?:[µmkMG]?Wh|J) \(([^:)]*)", " ".join(text.split()))
    assert found is not None, (label, text)
    return found.group(1)


# --------------------------------------------------------------------------- figures
def test_figures_are_the_records(measured: RecordedRun, estimated: RecordedRun) -> None:
    for run in (measured, estimated):
        summary = lines_of(run.path)[-1]
        assert summary["type"] == "summary"
        (figures,) = statement([run]).runs
        assert figures.co2_kg == summary["co2_kg"]
        assert figures.seconds == summary["seconds"]
        assert figures.pue == summary["pue"]
        assert figures.g_per_kwh == summary["intensity_g_per_kwh"]
        assert {p.component: p.kwh for p in figures.parts} == {
            k: v for k, v in summary["energy_kwh"].items() if k != "total"
        }
        assert {p.component: p.provenance for p in figures.parts} == summary["provenance"]
        text = render([run], "text")
        flat = " ".join(text.split())
        used = f"used {format_energy(summary['energy_kwh']['total'])} of electricity"
        assert used in flat, (used, flat[flat.find("used") : flat.find("used") + 120], summary["energy_kwh"])
        assert f"amounts to {format_mass(summary['co2_kg'])} CO2e" in flat
        assert f"carbon intensity of {summary['intensity_g_per_kwh']:.4g} gCO2e/kWh" in flat
        assert f"PUE of {summary['pue']:g}" in flat
        assert f"co2cb {lines_of(run.path)[0]['versions']['co2cb']}" in flat
        for component, kwh in summary["energy_kwh"].items():
            if component != "total":
                assert f"{component.upper()} {format_energy(kwh)} (" in flat


def test_statement_names_hardware_region_and_sources(measured: RecordedRun, estimated: RecordedRun) -> None:
    text = " ".join(render([measured], "text").split())
    assert "1 x NVIDIA H100 80GB HBM3" in text
    assert "NVML energy counter of the NVIDIA H100 80GB HBM3" in text and "RAPL package-0 counter" in text
    assert "aws:eu-west-3, France (FR)" in text and "Ember/OWID, 2024" in text
    assert "PUE of 1.15 (Amazon 2024 Sustainability Report (AWS), 2024)" in text
    assert "All energy figures were measured." in text
    text = " ".join(render([estimated], "text").split())
    assert "TDP x utilisation with a TDP of 65 W" in text
    assert "0.375 W per GB of memory in use (3 W per 8 GB (Crucial/Micron)" in text
    assert "IT energy only" in text
    marginal = lines_of(estimated.path)[-1]["co2_kg_marginal"]
    assert f"the same energy amounts to {format_mass(marginal)} CO2e" in text
    assert "No GPU energy is included" not in text  # the GPU was left out on purpose, not missing


def test_several_runs_give_totals_and_a_breakdown(measured: RecordedRun, estimated: RecordedRun) -> None:
    summaries = [lines_of(r.path)[-1] for r in (measured, estimated)]
    s = statement([measured, estimated])
    assert s.co2_kg == pytest.approx(sum(x["co2_kg"] for x in summaries), rel=1e-12)
    assert s.kwh == pytest.approx(sum(x["energy_kwh"]["total"] for x in summaries), rel=1e-12)
    assert s.component_kwh("cpu") == pytest.approx(sum(x["energy_kwh"]["cpu"] for x in summaries), rel=1e-12)
    text = " ".join(render([measured, estimated], "text").split())
    assert "This work comprises 2 runs" in text
    assert f"amounting to {format_mass(s.co2_kg)} CO2e" in text
    assert text.index('The run "pretrain"') < text.index('The run "finetune"'), "runs in the order given"
    assert f'CPU {format_energy(s.component_kwh("cpu"))} (measured in "pretrain", estimated in "finetune")' in text
    markdown = render([measured, estimated], "markdown")
    table = [x for x in markdown.splitlines() if x.startswith("|")]
    assert len(table) == 2 + 2 + 1 and table[-1].startswith("| total |")
    assert f"| {format_mass(s.co2_kg)} |" in table[-1]
    latex = render([measured, estimated], "latex")
    assert "\\begin{tabular}" in latex and "\\end{tabular}" in latex
    assert latex.count("\\\\") == 4  # header, two runs, total


def test_a_parent_folder_gives_all_its_runs(measured: RecordedRun, estimated: RecordedRun) -> None:
    assert measured.path.parent == estimated.path.parent
    runs = find_runs([measured.path.parent])
    assert {r.name for r in runs} == {"pretrain", "finetune"}
    assert "This work comprises 2 runs" in render(runs, "text")


def test_every_kind_of_recorded_run_gets_a_statement(recorded_runs: Any) -> None:
    """Lightning, Hugging Face, `co2cb run`, a Tracker in a cloud region and a killed run."""
    runs = find_runs([recorded_runs.parent, recorded_runs.crashed])
    assert len(runs) == 6
    for run in runs:
        (figures,) = statement([run]).runs
        assert figures.co2_kg == run.co2_kg and figures.kwh == pytest.approx(run.total_kwh, rel=1e-12)
        text = " ".join(render([run], "text").split())
        assert f"amounts to {format_mass(run.co2_kg)} CO2e" in text
        assert ("Incomplete record" in text) is (not run.complete)
        card = yaml.safe_load(render([run], "hf-model-card"))["co2_eq_emissions"]
        assert card["emissions"] == pytest.approx(run.co2_kg * 1000, rel=1e-5)
    together = render(runs, "markdown")
    assert "| total | " in together and "This work comprises 6 runs" in together


# --------------------------------------------------------------------------- estimates are never hidden
@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_estimated_components_are_labelled_in_every_text_format(
    fmt: str, measured: RecordedRun, estimated: RecordedRun
) -> None:
    alone = render([estimated], fmt)
    for label in ("CPU", "RAM"):
        assert component_phrase(alone, label) == "estimated"
    assert "Estimated, not measured: CPU and RAM" in " ".join(alone.split())
    measured_only = render([measured], fmt)
    for label in ("GPU", "CPU", "RAM"):
        assert component_phrase(measured_only, label) == "measured"
    both = " ".join(render([measured, estimated], fmt).split())
    assert re.search(r"Estimated, not measured: CPU in .{1,30}finetune.{1,30} and RAM in .{1,30}finetune", both)


def test_the_model_card_names_estimates_in_its_source(estimated: RecordedRun) -> None:
    card = yaml.safe_load(render([estimated], "hf-model-card"))["co2_eq_emissions"]
    assert "CPU estimated (TDP x utilisation" in card["source"]
    assert "RAM estimated (0.375 W per GB" in card["source"]


def test_an_estimating_test_meter_and_a_lost_meter_are_said(tmp_path: Path) -> None:
    tracker = Tracker(
        output_dir=tmp_path,
        run_name="lossy",
        intensity=300,
        meters=[ConstantPower(40.0), RaisingMeter(good_reads=2)],
        interval_s=0.05,
    )
    with tracker:
        time.sleep(0.3)
    assert tracker.run_folder is not None
    text = " ".join(render([load_run(tracker.run_folder)], "text").split())
    assert component_phrase(text, "CPU") == "estimated"
    assert "meter test:constant (estimate)" in text
    assert "Meter test:raising stopped working during the run" in text and "lower bound" in text
    assert "a region not given (intensity given by the user)" in text


def test_a_distributed_job_says_how_many_processes_the_figures_sum(measured: RecordedRun) -> None:
    record = measured.path / "run.jsonl"
    header, *body, summary = lines_of(measured.path)
    header["job"] = {"world_size": 4, "framework_plan": {}}  # as the adapters write a DDP job's record
    summary["job"] = {"world_size": 4, "per_rank": [], "per_host": {"node-a": {}, "node-b": {}}}
    record.write_text("".join(json.dumps(x) + "\n" for x in [header, *body, summary]))
    (figures,) = statement([load_run(measured.path)]).runs
    assert figures.hardware.startswith("4 processes on 2 host(s) (seen from rank 0: 1 x NVIDIA H100 80GB HBM3")
    assert figures.co2_kg == summary["co2_kg"]


def test_a_guessed_region_is_said_to_be_a_guess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("CO2CB_REGION", *(name for name, _ in CLOUD_ENV_VARS)):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TZ", "Europe/Paris")
    with Tracker(output_dir=tmp_path, meters=[ConstantPower(10.0)], interval_s=0.05) as tracker:
        time.sleep(0.1)
    assert tracker.run_folder is not None
    run = [load_run(tracker.run_folder)]
    said = "France (FR), guessed from the machine's time zone Europe/Paris (the TZ variable)"
    assert said in " ".join(render(run, "text").split())
    card = yaml.safe_load(render(run, "hf-model-card"))["co2_eq_emissions"]
    assert card["geographical_location"] == said


def located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **environ: str) -> tuple[str, dict[str, Any]]:
    """The location a statement gives for a run made in this environment, and the record's region field."""
    for variable in ("CO2CB_REGION", *(name for name, _ in CLOUD_ENV_VARS)):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    with Tracker(output_dir=tmp_path, meters=[ConstantPower(10.0)], interval_s=0.05) as tracker:
        pass
    assert tracker.run_folder is not None
    run = load_run(tracker.run_folder)
    card = yaml.safe_load(render([run], "hf-model-card"))["co2_eq_emissions"]
    assert card["geographical_location"] in " ".join(render([run], "text").split())
    return card["geographical_location"], run.header["region"]


def test_on_a_utc_machine_the_world_average_is_not_said_to_come_from_the_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    where, region = located(tmp_path, monkeypatch, TZ="UTC")
    assert region["step"] == "world" and region["guessed"] and region["confidence"] == "guess"
    assert "time zone UTC is not one country's" in region["reason"]  # the words that misled the old test
    assert where == "World (WORLD), guessed: the world average, no region given"


def test_a_cloud_variable_is_a_strong_hint_and_the_hints_that_lost_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    where, region = located(tmp_path / "aws", monkeypatch, TZ="Europe/Paris", AWS_REGION="eu-west-3")
    assert (region["step"], region["confidence"], region["source"]) == ("cloud-env", "strong hint", "AWS_REGION")
    assert region["overruled"] == [] and not region["guessed"]
    assert (
        where == "aws:eu-west-3, France (FR), from the environment variable AWS_REGION (a strong hint, not confirmed)"
    )
    where, region = located(
        tmp_path / "both", monkeypatch, TZ="Europe/Berlin", AWS_REGION="eu-west-3", GOOGLE_CLOUD_REGION="europe-west1"
    )
    assert region["overruled"] == [
        "GOOGLE_CLOUD_REGION=europe-west1 -> gcp:europe-west1",
        "time zone Europe/Berlin -> DE",
    ]
    assert where.endswith(
        "(a strong hint, not confirmed); other hints disagreed: GOOGLE_CLOUD_REGION=europe-west1 -> "
        "gcp:europe-west1; time zone Europe/Berlin -> DE"
    )
    assert "other hints disagree and were not used" in region["reason"]
    warned = [r.getMessage() for r in caplog.records if "other hints disagree" in r.getMessage()]
    assert warned == [
        "co2cb: region aws:eu-west-3 taken from AWS_REGION, but other hints disagree (GOOGLE_CLOUD_REGION=europe-west1"
        " -> gcp:europe-west1; time zone Europe/Berlin -> DE); set CO2CB_REGION or pass region= to say which is right"
    ]


def test_an_incomplete_record_says_it_is_a_lower_bound(estimated: RecordedRun) -> None:
    record = estimated.path / "run.jsonl"
    record.write_text("".join(x + "\n" for x in record.read_text().splitlines()[:-1]))  # as if killed
    killed = load_run(estimated.path)
    assert not killed.complete
    text = " ".join(render([killed], "text").split())
    assert f"Incomplete record: {' '.join(killed.totals_from.split())}." in text


def _segments(tmp_path: Path) -> tuple[RecordedRun, RecordedRun]:
    """A run of one epoch, then its resumption from the checkpoint saved after it (TrainingMonitor, no framework)."""
    from co2cb.training import RankInfo, SingleProcess, TrainingMonitor

    state: dict[str, Any] = {}
    folders = []
    for segment in range(2):
        options = {"meters": [ConstantPower(40.0)], "intensity": 100, "output_dir": tmp_path, "interval_s": 0.05}
        m = TrainingMonitor(tracker_options=options)
        if state:
            m.load_state_dict(state)
        m.start(SingleProcess(), RankInfo(), {"total_steps": 2})
        m.train_epoch_begin(segment)
        time.sleep(0.05)
        m.train_epoch_end(0.5 * (segment + 1))
        state = m.state_dict()
        m.finish()
        assert m.tracker is not None and m.tracker.run_folder is not None
        folders.append(m.tracker.run_folder)
    first, second = (load_run(f) for f in folders)
    return first, second


def test_a_resumed_segment_alone_says_so_and_gives_the_whole_path(tmp_path: Path) -> None:
    first, second = _segments(tmp_path)
    assert second.resumed_from is not None and second.resumed_from["run_id"] == first.run_id
    whole = second.resumed_total
    assert whole is not None and whole["co2_kg"] > second.co2_kg
    text = " ".join(render([second], "text").split())
    assert f"This run resumed run {first.run_id} from a checkpoint after 1 epoch(s)" in text
    assert f"checkpointed path so far is {format_energy(whole['energy_kwh']['total'])}" in text
    assert f"and {format_mass(whole['co2_kg'])} CO2e" in text
    card = render([second], "hf-model-card")
    assert "emissions is a lower bound" in card and "give every segment's run folder" in card
    both = " ".join(render([first, second], "text").split())  # the earlier segment is in the statement
    assert "resumed run" not in both and "lower bound" not in both


def test_compare_by_job_puts_a_resumed_segment_in_the_job_of_the_run_it_resumed(tmp_path: Path) -> None:
    from co2cb.report.compare.jobs import job_rows

    first, second = _segments(tmp_path)
    (job,) = job_rows([second, first])  # in any order
    assert job.job == f"run {first.name}" and job.runs == [second.name, first.name]
    assert job.co2_kg == pytest.approx(first.co2_kg + second.co2_kg, rel=1e-12)
    assert [j.job for j in job_rows([second])] == [f"run {second.name}"]  # the earlier segment not given


def test_the_report_of_a_resumed_segment_says_its_figures_are_the_segments(tmp_path: Path) -> None:
    from co2cb.report.compare.report import write_report

    first, second = _segments(tmp_path / "runs")
    page = write_report([second], tmp_path / "report.html").read_text()
    assert f"Resumed from run {first.run_id} after 1 epoch(s): the figures here are this segment&#x27;s" in page
    assert "cumulative CO2e, this segment" in page


# --------------------------------------------------------------------------- model card
def test_model_card_yaml_has_the_hubs_fields(measured: RecordedRun, estimated: RecordedRun) -> None:
    card = yaml.safe_load(render([measured], "hf-model-card"))
    assert list(card) == ["co2_eq_emissions"]
    fields = card["co2_eq_emissions"]
    assert set(fields) == HUB_FIELDS
    assert fields["emissions"] == pytest.approx(lines_of(measured.path)[-1]["co2_kg"] * 1000, rel=1e-5)
    assert fields["training_type"] == "pre-training"  # from the run's tag
    assert fields["geographical_location"] == "aws:eu-west-3, France (FR)"
    assert fields["hardware_used"].startswith("1 x NVIDIA H100 80GB HBM3")
    assert fields["source"].startswith("co2cb ") and "GPU measured (NVML energy counter" in fields["source"]
    both = yaml.safe_load(render([measured, estimated], "hf-model-card", training_type="fine-tuning"))
    fields = both["co2_eq_emissions"]
    assert fields["training_type"] == "fine-tuning"
    assert fields["emissions"] == pytest.approx(statement([measured, estimated]).co2_kg * 1000, rel=1e-5)
    assert "France (FR)" in fields["geographical_location"] and "; " in fields["geographical_location"]


def test_model_card_leaves_out_an_unknown_training_type(tmp_path: Path) -> None:
    with Tracker(output_dir=tmp_path, intensity=100, meters=[ConstantPower(10.0)], interval_s=0.05) as tracker:
        time.sleep(0.1)
    assert tracker.run_folder is not None
    text = render([load_run(tracker.run_folder)], "hf-model-card")
    assert "# training_type: pre-training or fine-tuning" in text
    assert set(yaml.safe_load(text)["co2_eq_emissions"]) == HUB_FIELDS - {"training_type"}


def test_the_hub_library_reads_the_card(measured: RecordedRun) -> None:
    hub = pytest.importorskip("huggingface_hub")
    block = render([measured], "hf-model-card")
    card = hub.ModelCard(f"---\nlicense: apache-2.0\n{block}---\n\n# A model\n")
    emissions = card.data.co2_eq_emissions
    assert set(emissions) == HUB_FIELDS
    assert emissions["emissions"] == pytest.approx(measured.co2_kg * 1000, rel=1e-5)


@pytest.mark.parametrize("value", [1e-05, 3.19191e-05, 0.0, 79.4, 123456789.0, 2.5e12])
def test_yaml_numbers_read_back_as_numbers(value: float) -> None:
    parsed = yaml.safe_load(f"x: {yaml_number(value)}")["x"]
    assert isinstance(parsed, (int, float)) and not isinstance(parsed, bool)
    assert parsed == pytest.approx(value, rel=1e-5)


def test_latex_escapes_what_latex_would_misread() -> None:
    assert latex_escape('run "bert_base" at 100% & $5 {#1}') == ("run ``bert\\_base'' at 100\\% \\& \\$5 \\{\\#1\\}")
    assert latex_escape("41 g CO2e, 3 µg") == "41 g CO$_2$e, 3 $\\mu$g"


# --------------------------------------------------------------------------- command line
def test_cli_prints_every_format(measured: RecordedRun, estimated: RecordedRun) -> None:
    for fmt in FORMATS:
        done = subprocess.run(
            [*CLI, "statement", str(measured.path), str(estimated.path), "--format", fmt],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == render([measured, estimated], fmt)
    card = subprocess.run(
        [*CLI, "statement", str(estimated.path), "--format", "hf-model-card", "--training-type", "pre-training"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert yaml.safe_load(card)["co2_eq_emissions"]["training_type"] == "pre-training"


@pytest.mark.parametrize("make", ["missing", "empty-folder", "not-json", "no-header"])
def test_cli_refuses_a_bad_folder_without_a_traceback(tmp_path: Path, make: str) -> None:
    folder = tmp_path / "bad"
    if make != "missing":
        folder.mkdir()
    if make == "not-json":
        (folder / "run.jsonl").write_text("this is not json\n")
    if make == "no-header":
        (folder / "run.jsonl").write_text('{"type": "window"}\n')
    done = subprocess.run([*CLI, "statement", str(folder)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("co2cb statement: ") and "Traceback" not in done.stderr
    assert done.stdout == ""
