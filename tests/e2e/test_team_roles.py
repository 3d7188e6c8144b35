"""Least privilege in team mode: each member's own database login, more server workers, grants
applied to a team's own infrastructure with an admin's credentials only.

The stack and its members are tests/e2e/team_stack.py's, started once per session.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import requests
from sqlalchemy.engine import make_url

from runway.store.access import Admin
from runway.store.predlog import PredictionLog, scored_frame
from runway.team import procs, server
from runway.team.config import TeamSettings
from runway.team.stack import Stack
from tests.e2e.team_stack import EXPERIMENT, MODEL, Team, _exports
from tests.helpers import free_port

pytestmark = pytest.mark.slow


def _connect(url: str, database: str) -> psycopg.Connection:
    """A member's connection to ``database`` with the credentials in ``url``."""
    dsn = make_url(url).set(drivername="postgresql", database=database)
    return psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True)


def _refused(url: str, database: str) -> str:
    """The error PostgreSQL gives the member for ``database`` (connect or read)."""
    with pytest.raises(psycopg.Error) as caught, _connect(url, database) as conn:
        conn.execute("SELECT count(*) FROM pg_tables").fetchone()
        conn.execute("SELECT * FROM users" if database == "mlflow_auth" else "SELECT 1/0")
    return str(caught.value)


def _rows(model: str) -> pd.DataFrame:
    inputs = pd.DataFrame({"x": [1.0, 2.0]})
    return scored_frame(inputs, [0, 1], model=model, version="1", source="serve", request_id="r1")


def _secrets(team: Team) -> dict:
    return json.loads((Path(team.env["RUNWAY_TEAM_DIR"]) / "secrets.json").read_text())


def test_the_service_account_appends_to_the_log_and_cannot_reach_the_servers_databases(team):
    log_url = team.members["svc"]["RUNWAY_PREDICTION_LOG"]
    for database in ("mlflow_auth", "mlflow", "optuna"):
        assert "permission denied for database" in _refused(log_url, database)
    assert make_url(log_url).username == "svc"  # its own login, not the stack's superuser
    assert "RUNWAY_OPTUNA_STORAGE" not in team.members["svc"]

    PredictionLog(log_url).write_frame("roles-model", _rows("roles-model"))  # creates the table
    dave = team.members["dave"]["RUNWAY_PREDICTION_LOG"]  # another service account appends too
    PredictionLog(dave).write_frame("roles-model", _rows("roles-model"))
    assert len(PredictionLog(log_url).read("roles-model")) == 4


