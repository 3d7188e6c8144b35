"""Who is acting: the user the tracking server authenticated, or the OS user on a laptop.

Behind an authenticating ``mlflow server`` (its basic-auth app) the server
knows who sent a request; ``GET /api/2.0/mlflow/users/current`` says so, and
that answer, not a name typed on the command line nor the client-set
``mlflow.user`` tag, is the actor of every promotion and audit record. On a
local store (or a server without authentication) nothing is verified and the
OS user (or ``MLFLOW_TRACKING_USERNAME``) stands for the actor, as before.
"""

from __future__ import annotations

import functools
import getpass
import logging
from dataclasses import dataclass

from mlflow.utils.credentials import get_default_host_creds, read_mlflow_creds
from mlflow.utils.rest_utils import http_request, verify_rest_response

from runway.errors import RegistryError
from runway.settings import is_server_url
from runway.store.http import explain
from runway.store.tracking import tracking_uri

log = logging.getLogger(__name__)

CURRENT_USER = "/api/2.0/mlflow/users/current"


@dataclass(frozen=True)
class Identity:
    """A user name, and whether the tracking server vouched for it."""

    user: str
    verified: bool


def whoami() -> Identity:
    """The acting user for the configured store (one request per process and credentials)."""
    return _whoami(tracking_uri(), read_mlflow_creds().username or "")


@functools.cache
def _whoami(uri: str, claimed: str) -> Identity:
    fallback = Identity(claimed or getpass.getuser(), False)
    if not is_server_url(uri):
        return fallback
    try:
        response = http_request(get_default_host_creds(uri), CURRENT_USER, "GET")
        if response.status_code not in (200, 404):
            verify_rest_response(response, CURRENT_USER)
    except Exception as exc:  # MLflow's and requests' own: 401, unreachable, timed out
        known = explain(exc)
        if known is None:
            raise
        raise known from exc
    if response.status_code == 404:  # a server without the basic-auth app
        return fallback
    user = (response.json().get("user") or {}).get("username")
    return Identity(str(user), True) if user else fallback


def reviewer_and_actor(reviewer: str | None) -> tuple[str | None, str]:
    """Who approves and who acts, for a promotion asked for with ``--reviewer``.

    Under an authenticating server both are the logged-in user, and
    ``--reviewer`` may not name anybody else; elsewhere the reviewer is whom
    ``--reviewer`` names and the actor is that reviewer or the OS user.

    Raises:
        RegistryError: ``--reviewer`` claims another identity than the logged-in one.
    """
    me = whoami()
    if not me.verified:
        return reviewer, reviewer or me.user
    if reviewer is not None and reviewer != me.user:
        raise RegistryError(
            f"--reviewer {reviewer}: you are logged in to the tracking server as {me.user!r}, "
            f"and a reviewer approves as themselves; {reviewer} must run the promotion with "
            "their own credentials (MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD)"
        )
    return me.user, me.user


def user_tag() -> dict[str, str]:
    """``mlflow.user`` for runs runway creates with the client API (it sets none itself)."""
    return {"mlflow.user": whoami().user}
