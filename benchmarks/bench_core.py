"""Overhead of co2cb's core, next to the peers' window calls.

Run from the repository root::

    python benchmarks/bench_core.py            # full run, about 100 s on 2 vCPUs
    python benchmarks/bench_core.py --quick    # about 50 s
    python benchmarks/bench_core.py --no-peers # co2cb only

It prints tables and asserts nothing: this is a measurement, not a test. Every
target is printed next to its measurement with "ok" or "OVER". What each row
means is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

os.environ.setdefault("CO2CB_QUIET", "1")  # no announcement lines between the tables

import co2cb
from co2cb.meters.base import Component, Meter, MeterInfo, Provenance, ReadingKind

try:
    from co2cb.meters.cpu import read_cpu_model
except ImportError:  # the layout before the meters/cpu package (benchmarks run against an earlier commit)
    from co2cb.meters.cpu_model import read_cpu_model  # type: ignore[no-redef]

STEP_TARGET_US = 2.0
EPOCH_TARGET_US = 200.0  # an epoch window of the live-export table
EPOCH_SAVE_TARGET_US = {False: 100.0, True: 150.0}  # a recorded epoch window with save=True, by sync_boundaries
MEMORY_TARGET_MB = 10.0
SAMPLER_TARGET_PCT = 0.5

# Measured earlier on this kind of machine (2 vCPUs, no GPU), for comparison.
EARLIER_US = {
    "codecarbon": 1543.0,
    "carbontracker": 23.0,
    "zeus": 3.6,
    "reference": 0.4,
}


# --------------------------------------------------------------------------- sizes
@dataclass(frozen=True)
class Sizes:
    batch: int  # pairs per batch sample of the fast calls
    batch_samples: int
    singles: int  # single-pair samples of the fast calls
    epoch_fast: int  # pairs: epoch window, no sync, no save
    epoch_save: int  # pairs: epoch window, no sync, fsync on close
    epoch_sync: int  # pairs: epoch window with synchronous meter reads
    memory_steps: int
    fold_steps: int
    sampler_s: float
    convoy_s: float
    export_s: float  # seconds each live-export cell is timed
    codecarbon: int
    peer_batch_samples: int
    peer_singles: int


FULL = Sizes(1000, 2000, 200_000, 3000, 1000, 200, 1_000_000, 200_000, 20.0, 4.0, 4.0, 300, 300, 20_000)
QUICK = Sizes(1000, 300, 30_000, 500, 200, 50, 1_000_000, 100_000, 5.0, 2.0, 2.0, 80, 60, 3000)


# --------------------------------------------------------------------------- timing
@dataclass
class Dist:
    """Per-pair times in microseconds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def p99(self) -> float:
        if not self.values:
            return math.nan
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(0.99 * len(ordered)) - 1))]  # nearest rank

    @property
    def n(self) -> int:
        return len(self.values)


def _timer(stmt: str, names: dict[str, Any]) -> timeit.Timer:
    # Garbage collection stays on while timing (timeit turns it off by default).
    return timeit.Timer(stmt, setup="gc.enable()", timer=time.perf_counter_ns, globals={"gc": gc, **names})


def batches(stmt: str, names: dict[str, Any], batch: int, samples: int) -> Dist:
    """Time ``samples`` batches of ``batch`` pairs; one value per batch: its mean per pair."""
    t = _timer(stmt, names)
    t.timeit(min(batch, 100))  # warm up
    return Dist([t.timeit(batch) / batch / 1000 for _ in range(samples)])


def singles(stmt: str, names: dict[str, Any], samples: int) -> Dist:
    """Time ``samples`` pairs one by one (includes one clock read: see the timer-floor row)."""
    t = _timer(stmt, names)
    t.timeit(min(samples, 10))
    one = t.timeit
    return Dist([one(1) / 1000 for _ in range(samples)])


