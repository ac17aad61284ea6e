"""Free TCP ports on 127.0.0.1 for the servers the tests start (DDP stores, exporters, Prometheus, TensorBoard).

A port from ``bind(("127.0.0.1", 0))`` lies in the kernel's ephemeral range, so any outgoing connection on the
machine (another job's gloo ranks, an HTTP client) may take it in the seconds before the server binds it: CI once
lost a DDP job to EADDRINUSE that way. A port below the ephemeral range is only ever taken by an explicit bind.
Each pytest-xdist worker draws from its own slice of that range, so two workers never pick the same port.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known and registered services
_given: set[int] = set()  # never hand out one port twice in a process
_random = random.SystemRandom()  # not the global generator, which a test may seed


def _below_ephemeral() -> range | None:
    """This xdist worker's slice of the ports below the ephemeral range; None where that range is unknown."""
    try:
        low = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if low - _LOWEST < 1_000:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # gw0, gw1...; unset without xdist
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    width = (low - _LOWEST) // max(count, 1)
    return range(_LOWEST + index * width, _LOWEST + (index + 1) * width)


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no outgoing connection will take."""
    ports = _below_ephemeral()
    if ports is not None:
        for _ in range(200):
            port = _random.choice(ports)
            if port not in _given and _is_free(port):
                _given.add(port)
                return port
    with socket.socket() as s:  # elsewhere: the kernel's choice
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _given.add(port)
    return port
