"""A run whose end the tracking store refused (its database down) does not stay RUNNING."""

from __future__ import annotations

import stat

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from runway.errors import TrackingError
from runway.settings import get_settings
from runway.store import tracking

DOWN = (
    "API request to http://127.0.0.1:9/api/2.0/mlflow/runs/update failed with exception "
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
    "/api/2.0/mlflow/runs/update (Caused by ResponseError('too many 503 error responses'))"
)


@pytest.fixture
def store_down_at_the_end(monkeypatch, tmp_path):
    """The store answers until a run is ended, then fails that one call as a 503 would."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    real = mlflow.MlflowClient.set_terminated
    calls = []

    def refused(self, run_id, status=None, end_time=None):
        calls.append(status)
        if len(calls) == 1:
            raise MlflowException(DOWN)
        return real(self, run_id, status, end_time)

    monkeypatch.setattr(mlflow.MlflowClient, "set_terminated", refused)
    return calls


def test_a_failed_run_the_store_could_not_end_is_ended_failed_when_it_is_back(
    mlflow_store, client, store_down_at_the_end
):
    experiment = tracking.ensure_experiment("outage", get_settings())
    # the run's own error is what propagates, not the end's
    with pytest.raises(RuntimeError, match="fit blew up"), tracking.run(experiment) as active:
        raise RuntimeError("fit blew up")
    run_id = active.info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    from runway.store import unclosed  # (imported here: on the old code, the end's error escaped)

    kept = unclosed.folder() / f"{run_id}.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(unclosed.folder().stat().st_mode) == 0o700
    assert mlflow.active_run() is None  # nothing for MLflow's exit hook to end FINISHED

    assert unclosed.close_remembered() == 1  # the next command, the store back
    run = client.get_run(run_id)
    assert run.info.status == "FAILED"
    assert "fit blew up" in run.data.tags[tracking.ERROR_TAG]
    assert not kept.exists()
    assert unclosed.close_remembered() == 0


def test_a_finished_run_the_store_could_not_end_says_why_in_one_line(
    mlflow_store, client, store_down_at_the_end
):
    experiment = tracking.ensure_experiment("outage", get_settings())
    with pytest.raises(TrackingError, match="HTTP 503"), tracking.run(experiment) as active:
        pass
    from runway.store import unclosed

    assert unclosed.close_remembered() == 1
    assert client.get_run(active.info.run_id).info.status == "FINISHED"


def test_a_store_still_down_keeps_the_record_and_does_not_raise(
    mlflow_store, client, store_down_at_the_end, monkeypatch
):
    experiment = tracking.ensure_experiment("outage", get_settings())
    with pytest.raises(RuntimeError), tracking.run(experiment) as active:
        raise RuntimeError("x")
    from runway.store import unclosed

    def still_down(self, run_id):
        raise MlflowException(DOWN)

    monkeypatch.setattr(mlflow.MlflowClient, "get_run", still_down)
    assert unclosed.close_remembered() == 0
    assert (unclosed.folder() / f"{active.info.run_id}.json").exists()
