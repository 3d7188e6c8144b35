"""The shared ``mlflow server``: PostgreSQL for runs and the registry, a folder or S3 for artifacts.

Lean by design: one uvicorn worker and MLflow's job runner off is 2 processes
where the defaults start 13 and lost workers under load (the memory each takes
is in the README's table of the team's services).
Artifacts go through the server (``--serve-artifacts``), so members need no
storage credentials. With ``--app-name basic-auth`` users need a password, nobody
has a permission until granted one (``default_permission = NO_PERMISSIONS``),
and the admin is created on the first start from the stack's secrets.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from runway.team import procs

ADMIN = "admin"
# Each authenticated request otherwise re-hashes the password (a slow hash, by design).
# The cache is per worker: a password change invalidates only the worker that made it,
# so with more workers (or servers) the cache is off and a change holds at once.
AUTH_CACHE_SECONDS = 60


def auth_cache_seconds(workers: int) -> int:
    """How long a worker may trust a checked password: 0 (no cache) unless it is alone."""
    return AUTH_CACHE_SECONDS if workers == 1 else 0


def auth_ini(path: Path, database_uri: str, admin_password: str, workers: int = 1) -> Path:
    """MLflow's basic-auth configuration (0600: it holds the admin's first password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        f"auth_cache_ttl_seconds = {auth_cache_seconds(workers)}\n"
    )
    path.chmod(0o600)
    return path


def command(
    host: str, port: int, backend_uri: str, artifacts: str, auth: bool, workers: int = 1
) -> list[str]:
    """``mlflow server`` as the stack runs it."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        artifacts,
        *(["--app-name", "basic-auth"] if auth else []),
    ]


def environment(
    base: Mapping[str, str], extra: Mapping[str, str], auth_config: Path | None
) -> dict[str, str]:
    """The server's environment: ours without any client identity, plus the stack's."""
    env = {k: v for k, v in base.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(extra)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # `mlflow server` runs uvicorn by name: this environment's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if auth_config is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(auth_config)
    return env


def ready(url: str) -> bool:
    """True when the server answers ``/health``."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, http.client.HTTPException):  # e.g. a probe that met itself (self-connect)
        return False


def start(
    cmd: list[str], env: Mapping[str, str], url: str, log_file: Path, pidfile: Path, timeout: float
) -> float:
    """Start the server; seconds until ``/health`` answers."""
    proc = procs.spawn(cmd, log_file, pidfile, env=env)
    return procs.wait_ready("mlflow server", proc, lambda: ready(url), timeout, log_file)
