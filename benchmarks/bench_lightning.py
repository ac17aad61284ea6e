"""Wall-time overhead of co2cb's Lightning callback on a tiny model, next to CodeCarbon.

Run from the repository root::

    python benchmarks/bench_lightning.py                        # 9 rounds, about 80 s on 2 vCPUs
    python benchmarks/bench_lightning.py --rounds 5 --steps 300
    python benchmarks/bench_lightning.py --steps 800 --steps-per-epoch 400   # longer epochs
    python benchmarks/bench_lightning.py --no-codecarbon        # co2cb against nothing only

Every round fits the same tiny MLP (about 2.5-3.5 ms a step here) once per variant, in a shuffled
order (interleaved, so that drifts of the machine hit every variant alike):

* ``off``: no measurement;
* ``co2cb``: ``CO2Callback(output_dir=<temp>, region="FR")`` (defaults otherwise: process scope,
  1 s sampling, a step log every ``log_every_n_steps``, epoch windows with synchronous reads);
* ``codecarbon fit``: ``OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False,
  log_level="error")`` made and started before ``fit`` and stopped after it;
* ``codecarbon tasks``: a small callback that makes the same tracker at fit start and calls
  ``start_task``/``stop_task`` at each training epoch's start and end.

All variants use the same trainer: CPU, ``CSVLogger`` in a fresh temporary folder,
``enable_progress_bar=False``, ``enable_checkpointing=False``, ``enable_model_summary=False``, a
small validation set every epoch. The paired medians of whole fits are then backed by two
measurements that the load of a shared machine moves less: the time inside every hook of each
callback (one extra fit each), and an in-fit A/B in which co2cb's batch hooks run on every other
block of 10 steps. It prints tables and asserts nothing; what each figure means is in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("CO2CB_QUIET", "1")  # no announcement lines between the tables

import psutil
import torch
from torch.utils.data import DataLoader, TensorDataset

with contextlib.redirect_stderr(io.StringIO()):  # Lightning's import-time tips
    import lightning.pytorch as pl

import co2cb
from co2cb.lightning import CO2Callback

TARGET_PCT = 1.0
VARIANTS = ("off", "co2cb", "codecarbon fit", "codecarbon tasks")


# --------------------------------------------------------------------------- the workload
class TinyMLP(pl.LightningModule):
    """A few linear layers; about 2 ms per training step of 64 rows on these CPUs."""

    def __init__(self, width: int, inputs: int = 128, classes: int = 10) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(inputs, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, classes),
        )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)  # no self.log: about 1 ms a call here

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


@dataclass(frozen=True)
class Workload:
    steps: int
    steps_per_epoch: int
    batch: int
    width: int
    warmup: int

    @property
    def epochs(self) -> int:
        return self.steps // self.steps_per_epoch

    def loaders(self) -> tuple[DataLoader, DataLoader]:
        g = torch.Generator().manual_seed(0)
        n = self.steps_per_epoch * self.batch
        x = torch.randn(n, 128, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        train = DataLoader(TensorDataset(x, y), batch_size=self.batch)
        val = DataLoader(TensorDataset(x[: 5 * self.batch], y[: 5 * self.batch]), batch_size=self.batch)
        return train, val


class LoopTimer(pl.Callback):
    """Training-loop wall and process CPU time from the start of step ``warmup`` to the end of training.

    Epoch ends and validation are inside; fit start and fit end are not. The process CPU time counts
    every thread (co2cb's sampler, CodeCarbon's scheduler).
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.t0 = self.t1 = self.c0 = self.c1 = 0.0
        self.step0 = self.steps = 0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if trainer.global_step == self.warmup and not self.t0:
            self.t0, self.c0 = time.perf_counter(), time.process_time()
            self.step0 = trainer.global_step

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.t1, self.c1 = time.perf_counter(), time.process_time()
        self.steps = trainer.global_step - self.step0


