"""Overhead of ``co2cb.hf.CO2Callback`` on a Hugging Face Trainer run, next to CodeCarbon.

The same training (a tiny BERT built from a config, generated token ids, CPU; 3 epochs of 100 steps with an
evaluation after each) runs in these set-ups:

* ``none``: no CO2 callback (``report_to="none"``);
* ``co2cb``: ``callbacks=[CO2Callback()]`` with default options (1 s sampling, the meters this machine
  has, a run folder written to a temporary directory; per-epoch and per-evaluation values in the logs);
* ``codecarbon``: ``report_to=["codecarbon"]``, transformers' ``CodeCarbonCallback`` (an
  ``EmissionsTracker`` started at train begin and stopped at train end), kept offline: no API
  upload (``CODECARBON_SAVE_TO_API=false``), its CSV in a temporary folder, and no network here (its
  location and cloud look-ups fail at once and it falls back to its defaults).

Only ``trainer.train()`` is timed (wall clock, and the process's CPU time, which other load on a
shared machine disturbs less). Each pair runs the three set-ups back to back, in a rotating order; the
overhead is the median over pairs of ``time(set-up) / time(none) - 1``. On a shared machine other load
moves single runs by tens of percent, so the hooks are also timed directly: in ``--hook-fits`` more runs,
co2cb's callback, a CodeCarbon callback with one task per epoch (``start_task``/``stop_task`` on an offline
tracker) and an empty callback share each Trainer, every hook of theirs wrapped in a clock; the time inside
each callback's in-loop hooks (all but ``on_init_end``, ``on_train_begin``, ``on_train_end``) is printed per
step and as a share of ``train()``'s wall time, with co2cb's 0.3 % target. The script asserts nothing.

    python benchmarks/bench_hf.py              # 5 pairs and 5 timed runs of 3 epochs x 100 steps
    python benchmarks/bench_hf.py --hooks-only # the timed runs only
    python benchmarks/bench_hf.py --quick      # 5 pairs of 3 x 40 steps
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CO2CB_QUIET", "1")
os.environ.setdefault("CODECARBON_SAVE_TO_API", "false")
os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import hook_clock as hc
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
from transformers.utils import logging as hf_logging

import co2cb
from co2cb.hf import CO2Callback

TARGET = 0.01  # train() overhead of the paired runs
HOOKS_TARGET_PCT = 0.3  # time inside co2cb's in-loop hooks, share of train()'s wall time
SETUPS = ("none", "co2cb", "codecarbon")


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seq: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randint(1, 100, (n, seq), generator=g)
        self.y = (self.x[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.x[i], "labels": self.y[i]}


def codecarbon_available() -> str | None:
    try:
        import codecarbon  # noqa: F401
    except Exception as e:  # noqa: BLE001 - a missing or broken peer is reported, not fatal
        return f"{type(e).__name__}: {e}"
    return None


def trainer(opts: argparse.Namespace, data: Tokens, out: Path, report_to: Any, callbacks: list[Any]) -> Trainer:
    """The benchmark's Trainer: tiny BERT, CPU, an evaluation after each epoch, nothing saved."""
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            hidden_size=opts.hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * opts.hidden,
            vocab_size=100,
        )
    )
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=opts.epochs,
        per_device_train_batch_size=opts.batch,
        per_device_eval_batch_size=opts.batch,
        eval_strategy="epoch",
        logging_steps=opts.logging_steps,
        save_strategy="no",
        report_to=report_to,
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    evaluation = Tokens(opts.eval_batches * opts.batch, opts.seq, seed=1)
    return Trainer(model=model, args=args, train_dataset=data, eval_dataset=evaluation, callbacks=callbacks or None)


def timed_train(t: Trainer) -> tuple[float, float]:
    """``t.train()``'s wall and process CPU seconds (its log lines and co2cb's forecasts kept off the screen)."""
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        t.train()
    return time.perf_counter() - t0, time.process_time() - c0


def run(setup: str, opts: argparse.Namespace, data: Tokens, tmp: Path, index: int) -> tuple[float, float]:
    """One training run; returns the wall and the process CPU seconds ``trainer.train()`` took."""
    out = tmp / f"{setup}-{index}"
    callbacks = [CO2Callback(output_dir=str(out / "co2cb"))] if setup == "co2cb" else []
    t = trainer(opts, data, out, ["codecarbon"] if setup == "codecarbon" else "none", callbacks)
    seconds, cpu = timed_train(t)
    if setup == "co2cb":
        epoch_keys = ("co2cb/epoch_co2_kg", "co2cb/train_epoch_co2_kg")  # the name before the renaming too
        logged = [e for e in t.state.log_history if any(k in e for k in epoch_keys)]
        assert len(logged) == opts.epochs, "co2cb did not log its epochs"
    return seconds, cpu


IN_LOOP_SKIP = ("on_init_end", "on_train_begin", "on_train_end")  # once per train(), outside the loop
HOOKS = (
    "on_init_end",
    "on_train_begin",
    "on_epoch_begin",
    "on_step_begin",
    "on_substep_end",
    "on_step_end",
    "on_log",
    "on_epoch_end",
    "on_evaluate",
    "on_prediction_step",
    "on_predict",
    "on_train_end",
)


class Empty(TrainerCallback):
    """Step hooks that do nothing, timed the same way: the floor of a timed hook."""

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


