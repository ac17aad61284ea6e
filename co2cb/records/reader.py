"""Loading recorded runs: one :class:`RecordedRun` per run folder, for compare, report, statement and whatif.

A run folder is what a :class:`co2cb.Tracker` writes (``<output_dir>/<run-id>/run.jsonl``, see
:mod:`co2cb.records.writer`): a ``header`` line, ``window`` lines, ``event`` lines and, when the run
ended normally, a ``summary`` line. The three adapters and ``co2cb run`` all write this schema,
so their runs load and compare alike::

    from co2cb.records.reader import find_runs, load_run

    run = load_run("co2cb-runs/20261127-021939-3fa2c1")
    run.co2_kg, run.energy_kwh["gpu"], [e.co2_kg for e in run.epochs]
    for run in find_runs(["co2cb-runs"]):  # every run under a parent folder, oldest first
        ...

Units: energy in kWh (before PUE), CO2 in kg CO2e (PUE included), times in seconds.

A run that never wrote its summary (killed, crashed) still loads: its totals are then the sum of
its outermost closed windows, a lower bound, and :attr:`RecordedRun.complete` is False. Folders
that are not runs, unreadable records and records of a newer schema raise :class:`RunFolderError`,
whose message says what is wrong and what to do; a damaged line inside a record (half written, not
JSON, figures that are not numbers) is skipped with a warning that names the file and the line.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from co2cb.records.lines import (
    COMPONENT_ORDER,
    EpochRecord,
    energy_by_component,
    mapping,
    number,
    ordered_components,
    outermost_windows,
    read_records,
    validation_excluded,
    window_totals,
)
from co2cb.records.provenance import Provenance, read_provenance
from co2cb.records.writer import RECORD_FILE

log = logging.getLogger(__name__)

__all__ = [
    "COMPONENT_ORDER",
    "EPOCH_WINDOWS",
    "NO_SUMMARY",
    "EpochRecord",
    "Provenance",
    "RecordedRun",
    "RunFolderError",
    "energy_by_component",
    "find_runs",
    "load_run",
    "mapping",
    "number",
    "ordered_components",
    "outermost_windows",
    "read_records",
    "validation_excluded",
    "window_totals",
]

#: Names of the windows counted as epochs, in order of preference: the adapters write
#: ``train_epoch`` (validation reported apart, in ``meta.validation_excluded``); a
#: :class:`co2cb.Tracker` user's ``tracker.window("epoch")`` is the other common name.
EPOCH_WINDOWS: tuple[str, ...] = ("train_epoch", "epoch")
#: Status of a run without a summary line.
NO_SUMMARY = "incomplete (no summary: the run did not end normally)"


class RunFolderError(ValueError):
    """A path that is not a readable co2cb run folder; the message says what is wrong and how to fix it."""


class _Totals(NamedTuple):
    energy: dict[str, float]
    co2_kg: float
    source: str
    windows: tuple[str, ...]


@dataclass(frozen=True)
class RecordedRun:
    """A run folder, read and checked. Build it with :func:`load_run` or :func:`find_runs`.

    Attributes:
        path: The run folder.
        run_id: Run id (``20261127-021939-3fa2c1``).
        name: Run name (the run id when none was given).
        header: The header line.
        windows: The window lines, in file order.
        events: Lines that are neither header, window nor summary (resumes, ...), in file order.
        summary: The summary line, or None when the run did not end normally.
    """

    path: Path
    run_id: str
    name: str
    header: dict[str, Any] = field(repr=False)
    windows: list[dict[str, Any]] = field(repr=False)
    events: list[dict[str, Any]] = field(repr=False)
    summary: dict[str, Any] | None = field(repr=False)

    # ------------------------------------------------------------------ status and time
    @property
    def complete(self) -> bool:
        """True when the run wrote its summary (it ended, normally or with a recorded failure)."""
        return self.summary is not None

    @property
    def status(self) -> str:
        """The summary's status (``"completed"``, ``"failed: ..."``, ...), or :data:`NO_SUMMARY`."""
        if self.summary is None:
            return NO_SUMMARY
        return str(self.summary.get("status") or "completed")

    @property
    def resumed_from(self) -> dict[str, Any] | None:
        """The run this one resumed from a checkpoint (``run_id``, ``run_folder``, ``epochs_done``), or None."""
        link = self.header.get("resumed_from")
        return dict(link) if isinstance(link, dict) else None

    @property
    def epochs_before(self) -> int:
        """Training epochs done in the segments before this one (a run resumed from a checkpoint), else 0."""
        return int(number((self.resumed_from or {}).get("epochs_done")))

    @property
    def resumed_total(self) -> dict[str, Any] | None:
        """A resumed run's checkpointed path, this segment included (``energy_kwh``, ``co2_kg``...), or None."""
        total = (self.summary or {}).get("resumed_total")
        return dict(total) if isinstance(total, dict) else None

    @property
    def start_unix_s(self) -> float:
        """Start, seconds since the Unix epoch (the header's, else the earliest window's)."""
        start = number(self.header.get("start_unix_s"), math.nan)
        if math.isfinite(start):
            return start
        starts = [number(w.get("start_unix_s"), math.nan) for w in self.windows]
        return min((s for s in starts if math.isfinite(s)), default=0.0)

    @property
    def end_unix_s(self) -> float:
        """End, seconds since the Unix epoch: the summary's, else the latest window end (a lower bound)."""
        if self.summary is not None and math.isfinite(number(self.summary.get("end_unix_s"), math.nan)):
            return number(self.summary.get("end_unix_s"))
        ends = [number(w.get("end_unix_s"), math.nan) for w in self.windows]
        return max((e for e in ends if math.isfinite(e)), default=self.start_unix_s)

    @property
    def duration_s(self) -> float:
        """Wall-clock duration, seconds: the summary's, else start to the latest window end (a lower bound)."""
        if self.summary is not None and math.isfinite(number(self.summary.get("seconds"), math.nan)):
            return number(self.summary.get("seconds"))
        return max(0.0, self.end_unix_s - self.start_unix_s)

    # ------------------------------------------------------------------ totals
    @cached_property
    def _totals(self) -> _Totals:
        if self.summary is not None:
            return _Totals(
                energy_by_component(self.summary), number(self.summary.get("co2_kg")), "the run's summary line", ()
            )
        chosen, skipped = outermost_windows(self.windows)
        energy: dict[str, float] = {}
        co2 = 0.0
        for window in chosen:
            window_energy, window_co2 = window_totals(window)
            for component, kwh in window_energy.items():
                energy[component] = energy.get(component, 0.0) + kwh
            co2 += window_co2
        source = (
            f"no summary (the run did not end normally): the sum of its {len(chosen)} outermost closed "
            "windows, a lower bound (energy outside those windows is not in the record)"
        )
        if skipped:
            source += f"; {skipped} window(s) overlapping those were left out"
        return _Totals(energy, co2, source, tuple(str(w.get("name", "?")) for w in chosen))

    @property
    def energy_kwh(self) -> dict[str, float]:
        """Energy per component (``"gpu"``, ``"cpu"``, ``"ram"``...), kWh before PUE."""
        return dict(self._totals.energy)

    @property
    def total_kwh(self) -> float:
        """Energy of all components, kWh before PUE: the summary's recorded total, else the components added."""
        energy = self.summary.get("energy_kwh") if self.summary is not None else None
        recorded = number(energy.get("total"), math.nan) if isinstance(energy, dict) else math.nan
        return recorded if math.isfinite(recorded) else sum(self._totals.energy.values())

    @property
    def co2_kg(self) -> float:
        """Emissions, kg CO2e, PUE included."""
        return self._totals.co2_kg

    @property
    def totals_from(self) -> str:
        """Where :attr:`energy_kwh` and :attr:`co2_kg` come from, in words (says when they are a lower bound)."""
        return self._totals.source

    @property
    def totals_windows(self) -> list[str]:
        """Names of the windows added up for the totals, earliest first; empty when the summary gives them."""
        return list(self._totals.windows)

    @property
    def components(self) -> list[str]:
        """Components with a figure, in display order."""
        return ordered_components(self._totals.energy)

    def co2_by_component(self) -> dict[str, float]:
        """CO2 per component, kg CO2e: the run's CO2 split in proportion to each component's energy."""
        total = self.total_kwh
        energy = self._totals.energy
        return {c: self.co2_kg * energy[c] / total if total > 0 else 0.0 for c in self.components}

    # ------------------------------------------------------------------ epochs, steps, samples, metrics
    @cached_property
    def epochs(self) -> list[EpochRecord]:
        """The run's epochs in time order.

        Its ``train_epoch`` windows, else its ``epoch`` windows (see :data:`EPOCH_WINDOWS`); validation
        inside an adapter's epoch is added back in. An epoch the run's stop closed (a failure cut it short,
        ``meta.closed_by == "stop"``) is not one: its energy is in the totals only.
        """
        for name in EPOCH_WINDOWS:
            found = [
                w for w in self.windows if w.get("name") == name and mapping(w.get("meta")).get("closed_by") != "stop"
            ]
            if found:
                break
        found.sort(key=lambda w: number(w.get("end_unix_s")))
        epochs = []
        for position, window in enumerate(found):
            energy, co2 = window_totals(window)
            val_energy, val_co2 = validation_excluded(window)
            meta = mapping(window.get("meta"))
            index = meta.get("epoch")
            epochs.append(
                EpochRecord(
                    index=index if isinstance(index, int) and not isinstance(index, bool) else position,
                    start_unix_s=number(window.get("start_unix_s")),
                    end_unix_s=number(window.get("end_unix_s")),
                    energy_kwh=energy,
                    co2_kg=co2,
                    validation_kwh=sum(val_energy.values()),
                    validation_co2_kg=val_co2,
                    window=window,
                )
            )
        return epochs

    @property
    def epochs_co2_kg(self) -> float:
        """CO2 of all epochs, kg CO2e (less than :attr:`co2_kg` by the time outside epochs: setup, teardown)."""
        return sum(e.co2_kg for e in self.epochs)

    @property
    def steps(self) -> int | None:
        """Training steps counted by the step windows (the ``step`` series, or the only one), or None."""
        series = self.summary.get("steps") if self.summary is not None else None
        if not isinstance(series, dict) or not series:
            return None
        chosen = series.get("step") if "step" in series else next(iter(series.values())) if len(series) == 1 else None
        count = chosen.get("count") if isinstance(chosen, dict) else None
        return int(count) if isinstance(count, int) and not isinstance(count, bool) and count > 0 else None

    @property
    def samples(self) -> int | None:
        """Training samples processed, when the record says: the summary's ``samples``, else a ``samples`` tag."""
        for value in ((self.summary or {}).get("samples"), self.tags.get("samples")):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return int(value)
        return None

    @property
    def final_metrics(self) -> dict[str, float]:
        """Final value of the metrics the run monitored (``monitor=[...]`` of the adapters), by name."""
        found = (self.summary or {}).get("final_metrics")
        if not isinstance(found, dict):
            return {}
        return {str(k): float(v) for k, v in found.items() if math.isfinite(number(v, math.nan))}

    @property
    def monitored(self) -> list[str]:
        """Names of the metrics the run was asked to monitor (header ``monitor``), in the order given."""
        names = self.header.get("monitor")
        return [str(n) for n in names] if isinstance(names, list) else []

    @property
    def tags(self) -> dict[str, Any]:
        """The run's free-form labels (header ``tags``)."""
        tags = self.header.get("tags")
        return dict(tags) if isinstance(tags, dict) else {}

    # ------------------------------------------------------------------ provenance
    @cached_property
    def provenance(self) -> Provenance:
        """Where the figures come from: meters, intensity (source, year, region and why), PUE."""
        summary = self.summary
        last = summary if summary is not None else (self.windows[-1] if self.windows else {})
        return read_provenance(self.header, last, self.meters, summary is not None, self.total_kwh, self.co2_kg)

    @property
    def meters(self) -> list[dict[str, Any]]:
        """The header's meter descriptions."""
        meters = self.header.get("meters")
        return [m for m in meters if isinstance(m, dict)] if isinstance(meters, list) else []


