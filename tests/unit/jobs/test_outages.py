"""A tracking store that is away is waited for, not counted as a failed trial."""

from __future__ import annotations

import logging

import pytest
import requests
import sqlalchemy.exc
from mlflow.exceptions import MlflowException, RestException

from runway.jobs import interrupt
from runway.jobs.interrupt import Outage, interruption, is_outage, through_outages


def _caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError("Connection refused"),
        requests.exceptions.ReadTimeout("Read timed out"),
        ConnectionRefusedError(111, "Connection refused"),
        sqlalchemy.exc.OperationalError("INSERT", {}, Exception("server closed the connection")),
        MlflowException(
            "API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/create failed with "
            "exception HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded"
        ),
        MlflowException(
            "API request to endpoint /api/2.0/mlflow/runs/create failed with error code 503 != 200"
        ),
        RestException({"error_code": "INTERNAL_ERROR", "message": "the database went away"}),
        _caused(RuntimeError("while logging"), requests.exceptions.ConnectionError("refused")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_and_server_errors_are_outages(exc):
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("l1_ratio must be set with elasticnet"),
        MlflowException(
            "Changing param values is not allowed", error_code="INVALID_PARAMETER_VALUE"
        ),
        MlflowException("something local went wrong"),  # INTERNAL_ERROR by default, no server
        RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}),
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_of_the_trial_itself_are_not_outages(exc):
    assert not is_outage(exc)


def test_a_call_is_retried_through_an_outage_with_one_line_each_way(monkeypatch, caplog):
    monkeypatch.setattr(interrupt.time, "sleep", lambda s: None)
    answers = iter([requests.exceptions.ConnectionError("refused")] * 3 + ["run-1"])

    def create_run() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with caplog.at_level(logging.WARNING, logger="runway.jobs.interrupt"):
        assert through_outages(create_run, "trial 5", wait=60) == "run-1"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "tracking store unreachable (refused): trial 5 waits up to 60s" in lines[0]
    assert "answers again" in lines[1] and "trial 5 goes on" in lines[1]


def test_an_outage_longer_than_the_wait_stops_with_the_trial_not_counted(monkeypatch):
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(interrupt.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(interrupt.time, "sleep", lambda s: None)

    def down() -> None:
        raise requests.exceptions.ConnectionError("Connection refused")

    with pytest.raises(Outage) as info:
        through_outages(down, "trial 7", wait=30)
    assert (
        "unreachable for 30s" in info.value.message
        and "trial 7 was not counted" in info.value.message
    )
    assert info.value.exit_code == 4
    # A run that then could not be ended KILLED (the store still away) still reads as the outage.
    try:
        try:
            raise info.value
        except KeyboardInterrupt:
            raise MlflowException("end_run: Connection refused") from None
    except MlflowException as later:
        assert interruption(later) is info.value


def test_other_errors_are_raised_at_once():
    calls = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("no such param")

    with pytest.raises(ValueError):
        through_outages(bad, "trial 1", wait=60)
    assert calls == [1]
