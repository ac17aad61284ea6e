"""Choose the meters for this machine, and record every choice and its reason.

The order per component:

* GPU: NVML for the NVIDIA GPUs this process may use; else AMD SMI for its AMD
  GPUs; else Apple silicon's GPU and Neural Engine counters; none when no
  library finds one (see :mod:`co2cb.meters.accelerators`).
* CPU: none when a GPU figure already covers it (a Grace Hopper module); RAPL
  package zones; Apple silicon's CPU counter; else an estimate: the user's TDP if
  given, the per-vCPU model on a virtual machine, the TDP table for a known CPU
  model, the per-vCPU model averaged over architectures otherwise.
* RAM: none when a GPU figure covers it; RAPL DRAM zones; Apple silicon's DRAM
  counter; else the watts-per-GB estimate.

A meter that cannot work is replaced by an estimate or left out, never by a crash.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from co2cb.meters import cpu, rapl
from co2cb.meters.accelerators import find_gpus
from co2cb.meters.amd import AmdGpu
from co2cb.meters.apple import discover_apple
from co2cb.meters.base import Component, Meter, MeterChoice
from co2cb.meters.estimates import (
    RAM_WATTS_PER_GB,
    RAM_WATTS_PER_GB_SOURCE,
    RamEstimateMeter,
    TdpCpuMeter,
    VcpuCpuMeter,
)
from co2cb.meters.nvml import GpuDevice
from co2cb.meters.process import CpuShare, ProcessTree

log = logging.getLogger(__name__)

SCOPES = ("process", "machine")


@dataclass
class MeterSet:
    """The meters in use and how they were chosen.

    Attributes:
        meters: Every meter to sample (possibly empty: the null meter set).
        choices: One decision per component, with its reason.
        gpus: The GPUs being measured (NVIDIA and AMD).
        cpu: What is known of the CPU (model name, sockets, virtualisation).
        accelerators: What each accelerator library (NVIDIA, AMD, Apple silicon) said, by vendor.
        problems: Faults the user should hear of at run time (a GPU the framework uses that cannot be
            measured, RAPL present but not readable, a powercap folder that is not there), in words
            that name the component and the fix; the tracker says each once when it starts.
    """

    meters: list[Meter] = field(default_factory=list)
    choices: list[MeterChoice] = field(default_factory=list)
    gpus: list[GpuDevice | AmdGpu] = field(default_factory=list)
    cpu: dict[str, object] = field(default_factory=dict)
    accelerators: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Release every meter's handles."""
        for meter in self.meters:
            try:
                meter.close()
            except Exception:
                log.debug("closing %s failed", meter.info.name, exc_info=True)


@functools.cache
def _this_cpu() -> tuple[str | None, str | None, int]:
    """This machine's CPU model, virtualisation and sockets: read once per process (the hardware stays)."""
    return cpu.read_cpu_model(), cpu.detect_virtualization(), cpu.count_sockets()


@functools.cache
def _vcpu_power(model: str | None, virt: str | None) -> cpu.VcpuPower:
    """The per-vCPU model for this machine's CPU (its cpuinfo read once per process)."""
    return cpu.vcpu_power(model, provider=virt, signature=cpu.read_cpu_signature())


def _cpu_estimate(
    tree: ProcessTree | None, cpu_tdp_w: float | None, model: str | None, virt: str | None, sockets: int
) -> tuple[Meter, str]:
    if cpu_tdp_w is not None:
        return TdpCpuMeter(cpu_tdp_w, tree, {"tdp_source": "given by the user (cpu_tdp_w)"}), (
            f"TDP x utilisation with the given TDP of {cpu_tdp_w:g} W"
        )
    if virt is None and model:
        match = cpu.lookup_tdp(model)
        if match is not None:
            tdp = match.tdp_w * sockets
            details = {"cpu_model": model, "table_row": match.model, "tdp_source": match.source, "year": match.year}
            return TdpCpuMeter(tdp, tree, details), (
                f"TDP x utilisation: {model!r} matched {match.model!r}, {match.tdp_w:g} W x {sockets} socket(s) "
                f"({match.source}{', ' + str(match.year) if match.year else ''})"
            )
    power = _vcpu_power(model, virt)
    details = {"cpu_model": model, "architecture": power.architecture, "source": power.source, "year": power.year}
    why = f"virtual machine ({virt})" if virt else f"CPU model {model!r} not in the TDP table"
    return VcpuCpuMeter(power.min_w, power.max_w, tree, details), (
        f"per-vCPU model for {power.architecture} ({power.min_w:g}-{power.max_w:g} W per vCPU, {power.source}) "
        f"because: {why}"
    )


