"""The first version's prepare child, forked by the backend zygote once MLflow is imported.

At a cold start the prepare child (:mod:`runway.serving.prepare`) and the zygote
(:mod:`runway.serving.zygote`) each started an interpreter and imported runway,
pandas and MLflow: seconds of CPU twice over, on the first answer's path on a
busy host (#31). So the serve command has the zygote fork the child right after
its own MLflow import: the child runs :func:`runway.serving.prepare.main`
unchanged, with the settings on its stdin and its answer on its stdout, both
pipes to the gateway, and its log on the gateway's stderr; its store imports
(SQLAlchemy, Alembic) stay in it, out of the backends. It resolves, fetches and
checks the version before the zygote loads anything of the model, as before.

Both sides live here: :class:`Pipes` and :class:`Forked` in the gateway,
:func:`fork` and :func:`reap` in the zygote.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import traceback
from dataclasses import dataclass


@dataclass
class Pipes:
    """In the gateway: the forked child's pipes, the zygote's ends passed to it."""

    settings_r: int
    settings_w: int
    answer_r: int
    answer_w: int
    log: int  # the gateway's stderr, for the child's log

    @classmethod
    def open(cls) -> Pipes:
        settings_r, settings_w = os.pipe()
        answer_r, answer_w = os.pipe()
        return cls(settings_r, settings_w, answer_r, answer_w, os.dup(2))

    def spec(self, argv: list[str]) -> str:
        """The zygote's ``--prepare``: its fds and the child's arguments."""
        return json.dumps({"fds": [self.settings_r, self.answer_w, self.log], "argv": argv})

    def given(self) -> list[int]:
        """The fds the zygote inherits."""
        return [self.settings_r, self.answer_w, self.log]

    def handed_over(self, settings: str) -> Forked:
        """Close the zygote's ends here, send the settings; the child's answer to come."""
        for fd in self.given():
            os.close(fd)
        with contextlib.suppress(BrokenPipeError), open(self.settings_w, "wb") as out:
            out.write(settings.encode())
        return Forked(self.answer_r)

    def close(self) -> None:
        """Nothing was started: close every end."""
        for fd in (*self.given(), self.settings_w, self.answer_r):
            with contextlib.suppress(OSError):
                os.close(fd)


class Forked:
    """In the gateway: what :func:`runway.serving.prepare.launched` uses of a ``Popen``.

    Its exit code is the zygote's to reap: 0 once it answered, 1 if it ended without.
    Killing it stops the zygote's whole group (the start has failed by then).
    """

    def __init__(self, answer: int) -> None:
        self.answer = answer
        self.returncode: int | None = None
        self.group: int | None = None  # the zygote's process group

    def communicate(self) -> tuple[bytes, None]:
        with open(self.answer, "rb") as pipe:
            out = pipe.read()  # to its end: the child exited (or was killed)
        self.returncode = 0 if out.strip() else 1
        return out, None

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        if self.group is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.group, signal.SIGKILL)
        self.returncode = -signal.SIGKILL

    def wait(self) -> int:
        return self.returncode if self.returncode is not None else -1


def fork(spec: str, close: list[int]) -> int:
    """In the zygote: fork the prepare child (``spec``: :meth:`Pipes.spec`); its pid."""
    doc = json.loads(spec)
    settings_r, answer_w, log = doc["fds"]
    zygote = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for fd in (settings_r, answer_w, log):  # the child's alone: its exit ends the answer
            os.close(fd)
        return pid
    code = 1  # pragma: no cover - runs in the child
    try:
        for fd in close:  # the backends' sockets are not the child's to hold
            os.close(fd)
        os.dup2(settings_r, 0)
        os.dup2(answer_w, 1)
        os.dup2(log, 2)
        for fd in (settings_r, answer_w, log):
            os.close(fd)
        from runway.serving import prepare
        from runway.serving.children import die_with

        die_with(zygote)  # the zygote dies with the gateway: so does this
        code = prepare.main(doc["argv"])
        import logging

        logging.shutdown()
    except BaseException:  # a bug: its traceback in the gateway's log, no answer
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def reap(pid: int | None, stop: bool) -> None:
    """In the zygote: wait for the child (it answered before the folder came; ``stop``: the
    gateway gave up, so it is killed first)."""
    if pid is None:
        return
    if stop:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
