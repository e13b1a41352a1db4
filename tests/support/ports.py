"""Free loopback ports for servers a test starts (often in another process, moments later)."""
from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range.

    A port inside that range is free only until a client is handed it as its own local port: between
    choosing the port and the server binding it, the test's (and the services') Kafka and PostgreSQL
    connections may take it, and a client reconnecting in a loop to a stopped server can even
    connect to itself (TCP simultaneous open). Ports outside the range are never handed to clients.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(20000, max(low, 20001)))
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