def discover(
    scope: str = "process",
    gpus: Sequence[int | str] | None = None,
    powercap_root: str | os.PathLike[str] | None = None,
    cpu_tdp_w: float | None = None,
    ram_watts_per_gb: float | None = None,
    components: Iterable[str] = ("gpu", "cpu", "ram"),
    pids: Sequence[int] | None = None,
) -> MeterSet:
    """Find and open the meters for this machine.

    Args:
        scope: ``"process"`` (this process and its children) or ``"machine"``.
        gpus: Explicit GPUs (CUDA ordinals or UUIDs); None for all visible.
        powercap_root: Folder to read RAPL zones from (default ``CO2CB_POWERCAP_ROOT`` or the system's).
        cpu_tdp_w: Force the CPU estimate to this TDP, watts (all sockets).
        ram_watts_per_gb: RAM estimate constant, watts per GB.
        components: Which of ``"gpu"``, ``"cpu"``, ``"ram"`` to measure.
        pids: Roots of the tracked process tree (default: this process).
    """
    wanted = {Component(c) for c in components}
    tree = ProcessTree(pids) if scope == "process" else None
    result = MeterSet()

    apple, apple_reason = discover_apple(tree)
    if Component.GPU in wanted:
        found = find_gpus(gpus, [m for m in apple if m.info.component is Component.GPU], apple_reason)
        result.meters.extend(found.meters)
        result.gpus = found.devices
        result.accelerators = found.vendors
        result.problems.extend(found.problems)
        result.choices.append(MeterChoice(Component.GPU, tuple(m.info.name for m in found.meters), found.reason))

    model, virt, sockets = _this_cpu()
    result.cpu = {"model": model, "sockets": sockets, "virtualization": virt}

    zones: list[rapl.RaplZone] = []
    root = rapl.powercap_root(powercap_root)
    rapl_problem = ""
    if wanted & {Component.CPU, Component.RAM}:
        try:
            zones = rapl.find_zones(root)
        except PermissionError as e:
            rapl_problem = f"RAPL is present but not readable ({e}). " + rapl.PERMISSION_HINT.format(root=root)
            result.problems.append(f"CPU and RAM are estimated: {rapl_problem}")
        except (OSError, ValueError) as e:
            rapl_problem = f"no RAPL: {e}"
            if powercap_root is not None or os.environ.get(rapl.POWERCAP_ROOT_ENV):  # a folder the user named
                result.problems.append(
                    f"CPU and RAM are estimated: the powercap folder {root} ({rapl.POWERCAP_ROOT_ENV} or "
                    f"powercap_root=) has no RAPL zone ({e}); give the folder that holds the intel-rapl zones"
                )

    for component in (Component.CPU, Component.RAM):
        if component not in wanted:
            continue
        mine = [z for z in zones if z.component is component]
        on_chip = [m for m in apple if m.info.component is component]
        covering = [m.info.name for m in result.meters if component.value in m.info.details.get("covers", ())]
        meters: list[Meter]
        if covering:  # a Grace Hopper-style module figure already holds the CPU and its memory
            meters = []
            reason = f"counted in {', '.join(covering)}: that figure covers the whole module (GPU, CPU and memory)"
        elif mine:
            meters = [rapl.RaplMeter(z, CpuShare(tree) if tree else None) for z in mine]
            scope_note = "attributed by CPU-time share" if tree else "whole machine"
            reason = f"RAPL {', '.join(z.name for z in mine)} under {root} ({scope_note})"
        elif on_chip:
            meters = list(on_chip)
            scope_note = "attributed by CPU-time share" if tree else "whole machine"
            reason = f"{', '.join(m.info.name for m in on_chip)} ({scope_note}); {apple_reason}"
        elif component is Component.CPU:
            meter, how = _cpu_estimate(tree, cpu_tdp_w, model, virt, sockets)
            meters = [meter]
            reason = f"estimate: {how}" + (f"; {rapl_problem}" if rapl_problem else "")
        else:
            w = ram_watts_per_gb if ram_watts_per_gb is not None else RAM_WATTS_PER_GB
            source = "given by the user (ram_watts_per_gb)" if ram_watts_per_gb is not None else RAM_WATTS_PER_GB_SOURCE
            meters = [RamEstimateMeter(w, tree, source)]
            reason = f"estimate: {w:g} W per GB in use ({source})" + ("" if zones else "; no RAPL DRAM zone")
        result.meters.extend(meters)
        result.choices.append(MeterChoice(component, tuple(m.info.name for m in meters), reason))
    return result
