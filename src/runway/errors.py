"""Errors a user can act on.

The CLI prints these as one line without a traceback and exits non-zero;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RunwayError(Exception):
    """Base class: the message says what was wrong and what to do."""

    exit_code = 1


class SpecError(RunwayError):
    """An experiment spec (or an override of it) is invalid."""

    exit_code = 2


class DataError(RunwayError):
    """The data a spec points at cannot be used as described."""

    exit_code = 3


class TrackingError(RunwayError):
    """MLflow tracking is misconfigured or unreachable."""

    exit_code = 4


# --- batch scoring ----------------------------------------------------------------------


class ScoringError(RunwayError):
    """Batch scoring cannot start or did not pass: bad input file, or too many rejects."""

    exit_code = 7
