"""`runway serve`'s start-up: the public socket, the private runtime folder, the phase timeline.

The gateway listens before its first version is loaded (answering 503 until
then) and logs how long each phase of loading took, one line each, so a slow
start says where its time went (#31).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from runway.errors import ServeError


class Timeline:
    """Start-up phases and their seconds, in order; a phase ends where the next begins."""

    def __init__(self, start: float | None = None) -> None:
        self.phases: list[tuple[str, float]] = []
        self.overlapped: list[tuple[str, float]] = []  # while the children worked: not summed
        self._last = time.monotonic() if start is None else start

    def before(self, phase: str, seconds: float | None) -> None:
        """A phase that ended before the clock started (this process's own start)."""
        if seconds is not None:
            self.phases.insert(0, (phase, seconds))

    def add(self, phases: Mapping[str, float]) -> None:
        """Phases measured elsewhere (the prepare child), then the time around them."""
        total = time.monotonic() - self._last
        self.phases += list(phases.items())
        self.phases.append(("prepare child start and exit", max(0.0, total - sum(phases.values()))))
        self._last = time.monotonic()

    def mark(self, phase: str) -> None:
        """``phase`` ended now."""
        now = time.monotonic()
        self.phases.append((phase, now - self._last))
        self._last = now

    def log(self, log: logging.Logger) -> None:
        """One line a phase, then the total (of the phases in series)."""
        for phase, seconds in self.phases:
            log.info("start-up  %-30s %6.2f s", phase, seconds)
        for phase, seconds in self.overlapped:
            log.info("start-up  %-30s %6.2f s (meanwhile)", phase, seconds)
        if self.phases:
            log.info("start-up  %-30s %6.2f s", "total", sum(s for _, s in self.phases))


def process_age() -> float | None:
    """Seconds since this process started (Linux), else None: the interpreter's and
    runway's own imports, before any phase above could be timed."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime, field 22
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def runtime_dir() -> Path:
    """A new directory only this user can enter (0700): backend sockets and model folders.

    Under ``$XDG_RUNTIME_DIR`` when there is one, else the temp dir; a Unix
    socket path must stay under ~100 bytes, so a long temp dir falls back to /tmp.
    """
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base) or len(base) > 60:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="runway-serve-", dir=base))  # mkdtemp: mode 0700


def bind(host: str, port: int) -> socket.socket:
    """Claim the public port before any backend starts, so a clash fails in a second."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}; pick --port") from None
    sock.set_inheritable(False)
    return sock
