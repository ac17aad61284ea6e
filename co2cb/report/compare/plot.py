"""The comparison figure: cumulative CO2e by epoch and over time, totals by component, CO2e against quality.

matplotlib is imported only here, and only when a figure is drawn (``pip install "co2cb[plot]"``).
No pyplot: the figure is drawn on its own canvas, so nothing global (backend, open figures)
changes in the caller's process.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from co2cb.records.reader import RecordedRun, ordered_components
from co2cb.report.compare.quality import Metric, choose_metric, pareto_front
from co2cb.report.compare.table import run_labels
from co2cb.units import format_mass, mass_unit

PLOT_LABEL_CHARS = 28
LEGEND_COLUMNS = 3
PLOT_HINT = 'plots need matplotlib: pip install "co2cb[plot]"'
COMPONENT_COLOURS = {"gpu": "#2ca02c", "cpu": "#1f77b4", "ram": "#ff7f0e"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
MARKERS = ("o", "^", "D", "v", "P", "X", "<", ">", "h", "*")
RUN_COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
FOOTNOTE = (
    "CO2e = energy x carbon intensity x PUE, as each run recorded it. An epoch's figures include its "
    "validation;\ntime outside epochs (start-up, teardown) counts in a run's total only. "
    "Hatched bars: runs that did not end normally (totals are a lower bound)."
)


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed."""


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailableError(PLOT_HINT) from None
    return Figure


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds < 120:
        return 1.0, "s"
    if seconds < 7200:
        return 1 / 60, "min"
    return 1 / 3600, "h"


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10, color="#555555", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _not_shown(ax: Any, labels: list[str], why: str) -> None:
    """A line under the axes naming the runs left out of a panel, and why."""
    if labels:
        names = ", ".join(labels)
        names = names if len(names) <= 70 else f"{len(labels)} runs"
        ax.annotate(
            f"not shown ({why}): {names}",
            (0, 0),
            xycoords="axes fraction",
            xytext=(0, -30),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="#555555",
        )


def _by_epoch(
    ax: Any, runs: Sequence[RecordedRun], labels: list[str], colours: list[str], scale: float, unit: str
) -> None:
    ax.set_title("Cumulative CO2e by epoch")
    drawn = [i for i, r in enumerate(runs) if r.epochs]
    if not drawn:
        _note(ax, "No run recorded epochs\n(runs measured with `co2cb run` have none;\nthe adapters record them)")
        return
    longest = max(len(runs[i].epochs) for i in drawn)
    for i in drawn:
        cumulative = list(itertools.accumulate((e.co2_kg * scale for e in runs[i].epochs), initial=0.0))
        first = runs[i].epochs_before  # a resumed segment: from its first epoch
        ax.plot(
            range(first, first + len(cumulative)),
            cumulative,
            marker=MARKERS[i % len(MARKERS)],
            color=colours[i],
            label=labels[i],
            zorder=2 + longest - len(runs[i].epochs),
        )  # shorter runs drawn on top
    ax.set_xlabel("epochs completed")
    ax.set_ylabel(f"CO2e ({unit})")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _not_shown(ax, [labels[i] for i, r in enumerate(runs) if not r.epochs], "no epochs recorded")


def _over_time(
    ax: Any, runs: Sequence[RecordedRun], labels: list[str], colours: list[str], scale: float, unit: str
) -> None:
    ax.set_title("Cumulative CO2e over wall-clock time")
    t_scale, t_unit = _time_unit(max(r.duration_s for r in runs))
    for i, run in enumerate(runs):
        times = [0.0] + [(e.end_unix_s - run.start_unix_s) * t_scale for e in run.epochs]
        co2 = list(itertools.accumulate((e.co2_kg * scale for e in run.epochs), initial=0.0))
        ax.plot(times, co2, marker=MARKERS[i % len(MARKERS)], color=colours[i], label=labels[i])
        ax.plot([times[-1], run.duration_s * t_scale], [co2[-1], run.co2_kg * scale], linestyle=":", color=colours[i])
        ax.plot([run.duration_s * t_scale], [run.co2_kg * scale], marker="s", color=colours[i])
    ax.set_xlabel(f"time since the run started ({t_unit})")
    ax.set_ylabel(f"CO2e ({unit})")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.text(
        0.01,
        0.99,
        "markers: end of an epoch   \u25a0 end of the run (its total)\ndotted: time outside epochs",
        transform=ax.transAxes,
        va="top",
        fontsize=8,
        color="#555555",
    )


