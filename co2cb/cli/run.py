"""``co2cb run -- CMD ARGS...``: measure a command's whole process tree."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

from co2cb.cli.errors import flag_words
from co2cb.cli.export_args import add_export_arguments, add_measure_arguments, export_options
from co2cb.core.config import ConfigError
from co2cb.core.results import WindowResult
from co2cb.core.tracker import Tracker
from co2cb.units import JOULES_PER_KWH, format_energy, format_mass


def register(sub: Any) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser(
        "run",
        help="run a command and measure its energy and CO2",
        description="Run CMD, measure it and its children, write a run folder, exit with CMD's exit code.",
    )
    add_measure_arguments(p, "the command")
    p.add_argument("--scope", choices=("process", "machine"), default="process")
    p.add_argument(
        "--no-forward",
        dest="forward",
        action="store_false",
        help="pass no signal on to the command (for launchers that signal every process themselves: "
        "kill -- -PGID, Slurm, systemd); co2cb run then outlives them until the command ends",
    )
    add_export_arguments(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    p.set_defaults(handler=handle)


def summary_text(result: WindowResult, folder: object) -> str:
    """A few lines a person can read."""
    parts = ", ".join(
        f"{k} {format_energy(v / JOULES_PER_KWH)} ({result.provenance.get(k, '?')})" for k, v in result.joules.items()
    )
    return (
        f"co2cb: {result.seconds:.1f} s, {format_energy(result.kwh)} [{parts}], "
        f"{format_mass(result.co2_kg)} CO2e at {result.g_per_kwh:.0f} gCO2e/kWh x PUE {result.pue:g}"
        + (f"\nco2cb: record in {folder}" if folder else "")
    )


def readable(text: str) -> str:
    """``text`` as valid Unicode: an argument's bytes that are not UTF-8 (lone surrogates in Python) become U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def terminal_delivers(child: subprocess.Popen[bytes]) -> bool:
    """Whether the terminal's Ctrl-C reached ``child`` already: it runs in the terminal's foreground process group."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal: a SIGINT came from kill, not from a keyboard
    try:
        return os.tcgetpgrp(fd) == os.getpgid(child.pid)
    except OSError:
        return False
    finally:
        os.close(fd)


#: Signals whose default action would end ``co2cb run`` (and orphan the command): passed on to the command.
FORWARDED = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)
#: What a terminal's keys send to its whole foreground process group (Ctrl-C, and Ctrl-backslash).
TERMINAL_KEYS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGQUIT") if hasattr(signal, name))


def forward(child: subprocess.Popen[bytes], number: int) -> None:
    """Pass signal ``number`` on to ``child``, unless a terminal's key sent it to both.

    A Ctrl-C (or Ctrl-backslash) goes to the terminal's whole foreground process group, the child included;
    sending it again would cut short the child's own KeyboardInterrupt handler (a checkpoint being saved).
    """
    if number in TERMINAL_KEYS and terminal_delivers(child):
        return
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(number)


def handle(args: argparse.Namespace) -> int:
    """Run the command under a tracker; returns its exit code (128+N if killed by signal N)."""
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        print("co2cb run: give a command after --, e.g. co2cb run -- python train.py", file=sys.stderr)
        return 2
    try:
        tracker = Tracker(
            run_name=readable(args.name or " ".join(cmd)),
            output_dir=args.output_dir,
            interval_s=args.interval,
            scope=args.scope,
            region=args.region,
            pue=args.pue,
            **export_options(args),
        )
    except ConfigError as e:
        print(f"co2cb run: {flag_words(str(e))}", file=sys.stderr)
        return 2
    tracker.start()
    children: list[subprocess.Popen[bytes]] = []
    early: list[int] = []  # signals that came before the command started

    def on_signal(number: int, _frame: Any) -> None:
        if not args.forward:  # the launcher signals the command itself: outlive it, record the end
            return
        if children:
            forward(children[0], number)
        else:
            early.append(number)

    previous = {s: signal.signal(s, on_signal) for s in FORWARDED}  # before the command starts: no gap
    try:
        try:
            children.append(subprocess.Popen(cmd))
        except OSError as e:
            tracker.stop({"status": "failed", "error": str(e), "command": [readable(c) for c in cmd]})
            print(f"co2cb run: cannot start {cmd[0]!r}: {e}", file=sys.stderr)
            return 126 if isinstance(e, PermissionError) else 127  # the shell's codes: not executable, not found
        for number in early:  # stopped before it began: the command gets the signal it missed
            children[0].send_signal(number)
        code = children[0].wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    exit_code = code if code >= 0 else 128 - code
    status = "completed" if code == 0 else "failed"
    result = tracker.stop({"status": status, "command": [readable(c) for c in cmd], "exit_code": exit_code})
    if result is not None:
        print(summary_text(result, tracker.run_folder), file=sys.stderr)
    return exit_code
