"""Backends: MLflow's scoring server on owner-only Unix sockets, and a lean client to them.

Each backend is one single-worker uvicorn process running MLflow's own scoring
app (``mlflow.pyfunc.scoring_server.app:app``, what ``mlflow models serve``
execs; through :mod:`runway.store.scoring_app`, which adds only a private
probability route) on one model folder: the folder runway downloaded and checked
(:func:`runway.store.trust.fetch_verified`), never a fresh ``models:/``
download. runway skips the ``mlflow models serve`` wrapper, which would
download the model again and then idle next to its uvicorn child.
A version's backends are forked from one zygote (:mod:`runway.serving.zygote`)
that imported the scoring server once: they share those pages.

The gateway binds each backend's Unix socket itself, mode 0600 before it listens,
inside a directory only its user can enter (0700), and hands the bound socket
to uvicorn (``--fd``): no TCP port, so nothing else on the machine can reach a
backend around the gateway's token, contract and limits. A backend is not used
until it answers ``/ping`` and scores the model's own input example:
:func:`spawn_group` and :meth:`Backend.warm`.

The client speaks just enough HTTP/1.1 (:mod:`runway.serving.http1`) to talk
to uvicorn over pooled keep-alive connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runway.core.text import tail
from runway.serving import zygote
from runway.serving.http1 import Response, read_response, request_head
from runway.store.served import BACKEND_APP, scoring_server_env

log = logging.getLogger(__name__)

IMPORT_TIMEOUT = 180.0  # seconds a zygote may take to import MLflow on a loaded host


class BackendError(Exception):
    """The backend could not be reached or broke the connection."""


class Process(Protocol):
    """What a backend's process handle offers: ``subprocess.Popen``, or ``zygote.Adopted``."""

    pid: int
    returncode: Any

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@dataclass
class Backend:
    """One scoring-server process serving one model version on the Unix socket ``path``."""

    model: str
    version: str
    path: Path
    process: Process
    log_path: Path
    inflight: int = 0
    served: int = 0
    _idle: deque = field(default_factory=deque)
    _pidfd: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None  # the loop its connections and watch live on

    @property
    def alive(self) -> bool:
        """False once the process has exited."""
        return self.process.poll() is None

    def __str__(self) -> str:
        return f"{self.model} v{self.version} on {self.path} (pid {self.process.pid})"

    def on_exit(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """Call ``callback`` on ``loop`` the moment the process exits (Linux pidfd; no-op elsewhere)."""
        if self._pidfd is not None or not hasattr(os, "pidfd_open"):
            return
        self._loop = loop

        def exited() -> None:  # readable for good once it exits: stop watching, then tell
            self._unwatch()
            callback()

        try:
            self._pidfd = os.pidfd_open(self.process.pid)
            loop.add_reader(self._pidfd, exited)
        except (OSError, NotImplementedError) as exc:  # an exited pid, or a loop without readers
            log.debug("no exit notice for %s: %s", self, exc)
            self._unwatch()

    def _unwatch(self) -> None:
        """Stop watching the pidfd and close it (on the loop's thread: the reader is the loop's)."""
        if self._pidfd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pidfd)
        with contextlib.suppress(OSError):
            os.close(self._pidfd)
        self._pidfd = None

    def _detach(self) -> None:
        """Drop pooled connections and the exit watch: both belong to the loop that made them."""
        self.close_connections()
        self._unwatch()

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the backend's event loop thread (now, if this is it).

        :meth:`stop` runs in a worker thread; a transport or a reader touched
        from there corrupts the loop's state (a pidfd closed under a live reader
        left a reused fd number wired to the old callback, and a later
        connection never saw its reply).
        """
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop or loop.is_closed():
            action()
        else:
            loop.call_soon_threadsafe(action)

    async def request(
        self, method: str, path: str, body: bytes = b"", content_type: str = ""
    ) -> Response:
        """One request over a pooled connection; a stale pooled connection is retried once."""
        for attempt in (0, 1):
            reused = bool(self._idle)
            reader, writer = self._idle.pop() if reused else await self._connect()
            try:
                writer.write(request_head(method, path, len(body), content_type) + body)
                response, keep = await read_response(reader)
            except asyncio.CancelledError:
                writer.close()  # a timed-out request frees its connection
                raise
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
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
        self._loop = asyncio.get_running_loop()
        try:
            return await asyncio.open_unix_connection(str(self.path))
        except OSError as exc:
            raise BackendError(f"{self}: cannot connect: {exc}") from None

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
        """Stop the scoring server's process group; kill it after ``grace``.

        Returns once every process of the group is gone, so its memory is really
        free when a switch reports the old version stopped. Safe from any thread.
        """
        self._on_loop(self._detach)
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
        with contextlib.suppress(OSError):
            self.path.unlink()


def _group_alive(group: int, leader: Process) -> bool:
    leader.poll()  # reap the leader so it does not count as alive
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    return True


@dataclass
class Pending:
    """A zygote importing MLflow's scoring server: :meth:`load` gives it the model folder.

    Started before the version is fetched, so the import (seconds) overlaps the fetch.
    """

    model: str
    zygote: subprocess.Popen
    listeners: list[tuple[socket.socket, Path]]
    logs: list[Path]

    def load(self, version: str, model_dir: Path) -> list[Backend]:
        """Have the zygote load ``model_dir`` and fork the backends (not warm yet).

        Blocks while it loads (seconds): call it off the event loop.
        """
        try:
            out, code = zygote.finish(self.zygote, model_dir, IMPORT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"the backends of {self.model} v{version} took over {IMPORT_TIMEOUT:g}s to "
                f"import MLflow's scoring server and load the model (a loaded host?); "
                f"see {self.logs[0]}"
            ) from None
        finally:
            self._close()
        pids, done = zygote.reported(out)
        paths = [path for _, path in self.listeners]
        if not done or len(pids) != len(paths):
            for pid, path, log_path in zip(pids, paths, self.logs, strict=False):
                # forked, then the zygote failed: stop what it did start
                Backend(self.model, version, path, zygote.Adopted(pid), log_path).stop(grace=2)
            raise BackendError(
                f"the backends of {self.model} v{version} failed to start (exit {code}); "
                f"last lines of {self.logs[0]}:\n{tail(self.logs[0])}"
            )
        backends = [
            Backend(self.model, version, path, zygote.Adopted(pid), log_path)
            for pid, path, log_path in zip(pids, paths, self.logs, strict=True)
        ]
        for backend in backends:
            log.info("starting backend %s; log %s", backend, backend.log_path)
        return backends

    def cancel(self) -> None:
        """The version will not be served: the zygote exits without loading anything."""
        if self.zygote.returncode is not None:  # loaded (or failed) already
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            zygote.finish(self.zygote, None, 10.0)
        self._close()

    def _close(self) -> None:
        for listener, _ in self.listeners:
            listener.close()  # the backends hold their own copies


_GROUPS = itertools.count(1)  # backend groups this gateway started: one name each


def spawn_group(
    model: str,
    socket_dir: Path,
    log_dir: Path,
    timeout: float,
    count: int,
    env: dict[str, str] | None = None,
    preload: str | None = None,
    prepare: tuple[str, list[int]] | None = None,
) -> Pending:
    """Start a zygote for ``count`` MLflow scoring apps, each to listen on a new socket.

    The zygote (:mod:`runway.serving.zygote`) imports MLflow's scoring server,
    then, once :meth:`Pending.load` names the model folder, loads the model once
    and forks the backends, which this process adopts as a child subreaper:
    they share those pages and stay its children (stopped, reaped and measured
    with it). ``socket_dir`` must be private to this user (0700): it is what
    keeps other users away; each socket is made 0600 before it listens.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    _become_subreaper()
    listeners = [_listen(socket_dir, "b") for _ in range(count)]
    # A log per backend of this group: socket names are reused once a drain removes them,
    # and a new version's backends must not append to an old version's log.
    group = f"{os.getpid()}-g{next(_GROUPS)}"
    logs = [log_dir / f"backend-{model}-{group}-{i}.log" for i in range(count)]
    fds = [listener.fileno() for listener, _ in listeners]
    child_env = {**os.environ, **(env or {}), **scoring_server_env(timeout)}
    command = [
        *(sys.executable, "-m", "runway.serving.zygote", BACKEND_APP),
        *("--fds", ",".join(map(str, fds)), "--logs", ",".join(map(str, logs))),
        *("--gateway", str(os.getpid())),
        *(("--preload", preload) if preload else ()),  # the flavor's imports: while fetching
        *(("--prepare", prepare[0]) if prepare else ()),  # fork the prepare child (forked.py)
    ]
    try:
        process = zygote.spawn(
            command, child_env, [*fds, *(prepare[1] if prepare else ())], logs[0]
        )
    except BaseException:
        for listener, _ in listeners:
            listener.close()
        raise
    return Pending(model, process, listeners, logs)


def _become_subreaper() -> None:
    """Adopt orphaned descendants (the zygote's backends) instead of init (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def _listen(socket_dir: Path, stem: str) -> tuple[socket.socket, Path]:
    """A listening Unix socket at a fresh path in ``socket_dir``, mode 0600 before it listens."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for n in range(1000):
        path = socket_dir / f"{stem}-{os.getpid()}-{n}.sock"
        if path.exists():
            continue
        try:
            listener.bind(str(path))
        except OSError:
            continue
        # Owner-only before it listens. (umask would be process-wide, racing the
        # threads that create files; the 0700 directory already bars others.)
        os.chmod(path, 0o600)
        listener.listen(128)
        return listener, path
    listener.close()
    raise BackendError(f"no free socket name in {socket_dir}")
