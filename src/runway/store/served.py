"""The store as ``runway serve``'s gateway sees it, without importing MLflow.

The gateway process stays small: MLflow's client, its SQL stores (SQLAlchemy,
Alembic) and everything they import cost it ~120 MB of RSS that it would hold
for as long as it serves. So this module has what the gateway itself needs,
in plain Python: the record of a resolved version, the names of a logged
model's files and of MLflow's scoring-server variables, and
:func:`fingerprint`, a cheap read of a model's versions that says when the
registry may have moved: from the file of a SQLite store, or from a tracking
server's REST API (``registered-models/get``, with MLflow's own credential and
TLS variables). Everything else (resolving a stage, fetching and checking a
version) runs with MLflow in a short-lived child
(:mod:`runway.serving.prepare`), on every kind of store.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import functools
import hashlib
import json
import os
import re
import sqlite3
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse

from runway.settings import is_server_url

EXAMPLE_FILE = "serving_input_example.json"

# MLflow's own scoring app (the one `mlflow models serve` execs uvicorn on); it loads
# the model folder named by SCORING_MODEL_ENV when imported. The names are spelled
# out rather than imported (importing the scoring server costs the gateway seconds);
# tests/unit/core/governance/test_trust.py checks them against the pinned mlflow.
SCORING_APP = "mlflow.pyfunc.scoring_server.app:app"
# What backends run: MLflow's app above plus runway's probability route (store/scoring_app).
BACKEND_APP = "runway.store.scoring_app:app"
PROBA_ROUTE = "/runway/proba"  # scoring_app.PROBA_ROUTE, spelled out for the same reason
# An ONNX twin's lean routes (store/scoring_app): labels or values, and [label, {class: p}] rows
TWIN_ROUTE = "/runway/twin"
TWIN_PROBA_ROUTE = "/runway/twin/proba"
# The loaders a twin's MLmodel names (core/onnx/model and its old alias core/onnx_model),
# spelled out: the gateway reads them without importing onnxruntime
TWIN_LOADERS = frozenset({"runway.core.onnx.model", "runway.core.onnx_model"})
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


def is_twin(folder: Path | None) -> bool:
    """Whether the model folder a slot serves is an ONNX twin (its MLmodel's loader), so the
    gateway may score it on the twin's lean routes; read once per folder and change."""
    if folder is None:
        return False
    try:
        stamp = (folder / "MLmodel").stat().st_mtime_ns
    except OSError:
        return False
    return _twin_loader(str(folder), stamp)


@functools.lru_cache(maxsize=32)
def _twin_loader(folder: str, stamp: int) -> bool:
    import yaml

    try:
        doc = yaml.safe_load((Path(folder) / "MLmodel").read_text())
        loader = doc["flavors"]["python_function"].get("loader_module")
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return False
    return loader in TWIN_LOADERS


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


def has_fingerprint(uri: str) -> bool:
    """Whether :func:`fingerprint` can read this store (a SQLite file, a tracking server)."""
    return sqlite_path(uri) is not None or is_server_url(uri)


def fingerprint(uri: str, model: str, timeout: float = 10.0) -> str | None:
    """A digest of ``model``'s versions that changes when its Production version may have.

    A promotion, a rollback, a new or deleted version, an alias moved all change it. None when
    it cannot be read: another kind of store (:func:`has_fingerprint` is
    False), or a missing or locked SQLite file, a schema this does not know, a
    server that refuses or does not answer (the caller asks MLflow later).
    """
    if is_server_url(uri):
        return _server_fingerprint(uri, model, timeout)
    return _sqlite_fingerprint(uri, model)


@contextlib.contextmanager
def _read_only(uri: str) -> Iterator[sqlite3.Connection | None]:
    """The SQLite store's file opened read-only (None: not a SQLite store, or no file yet)."""
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        yield None
        return
    with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=2)) as db:
        yield db


def _sqlite_fingerprint(uri: str, model: str) -> str | None:
    """Read straight from the file of a SQLite store, read-only."""
    try:
        with _read_only(uri) as db:
            if db is None:
                return None
            versions = db.execute(
                "SELECT version, current_stage, last_updated_time, status FROM model_versions "
                "WHERE name = ? ORDER BY version",
                (model,),
            ).fetchall()
            updated = db.execute(
                "SELECT last_updated_time FROM registered_models WHERE name = ?", (model,)
            ).fetchall()
            aliases = _sqlite_aliases(db, model)
    except sqlite3.Error:
        return None
    return hashlib.sha256(repr((versions, updated, *aliases)).encode()).hexdigest()


