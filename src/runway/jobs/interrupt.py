"""What stops a job before it ends: SIGTERM, and a tracking server that stays away.

A scheduler (Kubernetes, Airflow, systemd) stops a job with SIGTERM. Python's
default is to die on the spot, which left a sweep's parent run and its current
trial RUNNING until a later ``--resume``. Under :func:`terminable` SIGTERM
raises :class:`Terminated` instead, a ``KeyboardInterrupt``: every path that
ends runs KILLED on Ctrl-C (``store.tracking.run``, a sweep's trial, Optuna's
own bookkeeping) does the same for it, and the CLI exits with
``ExitCode.INTERRUPTED``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from runway.errors import ExitCode

log = logging.getLogger(__name__)


class Interrupted(KeyboardInterrupt):
    """A job stopped before its end: its runs end KILLED, a sweep's trial is not counted."""

    exit_code: int = ExitCode.INTERRUPTED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Terminated(Interrupted):
    """SIGTERM arrived (a scheduler stopping the job)."""


class Outage(Interrupted):
    """The tracking server stayed unreachable for longer than a sweep waits."""

    exit_code = ExitCode.TRACKING


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    # Once: a second SIGTERM must not break the cleanup the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("terminated (SIGTERM)")


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside this block (also a decorator).

    Only the main thread can own a signal handler; elsewhere, and inside an
    outer ``terminable`` block, this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is None:  # installed outside Python: put back the default
        previous = signal.SIG_DFL
    if previous is _raise_terminated:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _QuietInterrupt(logging.Filter):
    """Optuna logs an interrupted trial as failed, with its traceback; the CLI says it in a line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, KeyboardInterrupt)


_QUIET = _QuietInterrupt()


def quiet_interrupted_trials() -> None:
    """No traceback from Optuna for a trial that Ctrl-C, SIGTERM or an outage stopped."""
    logging.getLogger("optuna.study._optimize").addFilter(_QUIET)  # the same filter: added once
