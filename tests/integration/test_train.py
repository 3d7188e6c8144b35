"""Training against a real (temporary) SQLite store: what a run records."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from runway.core.training.data import load_dataset, prepare
from runway.core.training.spec import SPEC_ARTIFACT, load_spec
from runway.jobs.train import train
from runway.store.tracking import CONTRACT_ARTIFACT, PROFILE_ARTIFACT
from tests.conftest import EXPERIMENTS
from tests.helpers import write_spec


def _artifacts(client, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_churn_run_records_everything(client, churn_csv, tmp_path):
    spec_path = EXPERIMENTS / "churn.yaml"
    spec = load_spec(spec_path, {"estimator.params.max_iter": 30})
    result = train(spec, spec_path=str(spec_path))

    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "churn"
    assert experiment.artifact_location == (tmp_path / "mlruns" / "churn").as_uri()
    assert run.info.artifact_uri.startswith(experiment.artifact_location + "/")

    params = run.data.params
    assert params["model__max_iter"] == "30"
    assert params["model__learning_rate"] == "0.05"
    assert params["preprocess__cat__impute__strategy"] == "constant"
    assert params["split.cv_folds"] == "5"
    assert not {"memory", "verbose", "model__verbose"} & set(params)  # never vary: noise
    assert run.info.run_name == f"churn · {spec.estimator.name}"  # not painted-elk-234

    metrics = run.data.metrics
    for name in spec.metrics:
        assert {f"cv_{name}", f"cv_{name}_std", f"holdout_{name}"} <= set(metrics)
        assert not {f"cv_{name}_fold", f"cv_{name}_mean"} & set(metrics)  # issue 29, item 2
        history = client.get_metric_history(result.run_id, f"fold/cv_{name}")
        assert [m.step for m in history] == list(range(5))
        assert metrics[f"cv_{name}"] == pytest.approx(np.mean([m.value for m in history]))
    assert 0.7 < metrics["holdout_roc_auc"] <= 1.0
    assert result.primary_value == metrics["holdout_roc_auc"]

    tags = run.data.tags
    assert tags["spec_hash"] == spec.spec_hash() == result.spec_hash
    assert tags["git_commit"]
    assert tags["owner"] == "growth"
    assert tags["runway.registered_model_name"] == "churn-classifier"

    artifacts = _artifacts(client, result.run_id)
    assert {
        SPEC_ARTIFACT,
        CONTRACT_ARTIFACT,
        PROFILE_ARTIFACT,
        "spec/original/churn.yaml",
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
    } <= artifacts
    resolved = mlflow.artifacts.load_text(f"runs:/{result.run_id}/{SPEC_ARTIFACT}")
    assert "max_iter: 30" in resolved

    contract = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/{CONTRACT_ARTIFACT}")
    assert contract["columns"]["contract"]["categories"] == [
        "month-to-month",
        "one-year",
        "two-year",
    ]
    assert contract["columns"]["monthly_charges"]["missing_rate"] > 0
    assert contract["columns"]["tenure_months"]["integer"] is True
    profile = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/{PROFILE_ARTIFACT}")
    assert set(profile["features"]) == set(spec.data.features)

    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"churn-training", "churn-holdout"}
    training = inputs["churn-training"]
    assert training.tags[0].value == "training"
    assert json.loads(training.dataset.source)["uri"].endswith("data/churn.csv")
    assert "monthly_charges" in training.dataset.schema

    # The logged model: signature, example, explicit requirements, skops types, same predictions.
    model = mlflow.pyfunc.load_model(result.model_uri)
    inputs_schema = model.metadata.get_input_schema()
    assert inputs_schema.input_names() == list(spec.data.features)
    assert model.metadata.saved_input_example_info is not None
    flavor = model.metadata.flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert (
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
        in flavor["skops_trusted_types"]
    )
    local = Path(
        mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "model"))
    )
    assert (local / "MLmodel").is_file()
    requirements = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert any(r.startswith("mlflow==") for r in requirements)
    split = prepare(spec, load_dataset(spec.data))
    sk_model = mlflow.sklearn.load_model(result.model_uri)
    np.testing.assert_array_equal(model.predict(split.X_holdout), sk_model.predict(split.X_holdout))
    assert (model.predict(split.X_holdout) == split.y_holdout.to_numpy()).mean() > 0.7


def test_regression_run_has_regression_plots(client):
    spec = load_spec(EXPERIMENTS / "diabetes.yaml", {"estimator.params.n_estimators": 20})
    result = train(spec)
    artifacts = _artifacts(client, result.run_id)
    assert {
        "plots/predicted_vs_actual.png",
        "plots/residuals.png",
        "plots/feature_importances.png",
    } <= artifacts
    assert result.metrics["holdout_rmse"] > 0


def test_a_run_that_fails_part_way_is_marked_failed_with_the_error(client, tmp_path):
    # Valid alone, incompatible together: fails inside the run, at fit time.
    spec = load_spec(
        write_spec(
            tmp_path / "s.yaml",
            estimator={
                "name": "LogisticRegression",
                "params": {"l1_ratio": 0.5, "solver": "lbfgs"},
            },
        )
    )
    with pytest.raises(ValueError, match="lbfgs"):
        train(spec)
    (run,) = mlflow.search_runs(experiment_names=["test-exp"], output_format="list")
    assert run.info.status == "FAILED"
    assert "lbfgs" in run.data.tags["runway.error"]
    assert mlflow.active_run() is None


def test_each_run_of_the_same_spec_is_a_new_comparable_run(client, tmp_path):
    spec = load_spec(write_spec(tmp_path / "s.yaml"))
    first, second = train(spec), train(spec)
    assert first.run_id != second.run_id
    assert first.metrics == second.metrics  # seeded: same spec, same numbers
    runs = mlflow.search_runs(experiment_names=["test-exp"])
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