# --------------------------------------------------------------------------- output
@dataclass
class Row:
    label: str
    median: str
    p99: str = ""
    target: str = ""
    check: str = ""
    n: str = ""


@dataclass
class Table:
    title: str
    head: tuple[str, ...] = ("measurement", "median", "p99", "target", "check", "samples")
    rows: list[Row | str] = field(default_factory=list)

    def add(self, row: Row | str) -> None:
        self.rows.append(row)

    def render(self) -> str:
        cells = [list(self.head)] + [
            [r.label, r.median, r.p99, r.target, r.check, r.n] for r in self.rows if isinstance(r, Row)
        ]
        widths = [max(len(c[i]) for c in cells) for i in range(len(self.head))]

        def line(c: list[str]) -> str:
            return "  ".join(c[0].ljust(widths[0]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(c)))

        rule = "-" * len(line(cells[0]))
        out = [self.title, rule, line(cells[0]), rule]
        for r in self.rows:
            out.append(line([r.label, r.median, r.p99, r.target, r.check, r.n]) if isinstance(r, Row) else f"  {r}")
        out.append(rule)
        return "\n".join(out)


def us(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if v < 10:
        return f"{v:.2f} us"
    if v < 1000:
        return f"{v:.1f} us"
    return f"{v:,.0f} us"


def check(value: float, limit: float) -> str:
    return "ok" if value <= limit else "OVER"


def dist_row(label: str, d: Dist, limit: float | None = None, unit_n: str = "") -> Row:
    target = f"<= {limit:g} us" if limit is not None else ""
    return Row(
        label,
        us(d.median),
        us(d.p99),
        target,
        check(d.median, limit) if limit is not None else "",
        f"{d.n:,}{unit_n}",
    )


# --------------------------------------------------------------------------- co2cb
def tracker(**kwargs: Any) -> co2cb.Tracker:
    options: dict[str, Any] = {"save": False, "intensity": 400, "interval_s": 1.0}
    options.update(kwargs)
    return co2cb.Tracker(**options)


def started(t: co2cb.Tracker) -> co2cb.Tracker:
    """``t`` started and settled for 20 ms: rows time the steady state."""
    t.start()
    time.sleep(0.02)
    return t


def bench_steps(sz: Sizes, table: Table) -> dict[str, Dist]:
    """Reference, timer floor, and the step window with and without the sampler running."""
    out: dict[str, Dist] = {}
    ref_stmt = "a(pc()); a(pc())"
    lst: list[int] = []
    ref_names = {"a": lst.append, "pc": time.perf_counter_ns}
    out["reference"] = batches(ref_stmt, ref_names, sz.batch, sz.batch_samples)
    lst.clear()
    ref_single = singles(ref_stmt, ref_names, sz.singles)
    lst.clear()
    floor = singles("pass", {}, sz.singles)
    ref_row = dist_row(f"reference: 2x list.append(perf_counter_ns()), batches of {sz.batch}", out["reference"])
    ref_row.target = f"(earlier {us(EARLIER_US['reference'])})"
    table.add(ref_row)
    table.add(dist_row("reference: same, timed one pair at a time", ref_single))
    table.add(dist_row("timer floor: empty statement timed alone (in every single-pair row)", floor))

    stmt = "b('step', record=False); e('step')"
    idle = tracker()  # never started: no sampler thread, nothing folds
    names = {"b": idle.begin, "e": idle.end}
    out["step_idle"] = batches(stmt, names, sz.batch, sz.batch_samples)
    idle_single = singles(stmt, names, sz.singles)
    table.add(dist_row(f"step window, tracker not started, batches of {sz.batch}", out["step_idle"], STEP_TARGET_US))
    table.add(dist_row("step window, tracker not started, one pair at a time", idle_single, STEP_TARGET_US))
    del idle, names

    run = started(tracker())  # sampler at 1 s, folding concurrently
    names = {"b": run.begin, "e": run.end}
    out["step"] = batches(stmt, names, sz.batch, sz.batch_samples)
    run_single = singles(stmt, names, sz.singles)
    run.stop()
    table.add(dist_row(f"step window, tracker running (1 s), batches of {sz.batch}", out["step"], STEP_TARGET_US))
    table.add(dist_row("step window, tracker running (1 s), one pair at a time", run_single, STEP_TARGET_US))
    return out


class MeasuringMeter(Meter):
    """A counter that measures (50 W from the clock): read at every boundary with sync_boundaries, as a GPU is."""

    reading = ReadingKind.COUNTER

    @property
    def info(self) -> MeterInfo:
        return MeterInfo("bench:counter", Component.CPU, Provenance.MEASURED_COUNTER)

    def read(self) -> float:
        return 50.0 * time.perf_counter()


def bench_epochs(sz: Sizes, table: Table) -> dict[tuple[bool, bool], Dist]:
    """Recorded epoch windows: sync_boundaries x save; then with a meter that measures (both edges read)."""
    out: dict[tuple[bool, bool], Dist] = {}
    stmt = "b('epoch'); e('epoch')"
    for sync in (False, True):
        for save in (False, True):
            n = sz.epoch_sync if sync else (sz.epoch_save if save else sz.epoch_fast)
            with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as folder:
                t = started(tracker(sync_boundaries=sync, save=save, output_dir=folder))
                d = singles(stmt, {"b": t.begin, "e": t.end}, n)
                t.stop()
            out[sync, save] = d
            what = "save=True (a line per close)" if save else "save=False"
            label = f"epoch window, sync_boundaries={sync!s:<5}, {what}"
            table.add(dist_row(label, d, EPOCH_SAVE_TARGET_US[sync] if save else EPOCH_TARGET_US))
    with tempfile.TemporaryDirectory(prefix="co2cb-bench-") as folder:
        t = started(tracker(sync_boundaries=True, save=True, output_dir=folder, meters=[MeasuringMeter()]))
        d = singles(stmt, {"b": t.begin, "e": t.end}, sz.epoch_sync)
        t.stop()
    table.add(dist_row("  same, sync + save, a meter that measures (both edges read, on the sampler's thread)", d))
    return out


def bench_epoch_parts(sz: Sizes, table: Table) -> None:
    """Where an epoch window's time goes (diagnostics, private attributes)."""
    t = tracker().start()
    sampler = t._sampler
    n = max(20, sz.epoch_sync)
    d = singles("r()", {"r": sampler.read_now}, n)
    table.add(dist_row("  part: one synchronous meter read (Sampler.read_now)", d))
    trees = {id(m._tree): m._tree for m in sampler.meters if getattr(m, "_tree", None) is not None}
    for tree in trees.values():
        d = singles("m()", {"m": tree._members}, n)
        table.add(dist_row(f"  part: ProcessTree._members() (psutil children walk, {len(psutil.pids())} processes)", d))
        d = singles("r()", {"r": tree.rss_bytes}, n)
        table.add(dist_row("  part: ProcessTree.rss_bytes() (ram:estimate read, no cache)", d))
    result = t.end("run")
    if result is not None:
        d = singles("f()", {"f": result.as_record}, min(2000, 10 * sz.epoch_fast))
        table.add(dist_row("  part: WindowResult.as_record() (built on every close, even save=False)", d))
    t.stop()


def rss() -> int:
    return psutil.Process().memory_info().rss


def memory_row(label: str, grown: int) -> Row:
    mb = grown / 1e6
    return Row(label, f"{mb:.1f} MB", "", f"<= {MEMORY_TARGET_MB:g} MB", check(mb, MEMORY_TARGET_MB))


def _drive(t: co2cb.Tracker, steps: int) -> float:
    b, e = t.begin, t.end
    t0 = time.perf_counter()
    for _ in range(steps):
        b("step", record=False)
        e("step")
    return time.perf_counter() - t0


def _settle(t: co2cb.Tracker, limit_s: float = 20.0) -> Any:
    """step_stats() until every stamp is folded (the sampler's curve has passed the last one)."""
    deadline = time.monotonic() + limit_s
    while True:
        stats = t.step_stats("step")
        if stats.pending == 0 or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def memory_child(n: int, traced: bool) -> dict[str, Any]:
    """Run in a fresh process: memory before and after ``n`` step windows, sampler at 0.05 s."""
    if traced:
        tracemalloc.start()
    t = tracker(interval_s=0.05).start()
    _drive(t, 10_000)
    _settle(t)
    gc.collect()

    def live() -> int:
        with t._steps._fold_lock:  # no fold running: its scratch lists are not counted
            return tracemalloc.get_traced_memory()[0] if traced else rss()

    base = live()
    if traced:
        tracemalloc.reset_peak()
    wall = _drive(t, n)
    pending = t._steps.series["step"].pending
    end_loop = live()
    t0 = time.perf_counter()
    stats = _settle(t)
    settle_s = time.perf_counter() - t0
    gc.collect()
    after = live()
    peak = tracemalloc.get_traced_memory()[1] if traced else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t.stop()
    return {
        "wall_s": wall,
        "pending_at_end": pending,
        "end_loop": end_loop - base,
        "after_stats": after - base,
        "peak": peak - base,
        "settle_s": settle_s,
        "count": stats.count,
        "pending_after": stats.pending,
    }


def _run_child(n: int, traced: bool) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", str(n), *(["--traced"] if traced else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"memory child failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(sz: Sizes, table: Table) -> None:
    """Memory growth over many step windows with the sampler folding at 0.05 s, each pass in a fresh process."""
    n = sz.memory_steps
    label = f"{n:,} step windows"
    try:
        r = _run_child(n, traced=False)
        m = _run_child(n, traced=True)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
        table.add(f"memory benchmark failed: {e}")
        return
    table.add("sampler at 0.05 s, each pass in a fresh process; 'folded' = step_stats() repeated until 0 pending")
    table.add(memory_row(f"{label}: RSS growth at end of loop", r["end_loop"]))
    table.add(memory_row(f"{label}: RSS growth after step_stats(), all folded", r["after_stats"]))
    table.add(Row(f"{label}: peak RSS above start", f"{r['peak'] / 1e6:.1f} MB"))
    pending = f"{m['pending_at_end']:,} stamps pending"
    table.add(memory_row(f"{label}: live Python memory growth at end of loop ({pending})", m["end_loop"]))
    table.add(memory_row(f"{label}: live Python memory growth after step_stats(), all folded", m["after_stats"]))
    table.add(Row(f"{label}: tracemalloc peak above start (fold scratch lists)", f"{m['peak'] / 1e6:.1f} MB"))
    table.add(Row(f"{label}: time per pair while the sampler folds", us(r["wall_s"] / n * 1e6), n=f"{n:,}"))
    table.add(
        Row(
            f"  catching up after the loop ({r['pending_at_end']:,} stamps pending, {r['count']:,} steps in all)",
            f"{r['settle_s'] * 1e3:.0f} ms",
        )
    )


def bench_fold(sz: Sizes, table: Table) -> None:
    """CPU the folding costs per step (done off the hot path, by the sampler or step_stats)."""
    n = sz.fold_steps
    t = tracker(interval_s=60.0).start()  # no background tick during the measurement
    _drive(t, n)
    t._sampler.read_now()  # the curve now covers every step
    t0 = time.perf_counter()
    stats = t.step_stats("step")
    spent = time.perf_counter() - t0
    t.stop()
    label = f"fold cost per step (step_stats over {stats.count:,} pending steps)"
    table.add(Row(label, us(spent / max(1, n) * 1e6), n=f"{n:,}"))


def bench_sampler(sz: Sizes, table: Table) -> None:
    """Sampler thread CPU at interval 1 s, and the process's CPU during an idle sleep with and without it."""
    gc.collect()
    secs = sz.sampler_s
    c0 = time.process_time()
    time.sleep(secs)
    without = time.process_time() - c0

    t = tracker(interval_s=1.0)
    ticks = 0
    on_tick = t._sampler._on_tick

    def counting() -> None:
        nonlocal ticks
        ticks += 1
        if on_tick is not None:
            on_tick()

    t._sampler._on_tick = counting
    w0 = time.perf_counter()
    t.start()
    c0 = time.process_time()
    time.sleep(secs)
    with_tracker = time.process_time() - c0
    t.stop()
    wall = time.perf_counter() - w0
    ticks = max(1, ticks)
    pct = t._sampler.cpu_seconds / wall * 100
    table.add(
        Row(
            f"sampler thread CPU (cpu_seconds / wall), interval 1 s, {secs:g} s",
            f"{pct:.3f} %",
            "",
            f"<= {SAMPLER_TARGET_PCT:g} %",
            check(pct, SAMPLER_TARGET_PCT),
            f"{ticks} ticks",
        )
    )
    table.add(Row("  sampler CPU per tick", f"{t._sampler.cpu_seconds / ticks * 1e3:.2f} ms"))
    table.add(Row(f"process CPU during idle sleep({secs:g}), no tracker", f"{without / secs * 100:.3f} %"))
    table.add(Row(f"process CPU during idle sleep({secs:g}), tracker running", f"{with_tracker / secs * 100:.3f} %"))
    diff = (with_tracker - without) / secs * 100
    table.add(
        Row(
            "  difference (cross-check of the sampler row)",
            f"{diff:.3f} %",
            "",
            f"<= {SAMPLER_TARGET_PCT:g} %",
            check(diff, SAMPLER_TARGET_PCT),
        )
    )


def bench_convoy(sz: Sizes, table: Table) -> None:
    """How long one background meter reading takes while the main thread runs pure-Python code.

    Every GIL release inside a reading (each /proc read) waits up to sys.getswitchinterval()
    to get the GIL back from a busy main thread, so readings that make many syscalls stretch.
    """
    t = tracker(interval_s=60.0).start()  # its own sampler stays asleep; a helper thread reads
    read_now = t._sampler.read_now
    idle: list[float] = []
    busy: list[float] = []
    state = {"sink": idle, "stop": False}

    def reader() -> None:
        while not state["stop"]:
            t0 = time.perf_counter()
            read_now()
            state["sink"].append((time.perf_counter() - t0) * 1e6)  # type: ignore[union-attr]
            time.sleep(0.05)

    th = threading.Thread(target=reader, name="bench-reader", daemon=True)
    th.start()
    time.sleep(0.6)
    state["sink"] = busy
    end = time.perf_counter() + sz.convoy_s
    spins = 0
    while time.perf_counter() < end:  # the main thread holds the GIL except at switch intervals
        spins += 1
    state["stop"] = True
    th.join()
    t.stop()
    table.add(dist_row("one meter reading from a thread, main thread idle", Dist(idle)))
    table.add(dist_row("one meter reading from a thread, main thread running Python", Dist(busy)))
    switch_ms = sys.getswitchinterval() * 1e3
    table.add(f"  switch interval {switch_ms:g} ms: each GIL release inside a reading may wait that long to resume")


# --------------------------------------------------------------------------- live export
_PUSH_SINK = """
import http.server, sys, threading, time
class Sink(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_port, flush=True)
time.sleep(3600)  # an hour at most
"""
_SCRAPER = """
import signal, sys, time, urllib.request
served = 0
def done(*_):
    print(served, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for _ in range(36_000):  # an hour at most
    try:
        opener.open(sys.argv[1], timeout=5).read()
        served += 1
    except OSError:
        pass
    time.sleep(0.1)
done()
"""


class Detached:
    """A Python helper in a process that is not this one's child (as Prometheus and a Pushgateway are not).

    A child would join the measured process tree (process scope) and make every meter read walk one
    more process: that, not the exporters, would be timed.
    """

    def __init__(self, code: str, *args: str) -> None:
        self._out = tempfile.NamedTemporaryFile(prefix="co2cb-bench-", suffix=".out", delete=False)  # noqa: SIM115
        self._out.close()
        shell = 'nohup "$0" -c "$1" "$2" > "$3" 2>&1 & echo $!'
        started = subprocess.run(
            ["sh", "-c", shell, sys.executable, code, *(args or ("",)), self._out.name],
            capture_output=True,
            text=True,
            check=True,
        )
        self.pid = int(started.stdout.strip())

    def first_line(self, timeout_s: float = 10.0) -> str:
        """The first line the helper printed (waits for it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with open(self._out.name) as f:
                line = f.readline()
            if line.endswith("\n"):
                return line.strip()
            time.sleep(0.05)
        return ""

    def stop(self) -> str:
        """End the helper; what it printed last."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 15)
        text = ""
        for _ in range(100):
            with open(self._out.name) as f:
                text = f.read().strip()
            if text:
                break
            time.sleep(0.05)
        os.unlink(self._out.name)
        return text.splitlines()[-1] if text else "?"


def _otel_collecting() -> bool:
    """Install an OpenTelemetry SDK MeterProvider that collects every 0.1 s (to /dev/null), if the SDK is there."""
    try:
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    except ImportError:
        return False
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process's provider
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=sink), export_interval_millis=100)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return True


