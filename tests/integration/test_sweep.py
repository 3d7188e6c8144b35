"""Sweeps against a real SQLite store and a real Optuna journal file."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import mlflow
import optuna
import pytest

from runway.cli import main
from runway.core.training.spec import load_spec
from runway.errors import SpecError
from runway.jobs.register import register_sweep
from runway.jobs.study import default_study_name
from runway.jobs.sweep import sweep
from tests.helpers import write_spec

pytestmark = pytest.mark.slow

TREE = {"model__max_depth": {"type": "int", "low": 1, "high": 6}}
CHOICE = {
    "trials": 6,
    "seed": 3,
    "estimators": {
        "DecisionTreeClassifier": TREE,
        "LogisticRegression": {"model__C": {"type": "float", "low": 0.01, "high": 10, "log": True}},
    },
    "space": {
        "preprocess__num__impute__strategy": {"type": "categorical", "choices": ["median", "mean"]}
    },
}


def _spec(tmp_path, sweep_section=None, **changes):
    return write_spec(tmp_path / "s.yaml", sweep=sweep_section or CHOICE, **changes)


def _children(client, parent_id: str):
    runs = client.search_runs(
        [client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}'",
        max_results=1000,
    )
    return sorted(runs, key=lambda r: int(r.data.tags["optuna.trial_number"]))


def _trials(study_name: str, storage: str):
    study = optuna.load_study(study_name=study_name, storage=_journal(storage))
    return study.get_trials(deepcopy=False)


def _journal(path):
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def test_small_sweep_records_parent_children_plots_and_one_version(client, tmp_path):
    path = _spec(tmp_path)
    result = sweep(load_spec(path), spec_path=str(path))
    assert not client.search_model_versions("name = 'test-exp'")  # registering is a step of its own
    registered = register_sweep(result)

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["runway.sweep"] == "true"
    assert parent.data.tags["best_trial"] == str(result.best_trial)
    assert parent.data.metrics["best_cv_roc_auc"] == pytest.approx(result.best_value)
    assert "holdout_roc_auc" in parent.data.metrics

    children = _children(client, result.parent_run_id)
    assert [int(c.data.tags["optuna.trial_number"]) for c in children] == list(range(6))
    for child in children:
        state = child.data.tags["optuna.trial_state"]
        assert (state, child.info.status) in {("COMPLETE", "FINISHED"), ("PRUNED", "KILLED")}
        assert child.data.params["estimator"] in CHOICE["estimators"]
        assert "trial_seconds" in child.data.metrics
        if state == "COMPLETE":
            assert {"cv_roc_auc", "cv_accuracy"} <= set(child.data.metrics)
        assert not mlflow.search_logged_models(
            experiment_ids=[child.info.experiment_id],
            filter_string=f"source_run_id = '{child.info.run_id}'",
            output_format="list",
        )
    best_child = children[result.best_trial]
    assert best_child.data.tags.get("best_trial") == "true"
    assert parent.data.tags["best_trial_run_id"] == best_child.info.run_id

    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id, "study")}
    assert {
        "study/optimization_history.png",
        "study/param_importances.png",
        "study/parallel_coordinate.png",
        "study/best_params.json",
    } <= artifacts
    assert {a.path for a in client.list_artifacts(result.parent_run_id, "contract")}

    versions = client.search_model_versions("name = 'test-exp'")
    assert len(versions) == 1
    version = versions[0]
    assert str(version.version) == registered.version and version.current_stage == "None"
    assert version.tags["sweep_parent_run_id"] == result.parent_run_id
    assert version.tags["trial_number"] == str(result.best_trial)
    assert version.tags["spec_hash"] == load_spec(path).spec_hash()
    assert version.tags["data_digest"]
    model = mlflow.pyfunc.load_model(f"models:/test-exp/{version.version}")
    assert model.metadata.get_input_schema() is not None


def test_failing_trials_are_recorded_and_the_sweep_goes_on(client, tmp_path):
    failing = {  # each valid alone, incompatible together: fit raises
        "model__solver": {"type": "categorical", "choices": ["lbfgs"]},
        "model__l1_ratio": {"type": "float", "low": 0.2, "high": 0.8},
    }
    path = _spec(
        tmp_path,
        {
            "trials": 8,
            "seed": 0,
            "pruning": False,
            "estimators": {"LogisticRegression": failing, "DecisionTreeClassifier": TREE},
        },
    )
    result = sweep(load_spec(path))
    children = _children(client, result.parent_run_id)
    failed = [c for c in children if c.data.tags["optuna.trial_state"] == "FAILED"]
    assert failed and len(failed) < len(children) == 8
    for run in failed:
        assert run.info.status == "FAILED"
        assert "lbfgs" in run.data.tags["runway.error"]
    assert result.trials["FAIL"] == len(failed)
    assert result.best_params["estimator"] == "DecisionTreeClassifier"


def test_zero_completed_trials_fails_and_registers_nothing(client, tmp_path, capsys):
    failing = {
        "model__solver": {"type": "categorical", "choices": ["lbfgs"]},
        "model__l1_ratio": {"type": "float", "low": 0.2, "high": 0.8},
    }
    path = write_spec(
        tmp_path / "s.yaml",
        estimator={"name": "LogisticRegression"},
        sweep={"trials": 3, "space": failing},
    )
    assert main(["sweep", str(path)]) == 5
    err = capsys.readouterr().err
    assert "finished with no completed trial" in err and "nothing registered" in err
    assert client.search_model_versions("name = 'test-exp'") == []
    parents = mlflow.search_runs(
        experiment_names=["test-exp"],
        filter_string="tags.`runway.sweep` = 'true'",
        output_format="list",
    )
    assert [p.info.status for p in parents] == ["FAILED"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"trials": 3}, "sweep.space: the search space is empty"),
        (
            {"space": {"model__C": {"type": "float", "low": 5, "high": 1}}},
            "sweep.space.model__C.low: low (5) is greater than high (1)",
        ),
        (
            {"space": {"model__max_itr": {"type": "int", "low": 1, "high": 5}}},
            "sweep.space.model__max_itr: unknown field for LogisticRegression (did you mean 'max_iter'?)",
        ),
        (
            {"space": {"C": {"type": "float", "low": 1, "high": 5}}},
            "sweep.space.C: expected a step__param name",
        ),
        (
            {"space": {"model__C": {"type": "float", "low": 0, "high": 5, "log": True}}},
            "a log-scaled dimension needs low > 0",
        ),
        ({"trials": 0, "space": TREE}, "sweep.trials: Input should be greater than or equal to 1"),
    ],
)
def test_bad_search_spaces_are_refused_before_anything_runs(tmp_path, section, expected):
    path = write_spec(tmp_path / "s.yaml", sweep=section)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert expected in str(info.value)


def test_cli_refusals_leave_no_runs_and_no_versions(client, tmp_path, capsys):
    path = _spec(tmp_path)
    assert main(["sweep", str(path), "--trials", "0"]) == 9
    assert "sweep.trials: Input should be greater than or equal to 1" in capsys.readouterr().err
    bad_storage = f"sqlite:///{tmp_path}/no/such/dir/optuna.db"
    assert main(["sweep", str(path), "--storage", bad_storage]) == 5
    assert (
        "no/such/dir/optuna.db' cannot be opened: (sqlite3.OperationalError)"
        in capsys.readouterr().err
    )
    assert main(["sweep", str(path), "--storage", "postgresql://u:hunter2@127.0.0.1:1/x"]) == 5
    err = capsys.readouterr().err
    assert "postgresql://u:***@127.0.0.1:1/x' cannot be opened" in err and "hunter2" not in err
    path2 = write_spec(
        tmp_path / "p.yaml",
        estimator={"name": "LogisticRegression"},
        sweep={
            "space": {
                "preprocess__num__imputer__strategy": {"type": "categorical", "choices": ["mean"]}
            }
        },
    )
    assert main(["sweep", str(path2)]) == 5
    assert (
        "sweep.space.preprocess__num__imputer__strategy: unknown field" in capsys.readouterr().err
    )
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
    assert client.search_model_versions("name = 'test-exp'") == []


def test_existing_study_needs_resume(tmp_path, capsys):
    path = _spec(tmp_path, {**CHOICE, "trials": 2})
    assert main(["sweep", str(path)]) == 0
    assert main(["sweep", str(path)]) == 5
    assert "already exists" in capsys.readouterr().err
    assert main(["sweep", str(path), "--resume", "--trials", "4"]) == 0
    name = default_study_name(load_spec(path))
    assert [t.number for t in _trials(name, tmp_path / "optuna.journal")] == [0, 1, 2, 3]


def test_two_workers_share_one_study_without_lost_or_duplicated_trials(client, tmp_path):
    path = _spec(tmp_path, {**CHOICE, "trials": 8})
    result = sweep(load_spec(path), workers=2)
    register_sweep(result)
    numbers = [t.number for t in _trials(result.study_name, tmp_path / "optuna.journal")]
    assert sorted(numbers) == list(range(8))
    children = _children(client, result.parent_run_id)
    assert sorted(int(c.data.tags["optuna.trial_number"]) for c in children) == list(range(8))
    assert all(
        (c.data.tags["optuna.trial_state"], c.info.status)
        in {("COMPLETE", "FINISHED"), ("PRUNED", "KILLED")}
        for c in children
    )
    assert len(client.search_model_versions("name = 'test-exp'")) == 1


def test_resume_kills_a_child_run_its_trial_never_named(client, tmp_path):
    """Killed between creating a trial's run and recording its id: the run still ends KILLED."""
    path = _spec(tmp_path, {**CHOICE, "trials": 2})
    first = sweep(load_spec(path), spec_path=str(path))
    name = default_study_name(load_spec(path))
    study = optuna.load_study(study_name=name, storage=_journal(tmp_path / "optuna.journal"))
    orphan_trial = study.ask()  # RUNNING, no mlflow_run_id recorded
    parent = client.get_run(first.parent_run_id)
    orphan = client.create_run(
        parent.info.experiment_id,
        tags={
            "mlflow.parentRunId": parent.info.run_id,
            "optuna.trial_number": str(orphan_trial.number),
        },
    )

    assert main(["sweep", str(path), "--resume", "--trials", "3"]) == 0

    assert client.get_run(orphan.info.run_id).info.status == "KILLED"
    assert (
        client.get_run(orphan.info.run_id).data.tags["optuna.trial_state"] == "FAIL (interrupted)"
    )
    assert _trials(name, tmp_path / "optuna.journal")[orphan_trial.number].state.name == "FAIL"