def loader_hint(uri: str, model: str) -> str | None:
    """The loader module Production's MLmodel names, read without MLflow, else None.

    Only a SQLite store with local artifacts; a hint, nothing more: the backend
    zygote imports that flavor's libraries (an allow-list) while the child resolves
    and checks the version (:mod:`runway.serving.launch`), and loads nothing of the
    model before it is checked. None when anything is missing or unreadable.
    """
    try:
        with _read_only(uri) as db:
            if db is None:
                return None
            row = db.execute(
                "SELECT v.storage_location FROM model_versions v JOIN registered_model_aliases a"
                " ON a.name = v.name AND a.version = v.version"
                " WHERE v.name = ? AND a.alias = 'production'",
                (model,),
            ).fetchone()
    except sqlite3.Error:  # no such table (a store from before aliases), locked, ...
        return None
    location = urlparse(str(row[0])) if row and row[0] else None
    if location is None or location.scheme not in ("file", ""):
        return None
    try:
        with open(Path(unquote(location.path)) / "MLmodel", encoding="utf-8") as mlmodel:
            text = mlmodel.read(65536)
    except (OSError, ValueError):
        return None
    found = re.search(r"^\s+loader_module:\s*([\w.]+)\s*$", text, re.MULTILINE)
    return found.group(1) if found else None


def _sqlite_aliases(db: sqlite3.Connection, model: str) -> list[object]:
    """The model's aliases (what serving resolves; moving one does not touch the
    model's update time). A store from before MLflow had them: none, and the
    digest stays what it was."""
    try:
        found = db.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ? ORDER BY alias",
            (model,),
        ).fetchall()
    except sqlite3.OperationalError:  # no such table
        return []
    return [found] if found else []


def _server_fingerprint(uri: str, model: str, timeout: float) -> str | None:
    """The registered model as the server's REST API gives it: every transition, new or
    deleted version updates its ``last_updated_timestamp``, and ``latest_versions`` holds
    the newest version of each stage (Production's is the one served)."""
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models/get?name={quote(model, safe='')}"
    request = urllib.request.Request(url, headers=_auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=_tls(url)) as answer:
            found = json.load(answer).get("registered_model", {})
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # 401, 403, 5xx: unknown
            return None
        found = {}  # no such model (yet): a state like any other
    except (OSError, ValueError, AttributeError):  # unreachable, silent, not MLflow's JSON
        return None
    versions = sorted(
        (v.get("version"), v.get("current_stage"), v.get("last_updated_timestamp"), v.get("status"))
        for v in found.get("latest_versions", [])
    )
    aliases = sorted((a.get("alias"), a.get("version")) for a in found.get("aliases", []))
    state = (found.get("last_updated_timestamp"), versions, aliases)
    return hashlib.sha256(repr(state).encode()).hexdigest()


def _auth_headers() -> dict[str, str]:
    """MLflow's client credentials: ``MLFLOW_TRACKING_TOKEN``, else the user and password
    from ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` or ``~/.mlflow/credentials``."""
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = _credentials()
    if not user or not password:
        return {}
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def _credentials() -> tuple[str | None, str | None]:
    """As ``mlflow.utils.credentials.read_mlflow_creds``: the environment first, then the file."""
    saved: Any = {}
    path = os.path.expanduser("~/.mlflow/credentials")
    if os.path.exists(path):
        config = configparser.ConfigParser()
        with contextlib.suppress(configparser.Error):
            config.read(path)
        saved = config["mlflow"] if config.has_section("mlflow") else {}
    env = os.environ.get
    return (
        env("MLFLOW_TRACKING_USERNAME") or saved.get("mlflow_tracking_username"),
        env("MLFLOW_TRACKING_PASSWORD") or saved.get("mlflow_tracking_password"),
    )


def _tls(url: str) -> ssl.SSLContext | None:
    """MLflow's TLS variables: no verification, a CA bundle, a client certificate."""
    if not url.lower().startswith("https://"):
        return None
    env = os.environ.get
    context = ssl.create_default_context(cafile=env("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    if env("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if env("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        context.load_cert_chain(env("MLFLOW_TRACKING_CLIENT_CERT_PATH", ""))
    return context
