"""Overhead of co2cb's Keras CO2Callback on a small model: callback on against off, interleaved.

Run with the backend of your choice (Keras picks it at import)::

    KERAS_BACKEND=tensorflow python benchmarks/bench_keras.py
    KERAS_BACKEND=torch python benchmarks/bench_keras.py --rounds 9

Each round runs one ``fit`` per configuration, in a rotating order (interleaved, so drifts of the
machine hit every configuration alike), on the same compiled model after a warm-up fit of each:

* ``off``: no callback (the baseline);
* ``epoch``: ``CO2Callback()`` with its defaults (per-epoch values, step timestamps, run record);
* ``steps``: ``CO2Callback(log_steps=N)``: per-step values in the batch logs every N batches;
* ``steps_sync`` (torch and JAX backends): the same with ``async_safe = False``, as a callback that
  overrides ``on_train_batch_end`` without declaring it would be: Keras then runs every callback's
  batch end on the main thread instead of its thread pool (TensorFlow never uses the pool).

The overhead of a configuration is the median over rounds of its fit's time over the baseline's in
the same round, minus one (with the interquartile range of those ratios), in wall time and in the
process's CPU time (all threads; steadier when other processes share the CPUs). On a shared or small
machine both are noisy, so the callback's own cost is also timed directly: the CPU time spent in its
hooks (thread CPU time: waiting for the GIL or for a CPU does not count), split into per fit (start
and stop of the run: meter discovery, run folder, summary), per epoch and per step; the CPU time of
co2cb's sampler thread; the same time for an empty callback's batch hooks (the floor of a timed hook
in a fit: the clock reads and the cold caches after a training step); and the batch hooks alone,
called in a loop.

Last, ``--hook-fits`` fits in which co2cb's callback, a CodeCarbon callback with one task per epoch
(``start_task``/``stop_task`` on an offline tracker) and an empty callback share the model, every hook of
theirs wrapped in a wall clock: the time inside each callback's in-loop hooks (all but ``on_train_begin``
and ``on_train_end``), per step and as a share of the fit's wall time, with co2cb's 0.5 % target
(``--hooks-only`` runs this part alone). Each fit has ``--batches`` training batches per epoch and
``--val-batches`` validation batches after each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

os.environ.setdefault("CO2CB_QUIET", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hook_clock as hc
import keras
import numpy as np

import co2cb
from co2cb.keras import CO2Callback

HOOKS_TARGET_PCT = 0.5  # time inside co2cb's in-loop hooks, share of the fit's wall time

FIT_HOOKS = ("on_train_begin", "on_train_end")
EPOCH_HOOKS = ("on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end")
STEP_HOOKS = ("on_train_batch_begin", "on_train_batch_end")


def timed(cls: type[CO2Callback], name: str) -> type[CO2Callback]:
    """``cls`` with its hooks timed (into ``self.hook_s``); ``async_safe`` kept as ``cls`` has it."""

    def wrap(hook: str) -> Callable[..., Any]:
        method = getattr(cls, hook)

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()  # CPU time of this thread: waits for the GIL or a CPU do not count
            try:
                return method(self, *args, **kwargs)
            finally:
                self.hook_s[hook] += time.thread_time() - start

        return run

    namespace: dict[str, Any] = {hook: wrap(hook) for hook in FIT_HOOKS + EPOCH_HOOKS + STEP_HOOKS}
    return type(name, (cls,), namespace)


class SyncCO2Callback(CO2Callback):
    """CO2Callback without ``async_safe``: per-step logging done the plain way."""

    async_safe = False


class EmptyCallback(keras.callbacks.Callback):
    """Batch hooks that do nothing (async-safe, as CO2Callback): timed, the floor of a timed hook in a fit."""

    async_safe = True

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        pass


TimedCO2Callback = timed(CO2Callback, "TimedCO2Callback")
TimedSyncCO2Callback = timed(SyncCO2Callback, "TimedSyncCO2Callback")
TimedEmptyCallback = timed(EmptyCallback, "TimedEmptyCallback")


def set_threads(n: int) -> None:
    """Limit the backend's own thread pools (before any op runs)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(n)
        torch.set_num_interop_threads(n)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)


