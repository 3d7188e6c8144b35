"""A second machine joins a running sweep (`runway sweep SPEC --join`) on an RDB study.

Two processes in two working directories share nothing but the tracking store
and the study's database (SQLite here; the team's PostgreSQL in
tests/e2e/test_team.py, where a worker is also killed with -9).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from runway.jobs.study import StopAtTarget, counted
from tests.helpers import stop_process_group, write_spec

pytestmark = pytest.mark.slow

TRIALS = 14
SPACE = {
    "model__n_estimators": {"type": "int", "low": 300, "high": 450},
    "model__max_depth": {"type": "int", "low": 3, "high": 10},
}


def _start(folder: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    log = open(folder / "sweep.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "runway", "sweep", "spec.yaml", *args],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _study(url: str) -> optuna.Study | None:
    storage = optuna.storages.RDBStorage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return optuna.load_study(study_name=names[0], storage=storage) if names else None


def test_a_second_working_directory_joins_a_running_study(tmp_path, mlflow_store):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_store,
        "RUNWAY_ARTIFACT_ROOT": str(tmp_path / "mlruns"),
        "RUNWAY_OPTUNA_STORAGE": url,
        "RUNWAY_SWEEP_HEARTBEAT": "1",
        "RUNWAY_SWEEP_GRACE": "20",
    }
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder in folders:
        folder.mkdir()
        write_spec(
            folder / "spec.yaml",
            estimator={"name": "RandomForestClassifier", "params": {"n_jobs": 1}},
            metrics=["roc_auc"],
            sweep={"trials": TRIALS, "seed": 2, "pruning": False, "space": SPACE},
        )
    owner = _start(folders[0], env)
    joiner = None
    try:
        deadline = time.monotonic() + 300
        while not ((s := _study(url)) and "mlflow_parent_run_id" in s.user_attrs):
            assert owner.poll() is None and time.monotonic() < deadline, "the owner never started"
            time.sleep(0.2)
        joiner = _start(folders[1], env, "--join")
        assert owner.wait(600) == 0, (folders[0] / "sweep.log").read_text()[-3000:]
        assert joiner.wait(600) == 0, (folders[1] / "sweep.log").read_text()[-3000:]
    finally:
        for proc in (owner, joiner):
            if proc is not None:
                stop_process_group(proc)

    trials = _study(url).get_trials(deepcopy=False)
    assert {t.state for t in trials} == {TrialState.COMPLETE}  # no live trial was failed
    assert TRIALS <= len(trials) <= TRIALS + 1  # all workers together, not each
    workers = {str(t.user_attrs["runway.worker"]).rsplit(":", 1)[1] for t in trials}
    assert workers == {str(owner.pid), str(joiner.pid)}
    log_a, log_b = ((f / "sweep.log").read_text() for f in folders)
    assert "registered test-exp version 1" in log_a
    assert "joined sweep" in log_b and "registered" not in log_b
    client = mlflow.MlflowClient(mlflow_store)
    assert [str(v.version) for v in client.search_model_versions("name = 'test-exp'")] == ["1"]
    parent = _study(url).user_attrs["mlflow_parent_run_id"]
    children = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == sorted(
        t.number for t in trials
    )


def test_joining_a_study_that_does_not_exist_says_how_to_start_it(tmp_path, capsys):
    from runway.cli import main

    spec = write_spec(
        tmp_path / "spec.yaml",
        estimator={"name": "RandomForestClassifier", "params": {}},
        sweep={"trials": 2, "space": SPACE},
    )
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert main(["sweep", str(spec), "--join", "--storage", url]) == 5
    [line] = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("error: no study 'test-exp-") and "--join" in line


def test_a_dead_workers_retried_trial_counts_once():
    study = optuna.create_study()
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for value in (0.1, 0.2):
        study.add_trial(create_trial(params={"x": value}, distributions=dist, value=value))
    # trial 2: its worker died (FAIL) and it was queued again as trial 3, which completed
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": 0.3}, distributions=dist))
    study.add_trial(
        create_trial(
            params={"x": 0.3},
            distributions=dist,
            value=0.3,
            system_attrs={"failed_trial": 2, "retry_history": [2]},
        )
    )
    assert counted(study) == 3

    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=10, callbacks=[StopAtTarget(5)])
    assert len(study.trials) == 6  # two more made five that count, then every worker stops
