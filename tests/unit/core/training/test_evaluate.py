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
    assert cv.summary()["cv_rmse_mean"] == pytest.approx(
        sum(cv.folds["rmse"]) / spec.split.cv_folds
    )
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
