"""What the serving gateway reads of the store without MLflow."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runway.store.served import fingerprint, sqlite_path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("sqlite:///mlflow.db", "mlflow.db"),  # relative to the working directory
        ("sqlite:////srv/mlflow/mlflow.db", "/srv/mlflow/mlflow.db"),
        ("sqlite:////srv/a b#c/mlflow.db", "/srv/a b#c/mlflow.db"),  # no fragment in a path
        ("sqlite:////srv/m.db?timeout=20", "/srv/m.db"),  # SQLAlchemy's query options
        ("sqlite+pysqlite:////srv/m.db", "/srv/m.db"),
        ("SQLITE:////srv/m%20x.db", "/srv/m x.db"),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u@db/mlflow", None),
        ("http://127.0.0.1:5000", None),
        ("file:///srv/mlruns", None),
        ("mlflow.db", None),
    ],
)
def test_the_sqlite_file_is_read_from_the_uri_as_sqlalchemy_reads_it(uri, path):
    assert sqlite_path(uri) == (Path(path) if path else None)


def test_a_database_that_is_not_mlflows_gives_no_fingerprint(tmp_path):
    """Then the gateway asks MLflow instead of guessing."""
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE model_versions (name TEXT)")
    assert fingerprint(f"sqlite:///{db}", "m") is None
    assert fingerprint(f"sqlite:///{tmp_path / 'absent.db'}", "m") is None
    assert not (tmp_path / "absent.db").exists()  # read-only: nothing created
