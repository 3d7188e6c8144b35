"""A tracking server over HTTP: bounded retries, and its failures as one line each.

MLflow's client retries a refused connection for about four minutes by
default and a silent server for up to twenty; :func:`configure_http` bounds
both from settings (``RUNWAY_HTTP_RETRIES``, ``RUNWAY_HTTP_BACKOFF``,
``RUNWAY_HTTP_TIMEOUT``), unless MLflow's own variables are set. :func:`explain`
turns what the client raises for 401, 403, an unreachable or silent server, and
artifacts only a server can reach into runway's errors with their exit codes.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import read_mlflow_creds

from runway.errors import NotAuthenticated, PermissionDenied, RunwayError, TrackingError
from runway.net import redact_url
from runway.settings import Settings, is_server_url

_SET_BY_US: dict[str, str] = {}  # what configure_http last put in the environment
_ENDPOINT = re.compile(r"(/api/[\w./-]+|/ajax-api/[\w./-]+)")
# What the client says of a 5xx answer: after its retries (urllib3), or without them.
_SERVER_ERROR = re.compile(
    r"too many (5\d\d) error responses|error code (5\d\d)|^(5\d\d) Server Error"
)
# An S3 endpoint the client itself could not reach (botocore), its URL quoted.
_S3_DOWN = re.compile(r"Could not connect to the endpoint URL: \"?([^\s\"]+)")
_CONNECTION = ("NewConnectionError", "Connection refused", "Failed to establish", "Errno -2")


def configure_http(settings: Settings) -> None:
    """MLflow's HTTP retry and timeout variables from runway's settings (theirs win if set).

    Also, where the store is a server: artifacts go through it rather than to
    presigned S3 URLs (``MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD``), and the
    client does not print a "View run" link for every run it ends.
    """
    wanted = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.http_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(settings.http_backoff),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{settings.http_timeout:g}",
    }
    if is_server_url(settings.tracking_uri):
        wanted["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"
        wanted["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    for name, value in wanted.items():
        if os.environ.get(name, _SET_BY_US.get(name)) == _SET_BY_US.get(name):  # not the user's
            os.environ[name] = _SET_BY_US[name] = value


def explain(exc: BaseException) -> RunwayError | None:
    """The runway error for a failure talking to the tracking server, or None if not one."""
    if isinstance(exc, RunwayError):
        return exc
    status, text = _status_and_text(exc)
    server, user = _server(), read_mlflow_creds().username or "anonymous"
    if status == 401:
        return NotAuthenticated(
            f"not authenticated: {server} refused the request as {user} (HTTP 401); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to your account "
            '(for the local team stack: eval "$(make team-env)")'
        )
    if status == 403:
        found = _ENDPOINT.search(text)
        what = f" ({found.group(1)})" if found else ""
        return PermissionDenied(
            f"permission denied: {server} does not let {user} do this{what} (HTTP 403); "
            "ask an MLflow admin for the grant your role needs (README: Team deployment)"
        )
    if "mlflow-artifacts" in text and "tracking URI must be" in text:
        return TrackingError(
            f"artifacts are stored as mlflow-artifacts:/... and only the tracking server can "
            f"read them, but MLFLOW_TRACKING_URI is {_server()}; set it to the server's "
            "http(s) URL instead of its database"
        )
    if status is not None and status >= 500:
        return _server_failing(status, text)
    return _network(text)


def _server_failing(status: int, text: str) -> TrackingError:
    """A 5xx after the client's retries: the server runs, what it stands on does not."""
    found = _ENDPOINT.search(text)
    where = f" at {found.group(1)}" if found else ""
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
    return TrackingError(
        f"the tracking server {_server()} is failing: HTTP {status}{where} ({retries} retries); "
        "its database (backend store) is likely down or overloaded: try again when it is back "
        "(the local team stack: runway team status)"
    )


