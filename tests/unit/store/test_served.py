"""What the serving gateway reads of the store without MLflow."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from runway.store.served import fingerprint, has_fingerprint, sqlite_path

SQLITE_URIS = [
    "sqlite:///mlflow.db",  # relative to the working directory
    "sqlite:////srv/mlflow/mlflow.db",
    "sqlite:////srv/a b#c/mlflow.db",  # no fragment in a path
    "sqlite:////srv/m.db?timeout=20",  # SQLAlchemy's query options
    "sqlite+pysqlite:////srv/m.db",
    "SQLITE:////srv/m%20x.db",
    "sqlite:///link/../m.db",  # '..' taken as text, as SQLAlchemy does, not after the link
]


@pytest.mark.parametrize("uri", SQLITE_URIS)
def test_the_sqlite_file_is_the_one_sqlalchemy_opens(uri):
    """The fingerprint must read the very file MLflow's SQL store writes."""
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
    from sqlalchemy.engine import make_url

    (opened, *_), _ = SQLiteDialect_pysqlite().create_connect_args(make_url(uri))
    assert sqlite_path(uri) == Path(opened)


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///file:m.db?mode=ro&uri=true",  # SQLite's own URI syntax: not guessed at
        "postgresql+psycopg://u@db/mlflow",
        "http://127.0.0.1:5000",
        "file:///srv/mlruns",
        "mlflow.db",
    ],
)
def test_other_stores_have_no_file_to_read(uri):
    assert sqlite_path(uri) is None


def test_a_link_then_dotdot_reads_the_file_sqlalchemy_reads(tmp_path, monkeypatch):
    """``link/../m.db`` is ``./m.db`` to SQLAlchemy; following the link first would read
    ``<target>/../m.db``, another store, whose fingerprint never moves."""
    (tmp_path / "real" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "deep")
    for where in (tmp_path / "m.db", tmp_path / "real" / "m.db"):
        with sqlite3.connect(where) as conn:
            conn.execute(
                "CREATE TABLE model_versions "
                "(name TEXT, version INT, current_stage TEXT, last_updated_time INT, status TEXT)"
            )
            conn.execute("CREATE TABLE registered_models (name TEXT, last_updated_time INT)")
    monkeypatch.chdir(tmp_path)
    uri = "sqlite:///link/../m.db"
    before = fingerprint(uri, "m")
    with sqlite3.connect(tmp_path / "m.db") as conn:  # the file SQLAlchemy opens moves
        conn.execute("INSERT INTO model_versions VALUES ('m', 1, 'Production', 1, 'READY')")
    assert before is not None and fingerprint(uri, "m") != before


def test_a_database_that_is_not_mlflows_gives_no_fingerprint(tmp_path):
    """Then the gateway asks MLflow instead of guessing."""
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE model_versions (name TEXT)")
    assert fingerprint(f"sqlite:///{db}", "m") is None
    assert fingerprint(f"sqlite:///{tmp_path / 'absent.db'}", "m") is None
    assert not (tmp_path / "absent.db").exists()  # read-only: nothing created


class _Registry:
    """A tracking server's ``registered-models/get``, scripted: what it answers, what it saw."""

    def __init__(self) -> None:
        self.status = 200
        self.model: dict = {}
        self.seen: list[tuple[str, str | None]] = []  # (path, Authorization)

    def __enter__(self) -> str:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                registry.seen.append((self.path, self.headers.get("Authorization")))
                body = json.dumps(
                    {"registered_model": registry.model}
                    if registry.status == 200
                    else {"error_code": "RESOURCE_DOES_NOT_EXIST"}
                ).encode()
                self.send_response(registry.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _model(production: str, updated: int) -> dict:
    return {
        "name": "m",
        "last_updated_timestamp": updated,
        "latest_versions": [
            {"version": production, "current_stage": "Production", "last_updated_timestamp": 1},
            {"version": "9", "current_stage": "None", "last_updated_timestamp": 1},
        ],
    }


def test_a_server_fingerprint_moves_with_the_registered_model(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "svc")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    registry = _Registry()
    with registry as uri:
        assert has_fingerprint(uri)
        registry.model = _model("1", 100)
        first = fingerprint(uri, 'churn "v2"/x')
        assert first is not None and fingerprint(uri, 'churn "v2"/x') == first
        registry.model = _model("2", 200)  # a promotion
        assert fingerprint(uri, "m") not in (None, first)
        registry.status = 404  # no such model yet: a state, not an error
        absent = fingerprint(uri, "m")
        assert absent is not None and absent == fingerprint(uri, "m")
        registry.status = 401  # refused: unknown, the caller asks MLflow later
        assert fingerprint(uri, "m") is None
    path, auth = registry.seen[0]
    assert path == "/api/2.0/mlflow/registered-models/get?name=churn%20%22v2%22%2Fx"
    assert auth == "Basic " + base64.b64encode(b"svc:pw").decode()
    assert fingerprint(uri, "m", timeout=2) is None  # the server is gone


def test_a_token_is_sent_as_a_bearer(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0k")
    registry = _Registry()
    with registry as uri:
        registry.model = _model("1", 1)
        assert fingerprint(uri, "m") is not None
    assert registry.seen[0][1] == "Bearer t0k"


def test_a_sqlite_fingerprint_moves_with_an_alias(tmp_path):
    """Serving resolves @production: an alias moved alone (MLflow's client, a registry
    without stages) must be noticed, though it touches no version and no update time."""
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE model_versions "
            "(name TEXT, version INT, current_stage TEXT, last_updated_time INT, status TEXT)"
        )
        conn.execute("CREATE TABLE registered_models (name TEXT, last_updated_time INT)")
        conn.execute("CREATE TABLE registered_model_aliases (name TEXT, alias TEXT, version INT)")
        conn.execute("INSERT INTO registered_models VALUES ('m', 1)")
        conn.executemany(
            "INSERT INTO model_versions VALUES ('m', ?, 'None', 1, 'READY')", [(1,), (2,)]
        )
        conn.execute("INSERT INTO registered_model_aliases VALUES ('m', 'production', 1)")
    uri = f"sqlite:///{db}"
    before = fingerprint(uri, "m")
    assert before is not None and fingerprint(uri, "m") == before
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE registered_model_aliases SET version = 2")
    assert fingerprint(uri, "m") not in (None, before)