def bench_export(sz: Sizes, table: Table) -> None:
    """Step and epoch windows without and with the live exporters, side by side in this run.

    "scraped": /metrics scraped every 0.1 s by another process, and OpenTelemetry collected every
    0.1 s in this process (the SDK's reader thread, as in an application). "+ push": also a push
    asked for at every recorded window's close, to a Pushgateway stand-in in another process; the
    epoch windows here close thousands of times a second, which the pusher merges into one push a
    second. The sampler runs at 0.05 s in every cell, so the exporters' snapshot is taken 20 times a
    second.
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        table.add("live export skipped: prometheus_client is not installed (pip install 'co2cb[prometheus]')")
        return
    otel = _otel_collecting()
    sink = Detached(_PUSH_SINK)
    try:
        gateway = f"http://127.0.0.1:{sink.first_line()}"
        scraped = {"prometheus_port": 0, "opentelemetry": otel}
        configs = (("no export", {}), ("scraped", scraped), ("scraped + push", {**scraped, "pushgateway": gateway}))
        for sync in (None, False, True):  # None: step windows
            for label, options in configs:
                w0 = time.perf_counter()
                t = started(tracker(interval_s=0.05, sync_boundaries=bool(sync), **options))
                scraper = Detached(_SCRAPER, t.prometheus_url) if t.prometheus_url else None
                time.sleep(0.5)  # the scraper is up (and the same pause without one)
                names = {"b": t.begin, "e": t.end}
                if sync is None:
                    stmt, n, limit = "b('step', record=False); e('step')", sz.batch_samples, STEP_TARGET_US
                    what = f"step window, batches of {sz.batch}"
                else:
                    stmt, n, limit = "b('epoch'); e('epoch')", sz.epoch_sync if sync else sz.epoch_fast, EPOCH_TARGET_US
                    what = f"epoch window, sync_boundaries={sync!s:<5}, save=False"
                values: list[float] = []
                end = time.perf_counter() + sz.export_s  # long enough for many scrapes, pushes and ticks
                while time.perf_counter() < end:
                    got = batches(stmt, names, sz.batch, n) if sync is None else singles(stmt, names, n)
                    values += got.values
                t.stop()
                ticks = max(1.0, (time.perf_counter() - w0) / 0.05)  # about one per 0.05 s
                table.add(dist_row(f"{what}, {label}", Dist(values), limit))
                notes = [f"sampler CPU {t._sampler.cpu_seconds / ticks * 1e3:.2f} ms per tick"]
                if scraper is not None:
                    notes.append(f"{scraper.stop()} scrapes served")
                pusher = t._live.exporter.pusher if t._live is not None else None
                if pusher is not None:
                    notes.append(f"{pusher.pushes} pushes, {pusher.failures} failed")
                if options and otel:
                    notes.append("OpenTelemetry collected every 0.1 s")
                table.add(f"    {label}: " + ", ".join(notes))
    finally:
        sink.stop()
    if not otel:
        table.add("    opentelemetry-sdk is not installed: no OpenTelemetry collection in these rows")


# --------------------------------------------------------------------------- peers
@contextlib.contextmanager
def captured() -> Iterator[dict[str, str]]:
    """Send file descriptors 1 and 2 to a scratch file (peers print banners and warnings)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    box: dict[str, str] = {"text": ""}
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield box
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            box["text"] = sink.read().decode(errors="replace")


