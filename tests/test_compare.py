"""`co2cb compare` and the run loader, on real runs of every kind (see tests/recorded_runs.py).

Every figure in the table is checked against the run records, read here without co2cb; the
Lightning runs are also checked against their known energy (34 J per epoch at 100 gCO2e/kWh).
"""

from __future__ import annotations

import csv
import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from statistics import mean
from typing import Any

import pytest

from co2cb.cli.main import main
from co2cb.planning.whatif import run_energy as whatif_run
from co2cb.records.reader import NO_SUMMARY, RunFolderError, find_runs, load_run
from co2cb.records.writer import RECORD_FILE, SCHEMA_VERSION
from co2cb.report.compare import FORMATS, PlotUnavailableError, comparison_rows, render, write_plot
from co2cb.report.compare.quality import choose_metric, lower_is_better, pareto_front, parse_metric
from co2cb.units import format_mass
from tests.recorded_runs import E_EPOCH_J, G_PER_KWH, KWH, ROOT, Runs, lines

CO2_EPOCH_KG = E_EPOCH_J / KWH * G_PER_KWH / 1000  # one Lightning epoch, PUE 1
EPOCHS = {"mlp-1-epoch": 1, "mlp-3-epochs": 3, "tiny-bert": 2, "cloud-epochs": 3}


# ---------------------------------------------------------------------------- the record, read without co2cb
def summary(folder: Path) -> dict[str, Any]:
    (found,) = [x for x in lines(folder) if x["type"] == "summary"]
    return found


def epoch_co2(folder: Path) -> list[float]:
    """CO2 of each epoch: train_epoch windows plus the validation they leave out, else epoch windows."""
    windows = [x for x in lines(folder) if x["type"] == "window"]
    epochs = [w for w in windows if w["name"] == "train_epoch"] or [w for w in windows if w["name"] == "epoch"]
    return [
        w["co2_kg"] + w["meta"].get("validation_excluded", {}).get("co2_kg", 0.0)
        for w in sorted(epochs, key=lambda w: w["end_unix_s"])
    ]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------- loading
def test_runs_of_every_kind_load_alike(recorded_runs: Runs) -> None:
    for folder in recorded_runs.all_in_parent:
        run = load_run(folder)
        header, end = lines(folder)[0], summary(folder)
        assert (run.run_id, run.name, run.path) == (header["run_id"], header["run_name"], folder)
        assert run.complete and run.status == end["status"] == "completed"
        assert run.co2_kg == end["co2_kg"] > 0
        assert run.energy_kwh == {k: v for k, v in end["energy_kwh"].items() if k != "total"}
        assert run.total_kwh == pytest.approx(end["energy_kwh"]["total"], rel=1e-12)
        assert run.duration_s == end["seconds"] > 0
        assert run.final_metrics == end.get("final_metrics", {})
        assert [e.co2_kg for e in run.epochs] == pytest.approx(epoch_co2(folder), rel=1e-12)
        assert len(run.epochs) == EPOCHS.get(run.name, 0)
    assert load_run(recorded_runs.cli / RECORD_FILE).run_id == load_run(recorded_runs.cli).run_id


def test_lightning_epochs_hold_their_known_energy(recorded_runs: Runs) -> None:
    run = load_run(recorded_runs.lightning_long)
    assert [e.index for e in run.epochs] == [0, 1, 2]
    for epoch in run.epochs:
        assert epoch.total_kwh * KWH == pytest.approx(E_EPOCH_J, rel=1e-9)
        assert epoch.validation_kwh * KWH == pytest.approx(2.0, rel=1e-9)  # 4 batches x 0.5 J
        assert epoch.co2_kg == pytest.approx(CO2_EPOCH_KG, rel=1e-9)
        assert epoch.seconds == pytest.approx(epoch.window["end_unix_s"] - epoch.window["start_unix_s"])
    assert run.co2_kg == pytest.approx(3 * CO2_EPOCH_KG, rel=1e-9)
    assert run.provenance.components == {"cpu": "measured-counter"}
    assert run.provenance.intensity_used_g_per_kwh == pytest.approx(G_PER_KWH)
    assert run.steps == 48 and run.tags == {"model": "mlp"} and run.monitored == ["val_acc"]


def test_provenance_names_the_cloud_region_and_its_pue(recorded_runs: Runs) -> None:
    p = load_run(recorded_runs.tracker).provenance
    header = lines(recorded_runs.tracker)[0]
    assert p.cloud_region == "aws:eu-west-3" and not p.region_guessed
    assert p.intensity == header["intensity"] and p.intensity["region"] == "FR"
    assert p.pue == header["pue"] > 1 and p.pue_info["source"] == header["pue_info"]["source"]
    cli = load_run(recorded_runs.cli).provenance
    assert cli.cloud_region is None and cli.intensity["region"] == "FR"
    assert set(cli.components.values()) <= {"estimate", "measured-counter", "sampled-power"}