def test_an_author_runs_studies_reads_the_log_and_touches_nothing_else(team):
    carol = team.members["carol"]
    assert make_url(carol["RUNWAY_OPTUNA_STORAGE"]).username == "carol"
    import optuna

    study = optuna.create_study(storage=carol["RUNWAY_OPTUNA_STORAGE"], study_name="roles-study")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    with (
        _connect(carol["RUNWAY_OPTUNA_STORAGE"], "optuna") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("DROP TABLE trials")

    PredictionLog(team.members["svc"]["RUNWAY_PREDICTION_LOG"]).write_frame(
        "roles-model-2", _rows("roles-model-2")
    )
    log_url = carol["RUNWAY_PREDICTION_LOG"]
    assert len(PredictionLog(log_url).read("roles-model-2")) == 2  # `runway monitor` reads it
    with _connect(log_url, "predictions") as conn:
        for statement in (
            "INSERT INTO runway_predictions_roles_model_2 (model) VALUES ('forged')",
            "DELETE FROM runway_predictions_roles_model_2",
            "CREATE TABLE runway_predictions_mine (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    for database in ("mlflow_auth", "mlflow"):
        assert "permission denied for database" in _refused(log_url, database)
    assert not {"RUNWAY_OPTUNA_STORAGE", "RUNWAY_PREDICTION_LOG"} & set(team.members["alice"])


def test_with_two_server_workers_a_changed_password_is_refused_at_once(team, tmp_path):
    """RUNWAY_TEAM_WORKERS=2: no login cache, so a change made elsewhere holds in every worker."""
    settings = TeamSettings(
        dir=Path(team.env["RUNWAY_TEAM_DIR"]),
        port_base=int(team.env["RUNWAY_TEAM_PORT_BASE"]),
        workers=2,
    )
    stack = Stack(settings)
    port = free_port()
    command, env = stack.server_launch(port, tmp_path)
    pidfile, url = tmp_path / "mlflow.pid", f"http://127.0.0.1:{port}"
    server.start(command, env, url, tmp_path / "mlflow.log", pidfile, 120)
    try:
        assert len(procs.tree(procs.read_pid(pidfile, "mlflow") or 0)) >= 3  # 2 workers
        admin = Admin(stack.url, server.ADMIN, stack.secrets["admin_password"])
        admin.ensure_user("pw-changer", "old-password-1")
        me = f"{url}/api/2.0/mlflow/users/current"
        for _ in range(8):  # a fresh connection each: both workers check (and could cache) it
            assert requests.get(me, auth=("pw-changer", "old-password-1"), timeout=10).ok
        admin.ensure_user("pw-changer", "new-password-2")  # through the other server
        old = [
            requests.get(me, auth=("pw-changer", "old-password-1"), timeout=10) for _ in "12345678"
        ]
        assert [r.status_code for r in old] == [401] * 8
        assert requests.get(me, auth=("pw-changer", "new-password-2"), timeout=10).ok
    finally:
        procs.stop(pidfile, signal.SIGTERM, "mlflow")


def test_team_grant_applies_a_role_on_a_foreign_server_with_admin_credentials_only(team, tmp_path):
    secrets = _secrets(team)
    pg = make_url(team.members["admin"]["RUNWAY_PREDICTION_LOG"])
    database_url = f"postgresql+psycopg://{pg.username}@{pg.host}:{pg.port}/postgres"
    clean = {k: v for k, v in team.env.items() if not k.startswith("RUNWAY_TEAM_")}
    env = {
        **clean,
        "RUNWAY_TEAM_DIR": str(tmp_path / "no-stack-here"),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": secrets["admin_password"],
        "PGPASSWORD": secrets["pg_password"],
    }
    out = tmp_path / "erin.env"
    args = ["erin", "--role", "service", "--model", MODEL, "--experiment", EXPERIMENT]
    where = ["--tracking-uri", team.members["admin"]["MLFLOW_TRACKING_URI"], "--out", str(out)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runway",
            "team",
            "grant",
            *args,
            *where,
            "--database-url",
            database_url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    erin = _exports(out.read_text())
    printed = done.stdout + done.stderr
    for secret in (
        secrets["admin_password"],
        secrets["pg_password"],
        erin["MLFLOW_TRACKING_PASSWORD"],
    ):
        assert secret not in printed
    assert make_url(erin["RUNWAY_PREDICTION_LOG"]).password not in printed
    assert "created database login erin" in done.stdout, done.stdout

    admin = Admin(erin["MLFLOW_TRACKING_URI"], "admin", secrets["admin_password"])
    assert admin.permission("erin", "registered_model", MODEL) == "READ"
    assert requests.get(
        f"{erin['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/users/current",
        auth=(erin["MLFLOW_TRACKING_USERNAME"], erin["MLFLOW_TRACKING_PASSWORD"]),
        timeout=10,
    ).ok
    PredictionLog(erin["RUNWAY_PREDICTION_LOG"]).write_frame("roles-erin", _rows("roles-erin"))
    assert "permission denied for database" in _refused(
        erin["RUNWAY_PREDICTION_LOG"], "mlflow_auth"
    )

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "runway",
            "team",
            "grant",
            *args,
            *where,
            "--database-url",
            database_url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "exists (password unchanged)" in again.stdout
    assert _exports(out.read_text()) == erin  # the member's file is not overwritten