def test_interrupted_trials_do_not_count_toward_trials_on_resume(tmp_path):
    """Two trials a kill left RUNNING become FAIL, and `--trials 4` still evaluates four."""
    path = _spec(tmp_path, {**CHOICE, "trials": 2})
    sweep(load_spec(path), spec_path=str(path))
    name = default_study_name(load_spec(path))
    study = optuna.load_study(study_name=name, storage=_journal(tmp_path / "optuna.journal"))
    interrupted = {study.ask().number, study.ask().number}  # RUNNING, as a kill leaves them

    assert main(["sweep", str(path), "--resume", "--trials", "4"]) == 0

    trials = _trials(name, tmp_path / "optuna.journal")
    assert {t.number for t in trials if t.state.name == "FAIL"} == interrupted
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4


def test_killed_sweep_resumes_keeping_finished_trials(client, tmp_path, python, mlflow_store):
    slow = {
        "model__n_estimators": {"type": "int", "low": 40, "high": 80},
        "model__max_depth": {"type": "int", "low": 2, "high": 8},
    }
    path = write_spec(
        tmp_path / "s.yaml",
        estimator={"name": "RandomForestClassifier"},
        sweep={"trials": 14, "pruning": False, "space": slow},
    )
    name = default_study_name(load_spec(path))
    journal = tmp_path / "optuna.journal"
    proc = subprocess.Popen(
        [python, "-m", "runway", "sweep", str(path)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_store},
    )
    deadline = time.monotonic() + 120
    before: list = []
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists():
            try:
                before = [t for t in _trials(name, journal) if t.state.is_finished()]
            except KeyError:
                before = []
            if len(before) >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t.number: t.value for t in _trials(name, journal) if t.state.is_finished()}
    assert 3 <= len(before) < 14

    assert main(["sweep", str(path), "--resume"]) == 0
    after = _trials(name, journal)
    numbers = [t.number for t in after]
    assert len(numbers) == len(set(numbers))
    finished = {t.number: t.value for t in after if t.state.is_finished()}
    assert len(finished) >= len(before)
    assert all(finished[n] == v for n, v in before.items())  # kept, not repeated
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) >= 14 - 1
    parents = mlflow.search_runs(
        experiment_names=["test-exp"],
        filter_string="tags.`runway.sweep` = 'true'",
        output_format="list",
    )
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = _children(client, parents[0].info.run_id)
    assert not [c for c in children if c.info.status == "RUNNING"]


def test_a_resumed_sweep_does_not_propose_its_finished_trials_again(tmp_path):
    """Killed after 3 trials and resumed: trials 3-5 once replayed trials 0-2's draws exactly."""
    space = {"model__C": {"type": "float", "low": 0.01, "high": 10.0, "log": True}}
    path = write_spec(
        tmp_path / "s.yaml",
        estimator={"name": "LogisticRegression", "params": {"max_iter": 200}},
        sweep={"trials": 3, "seed": 7, "pruning": False, "space": space},
    )
    sweep(load_spec(path))
    sweep(load_spec(path, {"sweep.trials": 6}), resume=True)

    trials = _trials(default_study_name(load_spec(path)), tmp_path / "optuna.journal")
    drawn = [t.params["model__C"] for t in sorted(trials, key=lambda t: t.number)]
    assert len(drawn) == 6
    assert not set(drawn[3:]) & set(drawn[:3]), drawn