def test_a_guessed_region_names_no_cloud_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guess's hint ("e.g. ... aws:eu-west-3") must not be read as the run's cloud region."""
    from co2cb import Tracker

    for name in ("CO2CB_REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "GOOGLE_CLOUD_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TZ", "Europe/Berlin")  # a guess whose hint names aws:eu-west-3
    monkeypatch.setenv("CO2CB_QUIET", "1")
    with Tracker(output_dir=tmp_path, cpu_tdp_w=10) as t:
        pass
    p = load_run(t.run_folder).provenance
    assert p.region_guessed and p.cloud_region is None


def test_find_runs_takes_run_folders_and_their_parents(recorded_runs: Runs) -> None:
    ids = [lines(f)[0]["run_id"] for f in recorded_runs.all_in_parent]
    assert [r.run_id for r in find_runs([recorded_runs.parent])] == ids  # oldest first
    assert [r.run_id for r in find_runs([recorded_runs.parent, recorded_runs.hf])] == ids  # no run twice
    given = [recorded_runs.cli, recorded_runs.lightning_short]
    assert [r.path for r in find_runs(given)] == given  # the order given


def test_a_killed_run_loads_from_its_windows(recorded_runs: Runs) -> None:
    run = load_run(recorded_runs.crashed)
    windows = [x for x in lines(recorded_runs.crashed) if x["type"] == "window"]
    assert not run.complete and run.summary is None and run.status == NO_SUMMARY
    # the outermost windows are the 3 train_epoch windows; their validation is added back
    assert run.total_kwh * KWH == pytest.approx(3 * E_EPOCH_J, rel=1e-9)
    assert run.co2_kg == pytest.approx(3 * CO2_EPOCH_KG, rel=1e-9)
    assert run.duration_s == pytest.approx(max(w["end_unix_s"] for w in windows) - run.header["start_unix_s"])
    assert "lower bound" in run.totals_from and len(run.epochs) == 3
    assert whatif_run(recorded_runs.crashed).energy_kwh * KWH == pytest.approx(3 * E_EPOCH_J, rel=1e-9)
    text = render(comparison_rows([run]), "table")
    assert "incomplete" in text and "(lower bound)" in text and "a lower bound" in text


# ---------------------------------------------------------------------------- the table
def test_table_rows_match_the_records(recorded_runs: Runs) -> None:
    folders = recorded_runs.all_in_parent
    rows = comparison_rows(find_runs([recorded_runs.parent]))
    first = summary(folders[0])
    for row, folder in zip(rows, folders):
        header, end = lines(folder)[0], summary(folder)
        epochs = epoch_co2(folder)
        steps = end["steps"].get("step", {}).get("count")
        name = header["run_name"]  # the `co2cb run` one is its command line: long, so cut in the label
        assert row.name == name and row.run_id == header["run_id"]
        assert row.label == (name if len(name) <= 40 else name[:39] + "…")
        assert row.status == "completed" and row.complete
        assert row.duration_s == end["seconds"]
        assert row.co2_kg == end["co2_kg"]
        assert row.energy_kwh == {k: v for k, v in end["energy_kwh"].items() if k != "total"}
        assert row.total_kwh == pytest.approx(end["energy_kwh"]["total"], rel=1e-12)
        assert row.epochs == len(epochs)
        assert row.co2_per_epoch_kg == (pytest.approx(mean(epochs), rel=1e-12) if epochs else None)
        assert row.steps == steps
        assert row.co2_per_step_kg == (pytest.approx(end["co2_kg"] / steps, rel=1e-12) if steps else None)
        assert row.final_metrics == end.get("final_metrics", {})
        assert row.region == header["intensity"]["region"] and row.pue == end["pue"]
        assert row.intensity_g_per_kwh == end["intensity_g_per_kwh"]
        assert row.co2_ratio == pytest.approx(end["co2_kg"] / first["co2_kg"], rel=1e-12)
        assert row.energy_ratio == pytest.approx(end["energy_kwh"]["total"] / first["energy_kwh"]["total"], rel=1e-12)
    short, long, hf, _, tracker = rows
    assert short.co2_kg == pytest.approx(CO2_EPOCH_KG, rel=1e-9) and long.co2_ratio == pytest.approx(3, rel=1e-9)
    assert short.co2_per_epoch_kg == pytest.approx(long.co2_per_epoch_kg, rel=1e-9)
    assert tracker.samples == 600 and tracker.co2_per_sample_kg == pytest.approx(tracker.co2_kg / 600)
    assert tracker.steps == 30 and all(r.samples is None for r in rows[:4])
    assert hf.final_metrics.keys() == {"eval_loss"} and long.final_metrics.keys() == {"val_acc"}


def test_every_format_carries_the_same_figures(recorded_runs: Runs) -> None:
    rows = comparison_rows(find_runs([recorded_runs.parent]))
    assert FORMATS == ("table", "csv", "json", "markdown")
    parsed = list(csv.DictReader(io.StringIO(render(rows, "csv"))))
    assert [p["run_id"] for p in parsed] == [r.run_id for r in rows]
    for p, row in zip(parsed, rows):
        assert float(p["co2_kg"]) == row.co2_kg and float(p["duration_s"]) == row.duration_s
        assert float(p["energy_cpu_kwh"]) == row.energy_kwh["cpu"]
        assert (p["metric:val_acc"] and float(p["metric:val_acc"])) == row.final_metrics.get("val_acc", "")
    as_json = json.loads(render(rows, "json"))["runs"]
    assert [(j["co2_kg"], j["energy_kwh"], j["co2_ratio"]) for j in as_json] == [
        (r.co2_kg, r.energy_kwh, r.co2_ratio) for r in rows
    ]
    markdown = render(rows, "markdown").splitlines()
    assert len(markdown) == 2 + len(rows) and markdown[1].startswith("|---")
    table = render(rows, "table").splitlines()
    header = table[0].split()
    assert "gpu" not in header and "CO2e/sample" in header  # no run measured a GPU; one counted samples
    for row, line in zip(rows, table[2:]):
        assert line.startswith(row.label) and format_mass(row.co2_kg) in line
    with pytest.raises(ValueError, match="unknown format"):
        render(rows, "xml")


def test_compare_cli_prints_the_table_and_writes_the_plot(
    recorded_runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "compare.png"
    code = main(
        [
            "compare",
            str(recorded_runs.parent),
            str(recorded_runs.crashed.parent),
            "--format",
            "json",
            "--plot",
            str(png),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and f"figure written to {png}" in err
    shown = json.loads(out)["runs"]
    assert [r["complete"] for r in shown] == [True] * 5 + [False]
    width, height = png_size(png)
    assert width > 1000 and height > 800
    from matplotlib.image import imread

    assert imread(png).shape[:2] == (height, width)


def test_plot_needs_matplotlib(
    recorded_runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(PlotUnavailableError, match=r'pip install "co2cb\[plot\]"'):
        write_plot(find_runs([recorded_runs.hf]), tmp_path / "x.png")
    assert main(["compare", str(recorded_runs.hf), "--plot", str(tmp_path / "x.png")]) == 2
    assert 'pip install "co2cb[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_the_core_does_not_import_matplotlib() -> None:
    code = "import sys, co2cb.report.compare, co2cb.cli.main; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------------------- quality metric and Pareto front
def test_quality_metric_choice_and_pareto_front(recorded_runs: Runs) -> None:
    assert lower_is_better("eval_loss") and lower_is_better("val/wer") and lower_is_better("valloss")
    assert not lower_is_better("val_acc") and not lower_is_better("bleu")
    assert parse_metric("bleu:min").lower_is_better and not parse_metric("eval_loss:max").lower_is_better
    runs = find_runs([recorded_runs.parent])
    metric = choose_metric(runs)
    assert metric is not None and (metric.name, metric.lower_is_better) == ("val_acc", False)  # recorded twice
    assert choose_metric(runs, "eval_loss").lower_is_better
    with pytest.raises(ValueError, match="recorded: eval_loss, val_acc"):
        choose_metric(runs, "f1")
    assert choose_metric(find_runs([recorded_runs.cli])) is None
    points = [(0.9, 1.0), (0.95, 2.0), (0.9, 3.0), (0.8, 0.5), (0.95, 2.0)]
    assert pareto_front(points, lower_is_better=False) == [True, True, False, True, True]
    assert pareto_front(points, lower_is_better=True) == [False, False, False, True, False]


# ---------------------------------------------------------------------------- bad folders
def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True)
    (folder / RECORD_FILE).write_text(text)
    return folder


def test_bad_folders_get_clear_errors(recorded_runs: Runs, tmp_path: Path) -> None:
    header = lines(recorded_runs.hf)[0]
    newer = _write(tmp_path / "newer" / "run", json.dumps({**header, "schema": SCHEMA_VERSION + 1}) + "\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello")
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path / "empty": "is not a co2cb run folder and holds none",
        tmp_path / "notes.txt": "is not a co2cb run folder",
        newer: f"schema {SCHEMA_VERSION + 1}, newer than this co2cb reads.*upgrade co2cb",
        newer.parent: "newer than this co2cb reads",  # a parent holding such a run
        _write(tmp_path / "no-header", '{"type": "window"}\n'): "first line is not a header",
        _write(tmp_path / "not-json", "{oops\n{}\n"): "not valid JSON",
        _write(tmp_path / "blank", ""): "is empty",
        _write(tmp_path / "no-schema", json.dumps({"type": "header"}) + "\n"): "no valid record schema",
    }
    for path, message in cases.items():
        with pytest.raises(RunFolderError, match=message):
            find_runs([path])
    with pytest.raises(RunFolderError, match="at least one"):
        find_runs([])
    for command in ("compare", "report"):
        done = subprocess.run(
            [sys.executable, "-m", "co2cb", command, str(newer)], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"co2cb {command}: ") and "upgrade co2cb" in done.stderr