@contextlib.contextmanager
def artifact_errors(
    message: Callable[[MlflowException], str],
    what: str = "an artifact",
    probe: Callable[[], object] | None = None,
) -> Iterator[None]:
    """An artifact download's failures as runway errors, telling an artifact store that cannot
    be reached (refused, 5xx, an S3 endpoint down: ``what`` may exist) from an artifact that
    is not there (404, not listed: MLflow's own error, as a ``TrackingError`` saying
    ``message(exc)``); 401, 403 and a silent server as :func:`explain` says; anything else
    as it is.

    One mapping for every download (a model's folder, a run's artifact or JSON).
    MLflow's ``runs:/`` downloads swallow the cause ("Failed to download artifacts
    from path ..." for a store that is down too): ``probe`` (listing the folder)
    is then called to find out which it was.
    """
    try:
        yield
    except Exception as exc:  # MLflow's, botocore's, or requests' from the artifact proxy
        known = artifact_store_unreachable(exc, what) or explain(exc)
        if known is None and probe is not None and isinstance(exc, MlflowException):
            known = _probed(probe, what)
        if known is not None:
            raise known from exc
        if not isinstance(exc, MlflowException):
            raise
        raise TrackingError(message(exc)) from exc


def _probed(probe: Callable[[], object], what: str) -> RunwayError | None:
    """Why ``probe`` fails, if the store is what fails; None if it answers (the artifact is
    missing)."""
    try:
        probe()
    except Exception as exc:
        return artifact_store_unreachable(exc, what) or explain(exc)
    return None


def artifact_store_unreachable(exc: BaseException, what: str) -> TrackingError | None:
    """The error for reading ``what`` from an artifact store that did not answer, or None."""
    if isinstance(exc, RunwayError):
        return None
    status, text = _status_and_text(exc)
    s3 = _S3_DOWN.search(text)
    if s3 is not None or type(exc).__name__ == "EndpointConnectionError":
        endpoint = redact_url(s3.group(1)) if s3 else "the S3 endpoint"
        return TrackingError(
            f"artifact store unreachable: cannot connect to {endpoint} to read {what}; "
            "is the object store up? (the artifact is not known to be missing)"
        )
    if status is not None and status >= 500:
        found = _ENDPOINT.search(text)
        where = f" at {found.group(1)}" if found else ""
        return TrackingError(
            f"artifact store unreachable: the tracking server {_server()} could not read {what} "
            f"(HTTP {status}{where}); is the object store it keeps artifacts in up? "
            "(the artifact is not known to be missing)"
        )
    return None


def _network(text: str) -> RunwayError | None:
    retries = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "?")
    timeout = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "?")
    if "Read timed out" in text or "ReadTimeout" in text or "ConnectTimeout" in text:
        return TrackingError(
            f"the tracking server {_server()} did not answer within {timeout}s "
            f"({retries} retries; RUNWAY_HTTP_TIMEOUT, RUNWAY_HTTP_RETRIES); is it overloaded?"
        )
    if any(sign in text for sign in _CONNECTION):
        return TrackingError(
            f"cannot reach the tracking server {_server()}: connection refused "
            f"({retries} retries; RUNWAY_HTTP_RETRIES); is it running? "
            "(the local team stack: make team-up)"
        )
    return None


def _status_and_text(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status an exception carries (MLflow's or requests'), and its text."""
    text = str(exc)
    if isinstance(exc, MlflowException):
        code = exc.error_code
        if code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"):
            return 401, text
        if code == "PERMISSION_DENIED":
            return 403, text
        return _status_in(text), text
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return (status if isinstance(status, int) else _status_in(text)), text


def _status_in(text: str) -> int | None:
    """A 5xx status the client's words report (``too many 503 error responses``)."""
    found = _SERVER_ERROR.search(text)
    return int(next(g for g in found.groups() if g)) if found else None


def _server() -> str:
    """The tracking URI without credentials, for messages."""
    return redact_url(str(mlflow.get_tracking_uri()))
