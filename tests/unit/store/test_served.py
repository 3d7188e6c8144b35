"""What the serving gateway reads of the store without MLflow."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runway.store.served import fingerprint, sqlite_path

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