def _record_folder(path: Path) -> Path:
    return path.parent if path.is_file() and path.name == RECORD_FILE else path


def load_run(path: str | Path) -> RecordedRun:
    """Read one run folder (or its ``run.jsonl``).

    Raises:
        RunFolderError: Not a run folder, an unreadable or empty record, a record whose first line is
            not a header, or a schema newer than this co2cb reads.
    """
    folder = _record_folder(Path(path))
    if not folder.exists():
        raise RunFolderError(
            f"{path} does not exist; give a run folder such as co2cb-runs/20261127-021939-3fa2c1 "
            "or the folder holding run folders"
        )
    runs = sorted(p.name for p in folder.iterdir() if (p / RECORD_FILE).is_file()) if folder.is_dir() else []
    if runs and not (folder / RECORD_FILE).is_file():
        raise RunFolderError(
            f"{path} holds {len(runs)} run folder{'s' if len(runs) > 1 else ''} but is not one; name one, e.g. "
            f"{folder / runs[-1]} (latest: {', '.join(runs[-5:])})"
        )
    if not (folder / RECORD_FILE).is_file():
        raise RunFolderError(
            f"{path} is not a co2cb run folder (no {RECORD_FILE} in it); give a folder made by "
            "co2cb.Tracker, an adapter's CO2Callback or `co2cb run`, or the folder holding them"
        )
    try:
        lines = read_records(folder)
    except ValueError as exc:  # a first line that is not a header, or a schema that is not valid or newer
        message = str(exc)
        if "newer than this co2cb" in message:
            message += " (pip install -U co2cb)"
        raise RunFolderError(message) from None
    except OSError as exc:
        raise RunFolderError(f"cannot read {folder / RECORD_FILE}: {exc.strerror or exc}") from None
    record = folder / RECORD_FILE
    if not lines:
        raise RunFolderError(f"{record} is empty: the run has not written its header yet (or was killed at once)")
    header = lines[0]  # read_records checked it: a header of a schema this co2cb reads
    body = lines[1:]
    summaries = [x for x in body if x.get("type") == "summary"]
    return RecordedRun(
        path=folder,
        run_id=str(header.get("run_id") or folder.name),
        name=str(header.get("run_name") or header.get("run_id") or folder.name),
        header=header,
        windows=[x for x in body if x.get("type") == "window"],
        events=[x for x in body if x.get("type") not in ("window", "summary", "header")],
        summary=summaries[-1] if summaries else None,
    )


