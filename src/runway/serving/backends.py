"""``mlflow models serve`` backends on loopback, and a lean keep-alive client to them.

Each backend is one single-worker ``mlflow models serve`` process for one
pinned model version (several single-worker backends beat one ``-w N`` server:
uvicorn's multi-worker listener leaves TCP_NODELAY off, which costs ~50 ms per
small response). A backend is not used until it answers ``/ping`` and scores the
model's own input example: :func:`start` and :meth:`Backend.warm`.

The client speaks just enough HTTP/1.1 to talk to uvicorn over pooled
connections; a general-purpose client costs more than the whole gateway budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from runway.net import free_port
from runway.settings import get_settings

log = logging.getLogger(__name__)


class BackendError(Exception):
    """The backend could not be reached or broke the connection."""


@dataclass
class Response:
    """A backend's answer."""

    status: int
    content_type: str
    body: bytes


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """The backend gets SIGTERM if the gateway dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Backend:
    """One ``mlflow models serve`` process serving one model version on ``port``."""

    model: str
    version: str
    port: int
    process: subprocess.Popen
    log_path: Path
    inflight: int = 0
    served: int = 0
    _idle: deque = field(default_factory=deque)

    @property
    def alive(self) -> bool:
        """False once the process has exited."""
        return self.process.poll() is None

    def __str__(self) -> str:
        return f"{self.model} v{self.version} on 127.0.0.1:{self.port} (pid {self.process.pid})"

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = ""
    ) -> Response:
        """One request over a pooled connection; a stale pooled connection is retried once."""
        for attempt in (0, 1):
            reused = bool(self._idle)
            reader, writer = self._idle.pop() if reused else await self._connect()
            try:
                head = (
                    f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    + (f"Content-Type: {content_type}\r\n" if content_type else "")
                    + "\r\n"
                )
                writer.write(head.encode("latin-1") + body)
                response, keep = await _read_response(reader)
            except asyncio.CancelledError:
                writer.close()  # a timed-out request frees its connection
                raise
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                writer.close()
                if reused and attempt == 0:
                    # uvicorn closes idle keep-alive connections: drop the pool, go fresh
                    self.close_connections()
                    continue
                raise BackendError(f"{self}: {type(exc).__name__}: {exc}") from None
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return response
        raise BackendError(f"{self}: no connection")  # pragma: no cover

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            raise BackendError(f"{self}: cannot connect: {exc}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:  # asyncio sets it for TCP; say so rather than rely on it
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    def close_connections(self) -> None:
        """Drop pooled connections (they belong to the event loop that made them)."""
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()

    async def warm(self, example: bytes, rows: int, timeout: float) -> None:
        """Wait for ``/ping``, then score the input example; raise :class:`BackendError` if not."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise BackendError(
                    f"{self} exited with code {self.process.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            with contextlib.suppress(BackendError):
                if (await self.request("GET", "/ping")).status == 200:
                    break
            if time.monotonic() > deadline:
                raise BackendError(f"{self} did not answer /ping within {timeout:.0f}s")
            await asyncio.sleep(0.25)
        answer = await self.request("POST", "/invocations", example, "application/json")
        if answer.status != 200:
            raise BackendError(
                f"{self} failed to score its input example: HTTP {answer.status} "
                f"{answer.body[:300].decode('utf-8', 'replace')}"
            )
        predictions = json.loads(answer.body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != rows:
            raise BackendError(
                f"{self} scored its {rows}-row input example into "
                f"{len(predictions) if isinstance(predictions, list) else predictions!r} predictions"
            )

    def stop(self, grace: float = 10.0) -> None:
        """Stop the process group (the mlflow CLI and its uvicorn child); kill after ``grace``.

        Returns once every process of the group is gone, so a port and ~300 MB
        are really free when a switch reports the old version stopped.
        """
        self.close_connections()
        group = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _group_alive(group, self.process) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(group, self.process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def _group_alive(group: int, leader: subprocess.Popen) -> bool:
    leader.poll()  # reap the leader so it does not count as alive
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


def start(
    model: str, version: str, log_dir: Path, timeout: float, env: dict[str, str] | None = None
) -> Backend:
    """Start ``mlflow models serve`` for ``models:/model/version`` (not warm yet: see ``warm``)."""
    try:
        port = free_port(port_range=get_settings().serve_backend_ports)
    except ValueError as exc:  # RUNWAY_SERVE_BACKEND_PORTS
        raise BackendError(f"RUNWAY_SERVE_BACKEND_PORTS: {exc}") from None
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"backend-{model}-v{version}-{port}.log"
    child_env = {**os.environ, **(env or {})}
    # `mlflow models serve` execs `uvicorn` from PATH: make it this environment's.
    child_env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), child_env.get("PATH", "")]
    )
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        f"models:/{model}/{version}",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--timeout",
        str(int(max(timeout, 1))),
    ]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            process_group=0,  # its own group: stopped as a whole, without touching ours
            preexec_fn=_die_with_parent,
        )
    backend = Backend(model, str(version), port, process, log_path)
    log.info("starting backend %s; log %s", backend, log_path)
    return backend


def tail(path: Path, lines: int = 12) -> str:
    """The last lines of a backend's log, for error messages."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    else:
        body = await reader.read()
        headers["connection"] = "close"
    keep = headers.get("connection", "").lower() != "close"
    return Response(status, headers.get("content-type", ""), body), keep