# --------------------------------------------------------------------------- CodeCarbon
def _import_codecarbon() -> Any:
    """CodeCarbon's tracker class, its import-time AMD-GPU warning swallowed; None if not installed."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            from codecarbon import OfflineEmissionsTracker
    except Exception as e:  # noqa: BLE001 - a missing or broken peer gets one line, the run goes on
        print(f"CodeCarbon left out: {type(e).__name__}: {e}")
        return None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    return OfflineEmissionsTracker


def _codecarbon_tracker(cls: Any) -> Any:
    return cls(country_iso_code="FRA", save_to_file=False, log_level="error")


def codecarbon_task_callback(cls: Any) -> pl.Callback:
    class CodeCarbonEpochTasks(pl.Callback):
        """One CodeCarbon task per training epoch (``start_task``/``stop_task``; the tracker is not started)."""

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.tracker = _codecarbon_tracker(cls)

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.tracker.start_task(f"epoch-{trainer.current_epoch}")

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.tracker.stop_task()

    return CodeCarbonEpochTasks()


# --------------------------------------------------------------------------- one fit
@dataclass
class Fit:
    per_step_s: float  # training loop wall time per step
    cpu_per_step_s: float  # training loop process CPU time per step
    fit_s: float  # whole fit() wall time (plus CodeCarbon's start/stop around it)


def fit_once(variant: str, work: Workload, cc_cls: Any, extra: list[pl.Callback] | None = None) -> Fit:
    """One fit of the workload with ``variant``'s measurement; the times of its training loop and of the whole fit."""
    timer = LoopTimer(work.warmup)
    callbacks: list[pl.Callback] = [timer, *(extra or [])]
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as tmp:
        if variant == "co2cb" and not extra:
            callbacks.append(CO2Callback(output_dir=tmp, region="FR"))
        elif variant == "codecarbon tasks" and not extra:
            callbacks.append(codecarbon_task_callback(cc_cls))
        torch.manual_seed(0)
        model = TinyMLP(work.width)
        train, val = work.loaders()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=work.epochs,
            callbacks=callbacks,
            logger=pl.loggers.CSVLogger(tmp, name="csv"),
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        t0 = time.perf_counter()
        tracker = None
        if variant == "codecarbon fit":
            tracker = _codecarbon_tracker(cc_cls)
            tracker.start()
        trainer.fit(model, train, val)
        if tracker is not None:
            tracker.stop()
        fit_s = time.perf_counter() - t0
    steps = timer.steps
    return Fit((timer.t1 - timer.t0) / steps, (timer.c1 - timer.c0) / steps, fit_s)


# --------------------------------------------------------------------------- hook costs
@dataclass
class HookTimes:
    durations: dict[str, list[float]] = field(default_factory=dict)
    sampler_share: float = 0.0  # co2cb: CPU seconds of its sampler thread / seconds of the run

    def wrap(self, callback: pl.Callback, names: list[str]) -> None:
        for name in names:
            fn = getattr(callback, name)
            setattr(callback, name, self._timed(name, fn))

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        store = self.durations.setdefault(name, [])

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                store.append(time.perf_counter() - t0)

        return timed


FIT_HOOKS = ("on_fit_start", "on_fit_end", "teardown")  # outside the timed loop
HOOKS = [
    "on_fit_start",
    "on_train_epoch_start",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_train_epoch_end",
    "on_fit_end",
    "teardown",
]


class NoOp(pl.Callback):
    """Empty batch hooks, timed the same way just before co2cb's: the floor of a timed hook at that spot."""

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        pass

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        pass


