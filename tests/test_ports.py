"""The test servers' ports come from below the kernel's ephemeral range, where no outgoing connection lands."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.ports import free_port

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="the ephemeral port range is a Linux setting")
def test_ports_lie_below_the_ephemeral_range_and_are_never_given_twice() -> None:
    low = int(RANGE.read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(10_000 <= p < low for p in ports)
    with socket.socket() as s:  # free: a server can bind it
        s.bind(("127.0.0.1", ports[0]))
