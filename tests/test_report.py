"""`co2cb report`: one self-contained HTML file, parsed back and checked against the run records."""

from __future__ import annotations

import base64
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from co2cb.cli.main import main
from co2cb.intensity.database import lookup
from co2cb.records.reader import find_runs
from co2cb.report.compare.cleanest import cleanest_codes
from co2cb.report.compare.equivalents import EPA_URL, EQUIVALENTS
from co2cb.report.compare.report import write_report
from co2cb.units import format_mass
from tests.recorded_runs import Runs, lines


class Page(HTMLParser):
    """The report as sections (one per ``<h2>``): their text and tables; plus images and outside references."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.sections: dict[str, dict] = {}
        self.images: list[str] = []
        self.outside: list[str] = []  # scripts, stylesheets, non-data sources
        self._section = self._new("")
        self._in: list[str] = []
        self._cell: list[str] | None = None

    def _new(self, name: str) -> dict:
        self.sections[name] = {"text": [], "tables": []}
        return self.sections[name]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in.append(tag)
        if tag in ("script", "link", "iframe", "object"):
            self.outside.append(tag)
        if tag == "img":
            src = a.get("src") or ""
            (self.images if src.startswith("data:image/png;base64,") else self.outside).append(src)
        if tag == "h2":
            self._heading: list[str] = []
        elif tag == "table":
            self._section["tables"].append([])
        elif tag == "tr":
            self._section["tables"][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()
        if tag == "h2":
            self._section = self._new("".join(self._heading).strip())
        elif tag in ("td", "th") and self._cell is not None:
            self._section["tables"][-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in.pop()

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.title += data
        if "h2" in self._in:
            self._heading.append(data)
        if self._cell is not None:
            self._cell.append(data)
        self._section["text"].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]["text"]).split())


def read_page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(recorded_runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("report") / "report.html"
    code = main(["report", str(recorded_runs.parent), str(recorded_runs.crashed.parent), "-o", str(out)])
    assert code == 0 and out.is_file()
    return out


def test_the_report_is_self_contained_with_its_figure(report: Path) -> None:
    page = read_page(report)
    assert page.title == "Energy and CO2e of 6 runs"
    assert page.outside == []  # no script, stylesheet or image fetched from anywhere
    (image,) = page.images
    width, height = png_size(base64.b64decode(image.split(",", 1)[1]))
    assert width > 1000 and height > 800
    runs = [h for h in page.sections if h.startswith("Run ")]
    assert len(runs) == 6 and {"Totals", "Figures", "Sources of the equivalents"} <= page.sections.keys()


def test_the_totals_and_epochs_match_the_records(recorded_runs: Runs, report: Path) -> None:
    page = read_page(report)
    (totals,) = page.sections["Totals"]["tables"]
    header, *rows = totals
    co2 = header.index("CO2e")
    folders = [*recorded_runs.all_in_parent, recorded_runs.crashed]
    for row, folder in zip(rows, folders):
        summary = [x for x in lines(folder) if x["type"] == "summary"]
        if summary:
            assert row[co2] == format_mass(summary[0]["co2_kg"])
        else:
            assert row[co2].endswith("(lower bound)") and row[1] == "incomplete"
    for i, run in enumerate(find_runs(folders)):
        name = next(h for h in page.sections if h.startswith(f"Run {i + 1}: "))
        section = page.sections[name]
        totals_table, *others = section["tables"]
        assert totals_table[-1][1:] == [totals_table[-1][1], "", format_mass(run.co2_kg)]
        if run.epochs:
            epoch_table = others[0]
            assert len(epoch_table) == 1 + len(run.epochs)
            assert [r[0] for r in epoch_table[1:]] == [str(e.index) for e in run.epochs]
            assert [r[-2] for r in epoch_table[1:]] == [format_mass(e.co2_kg) for e in run.epochs]
            assert epoch_table[-1][-1] == format_mass(run.epochs_co2_kg)
        else:
            assert "No epochs recorded" in page.text(name)
        if not run.complete:
            assert "lower bound" in page.text(name)


def test_every_figure_says_where_it_comes_from(recorded_runs: Runs, report: Path) -> None:
    page = read_page(report)
    for i, folder in enumerate([*recorded_runs.all_in_parent, recorded_runs.crashed]):
        header = lines(folder)[0]
        text = page.text(next(h for h in page.sections if h.startswith(f"Run {i + 1}: ")))
        intensity = header["intensity"]
        assert f"source: {intensity['source']}" in text and intensity["region"] in text
        assert " ".join(intensity["reason"].split()) in text  # how the region was chosen
        if intensity["year"]:
            assert f"{intensity['source']}, {intensity['year']}" in text
        assert f"source: {header['pue_info']['source']}" in text
        assert "measured" in text or "estimated" in text
        for equivalent in EQUIVALENTS:
            assert equivalent.published in text
            assert equivalent.describe(find_runs([folder])[0].co2_kg) in text
    sources = page.text("Sources of the equivalents")
    assert "U.S. EPA" in sources and str(EQUIVALENTS[0].year) in sources
    assert EPA_URL in report.read_text()


def test_cleanest_regions_of_the_cloud_provider_and_of_every_provider(recorded_runs: Runs, report: Path) -> None:
    page = read_page(report)
    summary = next(x for x in lines(recorded_runs.tracker) if x["type"] == "summary")
    name = next(h for h in page.sections if h.startswith("Run 5: "))
    assert name == "Run 5: cloud-epochs"
    cleanest = page.sections[name]["tables"][-1]
    codes = cleanest_codes("aws", basis="lifecycle")
    assert [r[0] for r in cleanest[1:]] == codes and all(c.startswith("aws:") for c in codes)
    for row, code in zip(cleanest[1:], codes):
        expected = summary["energy_kwh"]["total"] * summary["pue"] * lookup(code).row.g_per_kwh / 1000
        assert (row[4], row[5]) == ("lifecycle", format_mass(expected))
    assert "AWS regions" in page.text(name)
    cli = page.sections[next(h for h in page.sections if h.startswith("Run 4: "))]
    anywhere = cleanest_codes(None, basis="lifecycle")  # Google's operational figures are not compared
    assert [r[0] for r in cli["tables"][-1][1:]] == anywhere
    assert {r[4] for r in cli["tables"][-1][1:]} == {"lifecycle"} and "only lifecycle figures" in " ".join(cli["text"])
    assert {c.split(":")[0] for c in anywhere} <= {"aws", "gcp", "azure"}
    assert cleanest_codes(None)[0] == "gcp:europe-north2"  # 2.7 gCO2e/kWh operational: would read as 0.06x
    assert max(lookup(c).row.g_per_kwh for c in anywhere) <= min(lookup(c).row.g_per_kwh for c in codes[-1:])
    assert "regions where the same compute could be rented are searched" in " ".join(cli["text"])


def test_without_matplotlib_the_report_has_no_figure_but_says_why(
    recorded_runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = write_report(find_runs([recorded_runs.cli]), tmp_path / "r.html")
    page = read_page(out)
    assert page.images == [] and 'pip install "co2cb[plot]"' in page.text("Figures")


def test_report_on_a_folder_without_runs_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 1
    assert "is not a co2cb run folder and holds none" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
