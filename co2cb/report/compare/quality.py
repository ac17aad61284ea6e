"""CO2 against a quality metric: which metric to use, which way is better, and the Pareto front.

A run's quality metrics are the final values of what it monitored (``monitor=["val_acc"]`` on the
adapters). Unless told, the metric is the one most runs recorded (ties: the first run's monitor
order, then the name). Names with a ``loss``, ``error``, ``perplexity``, ``mse``... part are
better when lower; others (accuracy, F1, BLEU...) when higher; ``NAME:min`` or ``NAME:max`` says
it explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from co2cb.records.reader import RecordedRun

LOWER_IS_BETTER_PARTS = frozenset(
    {"loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse", "mape", "wer", "cer", "nll", "bpb", "bpc"}
)


@dataclass(frozen=True)
class Metric:
    """The quality metric plotted against CO2.

    Attributes:
        name: The metric's name in the runs' ``final_metrics``.
        lower_is_better: True for losses and errors.
    """

    name: str
    lower_is_better: bool

    @property
    def direction(self) -> str:
        """``"lower is better"`` or ``"higher is better"``."""
        return "lower is better" if self.lower_is_better else "higher is better"


def lower_is_better(name: str) -> bool:
    """Whether a metric name reads as a loss or an error (``val_loss``, ``eval_wer``) rather than a score."""
    parts = [p for p in re.split(r"[^a-z0-9]+", name.lower()) if p]
    return any(p in LOWER_IS_BETTER_PARTS or p.endswith("loss") for p in parts)


def parse_metric(text: str) -> Metric:
    """``NAME``, ``NAME:min`` or ``NAME:max`` as a :class:`Metric` (a bare name: see :func:`lower_is_better`)."""
    name, sep, way = text.rpartition(":")
    if sep and way in ("min", "max") and name:
        return Metric(name, way == "min")
    return Metric(text, lower_is_better(text))


def choose_metric(runs: Sequence[RecordedRun], requested: str | None = None) -> Metric | None:
    """The metric to plot CO2 against, or None when no run recorded one.

    Args:
        runs: The runs compared.
        requested: ``NAME[:min|:max]`` to use instead of the automatic choice.

    Raises:
        ValueError: ``requested`` is in no run's final metrics; the message lists those recorded.
    """
    counts: dict[str, int] = {}
    for run in runs:
        for name in run.final_metrics:
            counts[name] = counts.get(name, 0) + 1
    if requested is not None:
        metric = parse_metric(requested)
        if metric.name not in counts:
            known = ", ".join(sorted(counts)) or "none (pass monitor=[...] to the adapter's CO2Callback)"
            raise ValueError(f"no run recorded the metric {metric.name!r}; recorded: {known}")
        return metric
    if not counts:
        return None
    order = [m for run in runs for m in run.monitored]
    rank = {m: order.index(m) if m in order else len(order) for m in counts}
    name = min(counts, key=lambda m: (-counts[m], rank[m], m))
    return Metric(name, lower_is_better(name))


def pareto_front(points: Sequence[tuple[float, float]], lower_is_better: bool) -> list[bool]:
    """Which ``(metric, co2_kg)`` points no other point beats on both.

    Beating means less or equal CO2, an as good or better metric, and strictly better on one.
    """

    def better_or_equal(a: float, b: float) -> bool:
        return a <= b if lower_is_better else a >= b

    front = []
    for i, (m_i, c_i) in enumerate(points):
        dominated = any(
            j != i and c_j <= c_i and better_or_equal(m_j, m_i) and (c_j < c_i or m_j != m_i)
            for j, (m_j, c_j) in enumerate(points)
        )
        front.append(not dominated)
    return front
