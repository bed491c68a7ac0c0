"""Ports handed to children come from outside the kernel's ephemeral range (where Ray's
daemons bind as they start), are free now, and are never handed out twice."""

from __future__ import annotations

import socket
from pathlib import Path

from pipelines.embedded import free_port


def test_ports_are_free_distinct_and_below_the_ephemeral_range():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50 and all(20000 <= p < low for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # it really was free
