from __future__ import annotations

import pytest
from PIL import Image

from runway.core.training.data import load_dataset, prepare
from runway.core.training.evaluate import cross_validate, holdout_metrics
from runway.core.training.pipeline import build_pipeline
from runway.core.training.plots import feature_importances, make_plots
from runway.core.training.spec import load_spec
from tests.helpers import write_spec


def _fitted(tmp_path, **changes):
    spec = load_spec(write_spec(tmp_path / "s.yaml", **changes))
    split = prepare(spec, load_dataset(spec.data))
    pipe = build_pipeline(spec, split.numeric, split.categorical)
    return spec, split, pipe


def test_regression_metrics_are_reported_in_natural_sign(tmp_path):
    spec, split, pipe = _fitted(
        tmp_path,
        task="regression",
        data={"source": "sklearn:diabetes", "target": "target"},
        estimator={"name": "Ridge"},
        metrics=["rmse", "r2"],
        primary_metric={"name": "rmse"},
    )
    cv = cross_validate(spec, pipe, split.X_train, split.y_train)
    assert len(cv.folds["rmse"]) == spec.split.cv_folds
    assert all(v > 0 for v in cv.folds["rmse"])
    assert cv.summary()["cv_rmse"] == pytest.approx(sum(cv.folds["rmse"]) / spec.split.cv_folds)
    fitted = pipe.fit(split.X_train, split.y_train)
    holdout = holdout_metrics(spec, fitted, split.X_holdout, split.y_holdout)
    assert holdout["holdout_rmse"] > 0
    assert 0 < holdout["holdout_r2"] < 1
    names = {
        p.name for p in make_plots(spec, fitted, split.X_holdout, split.y_holdout, tmp_path / "p")
    }
    assert names == {"predicted_vs_actual.png", "residuals.png", "feature_importances.png"}


def test_classification_plots_are_real_images(tmp_path):
    spec, split, pipe = _fitted(
        tmp_path, estimator={"name": "RandomForestClassifier", "params": {"n_estimators": 10}}
    )
    fitted = pipe.fit(split.X_train, split.y_train)
    paths = make_plots(spec, fitted, split.X_holdout, split.y_holdout, tmp_path / "p")
    assert {p.name for p in paths} == {
        "confusion_matrix.png",
        "roc_curve.png",
        "feature_importances.png",
    }
    for path in paths:
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 300 and img.height > 100
    importances = feature_importances(fitted)
    assert importances.index[0].startswith("num__")
    assert importances.sum() == pytest.approx(1.0)


def test_estimator_without_importances_gets_no_importance_plot(tmp_path):
    spec, split, pipe = _fitted(tmp_path, estimator={"name": "KNeighborsClassifier"})
    fitted = pipe.fit(split.X_train, split.y_train)
    assert feature_importances(fitted) is None
    names = {
        p.name for p in make_plots(spec, fitted, split.X_holdout, split.y_holdout, tmp_path / "p")
    }
    assert names == {"confusion_matrix.png", "roc_curve.png"}


def test_the_cv_mean_is_named_as_users_expect_and_the_folds_sort_after_it():
    from runway.core.training.evaluate import CVResult

    cv = CVResult(folds={"roc_auc": [0.8, 0.9], "accuracy": [0.7, 0.8]})
    summary = cv.summary()
    assert summary["cv_roc_auc"] == pytest.approx(0.85)
    assert summary["cv_roc_auc_std"] == pytest.approx(0.05)
    series = {name for name, _, _ in cv.fold_series()}
    assert series == {"fold/cv_roc_auc", "fold/cv_accuracy"}
    # The UI's metric list and Compare's default axis take the first name in order.
    assert sorted([*summary, *series])[0].startswith("cv_")
    assert not any(name.startswith("cv_") for name in series)


def test_a_run_logged_before_the_rename_is_still_read():
    from runway.core.training.evaluate import cv_summary, cv_value

    old = {"cv_roc_auc_mean": 0.81, "cv_roc_auc_std": 0.02, "cv_roc_auc_fold": 0.79}
    assert cv_value(old, "roc_auc") == (0.81, 0.02)
    assert cv_summary(old) == {"cv_roc_auc": 0.81, "cv_roc_auc_std": 0.02}
    new = {"cv_roc_auc": 0.8, "cv_roc_auc_std": 0.01, "fold/cv_roc_auc": 0.7, "holdout_x": 1}
    assert cv_value(new, "roc_auc") == (0.8, 0.01)
    assert cv_summary(new) == {"cv_roc_auc": 0.8, "cv_roc_auc_std": 0.01}
