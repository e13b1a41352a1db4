"""Free loopback ports for servers a test starts (often in another process, moments later)."""
from __future__ import annotations

import random
import socket
from pathlib import Path


#: the ports this process has handed out (whether or not their servers have bound them yet)
_handed_out: set[int] = set()


def free_port() -> int:
    """A free port BELOW the kernel's ephemeral range.

    A port inside that range is free only until a client is handed it as its own local port: between
    choosing the port and the server binding it, the test's (and the services') Kafka and PostgreSQL
    connections may take it, and a client reconnecting in a loop to a stopped server can even
    connect to itself (TCP simultaneous open). Ports outside the range are never handed to clients.

    A port is handed out once per test process: a server binds it only when its process starts, so two
    calls moments apart could otherwise both find it free (seen: a continuity replica's API port was another
    replica's metrics port, and the test read metrics where it asked for /status).
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(20000, max(low, 20001)))
    random.shuffle(candidates)
    for port in [p for p in candidates if p not in _handed_out][:500]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port below the ephemeral range")
