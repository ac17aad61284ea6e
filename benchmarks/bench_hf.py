"""Wall-time overhead of ``co2cb.hf.CO2Callback`` on a Hugging Face Trainer run, next to CodeCarbon's callback.

The same training (a tiny BERT built from a config, generated token ids, CPU) runs in three set-ups:

* ``none``: no CO2 callback (``report_to="none"``);
* ``co2cb``: ``callbacks=[CO2Callback()]`` with default options (1 s sampling, the meters this machine
  has, a run folder written to a temporary directory; per-step and per-epoch values in the logs);
* ``codecarbon``: ``report_to=["codecarbon"]``, transformers' ``CodeCarbonCallback`` (an
  ``EmissionsTracker`` started at train begin and stopped at train end), kept offline: no API
  upload (``CODECARBON_SAVE_TO_API=false``), its CSV in a temporary folder, and no network here (its
  location and cloud look-ups fail at once and it falls back to its defaults).

Only ``trainer.train()`` is timed (wall clock, and the process's CPU time, which other load on a
shared machine disturbs less) (not building the Trainer, where CodeCarbon makes its tracker).
Each pair runs the three set-ups back to back, in a rotating order; the overhead is the median over
pairs of ``time(set-up) / time(none) - 1``. On a shared machine other load moves single runs by tens
of percent, so a last co2cb run is instrumented: the time spent inside the callback's hooks on the
training thread (start, steps, logs, epochs, end) and the CPU time of co2cb's sampler thread, which
is what the callback costs whatever the noise. The script asserts nothing: it prints tables, with the
1 % target next to co2cb's figures.

    python benchmarks/bench_hf.py              # 7 pairs of 2 epochs x 200 steps, about 4 min on 2 vCPUs
    python benchmarks/bench_hf.py --quick      # 5 pairs of 2 x 40 steps
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import platform
import statistics
import sys
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

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from co2cb.hf import CO2Callback

TARGET = 0.01
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


def run(setup: str, opts: argparse.Namespace, data: Tokens, tmp: Path, index: int) -> tuple[float, float]:
    """One training run; returns the wall and the process CPU seconds ``trainer.train()`` took."""
    out = tmp / f"{setup}-{index}"
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
        logging_steps=opts.logging_steps,
        save_strategy="no",
        report_to=["codecarbon"] if setup == "codecarbon" else "none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    callbacks = [CO2Callback(output_dir=str(out / "co2cb"))] if setup == "co2cb" else None
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the Trainer's log lines and co2cb's forecasts
        trainer.train()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if setup == "co2cb":
        cb = next(c for c in trainer.callback_handler.callbacks if isinstance(c, CO2Callback))
        assert cb.co2.tracker is not None and cb.co2.tracker.run_folder is not None
        logged = [e for e in trainer.state.log_history if "co2cb/epoch_co2_kg" in e]
        assert len(logged) == opts.epochs, "co2cb did not log its epochs"
    return seconds, cpu


HOOKS = (
    "on_init_end",
    "on_train_begin",
    "on_epoch_begin",
    "on_step_begin",
    "on_step_end",
    "on_log",
    "on_epoch_end",
    "on_evaluate",
    "on_prediction_step",
    "on_train_end",
)


def instrumented(opts: argparse.Namespace, data: Tokens, tmp: Path) -> None:
    """One co2cb run with every hook of the callback timed; prints where the callback's time goes."""
    spent: dict[str, float] = dict.fromkeys(HOOKS, 0.0)
    calls: dict[str, int] = dict.fromkeys(HOOKS, 0)
    originals = {name: getattr(CO2Callback, name) for name in HOOKS}
    sampler_cpu: list[float] = []

    def timed(name: str) -> Any:
        fn = originals[name]

        def hook(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(self, *args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0
                calls[name] += 1
                if name == "on_train_end" and self.co2.tracker is not None:
                    sampler_cpu.append(self.co2.tracker._sampler.cpu_seconds)

        return hook

    for name in HOOKS:
        setattr(CO2Callback, name, timed(name))
    try:
        wall, _ = run("co2cb", opts, data, tmp, 999)
    finally:
        for name, fn in originals.items():
            setattr(CO2Callback, name, fn)
    total = sum(spent.values())
    steps = opts.steps * opts.epochs
    print()
    print(f"co2cb's own cost in one instrumented run ({wall:.3f} s of train(), {steps} steps):")
    print("| part | calls | ms | per call us | share of train() |")
    print("|---|---|---|---|---|")
    for name in HOOKS:
        if calls[name]:
            print(
                f"| {name} | {calls[name]} | {1000 * spent[name]:.2f} | {1e6 * spent[name] / calls[name]:.1f} | "
                f"{spent[name] / wall:.3%} |"
            )
    step = spent["on_step_begin"] + spent["on_step_end"]
    print(
        f"| all hooks (training thread) | | {1000 * total:.2f} | | {total / wall:.3%} (target <= {TARGET:.0%}: "
        f"{'ok' if total / wall <= TARGET else 'OVER'}) |"
    )
    print(
        f"| of which per step (begin + end) | {steps} | {1000 * step:.2f} | {1e6 * step / steps:.1f} | "
        f"{step / wall:.3%} |"
    )
    if sampler_cpu:
        print(f"| sampler thread CPU (other thread) | | {1000 * sampler_cpu[0]:.2f} | | {sampler_cpu[0] / wall:.3%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=7, help="pairs (rounds of the three set-ups), at least 5")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per epoch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    parser.add_argument("--quick", action="store_true", help="5 pairs of 2 x 40 steps")
    opts = parser.parse_args()
    if opts.quick:
        opts.pairs, opts.steps = 5, 40
    opts.pairs = max(opts.pairs, 5)
    torch.set_num_threads(opts.threads)
    hf_logging.set_verbosity_error()
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    setups = list(SETUPS)
    missing = codecarbon_available()
    if missing:
        print(f"codecarbon left out: {missing}")
        setups.remove("codecarbon")
    data = Tokens(opts.steps * opts.batch, opts.seq)
    print(
        f"co2cb HF Trainer overhead: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.2f}; torch {torch.__version__}, {opts.threads} thread(s)"
    )
    print(
        f"tiny BERT (hidden {opts.hidden}, 2 layers), batch {opts.batch} x {opts.seq} tokens, {opts.epochs} epochs "
        f"x {opts.steps} steps, logging every {opts.logging_steps} steps; {opts.pairs} pairs, rotating order"
    )
    wall: dict[str, list[float]] = {s: [] for s in setups}
    cpu: dict[str, list[float]] = {s: [] for s in setups}
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-hf-") as folder:
        tmp = Path(folder)
        for s in setups:  # warm-up: imports, first-call costs
            run(s, opts, data, tmp, -1)
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
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-hf-") as folder:
        instrumented(opts, data, Path(folder))
    print(f"\nload at the end {os.getloadavg()[0]:.2f} (rerun when it is high: timings move on a shared VM)")


if __name__ == "__main__":
    main()
