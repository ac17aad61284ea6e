"""Wall-time overhead of co2cb's Lightning callback on a tiny model, next to CodeCarbon.

Run from the repository root::

    python benchmarks/bench_lightning.py                        # 9 rounds, about 80 s on 2 vCPUs
    python benchmarks/bench_lightning.py --rounds 5 --steps 300
    python benchmarks/bench_lightning.py --steps 800 --steps-per-epoch 400   # longer epochs
    python benchmarks/bench_lightning.py --no-codecarbon        # co2cb against nothing only
    python benchmarks/bench_lightning.py --logger tensorboard   # the default logger of co2cb[lightning]

Every round fits the same tiny MLP (about 2.5-3.5 ms a step here) once per variant, in a shuffled
order (interleaved, so that drifts of the machine hit every variant alike):

* ``off``: no measurement;
* ``co2cb``: ``CO2Callback(output_dir=<temp>, region="FR")`` (defaults otherwise: process scope,
  1 s sampling, a step log every ``log_every_n_steps``, epoch windows with synchronous reads);
* ``codecarbon fit``: ``OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False,
  log_level="error")`` made and started before ``fit`` and stopped after it;
* ``codecarbon tasks``: a small callback that makes the same tracker at fit start and calls
  ``start_task``/``stop_task`` at each training epoch's start and end.

All variants use the same trainer: CPU, ``CSVLogger`` in a fresh temporary folder (``--logger
tensorboard``: ``TensorBoardLogger``, Lightning's default where tensorboard is installed, as
``co2cb[lightning]`` does),
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("CO2CB_QUIET", "1")  # no announcement lines between the tables

import psutil
import torch
from torch.utils.data import DataLoader, TensorDataset

with contextlib.redirect_stderr(io.StringIO()):  # Lightning's import-time tips
    import lightning.pytorch as pl
    from lightning.pytorch.loops.fit_loop import _FitLoop as FitLoop

import hook_clock as hc

import co2cb
from co2cb.lightning import CO2Callback

TARGET_PCT = 1.0  # loop overhead of the paired fits and the A/B estimate
HOOKS_TARGET_PCT = 0.5  # time inside co2cb's in-loop hooks, share of the fit's wall time
VARIANTS = ("off", "co2cb", "codecarbon fit", "codecarbon tasks")
LOGGERS: dict[str, type[Any]] = {"csv": pl.loggers.CSVLogger, "tensorboard": pl.loggers.TensorBoardLogger}


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
    logger: str = "csv"  # a key of LOGGERS: the trainer's logger, which co2cb writes its values to

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
def codecarbon_task_callback(cls: Any) -> pl.Callback:
    class CodeCarbonEpochTasks(pl.Callback):
        """One CodeCarbon task per training epoch (``start_task``/``stop_task``; the tracker is not started)."""

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            self.tracker = hc.codecarbon_tracker(cls)

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
            logger=LOGGERS[work.logger](tmp, name=work.logger),
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        t0 = time.perf_counter()
        tracker = None
        if variant == "codecarbon fit":
            tracker = hc.codecarbon_tracker(cc_cls)
            tracker.start()
        trainer.fit(model, train, val)
        if tracker is not None:
            tracker.stop()
        fit_s = time.perf_counter() - t0
    steps = timer.steps
    return Fit((timer.t1 - timer.t0) / steps, (timer.c1 - timer.c0) / steps, fit_s)


# --------------------------------------------------------------------------- hook costs
FIT_HOOKS = ("on_fit_start", "on_fit_end", "teardown")  # once per fit, outside the loop
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
    """Empty batch hooks, timed the same way: the floor of a timed hook at that spot."""

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        pass

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        pass


@dataclass
class HookTimes:
    fits: list[hc.Fit]
    sampler_share: float  # co2cb: CPU seconds of its sampler thread / seconds of the run (median over fits)
    logger_s: float  # co2cb: seconds inside the logger's log_metrics during its hooks, all fits
    hparams_s: list[float]  # co2cb: seconds inside the logger's log_hyperparams in each fit's on_fit_start
    data_s: list[float]  # co2cb: seconds inside Lightning's FitLoop.setup_data in each fit's on_fit_start

    def durations(self, label: str) -> dict[str, list[float]]:
        """Every call of each hook of ``label`` over the fits."""
        out: dict[str, list[float]] = {}
        for f in self.fits:
            for hook, d in f.clocks[label].durations.items():
                out.setdefault(hook, []).extend(d)
        return out


def hook_costs(work: Workload, cc_cls: Any, rounds: int) -> HookTimes:
    """Fits with co2cb's callback, CodeCarbon's per-epoch tasks and an empty callback, each hook timed.

    The callbacks share each fit (the same trainer, the same moments of the machine's load); their order
    alternates from one fit to the next.
    """
    fits: list[hc.Fit] = []
    shares: list[float] = []
    logger_s: list[float] = []  # inside the logger's log_metrics, called from co2cb's hooks
    hparams_s: list[float] = []  # inside its log_hyperparams (the provenance, once a fit)
    data_s: list[float] = []  # inside Lightning's data set-up, which estimated_stepping_batches does early
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as tmp:
            ours = CO2Callback(output_dir=tmp, region="FR")
            timed = {"co2cb": ours, "empty callback": NoOp()}
            if cc_cls is not None:
                timed["codecarbon tasks"] = codecarbon_task_callback(cc_cls)
            clocks = {label: hc.HookClock(cb, HOOKS, pl.Callback) for label, cb in timed.items()}
            order = list(timed.values()) if r % 2 == 0 else list(reversed(timed.values()))
            data: list[float] = []
            with (
                hc.time_inside(LOGGERS[work.logger], "log_metrics", clocks["co2cb"], logger_s),
                hc.time_inside(LOGGERS[work.logger], "log_hyperparams", clocks["co2cb"], hparams_s),
                hc.time_inside(FitLoop, "setup_data", clocks["co2cb"], data),
            ):
                fit = fit_once("co2cb", work, cc_cls, extra=order)
            data_s.append(sum(data))
            fits.append(hc.Fit(fit.fit_s, work.steps, clocks))
            (record,) = Path(tmp).glob("*/run.jsonl")
            summary = json.loads(record.read_text().splitlines()[-1])
            shares.append(summary["sampler_cpu_s"] / summary["seconds"])
    return HookTimes(fits, statistics.median(shares), sum(logger_s), hparams_s, data_s)


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
        f"loop timed from step {work.warmup}, {LOGGERS[work.logger].__name__}; "
        + ("the timed hooks only" if args.hooks_only else f"{args.rounds} rounds, variants shuffled in each")
    )
    print(f"  load average at start: {hc.load_average()}")


def _paired(fits: list[Fit], off: list[Fit], key: Callable[[Fit], float]) -> list[float]:
    """Per round: the variant's value over 'off''s value in the same round, minus 1, in %."""
    return [100 * (key(f) / key(o) - 1) for f, o in zip(fits, off)]


METRICS: list[tuple[str, Callable[[Fit], float]]] = [
    ("loop wall", lambda f: f.per_step_s),
    ("loop CPU", lambda f: f.cpu_per_step_s),
    ("fit() wall", lambda f: f.fit_s),
]


def report_paired(results: dict[str, list[Fit]]) -> None:
    """The whole fits, paired by round: loop wall, loop CPU and fit() wall, each variant against 'off'."""
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
    for name, key in METRICS[:2]:
        print(
            f"per round, {name} ms/step: "
            + "; ".join(f"{v} " + " ".join(f"{key(f) * 1e3:.3f}" for f in fits) for v, fits in results.items())
        )


def report_hooks(hooks: HookTimes, work: Workload) -> None:
    """Time inside each callback's hooks in the shared fits, against CodeCarbon's per-epoch tasks."""
    fit_hooks = {label: FIT_HOOKS for label in hooks.fits[0].clocks}
    hc.print_shares(
        hooks.fits,
        fit_hooks,
        HOOKS_TARGET_PCT,
        f"time inside each callback's hooks, {len(hooks.fits)} fits of {work.steps} steps ({work.epochs} epochs of "
        f"{work.steps_per_epoch} + validation) with all of them on the same trainer; in-loop = all but "
        + ", ".join(FIT_HOOKS),
    )
    mine = sum(f.clocks["co2cb"].seconds(FIT_HOOKS) for f in hooks.fits)
    steps = work.steps * len(hooks.fits)
    logger = LOGGERS[work.logger].__name__
    how = "a file write at a step before a multiple of 100" if work.logger == "csv" else "an event queued per value"
    print(
        f"of co2cb's in-loop time, inside the {logger}'s log_metrics (the trainer's logger writing co2cb's values, "
        f"{how}): {_us(hooks.logger_s / steps)} per step ({100 * hooks.logger_s / mine:.0f} %)"
    )
    wall = sum(f.wall_s for f in hooks.fits)
    print(
        f"co2cb's in-loop time without the {logger}'s: {_us((mine - hooks.logger_s) / steps)} per step, "
        f"{100 * (mine - hooks.logger_s) / wall:.3f} % of the fits' wall time (all fits together)"
    )
    start = hooks.durations("co2cb").get("on_fit_start", [])
    if start:
        print(f"co2cb on_fit_start: median {_us(statistics.median(start))} over {len(start)} fits (not the first)")
        if len(hooks.hparams_s) == len(start) == len(hooks.data_s):
            own = [s - h - d for s, h, d in zip(start, hooks.hparams_s, hooks.data_s)]
            print(
                f"  of which the {logger}'s log_hyperparams (writing the provenance to hparams.yaml): median "
                f"{_us(statistics.median(hooks.hparams_s))}; Lightning's FitLoop.setup_data (its dataloaders, "
                f"loaded here by estimated_stepping_batches instead of right after the hook: not extra work): median "
                f"{_us(statistics.median(hooks.data_s))}; co2cb's own part: median {_us(statistics.median(own))}"
            )
    print(f"co2cb's sampler thread: {100 * hooks.sampler_share:.3f} % of one core (CPU s / run s in the run record)")


def report_alternating(hooks: HookTimes, alt: Alternating, work: Workload) -> None:
    """The in-fit A/B of co2cb's batch hooks, plus its epoch hooks and sampler: an estimate of the loop overhead."""
    print()
    diff = statistics.median(alt.pair_diffs_s)
    epoch = hooks.durations("co2cb")
    epoch_hooks = sum(sum(d) for h, d in epoch.items() if "epoch" in h) / (work.steps * len(hooks.fits))
    print(f"co2cb's batch hooks on and off in turn every {alt.block} steps, inside one fit (one epoch):")
    print(
        f"  median step without them {_ms(alt.off_s)}, with them {_ms(alt.on_s)}; median over "
        f"{len(alt.pair_diffs_s)} adjacent block pairs of (on - off): {_us(diff)} = "
        f"{100 * diff / alt.off_s:+.2f} % of a step"
    )
    print(
        f"  plus co2cb's epoch hooks at {work.steps_per_epoch} steps per epoch (hook table): {_us(epoch_hooks)} per "
        f"step = {100 * epoch_hooks / alt.off_s:.2f} %"
    )
    print(
        f"  plus its sampler thread (1 s interval; CPU s / run s in the run record): {100 * hooks.sampler_share:.3f} %"
    )
    total = 100 * (diff + epoch_hooks) / alt.off_s + 100 * hooks.sampler_share
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
    p.add_argument("--hook-fits", type=int, default=5, help="fits with every callback's hooks timed")
    p.add_argument("--hooks-only", action="store_true", help="only the timed hooks (no paired fits, no A/B)")
    p.add_argument("--no-codecarbon", action="store_true")
    p.add_argument("--logger", choices=sorted(LOGGERS), default="csv", help="the trainer's logger")
    args = p.parse_args(argv)
    if args.rounds < 5 and not args.hooks_only:
        p.error("--rounds must be at least 5")
    if args.steps % args.steps_per_epoch:
        p.error("--steps must be a multiple of --steps-per-epoch")

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    work = Workload(args.steps, args.steps_per_epoch, args.batch, args.width, args.warmup, args.logger)
    cc_cls = None if args.no_codecarbon else hc.codecarbon_class()
    variants = [v for v in VARIANTS if cc_cls is not None or not v.startswith("codecarbon")]

    print_header(work, args)
    for v in variants:  # warm-up: imports, first-call costs, caches (the first tracker of the process)
        fit_once(v, work, cc_cls)
    if not args.hooks_only:
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
        report_paired(results)
    hooks = hook_costs(work, cc_cls, args.hook_fits)
    report_hooks(hooks, work)
    if not args.hooks_only:
        report_alternating(hooks, alternating_steps(work, args.ab_steps, args.ab_block), work)
    print(f"\n  load average at end: {hc.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
