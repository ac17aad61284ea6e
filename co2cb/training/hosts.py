"""Which ranks of a job share a host: the key host-level meters and the per-host split are grouped by.

A host's RAPL counters, its CPU and its RAM belong to one kernel, whatever the containers on it call
themselves. The bare host name is a poor key on clusters: containers on one node may each have their
own name (the host's meters would then be read twice), and containers on different nodes may share
one (two nodes would be taken for one). So the key is, in order:

1. ``CO2CB_HOST_ID`` when set (the user's word; on Kubernetes, the node name from the downward API);
2. the kernel's boot id (``/proc/sys/kernel/random/boot_id``): the same in every container of a node,
   different on every node and after every reboot;
3. the host name, where the boot id cannot be read (not Linux).

In process scope the host-level meters attribute a share of the host's energy to a set of processes;
processes in another PID namespace (another container) cannot be seen, so each PID namespace of a host
reads the host's meters for its own processes. In machine scope one process reads them for the host.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST_ID_VARIABLE = "CO2CB_HOST_ID"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")


@dataclass(frozen=True)
class Host:
    """This process's host, as the ranks of a job compare it.

    Attributes:
        key: Equal for processes that share the host's hardware counters (see the module's notes).
        name: The host name, for people.
        source: Where the key comes from: ``"CO2CB_HOST_ID"``, ``"boot_id"`` or ``"hostname"``.
        pid_space: The PID namespace (``"pid:[4026531836]"``), ``""`` where it cannot be read.
    """

    key: str
    name: str
    source: str
    pid_space: str = ""

    @property
    def label(self) -> str:
        """How the record names the host when no other host of the job has the same label."""
        return self.key if self.source == HOST_ID_VARIABLE else self.name


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _pid_space() -> str:
    try:
        return os.readlink(PID_NAMESPACE)
    except OSError:
        return ""


_kernel_ids: dict[tuple[int, Path, Path], tuple[str, str]] = {}  # (pid, files) -> (boot id, PID namespace)


def _boot_and_pid_space() -> tuple[str, str]:
    """The boot id and the PID namespace, read once per process (neither changes while it runs)."""
    key = (os.getpid(), BOOT_ID, PID_NAMESPACE)
    ids = _kernel_ids.get(key)
    if ids is None:
        ids = _kernel_ids[key] = (_read(BOOT_ID), _pid_space())
    return ids


def this_host(environ: Mapping[str, str] | None = None) -> Host:
    """This process's :class:`Host` (``CO2CB_HOST_ID``, else the boot id, else the host name)."""
    environ = os.environ if environ is None else environ
    name = socket.gethostname()
    boot, pid_space = _boot_and_pid_space()
    given = environ.get(HOST_ID_VARIABLE, "").strip()
    if given:
        return Host(given, name, HOST_ID_VARIABLE, pid_space)
    if boot:
        return Host(f"boot:{boot}", name, "boot_id", pid_space)
    return Host(f"name:{name}", name, "hostname", pid_space)


def labels(hosts: Sequence[Host]) -> list[str]:
    """A readable, job-unique label for each entry of ``hosts`` (one per rank, in rank order).

    Ranks with the same key get the same label: the ``CO2CB_HOST_ID`` value, else the host name of the
    first rank on that host. Two hosts that would get the same label (containers on different nodes
    with one name) are told apart by a short digest of their key: ``worker#3f2a1c``.
    """
    first: dict[str, Host] = {}
    for h in hosts:
        first.setdefault(h.key, h)
    plain = {key: h.label for key, h in first.items()}
    taken = list(plain.values())
    unique = {
        key: label if taken.count(label) == 1 else f"{label}#{hashlib.sha1(key.encode()).hexdigest()[:6]}"
        for key, label in plain.items()
    }
    return [unique[h.key] for h in hosts]
