"""Runs a person can tell apart in the table (issue 29, item 3)."""

from __future__ import annotations

from runway.core.training.spec import load_spec
from runway.jobs.train import training_run_name
from runway.jobs.trial import trial_run_name
from tests.helpers import write_spec


def test_a_training_run_is_named_from_its_spec_estimator_and_overrides(tmp_path):
    path = write_spec(tmp_path / "churn.yaml", estimator={"name": "RandomForestClassifier"})
    spec = load_spec(path)
    assert training_run_name(spec, str(path)) == "churn · RandomForestClassifier"
    overrides = ["estimator.params.max_depth=4", "split.seed=3"]
    assert (
        training_run_name(spec, str(path), overrides)
        == "churn · RandomForestClassifier · estimator.params.max_depth=4 · split.seed=3"
    )


def test_trials_are_named_by_study_and_number_and_a_resumed_one_says_so():
    assert trial_run_name("churn-a1b2", 7) == "churn-a1b2 trial 7"
    assert trial_run_name("churn-a1b2", 11, 3) == "churn-a1b2 trial 11 (resumed trial 3)"