@dataclass
class PeerResult:
    name: str
    call: str
    d: Dist | None = None
    batch: Dist | None = None
    note: str = ""
    error: str = ""


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def peer_codecarbon(sz: Sizes) -> PeerResult:
    r = PeerResult("codecarbon", "OfflineEmissionsTracker.start_task()/stop_task()")
    from codecarbon import OfflineEmissionsTracker

    r.name += " " + _version("codecarbon")
    cc = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error")
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    try:
        r.d = singles("s('w'); e('w')", {"s": cc.start_task, "e": cc.stop_task}, sz.codecarbon)
    finally:
        cc.stop()
    r.note = "offline, FRA, save_to_file=False; start() not called (task-only use)"
    return r


def peer_zeus(sz: Sizes) -> PeerResult:
    r = PeerResult("zeus", "ZeusMonitor.begin_window()/end_window()")
    from zeus.monitor import ZeusMonitor

    r.name += " " + _version("zeus")
    zm = ZeusMonitor(gpu_indices=[], cpu_indices=[])
    names = {"b": zm.begin_window, "e": zm.end_window}
    r.batch = batches("b('w'); e('w')", names, 100, sz.peer_batch_samples)
    r.d = singles("b('w'); e('w')", names, sz.peer_singles)
    r.note = "gpu_indices=[], cpu_indices=[]: no device is read"
    return r


