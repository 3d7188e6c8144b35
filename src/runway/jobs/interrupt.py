"""What stops a job before it ends: SIGTERM, and a tracking server that stays away.

A sweep's trial that fails on a tracking or network error (:func:`is_outage`)
did not evaluate anything: :func:`through_outages` waits for the server
(bounded, one line per outage) and, past the bound, raises :class:`Outage`, so
the trial is marked interrupted (not counted) and ``--resume`` runs it again.

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
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

from runway.errors import ExitCode

log = logging.getLogger(__name__)

T = TypeVar("T")

# What MLflow's client, requests, urllib3 and SQLAlchemy say when a server is away.
_NETWORK_SIGNS = (
    "Connection refused",
    "NewConnectionError",
    "Failed to establish",
    "Max retries exceeded",
    "Connection aborted",
    "RemoteDisconnected",
    "Read timed out",
    "ConnectTimeout",
    "server closed the connection",
    "could not connect to server",
    "connection failed",
)
_SERVER_ERROR = re.compile(r"\b(?:error code|status code|HTTP) ?:? ?5\d\d\b")
_OUTAGE_CLASSES = {
    "ConnectionError",  # requests'
    "Timeout",
    "ConnectTimeout",
    "ReadTimeout",
    "MaxRetryError",
    "NewConnectionError",
    "ProtocolError",
    "OperationalError",  # SQLAlchemy's: a database store that went away
    "InterfaceError",
}
_OUTAGE_MODULES = {"requests", "urllib3", "sqlalchemy", "psycopg", "psycopg2", "http"}


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


def is_outage(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the tracking store is away, not wrong:
    no connection, a timeout, an HTTP 5xx answer, a database connection lost."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _says_outage(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _says_outage(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):  # the builtins (OSError's)
        return True
    root = type(exc).__module__.split(".")[0]
    names = {cls.__name__ for cls in type(exc).__mro__}
    if root in _OUTAGE_MODULES and names & _OUTAGE_CLASSES:
        return True
    if root != "mlflow":
        return False
    text = str(exc)
    status = getattr(exc, "get_http_status_code", None)
    answered_5xx = "RestException" in names and callable(status) and status() >= 500
    return (
        answered_5xx or bool(_SERVER_ERROR.search(text)) or any(s in text for s in _NETWORK_SIGNS)
    )


def through_outages(call: Callable[[], T], what: str, wait: float) -> T:
    """``call()``; while it fails on an outage, wait and call again, for up to ``wait`` seconds.

    One line when the server goes away and one when it answers again. Raises
    :class:`Outage` once ``wait`` is spent; any other error as it is.
    """
    since: float | None = None
    pause = 1.0
    while True:
        try:
            result = call()
        except Exception as exc:
            if not is_outage(exc):
                raise
            now = time.monotonic()
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            if since is None:
                since = now
                log.warning(
                    "tracking store unreachable (%s): %s waits up to %gs", reason, what, wait
                )
            if now - since >= wait:
                raise Outage(
                    f"the tracking store was unreachable for {wait:g}s ({reason}); {what} "
                    "was not counted"
                ) from exc
            time.sleep(min(pause, max(since + wait - now, 0.0)))
            pause = min(pause * 2, 5.0)
            continue
        if since is not None:
            log.warning(
                "tracking store answers again after %.0fs: %s goes on",
                time.monotonic() - since,
                what,
            )
        return result


def interruption(exc: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` that ``exc`` was raised while handling, if any (a run that
    could not be ended KILLED while the tracking store was away)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return current
        seen.add(id(current))
        current = current.__context__
    return None