def model(width: int) -> keras.Model:
    m = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    m.compile(optimizer="adam", loss="mse")
    return m


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds (each runs every configuration once)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit")
    parser.add_argument("--batches", type=int, default=100, help="training batches per epoch")
    parser.add_argument("--val-batches", type=int, default=10, help="validation batches after each epoch (0: none)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=128, help="units of the two hidden layers")
    parser.add_argument("--log-steps", type=int, default=1, help="N of the per-step configurations")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads of the backend (0: its default); 1 is steadier on a busy machine",
    )
    parser.add_argument("--hook-fits", type=int, default=5, help="fits with every callback's hooks timed")
    parser.add_argument("--hooks-only", action="store_true", help="only the fits with timed hooks")
    parser.add_argument("--no-codecarbon", action="store_true")
    args = parser.parse_args()
    if args.threads:
        set_threads(args.threads)

    rng = np.random.default_rng(0)
    n = args.batches * args.batch_size
    x = rng.standard_normal((n, 32), dtype=np.float32)
    y = x[:, :1] * 2 + 1
    val = (
        (x[: args.val_batches * args.batch_size], y[: args.val_batches * args.batch_size]) if args.val_batches else None
    )
    net = model(args.width)
    out = tempfile.mkdtemp(prefix="co2cb-bench-keras-")
    cc_cls = None if args.no_codecarbon else hc.codecarbon_class()
    print(
        f"co2cb {co2cb.__version__}, keras {keras.__version__}, backend {keras.backend.backend()}, {os.cpu_count()} "
        f"CPUs, load average {hc.load_average()}; {args.epochs} epochs x {args.batches} batches of {args.batch_size} "
        f"(Dense {args.width}x2, adam), {args.val_batches} validation batches after each; threads "
        f"{args.threads or 'default'}"
    )
    net.fit(x, y, epochs=1, batch_size=args.batch_size, verbose=0, validation_data=val)  # tracing, first calls
    if not args.hooks_only:
        paired(args, net, x, y, val, out)
    hook_fits(args, net, x, y, val, out, cc_cls)
    print(f"\nload average at the end: {hc.load_average()}")


def paired(args: argparse.Namespace, net: keras.Model, x: Any, y: Any, val: Any, out: str) -> None:
    """Fits with and without the callback in rounds; the callback's CPU time in its hooks; the hot path alone."""
    backend = keras.backend.backend()
    configs = ["off", "epoch", "steps"] + (["steps_sync"] if backend != "tensorflow" else [])
    hooks: dict[str, dict[str, list[float]]] = {c: defaultdict(list) for c in configs}
    sampler_cpu: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, list[float]] = defaultdict(list)  # CPU time of the whole process (all threads) per fit

    def fit(config: str) -> float:
        callbacks = []
        if config != "off":  # built before the clock starts: construction checks the options (not training)
            cls = TimedSyncCO2Callback if config == "steps_sync" else TimedCO2Callback
            callbacks = [cls(log_steps=0 if config == "epoch" else args.log_steps, output_dir=out)]
            callbacks[0].hook_s = defaultdict(float)
        start, cpu_start = time.perf_counter(), time.process_time()
        net.fit(
            x,
            y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=0,
            shuffle=False,
            callbacks=callbacks,
            validation_data=val,
        )
        seconds = time.perf_counter() - start
        cpu[config].append(time.process_time() - cpu_start)
        if callbacks:
            cb = callbacks[0]
            for hook, s in cb.hook_s.items():
                hooks[config][hook].append(s)
            end = next(r for r in co2cb.read_records(cb.tracker.run_folder) if r["type"] == "summary")
            sampler_cpu[config].append(end["sampler_cpu_s"])
        return seconds

    for config in configs:  # warm-up: tracing, first-call allocations, meter discovery
        fit(config)
    for config in configs:
        hooks[config].clear()
        sampler_cpu[config].clear()
        cpu[config].clear()
    times: dict[str, list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for config in order:
            times[config].append(fit(config))

    steps = args.epochs * args.batches
    base = statistics.median(times["off"])
    print(
        f"keras {keras.__version__}, backend {backend}, {os.cpu_count()} CPUs; {args.rounds} rounds of "
        f"{args.epochs} epochs x {args.batches} batches of {args.batch_size} (Dense {args.width}x2, adam); "
        f"threads {args.threads or 'default'}"
    )
    print(
        f"baseline: {base:.3f} s per fit, {base / steps * 1e3:.3f} ms per step (median); process CPU "
        f"{statistics.median(cpu['off']):.3f} s per fit; load average {os.getloadavg()[0]:.2f} at the end"
    )
    labels = {
        "epoch": "CO2Callback() (epoch level)",
        "steps": f"CO2Callback(log_steps={args.log_steps})",
        "steps_sync": "  same, batch ends synchronous",
    }
    print(
        f"\n{'configuration':<34} {'wall time':>9} {'IQR':>18} {'CPU time':>9} {'IQR':>18}   "
        f"{'in hooks: per fit':>17} {'per epoch':>10} {'per step':>9} {'sampler CPU':>12} {'hooks+sampler':>14}"
    )

    def overhead(values: list[float], baseline: list[float]) -> tuple[float, float, float]:
        ratios = [v / b - 1 for v, b in zip(values, baseline)]
        q1, med, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        return med, q1, q3

    for config in configs[1:]:
        med, q1, q3 = overhead(times[config], times["off"])
        cmed, cq1, cq3 = overhead(cpu[config], cpu["off"])
        per = {k: statistics.median(v) for k, v in hooks[config].items()}
        fit_ms = sum(per.get(h, 0.0) for h in FIT_HOOKS) * 1e3
        epoch_ms = sum(per.get(h, 0.0) for h in EPOCH_HOOKS) / args.epochs * 1e3
        step_us = sum(per.get(h, 0.0) for h in STEP_HOOKS) / steps * 1e6
        sampler = statistics.median(sampler_cpu[config])
        share = (sum(per.values()) + sampler) / statistics.median(times[config])
        print(
            f"{labels[config]:<34} {med:>+9.2%} [{q1:+6.2%}, {q3:+6.2%}] {cmed:>+9.2%} [{cq1:+6.2%}, {cq3:+6.2%}]   "
            f"{fit_ms:>14.1f} ms {epoch_ms:>7.2f} ms {step_us:>6.1f} us {sampler * 1e3:>9.1f} ms {share:>14.2%}"
        )
    print(
        "\nwall time / CPU time: median over rounds of (fit with the callback / fit without, same round) - 1;"
        " CPU time is the\nprocess's (all threads), steadier than wall time when other processes share the CPUs."
        "\nin hooks: CPU time of the callback's hooks. hooks+sampler: that plus the sampler thread's CPU time,"
        " over the fit's\nwall time. In a long fit the per-fit part vanishes; what stays is per epoch, per step and"
        " the sampler."
    )
    empty = TimedEmptyCallback()
    empty.hook_s = defaultdict(float)
    net.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=0,
        shuffle=False,
        callbacks=[empty],
        validation_data=val,
    )
    floor_us = sum(empty.hook_s[h] for h in STEP_HOOKS) / steps * 1e6
    print(f"floor: an empty callback's batch hooks, timed the same way in one more fit: {floor_us:.1f} us per step")
    hot_path(net, args, out)