def peer_carbontracker(sz: Sizes) -> PeerResult:
    r = PeerResult("carbontracker", "CarbonTracker.epoch_start()/epoch_end()")
    from carbontracker.emissions.intensity.intensity import IntensityService
    from carbontracker.tracker import CarbonTracker

    r.name += " " + _version("carbontracker")
    # Offline: the constructor geolocates by IP (geocoder.ip("me")); no option turns that off.
    IntensityService._fetch_geo_location = lambda self: None  # type: ignore[method-assign]
    ct = CarbonTracker(
        epochs=10**9,  # never reach the end-of-monitoring report
        epochs_before_pred=0,
        monitor_epochs=10**9,
        update_interval=1,
        components="cpu",
        ignore_errors=True,  # with False, a missing component ends the process (os._exit)
        log_dir=None,
        verbose=0,
        interpretable=False,
        sim_cpu="benchmark-cpu",  # no RAPL here: a simulated CPU keeps a live component
        sim_cpu_tdp=100,
        sim_cpu_util=0.5,
    )
    for lg in (ct.logger.logger, ct.logger.logger_err, ct.logger.logger_output):
        lg.setLevel(logging.CRITICAL)
    time.sleep(0.2)  # let its thread find the component
    names = {"s": ct.epoch_start, "e": ct.epoch_end}
    try:
        r.batch = batches("s(); e()", names, 100, sz.peer_batch_samples)
        r.d = singles("s(); e()", names, sz.peer_singles)
    finally:
        if ct.deleted:
            r.error = "tracker deleted itself during the run: times are of a no-op"
        with contextlib.suppress(Exception):
            ct.stop()
    r.note = "offline (geolocation patched out), simulated CPU, its loggers silenced"
    return r


def bench_peers(sz: Sizes, step: Dist, epoch_nosync: Dist, epoch_sync: Dist) -> Table:
    head = ("peer call (one open+close)", "median", "p99", "earlier", "x co2cb step", "x epoch (nosync | sync)")
    table = Table("Peers, same run (ratios: peer median / co2cb median; sync = sync_boundaries, save=False)", head)
    results: list[PeerResult] = []
    for name, fn in (("codecarbon", peer_codecarbon), ("zeus", peer_zeus), ("carbontracker", peer_carbontracker)):
        with captured() as out:
            try:
                results.append(fn(sz))
            except ImportError as e:
                results.append(PeerResult(name, "", error=f"not installed ({e})"))
            except (Exception, SystemExit) as e:  # noqa: BLE001 - a peer that fails is reported, not fatal
                results.append(PeerResult(name, "", error=f"{type(e).__name__}: {e}"))
        if results[-1].error and out["text"].strip():
            results[-1].error += " | output: " + out["text"].strip().splitlines()[-1][:160]
    for r in results:
        key = r.name.split()[0]
        earlier = us(EARLIER_US[key]) if key in EARLIER_US else ""
        if r.d is None:
            table.add(Row(f"{r.name}: {r.error}", "-", "-", earlier))
            continue
        med = r.d.median
        ratio = f"{med / epoch_nosync.median:.2f} | {med / epoch_sync.median:.3f}"
        table.add(Row(f"{r.name} {r.call}", us(med), us(r.d.p99), earlier, f"{med / step.median:,.0f}x", ratio))
        table.add(f"    one pair at a time, {r.d.n:,} samples; {r.note}")
        if r.batch is not None:
            table.add(f"    batches of 100: median {us(r.batch.median)}, p99 {us(r.batch.p99)}")
        if r.error:
            table.add(f"    warning: {r.error}")
    return table


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 5 s sampler run (about 50 s)")
    parser.add_argument("--no-peers", action="store_true", help="skip CodeCarbon, Zeus and carbontracker")
    parser.add_argument("--windows-only", action="store_true", help="the window latency table alone")
    parser.add_argument("--memory-child", type=int, metavar="STEPS", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.traced)))
        return 0
    sz = QUICK if args.quick else FULL
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()

    probe = tracker()
    meters = ", ".join(probe._channels) or "none"
    del probe
    print(f"co2cb {co2cb.__version__} core benchmark ({'quick' if args.quick else 'full'})")
    print(f"  date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    model = read_cpu_model() or platform.processor() or "?"
    print(
        f"  python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{psutil.cpu_count()} logical CPUs ({model}), {len(psutil.pids())} processes"
    )
    print(f"  co2cb meters (process scope): {meters}")
    print("  load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print()

    lat = Table("co2cb window latency (one open+close pair)")
    steps = bench_steps(sz, lat)
    epochs = bench_epochs(sz, lat)
    bench_epoch_parts(sz, lat)
    print(lat.render(), flush=True)
    print()
    if args.windows_only:
        print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        return 0

    mem = Table("co2cb memory and folding")
    bench_memory(sz, mem)
    bench_fold(sz, mem)
    print(mem.render(), flush=True)
    print()

    live = Table("co2cb live export: the training thread's cost without and with every exporter (this run)")
    bench_export(sz, live)
    print(live.render(), flush=True)
    print()

    cpu = Table("co2cb sampler CPU")
    bench_sampler(sz, cpu)
    bench_convoy(sz, cpu)
    print(cpu.render(), flush=True)
    print()

    if not args.no_peers:
        print(bench_peers(sz, steps["step"], epochs[False, False], epochs[True, False]).render())
        print()
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"total time {time.perf_counter() - started:.0f} s; load average at the end: {load}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
