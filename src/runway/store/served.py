"""The store as ``runway serve``'s gateway sees it, without importing MLflow.

The gateway process stays small: MLflow's client, its SQL stores (SQLAlchemy,
Alembic) and everything they import cost it ~120 MB of RSS that it would hold
for as long as it serves. So this module has what the gateway itself needs,
in plain Python: the record of a resolved version, the names of a logged
model's files and of MLflow's scoring-server variables, and
:func:`fingerprint`, a cheap read of a model's versions that says when the
registry may have moved. Everything else (resolving a stage, fetching and
checking a version) runs with MLflow in a short-lived child
(:mod:`runway.serving.prepare`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

EXAMPLE_FILE = "serving_input_example.json"

# MLflow's own scoring app (the one `mlflow models serve` execs uvicorn on); it loads
# the model folder named by SCORING_MODEL_ENV when imported. The names are spelled
# out rather than imported (importing the scoring server costs the gateway seconds);
# tests/unit/core/governance/test_trust.py checks them against the pinned mlflow.
SCORING_APP = "mlflow.pyfunc.scoring_server.app:app"
SCORING_MODEL_ENV = "__pyfunc_model_path__"  # scoring_server._SERVER_MODEL_PATH
SCORING_TIMEOUT_ENV = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"


@dataclass(frozen=True)
class ResolvedModel:
    """One concrete registered version: what serving and batch scoring load."""

    name: str
    version: str
    stage: str
    run_id: str | None
    source: str = ""

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: pinned, so a promotion mid-load cannot switch it."""
        return f"models:/{self.name}/{self.version}"


def scoring_server_env(timeout: float) -> dict[str, str]:
    """What MLflow's scoring app reads besides the model folder (``SCORING_MODEL_ENV``,
    which the zygote sets once it knows it): the request timeout.

    ``mlflow models serve`` sets the same two variables before it execs uvicorn
    (``mlflow.pyfunc.scoring_server.get_cmd``).
    """
    return {SCORING_TIMEOUT_ENV: str(int(max(timeout, 1)))}


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///...`` store URI, read as SQLAlchemy reads it, else None.

    The path is made absolute as text (``os.path.abspath``, as SQLAlchemy does), not
    by following links: ``link/../m.db`` is ``./m.db`` to it, not ``<target>/../m.db``.
    A ``file:`` URI (``?uri=true``) is SQLite's own syntax: None, like another store.
    """
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.split("+", 1)[0].lower() != "sqlite" or not rest.startswith("/"):
        return None
    raw, _, query = rest[1:].partition("?")
    if "uri=true" in query.lower().split("&"):
        return None
    path = unquote(raw)  # sqlite:///rel.db -> rel.db, ////abs -> /abs
    return Path(os.path.abspath(path)) if path and path != ":memory:" else None


def fingerprint(uri: str, model: str) -> str | None:
    """A digest of ``model``'s versions (number, stage, last update) that changes when they do.

    Read straight from the file of a SQLite store, read-only; a promotion, a
    rollback, a new or deleted version all change it. None when it cannot be
    read this way: another kind of store (:func:`sqlite_path` is None; the caller
    asks MLflow itself), or, on a SQLite store, a missing or locked file or a
    schema this does not know (the caller asks again later).
    """
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)
        ) as db:
            versions = db.execute(
                "SELECT version, current_stage, last_updated_time, status FROM model_versions "
                "WHERE name = ? ORDER BY version",
                (model,),
            ).fetchall()
            updated = db.execute(
                "SELECT last_updated_time FROM registered_models WHERE name = ?", (model,)
            ).fetchall()
    except sqlite3.Error:
        return None
    return hashlib.sha256(repr((versions, updated)).encode()).hexdigest()
