"""``co2cb demo``: measure a small CPU workload with epoch and step windows, and show the result.

It needs no ML framework: each "epoch" runs steps of pure-Python arithmetic.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from co2cb.records import read_records
from co2cb.tracker import Tracker


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser("demo", help="measure a small CPU workload and print what co2cb records")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000, help="steps per epoch")
    p.add_argument("--output-dir", help="parent folder of run folders (default: CO2CB_OUTPUT_DIR or ./co2cb-runs)")
    p.set_defaults(handler=handle)


def _step(size: int = 12_000) -> float:
    return sum(i * i for i in range(size)) ** 0.5


def handle(args: argparse.Namespace) -> int:
    """Run the workload under a tracker and print per-epoch energy and CO2."""
    tracker = Tracker(run_name="co2cb-demo", output_dir=args.output_dir, interval_s=0.1, tags={"kind": "demo"})
    info = tracker.intensity.info
    print(f"Intensity: {info.g_per_kwh:.0f} gCO2e/kWh for {info.region} ({info.source}"
          f"{', ' + str(info.year) if info.year else ''}); {info.reason}")
    for choice in tracker.meter_set.choices:
        print(f"{choice.component.value:>3}: {', '.join(choice.chosen) or 'none'}: {choice.reason}")
    print(f"\n{'epoch':>5} {'seconds':>8} {'energy Wh':>10} {'mean W':>7} {'mg CO2e':>8}  provenance")
    with tracker:
        for epoch in range(args.epochs):
            with tracker.window("epoch", meta={"epoch": epoch}) as w:
                for _ in range(args.steps):
                    tracker.begin("step", record=False)
                    _step()
                    tracker.end("step")
            r = w.result
            if r is not None:
                prov = ", ".join(f"{k}: {v}" for k, v in r.provenance.items())
                print(f"{epoch:>5} {r.seconds:>8.2f} {r.kwh * 1000:>10.4f} {r.mean_watts:>7.1f} "
                      f"{r.co2_kg * 1e6:>8.3f}  {prov}")
        time.sleep(tracker.config.interval_s * 2)  # let the sampler pass the last step
        steps = tracker.step_stats("step")
    run = tracker.result
    if run is not None:
        print(f"\nrun: {run.seconds:.2f} s, {run.kwh * 1000:.4f} Wh, {run.co2_kg * 1e6:.3f} mg CO2e")
    print(f"steps: {steps.count}, median {steps.duration_percentiles_s['p50'] * 1000:.2f} ms, "
          f"{steps.mean_joules:.3f} J each on average")
    if tracker.run_folder is not None:
        lines = read_records(tracker.run_folder)
        print(f"record: {tracker.run_folder / 'run.jsonl'} ({len(lines)} lines: header, windows, summary)")
    return 0
