"""What the MLflow UI shows of runway's runs (issue 16, items 1-5 and 7): the records it reads.

The browser itself is driven in tests/e2e/test_browser.py; here the store is
read as the UI reads it: the links `runway train` prints, the tags and params
the runs table shows, the metric names Compare offers, the status icons.
"""

from __future__ import annotations

import re

import mlflow
import pytest

from runway.cli import main
from runway.core.training.spec import load_spec
from runway.jobs.register import register_sweep
from runway.jobs.sweep import sweep
from runway.jobs.train import train
from runway.jobs.trial import log_trial
from runway.settings import Settings
from runway.store import tracking
from tests.helpers import write_spec

pytestmark = pytest.mark.slow

LR_SPACE = {"model__C": {"type": "float", "low": 0.01, "high": 10, "log": True}}
# The spec names a RandomForest, the only sweep choice is LogisticRegression: the
# refitted (and registered) model is a LogisticRegression whatever the sampler does.
ONLY_LR = {"trials": 3, "seed": 1, "pruning": False, "estimators": {"LogisticRegression": LR_SPACE}}
DESCRIPTION = "Tumours, screened. See [the policy](https://example.org/policy)."


def _spec_path(tmp_path, name="s.yaml", **changes):
    return write_spec(tmp_path / name, description=DESCRIPTION, **changes)


def test_train_prints_the_runs_table_link_and_a_run_link_in_model_training_mode(
    tmp_path, capsys, monkeypatch, client
):
    """Item 1: MLflow 3.17 opens `#/experiments/<id>` on the GenAI overview; the runs table
    needs `workflowType=machine_learning` in the URL (the experiment tag is not read)."""
    monkeypatch.setenv("RUNWAY_UI_URL", "http://127.0.0.1:5999/")
    path = _spec_path(tmp_path)

    assert main(["-q", "train", str(path)]) == 0

    out = capsys.readouterr().out
    run_id = re.search(r"^run ([0-9a-f]{32}) FINISHED", out, re.M).group(1)
    experiment_id = client.get_run(run_id).info.experiment_id
    table = re.search(r"^look +make ui, then (\S+)", out, re.M).group(1)
    assert table == (
        f"http://127.0.0.1:5999/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        "&viewStateShareKey=runway"  # issue 29, item 1: the view runway pinned
    )
    link = re.search(r"^run +(http\S+)", out, re.M).group(1)
    assert link == (
        f"http://127.0.0.1:5999/#/experiments/{experiment_id}/runs/{run_id}"
        "?workflowType=machine_learning"
    )


def test_run_url_defaults_to_make_ui_and_follows_a_tracking_server(monkeypatch):
    assert tracking.run_url("r1", "7") == (
        "http://127.0.0.1:5000/#/experiments/7/runs/r1?workflowType=machine_learning"
    )
    mlflow.set_tracking_uri("http://mlflow.internal:5000/")
    try:
        assert tracking.experiment_url("7") == (
            "http://mlflow.internal:5000/#/experiments/7/runs?workflowType=machine_learning"
            "&viewStateShareKey=runway"
        )
    finally:
        mlflow.set_tracking_uri(tracking.tracking_uri())


