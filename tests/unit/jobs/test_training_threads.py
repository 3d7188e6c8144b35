"""Training pins BLAS/OpenMP threads like serving does (issue 25, 15): a behaviour test, no timing."""

from __future__ import annotations

import pytest
import threadpoolctl
from sklearn.linear_model import Ridge

from runway.core import threads
from runway.core.training.spec import spec_from_dict
from runway.jobs.train import train
from runway.settings import Settings
from tests.helpers import delivery_frame, delivery_spec

# train() logs a run: these tests need their own MLflow store
pytestmark = pytest.mark.usefixtures("mlflow_store")


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The thread counts of every BLAS/OpenMP pool, recorded inside each Ridge fit."""
    calls: list[set[int]] = []
    fit = Ridge.fit

    def recording(self, *args, **kwargs):
        calls.append({pool["num_threads"] for pool in threadpoolctl.threadpool_info()})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Ridge, "fit", recording)
    return calls


def _train(tmp_path, settings: Settings) -> None:
    data = tmp_path / "delivery.csv"
    delivery_frame(120, seed=1).to_csv(data, index=False)
    # Unpinned, a process's pools have as many threads as it was given: 3 stands for many.
    with threadpoolctl.threadpool_limits(limits=3):
        train(spec_from_dict(delivery_spec(data)), settings=settings)


def test_a_fit_runs_with_runway_threads(tmp_path, seen, monkeypatch):
    monkeypatch.setenv("RUNWAY_THREADS", "1")
    _train(tmp_path, Settings())
    assert seen, "Ridge was never fitted"
    assert all(counts == {1} for counts in seen), seen


def test_the_default_on_a_busy_host_is_one_thread(tmp_path, seen, monkeypatch):
    monkeypatch.delenv("RUNWAY_THREADS", raising=False)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    _train(tmp_path, Settings())
    assert all(counts == {1} for counts in seen), seen


def test_the_default_uses_the_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (2.5, 0.0, 0.0))
    assert threads.threads_for("train", None) == 5
    assert threads.threads_for("sweep", None, workers=2) == 2
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert threads.threads_for("train", None) == threads.threads_for("sweep", None, 2) == 1
    assert threads.threads_for("train", 4) == 4
