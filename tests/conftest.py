"""Shared fixtures and the test tiers.

Every test runs in its own working directory, with MLflow pointed at a location
that fails loudly (:data:`NO_STORE`): a test that needs a store asks for
``mlflow_store`` (autouse in ``tests/integration`` and ``tests/e2e``, explicit in
``tests/unit``), so no test can write to the developer's ``mlflow.db``.

Creating a SQLite store runs MLflow's migrations (seconds), so one migrated
store is made per session and copied for each test that asks; unit tests that
never ask do not pay for it, nor for importing MLflow here.

Tiers: ``make test-fast`` runs ``-m "not slow"``. A test is ``slow`` when it is
under ``tests/e2e`` (marked here, by folder) or marked ``slow`` explicitly: it
starts a server or a runway/MLflow command as a child process. A test left in the
fast tier that starts such a process fails and says so (:func:`_fast_tier_guard`);
short scripts (``python -c``, a file) are fine.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import mlflow
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# What a `runway`/`mlflow` child process of a test imports: this checkout's code first
# (a worktree's src, not whatever the venv's editable install points at), then the tests.
REPO_PYTHONPATH = os.pathsep.join([str(REPO / "src"), str(REPO)])
EXPERIMENTS = REPO / "experiments"
TESTS = Path(__file__).resolve().parent

# Where MLflow points in a test that did not ask for a store: a scheme no store
# answers to, so a forgotten ``mlflow_store`` fails with this name in the error.
NO_STORE = "no-store-request-the-mlflow-store-fixture://nowhere"
MLFLOW_RUN_VARS = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")

# Commands a fast test may not start: servers and runway/MLflow processes (seconds each).
SLOW_MODULES = {"runway", "mlflow", "moto", "uvicorn", "gunicorn", "airflow"}
SLOW_PROGRAMS = {"runway", "mlflow", "moto_server", "uvicorn", "gunicorn", "airflow", "chromium"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is ``slow`` (real servers on loopback)."""
    e2e = TESTS / "e2e"
    for item in items:
        if e2e in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


def _slow_command(args: Any) -> str | None:
    """The part of a command line that makes it slow, or None."""
    argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
    words = [os.fsdecode(a) for a in argv]
    if len(words) == 1 and " " in words[0]:
        words = words[0].split()
    if not words:
        return None
    if Path(words[0]).name in SLOW_PROGRAMS:
        return words[0]
    for flag, module in itertools.pairwise(words):
        if flag == "-m" and module.split(".")[0] in SLOW_MODULES:  # runway.serving.prepare too
            return f"-m {module}"
    return None


@pytest.fixture(autouse=True)
def _fast_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked ``slow`` may not start a server or a runway/MLflow command."""
    if request.node.get_closest_marker("slow") is not None:
        return
    name = request.node.nodeid

    real_init = subprocess.Popen.__init__

    def checked_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        slow = _slow_command(args)
        if slow is not None:
            raise AssertionError(f"{name} starts {slow!r}: mark it @pytest.mark.slow")
        real_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", checked_init)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test: its own working directory, and MLflow pointed at :data:`NO_STORE`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", NO_STORE)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", NO_STORE)
    monkeypatch.setenv("RUNWAY_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # held rows, unclosed runs, logs
    for var in MLFLOW_RUN_VARS:
        monkeypatch.delenv(var, raising=False)
    if "mlflow" in sys.modules:  # an earlier test may have pointed MLflow's globals at its store
        import mlflow

        mlflow.set_tracking_uri(NO_STORE)
        mlflow.set_registry_uri(NO_STORE)


@pytest.fixture(scope="session")
def _template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_store(
    _isolated: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _template_store: Path
) -> Iterator[str]:
    """Point MLflow (and runway's settings) at a fresh store under ``tmp_path``."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(_template_store, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def client(mlflow_store: str) -> mlflow.MlflowClient:
    """A client on this test's store."""
    import mlflow

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
            "MLFLOW_REGISTRY_URI": f"sqlite:///{self.db}",
            "RUNWAY_REGISTRY_DIR": str(self.root / "registry"),
            "RUNWAY_ARTIFACT_ROOT": str(self.root / "mlruns"),
            "RUNWAY_PREDICTION_LOG": str(self.root / "predictions"),
            "PYTHONPATH": REPO_PYTHONPATH,
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