def test_sweep_parent_names_the_refitted_estimator_and_compares_with_a_training_run(
    tmp_path, client
):
    """Items 2 and 3: the parent's estimator tag, params, CV summary and split are those of
    the refitted model, under the names a training run uses."""
    swept = _spec_path(tmp_path, estimator={"name": "RandomForestClassifier"}, sweep=ONLY_LR)
    result = sweep(load_spec(swept), spec_path=str(swept))
    version = register_sweep(result)
    trained = train(load_spec(_spec_path(tmp_path, "t.yaml")))

    parent = client.get_run(result.parent_run_id)
    assert result.estimator == "LogisticRegression"
    assert parent.data.tags["runway.estimator"] == "LogisticRegression"
    assert (
        client.get_model_version("test-exp", version.version).tags["estimator"]
        == (parent.data.tags["runway.estimator"])
    )

    training = client.get_run(trained.run_id)
    # Same names; a param at its default (the sweep's max_iter) is not logged (issue 29).
    shared = {k for k in training.data.params if k.startswith("split.")} | {"model__C"}
    assert shared <= set(parent.data.params)
    assert not [k for k in parent.data.params if k.startswith("best.")]
    assert parent.data.params["model__C"] == repr(result.best_params["model__C"])
    for metric in ("roc_auc", "accuracy"):
        for summary in (f"cv_{metric}", f"cv_{metric}_std", f"holdout_{metric}"):
            assert summary in parent.data.metrics, summary
    best = client.get_run(parent.data.tags["best_trial_run_id"])
    assert parent.data.metrics["cv_roc_auc"] == best.data.metrics["cv_roc_auc"]
    assert parent.data.metrics["cv_roc_auc"] == pytest.approx(result.best_value)
    note = parent.data.tags["mlflow.note.content"]
    assert (
        "LogisticRegression" in note and f"#/experiments/{parent.info.experiment_id}/runs/" in note
    )


def test_per_fold_scores_are_a_series_apart_from_the_cv_summary(tmp_path, client):
    """Item 4: the table and Compare read a metric's latest value, so the per-fold series
    must not be called `cv_<metric>` (it showed the last fold as "the" score)."""
    result = train(load_spec(_spec_path(tmp_path)))

    run = client.get_run(result.run_id)
    assert not {"cv_roc_auc_fold", "cv_roc_auc_mean"} & set(run.data.metrics)
    folds = client.get_metric_history(result.run_id, "fold/cv_roc_auc")
    assert [m.step for m in folds] == [0, 1, 2]
    assert run.data.metrics["cv_roc_auc"] == pytest.approx(sum(m.value for m in folds) / len(folds))


def test_a_pruned_trial_does_not_end_finished(client):
    """Item 5: KILLED draws the red icon, FINISHED the green tick; the tag tells pruned
    from failed and can be filtered on."""
    experiment = tracking.ensure_experiment("pruning", Settings())
    run_id = tracking.create_run(experiment, "trial-007", {})

    log_trial(run_id, {"model__C": 0.1}, {"roc_auc": [0.5]}, "PRUNED", "", 0.1)

    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["optuna.trial_state"] == "PRUNED"
    found = client.search_runs([experiment], "tags.`optuna.trial_state` = 'PRUNED'")
    assert [r.info.run_id for r in found] == [run_id]


def test_pruned_trials_of_a_real_sweep_are_killed_and_complete_ones_finished(tmp_path, client):
    space = {"model__C": {"type": "float", "low": 1e-5, "high": 10, "log": True}}
    path = write_spec(
        tmp_path / "p.yaml",
        metrics=["accuracy"],
        primary_metric={"name": "accuracy"},
        sweep={"trials": 12, "seed": 0, "pruning": True, "space": space},
    )
    result = sweep(load_spec(path))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    states = {(c.data.tags["optuna.trial_state"], c.info.status) for c in children}
    assert ("PRUNED", "KILLED") in states
    assert states <= {("PRUNED", "KILLED"), ("COMPLETE", "FINISHED")}


def test_spec_description_becomes_the_experiment_description(tmp_path, client):
    """Item 7: the experiment's description is its `mlflow.note.content` tag (Markdown)."""
    path = _spec_path(tmp_path)
    result = train(load_spec(path))
    experiment = client.get_experiment(result.experiment_id)
    assert experiment.tags["mlflow.note.content"] == DESCRIPTION

    changed = write_spec(tmp_path / "s.yaml", description="Second thoughts.")
    train(load_spec(changed))
    assert client.get_experiment(result.experiment_id).tags["mlflow.note.content"] == (
        "Second thoughts."
    )