def hook_costs(work: Workload, cc_cls: Any) -> dict[str, HookTimes]:
    """Time every hook of the co2cb callback (and of the CodeCarbon task callback) in one extra fit each."""
    found: dict[str, HookTimes] = {}
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as tmp:
        cb = CO2Callback(output_dir=tmp, region="FR")
        front = NoOp()
        found["co2cb"] = HookTimes()
        found["co2cb"].wrap(cb, HOOKS)
        found["no-op callback placed before co2cb's"] = HookTimes()
        found["no-op callback placed before co2cb's"].wrap(front, ["on_train_batch_start", "on_train_batch_end"])
        fit_once("co2cb", work, cc_cls, extra=[front, cb])
        (record,) = Path(tmp).glob("*/run.jsonl")
        summary = json.loads(record.read_text().splitlines()[-1])
        found["co2cb"].sampler_share = summary["sampler_cpu_s"] / summary["seconds"]
    if cc_cls is not None:
        cc = codecarbon_task_callback(cc_cls)
        found["codecarbon tasks"] = HookTimes()
        found["codecarbon tasks"].wrap(cc, ["on_fit_start", "on_train_epoch_start", "on_train_epoch_end"])
        fit_once("codecarbon tasks", work, cc_cls, extra=[cc])
    return found


# --------------------------------------------------------------------------- per-step A/B inside one fit
class StepClock(pl.Callback):
    """Wall time from each batch start to the next inside an epoch, with whether co2cb's batch hooks ran."""

    def __init__(self, gate: Callable[[int], bool]) -> None:
        self.gate = gate
        self.samples: list[tuple[int, bool, float]] = []  # (block, hooks on, seconds)
        self._last: tuple[float, int] | None = None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last is not None and batch_idx > 0:
            t, step = self._last
            self.samples.append((step, self.gate(step), now - t))
        self._last = (now, trainer.global_step)


@dataclass
class Alternating:
    block: int
    on_s: float  # median step with co2cb's batch hooks
    off_s: float  # median step without
    pair_diffs_s: list[float]  # per adjacent (off block, on block): difference of the blocks' median steps


