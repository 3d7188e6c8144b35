"""`runway serve` on a tracking server's URI: it follows the registry without importing MLflow.

A real ``mlflow server`` on 127.0.0.1 over a SQLite store two versions were
shipped to; the gateway is started on its ``http://`` URI, polls the registry
through the server's REST API (the fingerprint) and resolves through its
short-lived child, and switches when the server's Production version changes.
At its exit the gateway writes the top-level modules it had imported: MLflow,
SQLAlchemy and Alembic must not be among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO_PYTHONPATH
from tests.helpers import free_port, ship, stop_process_group, wait_http

pytestmark = pytest.mark.slow

MODEL = "served-from-server"
PROBE = """
import atexit, json, sys
def dump(path):
    with open(path, "w") as out:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), out)
atexit.register(dump, sys.argv[1])
from runway.cli import main
sys.argv = ["runway", *sys.argv[2:]]
sys.exit(main())
"""


def _spec(c: float) -> dict:
    return {
        "experiment": "server-store",
        "task": "classification",
        "model_name": MODEL,
        "data": {"source": "sklearn:breast_cancer", "target": "target"},
        "estimator": {"name": "LogisticRegression", "params": {"max_iter": 500, "C": c}},
        "split": {"holdout": 0.25, "cv_folds": 2, "seed": 0},
        "metrics": ["roc_auc"],
        "primary_metric": {"name": "roc_auc"},
    }


def _server(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--workers", "1"),
        *("--default-artifact-root", str(root / "mlruns")),
    ]
    log = open(root / "mlflow-server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", proc, timeout=120)
    return proc, url


def test_a_gateway_on_a_server_uri_follows_it_without_importing_mlflow(tmp_path):
    root = tmp_path
    versions = [ship(root, _spec(c), reviewer="alice")[1] for c in (1.0, 0.1)]  # v2 serves
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RUNWAY_"))},
        "PYTHONPATH": REPO_PYTHONPATH,
    }
    server, url = _server(root, env)
    modules = root / "gateway-modules.json"
    port = free_port()
    gateway = None
    try:
        gateway_env = {
            **env,
            "MLFLOW_TRACKING_URI": url,
            "RUNWAY_SERVE_POLL_SECONDS": "1",
            "RUNWAY_PREDICTION_LOG": "off",
        }
        gateway = subprocess.Popen(
            [sys.executable, "-c", PROBE, str(modules), "serve", MODEL, "--port", str(port)],
            cwd=root,
            env=gateway_env,
            stdout=open(root / "gateway.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(f"{endpoint}/ready", gateway, timeout=240)
        assert _version(endpoint) == versions[1]
        rolled = subprocess.run(  # a rollback through runway (audited), through the server
            [sys.executable, "-m", "runway", "registry", "rollback", MODEL, "--reviewer", "alice"],
            cwd=root,
            env={**env, "MLFLOW_TRACKING_URI": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert rolled.returncode == 0, rolled.stderr
        deadline = time.monotonic() + 120
        while _version(endpoint) != versions[0] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _version(endpoint) == versions[0], (root / "gateway.log").read_text()[-3000:]
    finally:
        if gateway is not None:
            stop_process_group(gateway)
        stop_process_group(server)
    imported = set(json.loads(modules.read_text()))
    assert "runway" in imported and "uvicorn" in imported  # it did serve
    assert not imported & {"mlflow", "sqlalchemy", "alembic", "sklearn"}, sorted(imported)


def _version(endpoint: str) -> str:
    answer = requests.get(f"{endpoint}/ready", timeout=10)
    return answer.headers.get("X-Runway-Model-Version", "")
