"""Shared by the framework benchmarks: the time spent inside a callback's hooks, and CodeCarbon's task tracker.

``bench_lightning.py``, ``bench_hf.py`` and ``bench_keras.py`` run fits with co2cb's callback and a small
CodeCarbon callback (one task per training epoch: ``start_task``/``stop_task`` on an offline tracker) on the
same trainer, wrap every hook of both in a clock, and print the time inside each callback's in-loop hooks as a
share of the fit's wall time (:func:`print_shares`). Nothing here asserts: these are measurements.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


class HookClock:
    """Wall time inside the hooks of one callback instance: every call, in seconds, by hook name."""

    def __init__(self, callback: Any, hooks: Iterable[str], base: type) -> None:
        """Wrap those of ``hooks`` (method names) that ``callback``'s class overrides from ``base`` (the framework's
        callback class, whose hooks do nothing), on the instance."""
        self.durations: dict[str, list[float]] = {}
        self.inside = 0  # > 0 while one of the hooks runs (to attribute what they call)
        for name in hooks:
            if getattr(type(callback), name, None) is not getattr(base, name, None):
                setattr(callback, name, self._timed(name, getattr(callback, name)))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        store = self.durations.setdefault(name, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.inside += 1  # the clock's own bookkeeping stays outside the time it takes
            t0 = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                t1 = time.perf_counter_ns()
                self.inside -= 1
                store.append((t1 - t0) * 1e-9)  # list.append: safe from a framework's pool thread

        return timed

    def seconds(self, skip: Sequence[str] = ()) -> float:
        """Time inside every hook but ``skip``, seconds."""
        return sum(sum(d) for name, d in self.durations.items() if name not in skip)


@dataclass
class Fit:
    """One fit with both callbacks timed.

    Attributes:
        wall_s: The whole fit's wall time (``fit()``/``train()``), seconds.
        steps: Training steps it ran.
        clocks: The hook clocks, by callback label.
    """

    wall_s: float
    steps: int
    clocks: dict[str, HookClock] = field(default_factory=dict)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def codecarbon_class() -> Any:
    """CodeCarbon's ``OfflineEmissionsTracker`` (its import-time output swallowed), or None with one line why."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from codecarbon import OfflineEmissionsTracker
    except Exception as e:  # noqa: BLE001 - a missing or broken peer gets one line, the run goes on
        print(f"CodeCarbon left out ({type(e).__name__}: {e}); pip install codecarbon to compare")
        return None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    return OfflineEmissionsTracker


def codecarbon_tracker(cls: Any) -> Any:
    """An offline tracker as the task callbacks use it: France's intensity, no file, no log lines."""
    return cls(country_iso_code="FRA", save_to_file=False, log_level="error")


def _stats(values: Sequence[float]) -> str:
    return f"{statistics.median(values):6.3f} % (range {min(values):.3f}..{max(values):.3f})"


def print_shares(
    fits: Sequence[Fit],
    fit_hooks: dict[str, Sequence[str]],
    target_pct: float,
    title: str,
) -> None:
    """Per callback: time inside its in-loop hooks per step and as a share of the fit's wall time.

    Args:
        fits: The timed fits (rounds).
        fit_hooks: Per callback label, its hooks that run once per fit (start, end): left out of "in-loop".
        target_pct: co2cb's target share, percent.
        title: The table's title.
    """
    labels = list(fits[0].clocks)
    print()
    print(title)
    print(f"{'callback':<18}{'in-loop hooks per step':>26}{'share of fit() wall (median, range)':>44}{'check':>8}")
    for label in labels:
        per_step = [f.clocks[label].seconds(fit_hooks[label]) / f.steps for f in fits]
        shares = [100 * f.clocks[label].seconds(fit_hooks[label]) / f.wall_s for f in fits]
        check = ""
        if label == "co2cb":
            check = "ok" if statistics.median(shares) <= target_pct else "OVER"
        print(f"{label:<18}{statistics.median(per_step) * 1e6:>23.1f} us{_stats(shares):>44}{check:>8}")
    if "codecarbon tasks" in labels:
        below = sum(
            f.clocks["co2cb"].seconds(fit_hooks["co2cb"])
            < f.clocks["codecarbon tasks"].seconds(fit_hooks["codecarbon tasks"])
            for f in fits
        )
        print(f"co2cb's in-loop hooks took less time than CodeCarbon's per-epoch tasks in {below} of {len(fits)} fits")
    print(f"target for co2cb: <= {target_pct:g} % of the fit's wall time")
    for label in labels:
        print(f"{label}: time inside each hook, summed over {len(fits)} fits (calls, median, max, total)")
        for hook in fits[0].clocks[label].durations:
            every = [x for f in fits for x in f.clocks[label].durations.get(hook, [])]
            if every:
                print(
                    f"  {hook:<28}{len(every):>7}{statistics.median(every) * 1e6:>11.1f} us"
                    f"{max(every) * 1e6:>12.1f} us{sum(every) * 1e3:>11.2f} ms"
                )


@contextlib.contextmanager
def time_inside(cls: type, method: str, clock: HookClock, into: list[float]) -> Any:
    """While the block runs, time every call of ``cls.method`` made from inside ``clock``'s hooks, into ``into``."""
    original = getattr(cls, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        if not clock.inside:
            return original(*args, **kwargs)
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - t0)

    setattr(cls, method, timed)
    try:
        yield
    finally:
        setattr(cls, method, original)