def _by_component(ax: Any, runs: Sequence[RecordedRun], labels: list[str], scale: float, unit: str) -> None:
    ax.set_title("Total CO2e by component (split by share of energy)")
    components = ordered_components(c for r in runs for c in r.components)
    extra = iter(OTHER_COLOURS * 4)
    colours = {c: COMPONENT_COLOURS.get(c) or next(extra) for c in components}
    positions = range(len(runs))
    bottoms = [0.0] * len(runs)
    for component in components:
        heights = [r.co2_by_component().get(component, 0.0) * scale for r in runs]
        bars = ax.bar(positions, heights, width=0.6, bottom=bottoms, color=colours[component], label=component.upper())
        for bar, run in zip(bars, runs):
            if not run.complete:
                bar.set_hatch("//")
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    for x, run in zip(positions, runs):
        ax.annotate(
            format_mass(run.co2_kg),
            (x, run.co2_kg * scale),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(list(positions))
    ax.set_xticklabels(
        labels, rotation=20 if len(runs) > 2 else 0, ha="right" if len(runs) > 2 else "center", fontsize=8
    )
    ax.set_ylabel(f"CO2e ({unit})")
    ax.set_xlim(-0.6, len(runs) - 0.4)
    ax.set_ylim(0, max(bottoms) * 1.15 or 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, title="component", title_fontsize=8)


def _against_quality(
    ax: Any,
    runs: Sequence[RecordedRun],
    labels: list[str],
    colours: list[str],
    scale: float,
    unit: str,
    metric: Metric | None,
) -> None:
    if metric is None:
        ax.set_title("CO2e against a quality metric")
        _note(
            ax,
            'No run recorded a quality metric.\nPass monitor=["val_acc"] (or another metric)\n'
            "to the adapter's CO2Callback to see CO2e against quality here.",
        )
        return
    ax.set_title(f"CO2e against {metric.name} ({metric.direction})")
    shown = [i for i, r in enumerate(runs) if metric.name in r.final_metrics]
    points = [(runs[i].final_metrics[metric.name], runs[i].co2_kg * scale) for i in shown]
    front = pareto_front(points, metric.lower_is_better)
    for (x, y), i, on_front in zip(points, shown, front):
        ax.scatter(
            [x], [y], s=70, color=colours[i], edgecolors="black" if on_front else "none", linewidths=1.5, zorder=3
        )
        ax.annotate(labels[i], (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    best = sorted((p for p, f in zip(points, front) if f), key=lambda p: p[1])
    if best:
        ax.plot(
            [p[0] for p in best],
            [p[1] for p in best],
            color="black",
            linewidth=1,
            linestyle="--",
            zorder=2,
            label="Pareto front (outlined runs):\nno other run has both less CO2e\nand a better " + metric.name,
        )
        ax.legend(fontsize=8, loc="best")
    _not_shown(ax, [labels[i] for i in range(len(runs)) if i not in shown], f"no final {metric.name}")
    ax.set_xlabel(f"final {metric.name}")
    ax.set_ylabel(f"CO2e ({unit})")
    ax.margins(0.15)
    if points:
        ax.set_ylim(0, max(y for _, y in points) * 1.15 or 1)  # from zero, so small CO2e gaps look small
    ax.grid(alpha=0.3)


def figure_png(runs: Sequence[RecordedRun], metric: Metric | None = None, dpi: int = 110) -> bytes:
    """The comparison figure as PNG bytes.

    Args:
        runs: The runs, in the order of the comparison (at least one).
        metric: The quality metric for the CO2e-against-quality panel (default: :func:`choose_metric`).
        dpi: Resolution, dots per inch.

    Raises:
        PlotUnavailableError: matplotlib is not installed.
        ValueError: No run given.
    """
    if not runs:
        raise ValueError("no run to plot")
    figure_class = _figure_class()
    metric = metric if metric is not None else choose_metric(runs)
    labels = run_labels(runs, PLOT_LABEL_CHARS)
    colours = [RUN_COLOURS[i % len(RUN_COLOURS)] for i in range(len(runs))]
    scale, unit = mass_unit(max(r.co2_kg for r in runs))
    rows = math.ceil(len(runs) / LEGEND_COLUMNS)
    fig = figure_class(figsize=(13, 10.5 + 0.25 * rows))
    top = 0.925 - 0.03 * rows  # room for the title and the legend of runs above the panels
    (a, b), (c, d) = fig.subplots(
        2, 2, gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.13, "top": top, "hspace": 0.42, "wspace": 0.2}
    )
    _by_epoch(a, runs, labels, colours, scale, unit)
    _over_time(b, runs, labels, colours, scale, unit)
    _by_component(c, runs, labels, scale, unit)
    _against_quality(d, runs, labels, colours, scale, unit, metric)
    fig.suptitle(
        f"Energy and CO2e of {len(runs)} recorded run{'s' if len(runs) > 1 else ''} (co2cb)", fontsize=14, y=0.995
    )
    handles, names = b.get_legend_handles_labels()  # every run is drawn there, with its colour and marker
    fig.legend(
        handles,
        names,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.965),
        ncol=min(LEGEND_COLUMNS, len(runs)),
        fontsize=9,
        title="runs (same colour and marker in every panel)",
        title_fontsize=9,
    )
    fig.text(0.5, 0.005, FOOTNOTE, ha="center", va="bottom", fontsize=8.5, color="#333333")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight")
    return out.getvalue()


def write_plot(runs: Sequence[RecordedRun], path: str | Path, metric: Metric | None = None) -> Path:
    """Draw the comparison figure (see :func:`figure_png`) into a PNG file; returns its path.

    Raises:
        PlotUnavailableError: matplotlib is not installed.
        OSError: The file cannot be written.
    """
    target = Path(path)
    data = figure_png(runs, metric)
    target.write_bytes(data)
    return target
