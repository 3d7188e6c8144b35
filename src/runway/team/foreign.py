"""``runway team grant``: a role's grants on a team's own MLflow server and PostgreSQL.

``runway team user`` works on the local stack and its secrets file; a team on its
own infrastructure has only an admin's credentials. This applies the same MLflow
grants (``team/grants``) and database grants (``team/dbroles``) with them. A
member or database login made here gets a generated password that is written to
an owner-only file for the member (never printed); existing ones keep theirs.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from runway.errors import UsageError
from runway.settings import get_settings
from runway.store.access import Admin
from runway.team import dbroles, grants


@dataclass(frozen=True)
class Target:
    """The server and database to grant on, and as whom."""

    tracking_uri: str
    admin_user: str
    admin_password: str
    database_url: str  # "" for MLflow grants only


def grant(
    target: Target, user: str, role: str, model: str, experiment: str, out: Path
) -> list[str]:
    """Grant ``role`` on ``model`` to ``user``; what was done, one line each (no secrets)."""
    if not (target.tracking_uri and target.admin_user and target.admin_password):
        raise UsageError(
            "runway team grant needs the admin's credentials: --tracking-uri (or "
            "MLFLOW_TRACKING_URI), --admin-user (or MLFLOW_TRACKING_USERNAME) and the password "
            "in MLFLOW_TRACKING_PASSWORD"
        )
    admin = Admin(target.tracking_uri, target.admin_user, target.admin_password)
    admin.whoami()  # wrong credentials: one line, exit 13, before anything changes
    exports: dict[str, str] = {}
    password = secrets.token_urlsafe(18)
    if admin.create_user(user, password):
        exports |= {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
        lines = [f"created MLflow user {user} (password in {out})"]
    else:
        lines = [f"MLflow user {user} exists (password unchanged)"]
    names = grants.resources(model, experiment, get_settings().audit_experiment)
    lines += grants.apply(admin, role, user, names)
    if target.database_url:
        lines += _database(target.database_url, user, role, out, exports)
    if exports:
        exports = {"MLFLOW_TRACKING_URI": target.tracking_uri} | exports
        _write_private(out, "".join(f"export {k}={shlex.quote(v)}\n" for k, v in exports.items()))
        lines.append(f'{user}\'s variables in {out} (0600): hand it over; they run: . "{out}"')
    return lines


def _database(url: str, user: str, role: str, out: Path, exports: dict[str, str]) -> list[str]:
    from sqlalchemy.engine import make_url

    dbroles.check_name(user, str(make_url(url).username))
    databases = dbroles.Databases(url)
    databases.prepare()
    password = databases.login(user)
    lines = (
        [f"created database login {user} (password in {out})"]
        if password
        else [f"database login {user} exists (password unchanged)"]
    )
    lines += [f"database {line}" for line in databases.grant(role, user)]
    if password:
        if role == "author":
            exports["RUNWAY_OPTUNA_STORAGE"] = dbroles.member_url(url, user, password, "optuna")
        if role in ("author", "service"):
            exports["RUNWAY_PREDICTION_LOG"] = dbroles.member_url(
                url, user, password, "predictions"
            )
    return lines


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
