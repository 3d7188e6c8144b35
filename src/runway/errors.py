"""Errors a user can act on, and the exit code of each: the one table.

The CLI prints these as ``error: ...`` lines without a traceback and exits with
the class's code; anything else is a bug and keeps its traceback (exit 1).

======  ==========================  =====================================================
code    class                       meaning
======  ==========================  =====================================================
0       -                           success
1       (any other exception)       a bug: the traceback is printed
2       :class:`UsageError`         bad command-line arguments (as argparse's own exit 2)
3       :class:`DataError`          the data cannot be used as the spec describes
4       :class:`TrackingError`      the MLflow store is misconfigured or unreachable
5       :class:`SweepError`         a sweep cannot start or ended with no usable trial
6       :class:`RegistryError`      a registry operation was refused (gates, reviewer, lock,
                                    ``runway onnx convert`` without a faithful ONNX version)
7       :class:`ScoringError`       batch scoring cannot start, or rejected too many rows
8       :class:`ServeError`         the endpoint could not be started
9       :class:`SpecError`          an experiment spec or a policy file is invalid
10      -                           ``runway monitor``: a policy threshold was crossed
11      :class:`MonitorError`       ``runway monitor``: the window could not be judged
12      :class:`TrustError`         a model version, or the record of it, failed runway's
                                    trust checks (provenance, contents, audit chain)
13      :class:`NotAuthenticated`   the tracking server wants valid credentials (HTTP 401)
14      :class:`PermissionDenied`   the tracking server refused this user the operation (403)
15      :class:`TeamError`          ``runway team``: the team stack could not start or stop
130     -                           interrupted (Ctrl-C; SIGTERM for train and sweep)
143     -                           ``runway score`` terminated (SIGTERM): nothing written
                                    or logged
======  ==========================  =====================================================
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Protocol


class ExitCode(IntEnum):
    """Process exit codes of ``runway`` (documented in the README)."""

    OK = 0
    BUG = 1
    USAGE = 2
    DATA = 3
    TRACKING = 4
    SWEEP = 5
    REGISTRY = 6
    SCORING = 7
    SERVE = 8
    SPEC = 9
    THRESHOLD_CROSSED = 10
    NOT_JUDGED = 11
    TRUST = 12
    NOT_AUTHENTICATED = 13
    PERMISSION_DENIED = 14
    TEAM = 15
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, what a scheduler expects of a stopped batch


class RunwayError(Exception):
    """Base class: the message says what was wrong and what to do."""

    exit_code: int = ExitCode.BUG


class UsageError(RunwayError):
    """A command-line argument is out of range or inconsistent."""

    exit_code = ExitCode.USAGE


class DataError(RunwayError):
    """The data a spec points at cannot be used as described."""

    exit_code = ExitCode.DATA


class TrackingError(RunwayError):
    """MLflow tracking is misconfigured or unreachable."""

    exit_code = ExitCode.TRACKING


class NotAuthenticated(TrackingError):
    """The tracking server refused the request without valid credentials (HTTP 401)."""

    exit_code = ExitCode.NOT_AUTHENTICATED


class PermissionDenied(TrackingError):
    """The tracking server does not let this user do the operation (HTTP 403)."""

    exit_code = ExitCode.PERMISSION_DENIED


class SweepError(RunwayError):
    """A sweep cannot start, or ended without a usable trial."""

    exit_code = ExitCode.SWEEP


class RegistryError(RunwayError):
    """A registry operation was refused or failed; nothing changed."""

    exit_code = ExitCode.REGISTRY


class LightenRefused(RegistryError):
    """``runway onnx convert``: no ONNX version that scores like the version (a step or estimator
    without one, or parity not met on the holdout or the edge cases); nothing was registered.
    """


class LockError(RegistryError):
    """The promotion lock could not be taken or was lost; the attempt failed, nothing more written."""


class LockTimeout(LockError):
    """Another promotion of the same model held the lock for longer than we would wait."""


class _Report(Protocol):
    model: str
    version: str

    @property
    def failures(self) -> list[Any]: ...

    def render(self) -> str: ...


class GateFailure(RegistryError):
    """The candidate did not pass its gates; nothing changed, the report is recorded."""

    def __init__(self, report: _Report) -> None:
        failed = ", ".join(rule.name for rule in report.failures)
        super().__init__(f"{report.model} v{report.version} stays in its stage: failed {failed}")
        self.report = report


class ScoringError(RunwayError):
    """Batch scoring cannot start or did not pass: bad input file, or too many rejects."""

    exit_code = ExitCode.SCORING


class ServeError(RunwayError):
    """The endpoint could not be started."""

    exit_code = ExitCode.SERVE


class SpecError(RunwayError):
    """An experiment spec, a policy file, or an override of one is invalid."""

    exit_code = ExitCode.SPEC


class TrustError(RunwayError):
    """A model version, or the registry's record of it, is not what runway vouched for."""

    exit_code = ExitCode.TRUST


class UntrustedModel(TrustError):
    """A version's source or files failed the checks made before loading it; nothing ran."""


class AuditUnverified(TrustError):
    """The audit chain is broken, or does not explain a version's stage, aliases or approval."""


class MonitorError(RunwayError):
    """A monitoring window cannot be judged (no rows, no reference, labels that match nothing).

    Nothing is retrained on such a window.
    """

    exit_code = ExitCode.NOT_JUDGED


class TeamError(RunwayError):
    """The team stack (PostgreSQL, S3, the MLflow server) could not be started or stopped."""

    exit_code = ExitCode.TEAM
