"""Each member's database login and the server's workers, decided without starting anything."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import make_url

from runway.errors import UsageError
from runway.team import server
from runway.team.config import TeamSettings
from runway.team.stack import Stack
from tests.conftest import REPO


def _stack(tmp_path) -> Stack:
    found = {
        "pg_password": "superuser-secret",
        "admin_password": "admin-secret",
        "flask_secret": "k",
        "users": {"carol": "c", "alice": "a", "svc": "s"},
        "db": {"carol": "carol-db", "svc": "svc-db"},
        "roles": {"carol": ["author"], "alice": ["reviewer"], "svc": ["service"]},
    }
    (tmp_path / "secrets.json").write_text(json.dumps(found))
    return Stack(TeamSettings(dir=tmp_path))


def test_members_get_their_own_database_login_for_what_their_role_needs(tmp_path):
    stack = _stack(tmp_path)
    svc = stack.env("svc")
    assert "RUNWAY_OPTUNA_STORAGE" not in svc
    log = make_url(svc["RUNWAY_PREDICTION_LOG"])
    assert (log.username, log.password, log.database) == ("svc", "svc-db", "predictions")
    carol = stack.env("carol")
    assert make_url(carol["RUNWAY_OPTUNA_STORAGE"]).username == "carol"
    assert make_url(carol["RUNWAY_PREDICTION_LOG"]).username == "carol"  # read-only: monitor
    alice = stack.env("alice")  # a reviewer works through the server only
    assert not {"RUNWAY_OPTUNA_STORAGE", "RUNWAY_PREDICTION_LOG"} & set(alice)
    for member in ("svc", "carol", "alice"):
        assert "superuser-secret" not in json.dumps(stack.env(member))
    assert make_url(stack.env()["RUNWAY_PREDICTION_LOG"]).username == "runway"  # the admin's


@pytest.mark.parametrize("name", ["runway", "pg_monitor", "runway_service", "public"])
def test_a_member_cannot_take_a_reserved_database_login(name):
    from runway.team import dbroles

    with pytest.raises(UsageError, match="reserved"):
        dbroles.check_name(name, "runway")


def test_more_server_workers_turn_the_login_cache_off(tmp_path):
    stack = Stack(TeamSettings(dir=tmp_path, workers=3))
    command, env = stack.server_launch(5000, tmp_path / "mlflow")
    assert command[command.index("--workers") + 1] == "3"
    ini = (tmp_path / "mlflow" / "basic_auth.ini").read_text()
    assert "auth_cache_ttl_seconds = 0\n" in ini
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(tmp_path / "mlflow" / "basic_auth.ini")
    alone = Stack(TeamSettings(dir=tmp_path / "one")).server_launch(5000, tmp_path / "one")
    assert alone[0][alone[0].index("--workers") + 1] == "1"
    assert f"auth_cache_ttl_seconds = {server.AUTH_CACHE_SECONDS}\n" in (
        (tmp_path / "one" / "basic_auth.ini").read_text()
    )


def test_the_readme_shows_the_database_grants_and_the_grant_command():
    from runway.team import dbroles

    readme = (REPO / "README.md").read_text()
    missing = [line for line in dbroles.markdown() if line not in readme]
    assert not missing, missing
    assert "runway team grant" in readme and "RUNWAY_TEAM_WORKERS" in readme


def test_an_unreachable_database_is_one_line_without_its_password():
    from runway.errors import TeamError
    from runway.team import dbroles
    from tests.helpers import free_port

    url = f"postgresql+psycopg://dbadmin:s3cret-pw@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(TeamError) as caught:
        dbroles.Databases(url).prepare()
    message = str(caught.value)
    assert message.startswith("cannot apply database grants on 127.0.0.1:")
    assert "\n" not in message and "s3cret-pw" not in message
