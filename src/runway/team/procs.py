"""The processes of the team stack: started in their own session, stopped as a whole tree.

Each service is started with ``start_new_session=True`` (its pid is its process
group and session id) and its pid is written to ``<dir>/run/<name>.pid``. A stop
signals the group, then waits for every process of the tree, walked by parent
pid from ``/proc``: PostgreSQL's backends call ``setsid()`` themselves, so the
group alone would miss them. Zombies (exited, not yet reaped) count as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runway.core.text import tail
from runway.errors import TeamError


def port_open(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def spawn(
    cmd: list[str],
    log: Path,
    pidfile: Path,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen:
    """Start ``cmd`` in a new session, output appended to ``log``; record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n==== {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            close_fds=True,
            **popen,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def read_pid(pidfile: Path, command: str = "") -> int | None:
    """The live pid recorded in ``pidfile`` whose command line holds ``command``.

    A stale file (the process is gone, or the pid now belongs to another
    program) is removed, so a stop never signals a stranger.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    if not alive([pid]) or command not in cmdline:
        pidfile.unlink(missing_ok=True)
        return None
    return pid


def alive(pids: list[int] | set[int]) -> set[int]:
    """The pids that are running (not zombies)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            running.add(pid)
    return running


def tree(root: int) -> list[int]:
    """``root`` and all its descendants, by parent pid."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def stop(pidfile: Path, sig: int, command: str = "", timeout: float = 30.0) -> int:
    """Signal the group recorded in ``pidfile`` and wait for its whole tree; returns its size.

    What is still alive after ``timeout`` is killed (SIGKILL). 0 when nothing ran.
    """
    pid = read_pid(pidfile, command)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return 0
    procs = tree(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.1)
    for leftover in alive(procs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(procs):
        raise TeamError(f"processes {sorted(alive(procs))} of {pidfile.stem} survived SIGKILL")
    pidfile.unlink(missing_ok=True)
    return len(procs)


def wait_ready(
    name: str, proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, log: Path
) -> float:
    """Seconds until ``ready()``; a clear error if ``proc`` exits or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise TeamError(
                f"{name} exited with code {proc.returncode} while starting; "
                f"last lines of {log}:\n{tail(log)}"
            )
        if ready():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TeamError(f"{name} did not become ready within {timeout:g}s; see {log}:\n{tail(log)}")