def alternating_steps(work: Workload, steps: int, block: int) -> Alternating:
    """co2cb's per-step hooks on every other block of ``block`` steps in one long epoch.

    Blocks a few steps long alternate far faster than the load of a shared machine changes, which
    whole fits cannot; epoch hooks and the sampler run as usual and are not in this difference.
    """

    def gate(step: int) -> bool:
        return (step // block) % 2 == 1

    clock = StepClock(gate)
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as tmp:
        cb = CO2Callback(output_dir=tmp, region="FR")
        start, end = cb.on_train_batch_start, cb.on_train_batch_end

        def gated_start(trainer: Any, *args: Any) -> None:
            if gate(trainer.global_step):
                start(trainer, *args)

        def gated_end(trainer: Any, *args: Any) -> None:
            if gate(trainer.global_step - 1):  # global_step has moved on past the optimizer step
                end(trainer, *args)

        cb.on_train_batch_start, cb.on_train_batch_end = gated_start, gated_end
        fit_once("co2cb", replace(work, steps=steps, steps_per_epoch=steps), None, extra=[clock, cb])
    by_block: dict[int, list[float]] = {}
    for step, _, dt in clock.samples[work.warmup :]:
        by_block.setdefault(step // block, []).append(dt)
    diffs = [
        statistics.median(by_block[b + 1]) - statistics.median(by_block[b])
        for b in sorted(by_block)
        if b % 2 == 0 and b + 1 in by_block
    ]
    return Alternating(
        block,
        statistics.median(dt for _, on, dt in clock.samples[work.warmup :] if on),
        statistics.median(dt for _, on, dt in clock.samples[work.warmup :] if not on),
        diffs,
    )


# --------------------------------------------------------------------------- output
def _ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms"


def _us(s: float) -> str:
    return f"{s * 1e6:,.1f} us" if s < 0.01 else f"{s * 1e3:,.2f} ms"


def _pct(x: float) -> str:
    return f"{x:+.2f} %"


def _rule(width: int) -> str:
    return "-" * width


def print_header(work: Workload, args: argparse.Namespace) -> None:
    cpu = platform.processor() or platform.machine()
    print(f"co2cb {co2cb.__version__} Lightning callback benchmark")
    print(f"  date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"  python {platform.python_version()}, torch {torch.__version__}, lightning {pl.__version__}, "
        f"{psutil.cpu_count()} logical CPUs ({cpu}), torch threads {torch.get_num_threads()}"
    )
    print(
        f"  workload: MLP 128-{work.width}-{work.width}-{work.width}-10, batch {work.batch}, {work.steps} steps "
        f"per fit = {work.epochs} epochs of {work.steps_per_epoch} steps (+5 validation batches each), "
        f"loop timed from step {work.warmup}; {args.rounds} rounds, variants shuffled in each"
    )
    print(f"  load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _paired(fits: list[Fit], off: list[Fit], key: Callable[[Fit], float]) -> list[float]:
    """Per round: the variant's value over 'off''s value in the same round, minus 1, in %."""
    return [100 * (key(f) / key(o) - 1) for f, o in zip(fits, off)]


METRICS: list[tuple[str, Callable[[Fit], float]]] = [
    ("loop wall", lambda f: f.per_step_s),
    ("loop CPU", lambda f: f.cpu_per_step_s),
    ("fit() wall", lambda f: f.fit_s),
]


def report(results: dict[str, list[Fit]], hooks: dict[str, HookTimes], alt: Alternating, work: Workload) -> None:
    off = results["off"]
    print()
    print("per training step: loop wall time and loop process CPU time; and the whole fit(). Overhead: median over")
    print("rounds of (variant / 'off' in the same round - 1), the pairs' range under it. Target for co2cb: loop wall")
    print(f"overhead <= {TARGET_PCT:g} %.")
    head = f"{'variant':<17}" + "".join(f"{name:>24}" for name, _ in METRICS) + f"{'check':>7}"
    print(_rule(len(head)))
    print(head)
    print(_rule(len(head)))
    for variant, fits in results.items():
        values, overheads, ranges = [], [], []
        for name, key in METRICS:
            med = statistics.median(key(f) for f in fits)
            values.append(f"{med:.3f} s" if name.startswith("fit") else _ms(med))
            if variant == "off":
                overheads.append("-")
                ranges.append("")
                continue
            pairs = _paired(fits, off, key)
            overheads.append(_pct(statistics.median(pairs)))
            ranges.append(f"{min(pairs):+.1f}..{max(pairs):+.1f} %")
        check = ""
        if variant == "co2cb":
            check = "ok" if statistics.median(_paired(fits, off, METRICS[0][1])) <= TARGET_PCT else "OVER"
        print(f"{variant:<17}" + "".join(f"{v:>24}" for v in values))
        print(f"{'  overhead':<17}" + "".join(f"{v:>24}" for v in overheads) + f"{check:>7}")
        if variant != "off":
            print(f"{'  pairs range':<17}" + "".join(f"{v:>24}" for v in ranges))
    print(_rule(len(head)))
    wall = statistics.median(f.per_step_s for f in off)
    cpu = statistics.median(f.cpu_per_step_s for f in off)
    for name, times in hooks.items():
        if name.startswith("no-op"):
            continue
        in_loop = sum(sum(d) for hook, d in times.durations.items() if hook not in FIT_HOOKS) / work.steps
        print(
            f"{name}: time inside its hooks during the loop (extra fit, tables below): {_us(in_loop)} per step "
            f"= {100 * in_loop / wall:.2f} % of 'off''s loop wall, {100 * in_loop / cpu:.2f} % of its loop CPU"
        )
    for name, key in METRICS[:2]:
        print(
            f"per round, {name} ms/step: "
            + "; ".join(f"{v} " + " ".join(f"{key(f) * 1e3:.3f}" for f in fits) for v, fits in results.items())
        )

    for name, times in hooks.items():
        print()
        title = f"{name}: time inside each hook, one extra fit of {work.steps} steps ({work.epochs} epochs)"
        head = f"{'hook':<28}{'calls':>7}{'median':>12}{'max':>12}{'total':>12}{'per training step':>20}"
        print(title)
        print(_rule(len(head)))
        print(head)
        print(_rule(len(head)))
        grand = 0.0
        for hook, d in times.durations.items():
            if not d:
                continue
            total = sum(d)
            grand += total
            print(
                f"{hook:<28}{len(d):>7}{_us(statistics.median(d)):>12}{_us(max(d)):>12}{_us(total):>12}"
                f"{_us(total / work.steps):>20}"
            )
        print(_rule(len(head)))
        print(f"{'all hooks':<28}{'':>7}{'':>12}{'':>12}{_us(grand):>12}{_us(grand / work.steps):>20}")

    print()
    diff = statistics.median(alt.pair_diffs_s)
    epoch_hooks = sum(sum(d) for h, d in hooks["co2cb"].durations.items() if "epoch" in h) / work.steps
    print(f"co2cb's batch hooks on and off in turn every {alt.block} steps, inside one fit (one epoch):")
    print(
        f"  median step without them {_ms(alt.off_s)}, with them {_ms(alt.on_s)}; median over "
        f"{len(alt.pair_diffs_s)} adjacent block pairs of (on - off): {_us(diff)} = "
        f"{100 * diff / alt.off_s:+.2f} % of a step"
    )
    sampler = hooks["co2cb"].sampler_share
    print(
        f"  plus co2cb's epoch hooks at {work.steps_per_epoch} steps per epoch (hook table): {_us(epoch_hooks)} per "
        f"step = {100 * epoch_hooks / alt.off_s:.2f} %"
    )
    print(f"  plus its sampler thread (1 s interval; CPU s / run s in the run record): {100 * sampler:.3f} %")
    total = 100 * (diff + epoch_hooks) / alt.off_s + 100 * sampler
    print(
        f"  estimate of co2cb's loop overhead: {total:+.2f} % (target <= {TARGET_PCT:g} %: "
        f"{'ok' if total <= TARGET_PCT else 'OVER'})"
    )


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=9, help="fits per variant (at least 5)")
    p.add_argument("--steps", type=int, default=400, help="training steps per fit")
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=128, help="hidden width of the MLP")
    p.add_argument("--warmup", type=int, default=20, help="steps of each fit left out of the loop time")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared VM)")
    p.add_argument("--seed", type=int, default=0, help="seed of the order of the variants in each round")
    p.add_argument("--ab-steps", type=int, default=2000, help="steps of the fit with co2cb's batch hooks alternating")
    p.add_argument("--ab-block", type=int, default=10, help="steps per block, hooks on and off in turn")
    p.add_argument("--no-codecarbon", action="store_true")
    args = p.parse_args(argv)
    if args.rounds < 5:
        p.error("--rounds must be at least 5")
    if args.steps % args.steps_per_epoch:
        p.error("--steps must be a multiple of --steps-per-epoch")

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    work = Workload(args.steps, args.steps_per_epoch, args.batch, args.width, args.warmup)
    cc_cls = None if args.no_codecarbon else _import_codecarbon()
    variants = [v for v in VARIANTS if cc_cls is not None or not v.startswith("codecarbon")]

    print_header(work, args)
    for v in variants:  # warm-up: imports, first-call costs, caches
        fit_once(v, work, cc_cls)
    results: dict[str, list[Fit]] = {v: [] for v in variants}
    rng = random.Random(args.seed)
    for r in range(args.rounds):
        order = rng.sample(variants, len(variants))
        for v in order:
            results[v].append(fit_once(v, work, cc_cls))
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(f"{v} {results[v][-1].per_step_s * 1e3:.3f} ms" for v in order),
            flush=True,
        )
    hooks = hook_costs(work, cc_cls)
    alt = alternating_steps(work, args.ab_steps, args.ab_block)
    report(results, hooks, alt, work)
    print(f"\n  load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
