"""A tracking server stopped mid-sweep and started again: no trial of the budget is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from runway.core.training.spec import load_spec
from runway.jobs import study as studies
from runway.jobs.study import default_study_name
from tests.helpers import free_port, stop_process_group, wait_http, write_spec

pytestmark = pytest.mark.slow

TRIALS = 6


def _server(root: Path, port: int) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{root / 'server.db'}", "--workers", "1"),
        *("--default-artifact-root", str(root / "artifacts")),
    ]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = open(root / "server.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", proc, timeout=120)
    return proc


def _study(name: str, journal: Path) -> optuna.Study | None:
    if not journal.exists():
        return None
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def _finished(name: str, journal: Path) -> int:
    study = _study(name, journal)
    return len(studies.evaluated(study)) if study else 0


def test_a_server_outage_mid_sweep_is_waited_for_and_burns_no_trial(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    path = write_spec(
        tmp_path / "s.yaml",
        sweep={
            "trials": TRIALS,
            "pruning": False,
            "space": {"model__C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}},
        },
    )
    name, journal = default_study_name(load_spec(path)), tmp_path / "optuna.journal"
    server = _server(tmp_path, port)
    sweep = subprocess.Popen(
        [sys.executable, "-m", "runway", "sweep", str(path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": url,
            "RUNWAY_HTTP_RETRIES": "0",  # each failed call fails at once, as trials did
            "RUNWAY_HTTP_TIMEOUT": "5",
            "RUNWAY_SWEEP_OUTAGE_WAIT": "180",
            "RUNWAY_THREADS": "1",
        },
    )
    try:
        deadline = time.monotonic() + 120
        while _finished(name, journal) < 2:
            assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()[1]
            time.sleep(0.1)
        stop_process_group(server)
        at_stop = _finished(name, journal)
        time.sleep(4)  # trials would fail now, each in well under a second
        assert _finished(name, journal) == at_stop  # waiting, not burning trials
        server = _server(tmp_path, port)
        err = sweep.communicate(timeout=240)[1]
        assert sweep.returncode == 0, err
        _check(name, journal, at_stop, err, url)
    finally:
        stop_process_group(sweep)
        stop_process_group(server)


def _check(name: str, journal: Path, at_stop: int, err: str, url: str) -> None:
    import mlflow

    assert at_stop < TRIALS, "the sweep ended before the outage"
    study = _study(name, journal)
    assert study is not None
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * TRIALS  # none failed, none lost
    assert sum("tracking store unreachable" in line for line in err.splitlines()) == 1, err
    assert sum("answers again" in line for line in err.splitlines()) == 1, err
    client = mlflow.MlflowClient(tracking_uri=url)
    for trial in trials:  # every trial counted is a real trial, with its run
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
