"""``co2cb demo``: pretraining, fine-tuning and training from scratch, compared by emissions and quality.

It pretrains a small model, fine-tunes a copy of it, trains the same classifier from scratch, and
compares what each emitted and what quality it reached.

The training job is :mod:`co2cb.examples.pretrain_finetune` (torch and Lightning, on the CPU and
generated data); it is imported only once they are known to be installed. The comparison, figure and
report are the ``compare`` and ``report`` commands' own functions (:func:`co2cb.cli.compare.compare`,
:func:`co2cb.cli.report.report`).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from co2cb.cli.compare import compare
from co2cb.cli.recorded import CommandError
from co2cb.cli.report import report as write_report

NEEDS = ("torch", "lightning", "tensorboard", "matplotlib")
INSTALL = 'pip install torch==2.13.0 && pip install -e ".[lightning,plot]"'
QUALITY_METRIC = "val_acc"  # the classifiers' (fine-tuned and from scratch), the quality the job is for


def register(sub: Any) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser(
        "demo",
        help="pretrain a small model, fine-tune a copy, train it from scratch too, compare their energy, CO2 and "
        "quality (needs torch and lightning)",
        description="On generated data and the CPU: pretrain a small transformer from scratch (masked tokens), "
        "fine-tune a copy of it on a small labelled task, and train the same classifier from a random encoder on the "
        "same task, each with co2cb's Lightning callback and a TensorBoard logger; then compare the three runs, draw "
        "the comparison and write the HTML report. About 1-2 minutes on 2 cores.",
        epilog='Needs torch, lightning, tensorboard and matplotlib: pip install "co2cb[lightning,plot]". Exit status: '
        "0 done, 1 the comparison or the report failed, 2 a bad option or a package missing.",
    )
    p.add_argument(
        "--output-dir",
        type=Path,
        default=Path("co2cb-demo"),
        help="where run folders, TensorBoard logs, the figure and the report go (default: ./co2cb-demo)",
    )
    p.add_argument("--epochs", type=_positive_int, help="epochs of each stage (default: 6, or 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="tiny data and 2 epochs: a few seconds (for tests)")
    p.set_defaults(handler=handle)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of epochs >= 1")
    return value


def handle(args: argparse.Namespace) -> int:
    """Train the three stages, then compare, plot and report; print the outcome and where everything is."""
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"co2cb demo needs {', '.join(NEEDS)}; missing: {', '.join(missing)}. Install them with:\n"
            f'  {INSTALL}\n(from a co2cb checkout; elsewhere: pip install "co2cb[lightning,plot]")',
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # tensorboard loads TensorFlow where it is installed
    from co2cb.examples.pretrain_finetune import QUICK, Plan, pretrain_then_finetune
    from co2cb.units import format_mass

    plan = QUICK if args.quick else Plan()
    if args.epochs:
        plan = replace(plan, epochs=args.epochs)
    out = args.output_dir.resolve()
    print(
        "co2cb demo: pretraining a small transformer from scratch, fine-tuning a copy of it, and training the same "
        f"classifier from a random encoder, on generated data and the CPU; everything goes to {out}\n"
    )
    pretrain, finetune, scratch = stages = pretrain_then_finetune(out, plan)
    runs = [str(stage.run_folder) for stage in stages]  # the pretraining first: the reference of the ratios
    plot, report = out / "comparison.png", out / "report.html"
    print()
    try:
        compare(runs, plot=str(plot), metric=QUALITY_METRIC)
        write_report(runs, report, metric=QUALITY_METRIC)
    except CommandError as exc:
        print(f"co2cb demo: {exc}", file=sys.stderr)
        return 1
    print()
    if finetune.co2_kg > 0:
        print(
            f"Pretraining emitted {format_mass(pretrain.co2_kg)} CO2e, {pretrain.co2_kg / finetune.co2_kg:.3g}x "
            f"the {format_mass(finetune.co2_kg)} of fine-tuning its copy."
        )
    print(
        f"Fine-tuned from the pretrained encoder: {QUALITY_METRIC} {finetune.metrics[QUALITY_METRIC]:.3f} for "
        f"{format_mass(finetune.co2_kg)} CO2e; trained from scratch on the same data: {QUALITY_METRIC} "
        f"{scratch.metrics[QUALITY_METRIC]:.3f} for {format_mass(scratch.co2_kg)} CO2e (the pretraining's CO2e "
        "is the price of the difference)."
    )
    print("\nRun folders:      " + "\n                  ".join(str(stage.run_folder) for stage in stages))
    print(f"TensorBoard logs: {out / 'tensorboard'}  (view: tensorboard --logdir {out / 'tensorboard'})")
    print(f"Plot:             {plot}")
    print(f"Report:           {report}")
    return 0
