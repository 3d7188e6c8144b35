"""SIGTERM (what a scheduler sends) ends a sweep's or a training's runs KILLED at once."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time

import mlflow
import optuna
import pytest

from runway.core.training.spec import load_spec
from runway.jobs import study as studies
from runway.jobs.study import default_study_name
from tests.helpers import write_spec

pytestmark = pytest.mark.slow

FOREST = {"model__n_estimators": {"type": "int", "low": 150, "high": 300}}


def _start(python: str, store: str, folder, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [python, "-m", "runway", *args],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": store, "RUNWAY_THREADS": "1"},
        start_new_session=True,  # its spawned workers too are stopped by _stop
    )


def _stop(proc: subprocess.Popen) -> None:
    """Whatever the test left running of the command's process group (by its own PID)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        found = ready()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("never got there")


def _study(name: str, journal) -> optuna.Study | None:
    if not journal.exists():
        return None
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def test_sigterm_ends_the_sweep_its_workers_and_their_trials_killed(
    client, tmp_path, python, mlflow_store
):
    path = write_spec(
        tmp_path / "s.yaml",
        estimator={"name": "RandomForestClassifier"},
        sweep={"trials": 40, "pruning": False, "space": FOREST},
    )
    name, journal = default_study_name(load_spec(path)), tmp_path / "optuna.journal"
    proc = _start(python, mlflow_store, tmp_path, "sweep", str(path), "--workers", "2")

    def two_running_trials():
        study = _study(name, journal)
        trials = study.get_trials(deepcopy=False) if study else []
        running = [
            t for t in trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs
        ]
        return len(running) >= 2

    try:
        _wait_for(proc, two_running_trials)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    finally:
        _stop(proc)

    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == (
        f"error: terminated (SIGTERM): the sweep's runs ended KILLED; "
        f"runway sweep {path} --resume runs the rest"
    )
    assert "Traceback" not in err
    (parent,) = mlflow.search_runs(
        experiment_names=["test-exp"],
        filter_string="tags.`runway.sweep` = 'true'",
        output_format="list",
    )
    assert parent.info.status == "KILLED"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert not [c for c in children if c.info.status == "RUNNING"]
    killed = {c.data.tags["optuna.trial_number"] for c in children if c.info.status == "KILLED"}
    study = _study(name, journal)
    assert study is not None
    interrupted = {
        str(t.number) for t in study.get_trials() if t.system_attrs.get(studies.INTERRUPTED_ATTR)
    }
    assert len(interrupted) == 2 and killed == interrupted  # the owner's trial and the worker's
    assert not [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert all(str(t.number) not in interrupted for t in studies.evaluated(study))


def test_sigterm_ends_a_training_run_killed(client, tmp_path, python, mlflow_store):
    path = write_spec(
        tmp_path / "s.yaml",
        estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 3000}},
    )
    proc = _start(python, mlflow_store, tmp_path, "train", str(path))

    def running_run():
        try:
            return mlflow.search_runs(experiment_names=["test-exp"], output_format="list")
        except Exception:  # the child is still creating the store's tables
            return None

    try:
        _wait_for(proc, running_run)
        time.sleep(1.0)  # into the cross-validation
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    finally:
        _stop(proc)

    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "error: terminated (SIGTERM): its run ended KILLED"
    (run,) = mlflow.search_runs(experiment_names=["test-exp"], output_format="list")
    assert run.info.status == "KILLED"
