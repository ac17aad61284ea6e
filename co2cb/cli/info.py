"""``co2cb info``: what co2cb finds on this machine and what it would use."""

from __future__ import annotations

import argparse
import json
from typing import Any

from co2cb.core.header import library_versions
from co2cb.core.tracker import Tracker


def register(sub: Any) -> None:
    """Add the ``info`` subcommand."""
    p = sub.add_parser("info", help="show the GPUs, CPU, meters and carbon intensity co2cb would use")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--scope", choices=("process", "machine"), default="process")
    p.add_argument("--region", help="region code to look up (default: resolved as a run would)")
    p.set_defaults(handler=handle)


def describe(tracker: Tracker) -> dict[str, Any]:
    """What a tracker found, as plain data."""
    ms = tracker.meter_set
    return {
        "gpus": [g.as_dict() for g in ms.gpus],
        "accelerators": ms.accelerators,
        "cpu": ms.cpu,
        "meters": [m.info.as_dict() for m in ms.meters],
        "choices": [c.as_dict() for c in ms.choices],
        "intensity": tracker.intensity.info.as_dict(),
        "versions": library_versions(),
    }


def _gpu_line(g: dict[str, Any]) -> str:
    """One GPU (NVIDIA or AMD) in words: identity, counter, power limit, what the figures cover, MIG."""
    counter = "yes" if g["energy_counter"] else "no"
    if g.get("counter_check"):
        counter += f" ({g['counter_check']})"
    text = f"GPU {g['index']}: {g['name']} {g.get('uuid') or g.get('bdf', '')}, energy counter: {counter}"
    if g.get("power_limit_w") is not None:
        text += f", power limit {g['power_limit_w']:g} W"
    if g.get("power_scope") not in (None, "gpu"):
        text += f", power scope: {g['power_scope']}"
        if g.get("module_power_w") is not None:
            text += f" (module {g['module_power_w']:g} W)"
    if g.get("mig_enabled"):
        text += f", MIG on: {len(g.get('mig_slices') or [])} slice(s), energy is the whole GPU's"
    if g.get("compute_partition") not in (None, "SPX"):
        text += f", compute partition {g['compute_partition']}: energy is the whole package's"
    return text


def _before_others(reason: str, vendors: dict[str, str]) -> str:
    """The GPU reason up to where it repeats what the other accelerator libraries said."""
    cuts = [reason.find(f"; {vendor}: ") for vendor in vendors]
    return reason[: min([c for c in cuts if c >= 0], default=len(reason))]


def handle(args: argparse.Namespace) -> int:
    """Print what was found; always exits 0."""
    tracker = Tracker(save=False, scope=args.scope, region=args.region)
    found = describe(tracker)
    tracker.meter_set.close()
    if args.json:
        print(json.dumps(found, indent=2, default=str))
        return 0
    cpu = found["cpu"]
    print(f"co2cb {found['versions']['co2cb']} on Python {found['versions']['python']}")
    print(
        f"CPU: {cpu.get('model') or 'unknown model'}, {cpu.get('sockets')} socket(s)"
        + (f", virtual machine ({cpu['virtualization']})" if cpu.get("virtualization") else "")
    )
    for g in found["gpus"]:
        print(_gpu_line(g))
    if found["accelerators"]:
        print("Accelerators:")
        for vendor, said in found["accelerators"].items():
            print(f"  {vendor}: {said}")
    print("Meters:")
    for choice in found["choices"]:
        chosen = ", ".join(choice["chosen"]) or "none"
        reason = choice["reason"]
        if choice["component"] == "gpu" and found["accelerators"]:  # the other libraries are listed above
            reason = _before_others(reason, found["accelerators"]) if choice["chosen"] else "see Accelerators above"
        print(f"  {choice['component']:>3}: {chosen}\n       {reason}")
    i = found["intensity"]
    year = f", {i['year']}" if i["year"] else ""
    print(
        f"Carbon intensity: {i['g_per_kwh']:.0f} gCO2e/kWh ({i['kind']}) for {i['region']} ({i['region_name']}),"
        f" {i['source']}{year}\n  why: {i['reason']}"
    )
    return 0