class CodeCarbonEpochTasks(keras.callbacks.Callback):
    """One CodeCarbon task per training epoch (``start_task``/``stop_task`` on an offline tracker, not started)."""

    def __init__(self, cls: Any) -> None:
        super().__init__()
        self.cls = cls
        self.tracker: Any = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.tracker = hc.codecarbon_tracker(self.cls)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.tracker.start_task(f"epoch-{epoch}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.tracker.stop_task()


def hook_fits(args: argparse.Namespace, net: keras.Model, x: Any, y: Any, val: Any, out: str, cc_cls: Any) -> None:
    """Fits with co2cb's callback, CodeCarbon's per-epoch tasks and an empty callback on one model, hooks timed."""
    hooks = FIT_HOOKS + EPOCH_HOOKS + STEP_HOOKS
    fits: list[hc.Fit] = []
    for r in range(max(1, args.hook_fits) + 1):  # the first fit warms the callbacks up: left out
        timed: dict[str, Any] = {"co2cb": CO2Callback(output_dir=out), "empty callback": EmptyCallback()}
        if cc_cls is not None:
            timed["codecarbon tasks"] = CodeCarbonEpochTasks(cc_cls)
        clocks = {label: hc.HookClock(cb, hooks, keras.callbacks.Callback) for label, cb in timed.items()}
        order = list(timed.values()) if r % 2 == 0 else list(reversed(timed.values()))
        start = time.perf_counter()
        net.fit(
            x,
            y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            verbose=0,
            shuffle=False,
            callbacks=order,
            validation_data=val,
        )
        if r:
            fits.append(hc.Fit(time.perf_counter() - start, args.epochs * args.batches, clocks))
    hc.print_shares(
        fits,
        {label: FIT_HOOKS for label in fits[0].clocks},
        HOOKS_TARGET_PCT,
        f"time inside each callback's hooks (wall), {len(fits)} fits with all of them on the same model; in-loop = "
        f"all but {', '.join(FIT_HOOKS)}",
    )
    begin = [t for f in fits for t in f.clocks["co2cb"].durations.get("on_train_begin", [])]
    print(
        f"co2cb on_train_begin: median {statistics.median(begin) * 1e3:.2f} ms over {len(begin)} fits (not the first)"
    )


def hot_path(net: keras.Model, args: argparse.Namespace, out: str, calls: int = 20_000, repeats: int = 5) -> None:
    """The batch hooks alone, called in a loop on a started callback (no training around them: less noise)."""
    print(f"\nbatch hooks alone ({calls} calls, best of {repeats} repeats), per training batch:")
    for log_steps in sorted({0, 1, 50, args.log_steps}):
        label = f"CO2Callback(log_steps={log_steps})" if log_steps else "CO2Callback()"
        cb = CO2Callback(log_steps=log_steps, output_dir=out)
        callbacks = keras.callbacks.CallbackList([cb], model=net, epochs=1, steps=calls, verbose=0)
        callbacks.on_train_begin()  # through a CallbackList, as fit does (the loop below calls cb alone)
        cb.on_epoch_begin(0)
        best = float("inf")
        logs: dict[str, float] = {}
        for _ in range(repeats):
            start = time.perf_counter()
            for i in range(calls):
                cb.on_train_batch_begin(i)
                cb.on_train_batch_end(i, logs)
            best = min(best, (time.perf_counter() - start) / calls)
        cb.on_epoch_end(0, {})
        callbacks.on_train_end()
        print(f"  {label:<32} {best * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
