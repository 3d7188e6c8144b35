"""``runway serve``'s first moments: its children started before the gateway's own imports.

The gateway's modules (pandas for the contract checks, the pydantic models,
uvicorn) take a second or more to import on a busy host, and the first answer
waits on work that needs none of them: the backend zygote's (MLflow's scoring
server, the model's flavor) and the prepare child's (MLflow: resolve, fetch and
check the version), which the zygote forks once it has imported MLflow
(:mod:`runway.serving.forked`: one interpreter and one MLflow import for both).
So the serve command starts the zygote from this module, which imports none of
that, and imports the gateway while it works (#31). The registry's fingerprint is
read before the child resolves, so a promotion meanwhile is seen at the first poll.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from socket import socket

from runway.core.threads import thread_env, threads_for
from runway.serving import startup
from runway.serving.backends import Pending, spawn_group
from runway.serving.children import child_command, settings_json
from runway.serving.forked import Forked, Pipes
from runway.settings import Settings, state_dir
from runway.store import served


@dataclass
class ServeOptions:
    """How ``runway serve`` runs."""

    model: str
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2  # one backend dying is then not an outage (the other takes its traffic)
    # this user's, owner-only (0700; each log 0600): logs show inputs and errors
    log_dir: Path = field(default_factory=lambda: state_dir() / "serve")


@dataclass
class Launched:
    """What the serve command started before importing the gateway: the first build's."""

    sock: socket  # the public port, bound
    runtime: Path  # private (0700): model folders and backend sockets
    mark: str | None  # the registry's fingerprint, read before the child resolved
    folder: Path  # where the child fetches Production's version
    child: Forked  # the prepare child (forked by the zygote), fetching into ``folder``
    options: list[str]  # its options, for its error messages
    pending: Pending  # the zygote, importing MLflow's scoring server and the flavor
    started: float = field(default_factory=time.monotonic)
    # seconds this process had run when it started them (interpreter + runway's imports)
    before: float | None = field(default_factory=startup.process_age)

    def abandon(self) -> None:
        """Stop both children and release what they were given (start-up failed)."""
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        self.pending.cancel()
        self.sock.close()
        shutil.rmtree(self.runtime, ignore_errors=True)


def launch(options: ServeOptions, settings: Settings) -> Launched:
    """Bind the port, then start the zygote (and so the prepare child) for Production."""
    sock = startup.bind(options.host, options.port)
    runtime = startup.runtime_dir()
    pipes: Pipes | None = None
    try:
        uri, timeout = settings.tracking_uri, settings.http_timeout
        mark = served.fingerprint(uri, options.model, timeout)
        folder = Path(tempfile.mkdtemp(prefix="version-", dir=runtime))
        which = ["--stage", "Production", "--folder", str(folder)]
        hint = served.loader_hint(uri, options.model)  # scikit-learn, say: imported meanwhile
        pipes = Pipes.open()  # the zygote forks the prepare child once it has MLflow
        prepare = (pipes.spec(child_command(options.model, which)[3:]), pipes.given())
        pending = spawn_backends(options, settings, runtime, options.workers, hint, prepare)
    except BaseException:
        if pipes is not None:
            pipes.close()
        sock.close()
        shutil.rmtree(runtime, ignore_errors=True)
        raise
    child = pipes.handed_over(settings_json(settings))
    child.group = pending.zygote.pid
    return Launched(sock, runtime, mark, folder, child, which, pending)


def spawn_backends(
    options: ServeOptions,
    settings: Settings,
    runtime: Path,
    count: int,
    preload: str | None = None,
    prepare: tuple[str, list[int]] | None = None,
) -> Pending:
    """A zygote for ``count`` backends, importing MLflow's scoring server meanwhile (and
    ``preload``'s libraries: the loader module the version likely has)."""
    log_dir = options.log_dir
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # new folders: owner-only
    if log_dir == state_dir() / "serve":
        log_dir.chmod(0o700)  # one an older runway made world-readable
    return spawn_group(
        options.model,
        runtime,
        log_dir,
        settings.serve_timeout,
        count,
        env=thread_env(threads_for("serve", settings.threads)),
        preload=preload,
        prepare=prepare,
    )