class CodeCarbonEpochTasks(TrainerCallback):
    """One CodeCarbon task per training epoch (``start_task``/``stop_task`` on an offline tracker, not started)."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.tracker: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker = hc.codecarbon_tracker(self.cls)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.start_task(f"epoch-{int(state.epoch or 0)}")

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.tracker.stop_task()


def hook_fits(opts: argparse.Namespace, data: Tokens, tmp: Path, cc_cls: Any) -> tuple[list[hc.Fit], list[float]]:
    """Runs with co2cb's callback, CodeCarbon's per-epoch tasks and an empty callback on one Trainer, hooks timed.

    Returns the runs and co2cb's sampler thread CPU share in each (CPU s / run s in the record).
    """
    fits: list[hc.Fit] = []
    sampler: list[float] = []
    for r in range(opts.hook_fits):
        out = tmp / f"hooks-{r}"
        ours = CO2Callback(output_dir=str(out / "co2cb"))
        timed: dict[str, Any] = {"co2cb": ours, "empty callback": Empty()}
        if cc_cls is not None:
            timed["codecarbon tasks"] = CodeCarbonEpochTasks(cc_cls)
        clocks = {label: hc.HookClock(cb, HOOKS, TrainerCallback) for label, cb in timed.items()}
        order = list(timed.values()) if r % 2 == 0 else list(reversed(timed.values()))
        t = trainer(opts, data, out, "none", order)
        wall, _ = timed_train(t)
        fits.append(hc.Fit(wall, t.state.global_step, clocks))
        summary = next(x for x in co2cb.read_records(ours.co2.tracker.run_folder) if x["type"] == "summary")
        sampler.append(summary["sampler_cpu_s"] / summary["seconds"])
    return fits, sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5, help="pairs (rounds of the three set-ups), at least 5")
    parser.add_argument("--hook-fits", type=int, default=5, help="runs with every callback's hooks timed")
    parser.add_argument("--hooks-only", action="store_true", help="only the runs with timed hooks")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eval-batches", type=int, default=5, help="evaluation batches after each epoch")
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--no-codecarbon", action="store_true")
    parser.add_argument("--quick", action="store_true", help="5 pairs of 3 x 40 steps")
    opts = parser.parse_args()
    if opts.quick:
        opts.pairs, opts.steps = 5, 40
    opts.pairs = max(opts.pairs, 5)
    torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    setups = list(SETUPS)
    missing = "--no-codecarbon" if opts.no_codecarbon else codecarbon_available()
    if missing:
        print(f"codecarbon left out: {missing}")
        setups.remove("codecarbon")
    cc_cls = None if missing else hc.codecarbon_class()
    data = Tokens(opts.steps * opts.batch, opts.seq)
    print(
        f"co2cb {co2cb.__version__} HF Trainer overhead: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {hc.load_average()}; torch {torch.__version__}, {opts.threads} thread(s)"
    )
    print(
        f"tiny BERT (hidden {opts.hidden}, 2 layers), batch {opts.batch} x {opts.seq} tokens, {opts.epochs} epochs "
        f"x {opts.steps} steps, an evaluation of {opts.eval_batches} batches after each, logging every "
        f"{opts.logging_steps} steps"
    )
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-hf-") as folder:
        tmp = Path(folder)
        for s in setups:  # warm-up: imports, first-call costs (the first tracker of the process)
            run(s, opts, data, tmp, -1)
        if not opts.hooks_only:
            paired(opts, data, tmp, setups)
        fits, sampler = hook_fits(opts, data, tmp, cc_cls)
    steps = fits[0].steps
    hc.print_shares(
        fits,
        {label: IN_LOOP_SKIP for label in fits[0].clocks},
        HOOKS_TARGET_PCT,
        f"time inside each callback's hooks, {len(fits)} train() runs of {steps} steps with all of them on the "
        f"same Trainer; in-loop = all but {', '.join(IN_LOOP_SKIP)}",
    )
    begin = [x for f in fits for x in f.clocks["co2cb"].durations.get("on_train_begin", [])]
    print(
        f"co2cb on_train_begin: median {statistics.median(begin) * 1e3:.2f} ms over {len(begin)} runs (not the first)"
    )
    print(f"co2cb's sampler thread: {100 * statistics.median(sampler):.3f} % of one core (CPU s / run s in the record)")
    print(f"\nload average at the end {hc.load_average()} (rerun when it is high: timings move on a shared VM)")


def paired(opts: argparse.Namespace, data: Tokens, tmp: Path, setups: list[str]) -> None:
    """The three set-ups back to back, in a rotating order; their train() times against 'none'."""
    wall: dict[str, list[float]] = {s: [] for s in setups}
    cpu: dict[str, list[float]] = {s: [] for s in setups}
    for i in range(opts.pairs):
        order = setups[i % len(setups) :] + setups[: i % len(setups)]
        for s in order:
            w, c = run(s, opts, data, tmp, i)
            wall[s].append(w)
            cpu[s].append(c)
        print(f"  pair {i + 1}/{opts.pairs}: " + ", ".join(f"{s} {wall[s][-1]:.3f} s" for s in setups), flush=True)
    steps = opts.steps * opts.epochs
    print()
    print(
        "| set-up | median train() wall s | ms/step | wall overhead vs none (median of pairs) | pairs min..max "
        "| process CPU s | CPU overhead (median of pairs) | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in setups:
        ratios = [t / b - 1 for t, b in zip(wall[s], wall["none"])]
        cpu_ratios = [t / b - 1 for t, b in zip(cpu[s], cpu["none"])]
        med = statistics.median(wall[s])
        over = statistics.median(ratios)
        target = f"<= {TARGET:.0%}: {'ok' if over <= TARGET else 'OVER'}" if s == "co2cb" else ""
        spread = f"{min(ratios):+.2%}..{max(ratios):+.2%}" if s != "none" else "-"
        print(
            f"| {s} | {med:.3f} | {1000 * med / steps:.2f} | {over:+.2%} | {spread} | "
            f"{statistics.median(cpu[s]):.3f} | {statistics.median(cpu_ratios):+.2%} | {target} |"
        )


if __name__ == "__main__":
    main()
