"""Loopback ports for the processes runway starts (backends, test servers)."""

from __future__ import annotations

import random
import socket


def free_port(host: str = "127.0.0.1", port_range: str = "") -> int:
    """A TCP port on ``host`` that was free a moment ago; within ``port_range``
    (``"20000-20099"``) when given, else any the OS picks.

    Raises:
        ValueError: a malformed range, or none of its ports is free.
    """
    if not port_range.strip():
        with socket.socket() as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    low, sep, high = port_range.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise ValueError(
            f"port range {port_range!r}: expected LOW-HIGH, e.g. 20000-20099"
        ) from None
    if not 0 < first <= last < 65536:
        raise ValueError(f"port range {port_range!r}: expected 1 <= LOW <= HIGH <= 65535")
    candidates = list(range(first, last + 1))
    random.shuffle(candidates)  # several starters at once rarely pick the same port
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise ValueError(f"no free port in {port_range} on {host}")