def _readable(parent: str | Path, folders: Iterable[Path]) -> list[RecordedRun]:
    """The runs of ``folders`` that can be read; each other one is named in a warning, with why.

    Raises:
        RunFolderError: None can be read (every reason is in the message).
    """
    runs, problems = [], []
    for folder in folders:
        try:
            runs.append(load_run(folder))
        except RunFolderError as e:
            problems.append(str(e))
    if not runs:
        raise RunFolderError(f"{parent} holds no run folder that can be read: " + "; ".join(problems))
    for problem in problems:
        log.warning("co2cb: a run left out: %s", problem)
    return runs


def find_runs(paths: Iterable[str | Path]) -> list[RecordedRun]:
    """Every run named by ``paths``, in the order given; runs under a parent folder oldest first.

    Args:
        paths: Run folders, or folders holding run folders (one level down, e.g. ``co2cb-runs``).
            A run named twice is loaded once. Under a parent folder, a run that cannot be read (an
            empty record, a damaged header) is left out with a warning that names it and why.

    Raises:
        RunFolderError: No path given, a path that is neither a run folder nor holds any readable one,
            or a run folder given by name that cannot be read (see :func:`load_run`).
    """
    runs: list[RecordedRun] = []
    seen: set[Path] = set()
    given = list(paths)
    if not given:
        raise RunFolderError("give at least one run folder, or a folder holding run folders (e.g. co2cb-runs)")
    for path in given:
        folder = _record_folder(Path(path))
        if folder.is_dir() and not (folder / RECORD_FILE).is_file():
            children = sorted(p for p in folder.iterdir() if (p / RECORD_FILE).is_file())
            if not children:
                raise RunFolderError(
                    f"{path} is not a co2cb run folder and holds none (no {RECORD_FILE} in it or in "
                    "its subfolders); give a run folder or the output_dir runs were written to"
                )
            found = sorted(_readable(path, children), key=lambda r: (r.start_unix_s, r.run_id))
        else:
            found = [load_run(folder)]
        for run in found:
            key = run.path.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs
