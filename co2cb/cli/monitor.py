"""``co2cb monitor``: measure the whole machine until stopped, the daemon a cluster node runs.

It measures in machine scope, serves and pushes the live metrics (the flags of ``co2cb run``), and
writes a run folder with a recorded window every ``--window`` seconds (each also a push to a
Pushgateway), so that a monitor killed outright still leaves its closed windows. SIGTERM or SIGINT
(Ctrl-C) end it cleanly: the last window, the summary line, the last push, a summary on stderr.
"""

from __future__ import annotations

import argparse
import math
import signal
import socket
import sys
import threading
import time
from typing import Any

from co2cb.cli.errors import flag_words
from co2cb.cli.export_args import add_export_arguments, add_measure_arguments, export_options
from co2cb.cli.run import summary_text
from co2cb.core.config import ConfigError
from co2cb.core.tracker import Tracker

WINDOW = "interval"
"""Name of the recorded windows the monitor closes every ``--window`` seconds."""
MAX_WINDOW_S = 86_400.0


def register(sub: Any) -> None:
    """Add the ``monitor`` subcommand."""
    p = sub.add_parser(
        "monitor",
        help="measure the whole machine until stopped, serving or pushing live metrics",
        description="Measure the whole machine (machine scope) until SIGTERM or Ctrl-C, write a run folder with "
        "a window every --window seconds, and serve or push the live metrics.",
    )
    add_measure_arguments(p, "monitor@HOST")
    p.add_argument(
        "--window", type=float, default=300.0, help="seconds between recorded windows and pushes (default 300)"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until stopped)")
    add_export_arguments(p)
    p.set_defaults(handler=handle)


def _check(args: argparse.Namespace) -> str | None:
    if not 0 < args.window <= MAX_WINDOW_S:
        return (
            f"--window {args.window:g} is not valid: give the seconds between recorded windows, more than 0 "
            f"and at most {MAX_WINDOW_S:g}"
        )
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        return f"--duration {args.duration:g} is not valid: give a number of seconds greater than 0, or leave it out"
    return None


def handle(args: argparse.Namespace) -> int:
    """Measure until SIGTERM/SIGINT (or ``--duration``); returns 0 after a clean stop, 2 for bad options."""
    problem = _check(args)
    if problem:
        print(f"co2cb monitor: {problem}", file=sys.stderr)
        return 2
    try:
        tracker = Tracker(
            run_name=args.name or f"monitor@{socket.gethostname()}",
            output_dir=args.output_dir,
            interval_s=args.interval,
            scope="machine",
            region=args.region,
            pue=args.pue,
            **export_options(args),
        )
    except ConfigError as e:
        print(f"co2cb monitor: {flag_words(str(e))}", file=sys.stderr)
        return 2
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: Any) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        tracker.start(header={"daemon": {"command": "co2cb monitor", "window_s": args.window}})
        until = f"for {args.duration:g} s" if args.duration else "until SIGTERM or Ctrl-C"
        record = f"; record in {tracker.run_folder}" if tracker.run_folder else ""
        print(
            f"co2cb monitor: measuring the whole machine every {tracker.config.interval:g} s, a window every "
            f"{args.window:g} s, {until}{record}",
            file=sys.stderr,
            flush=True,
        )
        _measure(tracker, stop, args.window, args.duration)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stopped_by = received[0] if received else "--duration"
        result = tracker.stop({"status": "completed", "stopped_by": stopped_by})
    if result is not None:
        print(f"co2cb monitor: stopped by {stopped_by}\n" + summary_text(result, tracker.run_folder), file=sys.stderr)
    return 0


def _measure(tracker: Tracker, stop: threading.Event, window_s: float, duration_s: float | None) -> None:
    """Close a recorded window every ``window_s`` until ``stop`` is set or ``duration_s`` has passed."""
    deadline = time.monotonic() + duration_s if duration_s else math.inf
    index = 0
    while not stop.is_set() and time.monotonic() < deadline:
        tracker.begin(WINDOW)
        stop.wait(max(0.0, min(time.monotonic() + window_s, deadline) - time.monotonic()))
        tracker.end(WINDOW, meta={"index": index})
        index += 1
