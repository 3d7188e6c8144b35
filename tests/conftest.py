"""Shared fixtures: every test gets its own MLflow store and working directory.

Creating a SQLite store runs MLflow's migrations (seconds), so one migrated
store is made per session and copied for each test.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def mlflow_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _template_store: Path
) -> Iterator[str]:
    """Point MLflow (and runway's settings) at a fresh store under ``tmp_path``."""
    db = tmp_path / "mlflow.db"
    shutil.copy(_template_store, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("RUNWAY_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def client(mlflow_store: str) -> mlflow.MlflowClient:
    """A client on this test's store."""
    return mlflow.MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    """The shipped churn CSV, copied to where the churn spec expects it (cwd/data)."""
    target = tmp_path / "data" / "churn.csv"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(REPO / "data" / "churn.csv", target)
    return target


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (its venv has runway and mlflow)."""
    return sys.executable


@dataclass(frozen=True)
class Shipped:
    """A model trained, registered and put in Production once per session, in its own store."""

    root: Path
    settings: Any
    version: str
    run_id: str
    data: Path  # the training file
    frame: pd.DataFrame  # the training table as generated

    @property
    def db(self) -> Path:
        return self.root / "mlflow.db"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a `runway` process needs to reach this store."""
        return {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.db}",
            "RUNWAY_REGISTRY_DIR": str(self.root / "registry"),
            "RUNWAY_ARTIFACT_ROOT": str(self.root / "mlruns"),
            "RUNWAY_PREDICTION_LOG": str(self.root / "predictions"),
            "PYTHONPATH": str(REPO),
            **extra,
        }


@pytest.fixture(scope="session")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> Shipped:
    """The delivery-time model (every kind of column; tests/helpers.delivery_frame), in Production."""
    from tests.helpers import delivery_frame, delivery_spec, ship

    root = tmp_path_factory.mktemp("delivery")
    frame = delivery_frame(600, seed=0)
    data = root / "delivery.csv"
    frame.to_csv(data, index=False)
    settings, version, run_id = ship(root, delivery_spec(data))
    return Shipped(root, settings, version, run_id, data, frame)
