"""Every allow-listed estimator's ONNX version scores like it (or is refused), no MLflow involved.

Frames: churn's holdout (missing values in three columns) and the
edge-case frame (all missing, unseen categories, +-1e12, training min/max).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import yaml

from runway.core.columns.contract import infer_contract
from runway.core.onnx.convert import to_onnx
from runway.core.onnx.model import OnnxTwin
from runway.core.onnx.parity import check_parity, edge_frame
from runway.core.training.catalog import ESTIMATORS
from runway.core.training.data import load_dataset, prepare
from runway.core.training.pipeline import build_pipeline
from runway.core.training.spec import spec_from_dict
from runway.errors import LightenRefused
from tests.conftest import EXPERIMENTS, REPO

FAST = {  # small ensembles: the same code paths, a fraction of the time
    "RandomForestClassifier": {"n_estimators": 20},
    "RandomForestRegressor": {"n_estimators": 20},
    "ExtraTreesClassifier": {"n_estimators": 20},
    "ExtraTreesRegressor": {"n_estimators": 20},
    "GradientBoostingClassifier": {"n_estimators": 30},
    "GradientBoostingRegressor": {"n_estimators": 30},
    "HistGradientBoostingClassifier": {"max_iter": 30},
    "HistGradientBoostingRegressor": {"max_iter": 30},
    "LogisticRegression": {"max_iter": 500},
}
# KNN: at +-1e12 distances lose all precision in both implementations and the
# neighbours come back in a different order (equidistant ones, too); refused.
NOT_EXACT = {"KNeighborsClassifier", "KNeighborsRegressor"}


@cache
def _split(task: str, preprocessing: tuple[tuple[str, str], ...] = ()) -> tuple[Any, Any]:
    doc = yaml.safe_load((EXPERIMENTS / "churn.yaml").read_text())
    doc["data"]["source"] = str(REPO / "data" / "churn.csv")
    if task == "regression":  # the same mixed, gappy columns, a numeric target
        doc["task"] = "regression"
        doc["data"]["features"].pop("monthly_charges")
        doc["data"]["features"]["churned"] = "numeric"
        doc["data"]["target"] = "monthly_charges"
        doc["split"]["stratify"] = False
        doc["metrics"], doc["primary_metric"] = ["rmse"], {"name": "rmse"}
    for key, value in preprocessing:
        block, field = key.split(".")
        doc["preprocessing"][block][field] = value
    placeholder = "Ridge" if task == "regression" else "LogisticRegression"
    doc["estimator"] = {"name": placeholder, "params": {}}
    spec = spec_from_dict(doc)
    return doc, prepare(spec, load_dataset(spec.data))


def fit(estimator: str, **preprocessing: str) -> tuple[Any, Any, dict[str, Any]]:
    task = ESTIMATORS[estimator].task
    doc, split = _split(task, tuple(sorted(preprocessing.items())))
    doc = {**doc, "estimator": {"name": estimator, "params": FAST.get(estimator, {})}}
    spec = spec_from_dict(doc)
    pipeline = build_pipeline(spec, split.numeric, split.categorical)
    pipeline.fit(split.X_train, split.y_train)
    contract = infer_contract(split.X_train, split.features, split.source_dtypes)
    return pipeline, split, contract


def twin_of(pipeline: Any, contract: dict[str, Any], tmp_path: Path) -> OnnxTwin:
    path = tmp_path / "model.onnx"
    onnx.save_model(to_onnx(pipeline, contract), str(path))
    return OnnxTwin(path)


def parity(estimator: str, tmp_path: Path, **preprocessing: str) -> Any:
    pipeline, split, contract = fit(estimator, **preprocessing)
    twin = twin_of(pipeline, contract, tmp_path)
    frames = {"holdout": split.X_holdout, "edge": edge_frame(contract, split.X_holdout)}
    return check_parity(pipeline, twin, frames, ESTIMATORS[estimator].task == "classification")


def test_the_frames_hold_missing_values_everywhere_and_unseen_categories():
    _, split = _split("classification")
    _, _, contract = fit("LogisticRegression")
    edge = edge_frame(contract, split.X_holdout)
    assert split.X_holdout.isna().any().sum() >= 3
    assert edge.isna().any().all() and edge.isna().all(axis=1).any()
    assert (edge["region"] == "UNSEEN-runway").any()


@pytest.mark.parametrize("estimator", sorted(set(ESTIMATORS) - NOT_EXACT))
def test_every_allow_listed_estimator_converts_within_tolerance(estimator, tmp_path):
    report = parity(estimator, tmp_path)
    assert report.ok, report.render()
    holdout, edge = report.frames
    assert holdout.rows > 500 and edge.rows > 30
    assert holdout.label_flips == edge.label_flips == 0
    assert report.max_abs_diff <= 1e-5 * 400  # regression values reach a few hundred


@pytest.mark.parametrize("estimator", sorted(NOT_EXACT))
def test_knn_fails_parity_at_the_extremes_and_the_report_names_the_rows(estimator, tmp_path):
    report = parity(estimator, tmp_path)
    assert not report.ok
    text = report.render()
    assert estimator in text and "worst rows of edge" in text and "1000000000000.0" in text
    assert report.frames[1].worst  # (on the holdout, equidistant neighbours may differ too)


@pytest.mark.parametrize(
    "variant",
    [
        {"numeric.impute": "none"},
        {"numeric.scale": "minmax"},
        {"numeric.scale": "robust"},
        {"categorical.impute": "most_frequent"},
        {"categorical.encode": "ordinal"},
    ],
    ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()),
)
@pytest.mark.parametrize("estimator", ["RandomForestClassifier", "HistGradientBoostingClassifier"])
def test_preprocessing_variants_stay_exact(estimator, variant, tmp_path):
    report = parity(estimator, tmp_path, **variant)
    assert report.ok, report.render()


def test_categorical_impute_none_is_refused_naming_the_column(tmp_path):
    pipeline, _, contract = fit("LogisticRegression", **{"categorical.impute": "none"})
    with pytest.raises(LightenRefused, match="column 'payment_method'"):
        to_onnx(pipeline, contract)


def test_target_encoding_is_refused_naming_the_step(tmp_path):
    pipeline, _, contract = fit("LogisticRegression", **{"categorical.encode": "target"})
    with pytest.raises(LightenRefused, match="TargetEncoder has no ONNX conversion"):
        to_onnx(pipeline, contract)


def test_an_unsupported_step_or_estimator_is_refused(tmp_path):
    from sklearn.naive_bayes import GaussianNB
    from sklearn.preprocessing import PolynomialFeatures

    pipeline, _, contract = fit("LogisticRegression")
    numeric = pipeline.named_steps["preprocess"].named_transformers_["num"]
    numeric.steps.append(("poly", PolynomialFeatures()))
    with pytest.raises(LightenRefused, match="PolynomialFeatures has no ONNX conversion"):
        to_onnx(pipeline, contract)
    pipeline, _, contract = fit("LogisticRegression")
    pipeline.steps[-1] = ("model", GaussianNB().fit(np.zeros((2, 1)), [0, 1]))
    with pytest.raises(LightenRefused, match="GaussianNB is not on runway's ONNX list"):
        to_onnx(pipeline, contract)


def test_the_runtime_maps_none_nan_and_the_literal_sentinel_like_sklearn(tmp_path):
    pipeline, split, contract = fit("HistGradientBoostingClassifier")
    twin = twin_of(pipeline, contract, tmp_path)
    rows = split.X_holdout.head(4).copy().astype({"payment_method": object})
    rows["payment_method"] = [None, np.nan, "__missing__", pd.NA]
    expected = pipeline.predict_proba(rows.replace({None: np.nan, pd.NA: np.nan}))
    np.testing.assert_allclose(twin.predict_proba(rows), expected, atol=1e-6)
